"""Trained models as files that are never pickles: a `.npz` archive of a UTF-8 JSON header and numpy
arrays, read with `allow_pickle=False`; and the seeded stratified hold-out both trainers measure on.
Shared by the quality score (jobs/filters/classifier.py) and the toxicity classifier
(jobs/safety/toxicity_model.py).

Why this shape: a model file may come from anyone who can place a file at a location, so it is
data, and the project never unpickles data. The file's size and its unpacked size are capped, its
sha256 is checked against the config's pin before any byte is parsed (what is hashed is what is
parsed), the members must be exactly the expected ones, and the header must name the format and
version. Fixed zip timestamps make the same model the same bytes, so a pinned sha256 survives a
retrain on the same data and seed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

EPOCH = (1980, 1, 1, 0, 0, 0)  # zip timestamps fixed: same model, same bytes


class ModelError(ValueError):
    """A model file that is not one we wrote, too large, or not the one the config pins."""


def write_npz(path: str | os.PathLike[str], header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """Write `header` (as the `header` member) and `arrays` atomically; returns the file's sha256."""
    members = {"header": np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8), **arrays}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as fh:
                np.lib.format.write_array(fh, array, allow_pickle=False)
    data = buffer.getvalue()
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(target)
    return hashlib.sha256(data).hexdigest()


def read_pinned(path: str | os.PathLike[str], sha256: str | None, kind: str, max_bytes: int) -> bytes:
    """The file's bytes, refused when above `max_bytes` or when they differ from the pinned sha256."""
    file = Path(path)
    size = file.stat().st_size
    if size > max_bytes:
        raise ModelError(f"{kind} {file}: {size} bytes, above the {max_bytes}-byte cap")
    with file.open("rb") as fh:
        data = fh.read(max_bytes + 1)  # what is hashed is what is parsed
    if len(data) > max_bytes:
        raise ModelError(f"{kind} {file}: above the {max_bytes}-byte cap")
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and actual != sha256.strip().lower():
        raise ModelError(f"{kind} {file}: sha256 is {actual}, the config pins {sha256}")
    return data


def parse_npz(
    data: bytes, fmt: str, version: int, names: tuple[str, ...], max_unpacked: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays) of an archive holding exactly `header` and `names`; ModelError otherwise."""
    members = {f"{n}.npy" for n in ("header", *names)}
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ModelError(f"not a {fmt} file (expected a .npz archive; pickles are never loaded)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ModelError(f"not a readable archive ({err})") from None
    if {i.filename for i in infos} != members or len(infos) != len(members):
        raise ModelError(f"members {sorted(i.filename for i in infos)}, expected {sorted(members)}")
    if sum(i.file_size for i in infos) > max_unpacked:
        raise ModelError(f"unpacks to more than {max_unpacked} bytes")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ("header", *names)}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ModelError(f"unreadable arrays ({err})") from None
    return _header(arrays.pop("header"), fmt, version), arrays


def _header(array: np.ndarray, fmt: str, version: int) -> dict[str, Any]:
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ModelError("header is not UTF-8 bytes")
    try:
        header = json.loads(array.tobytes().decode())
    except (UnicodeDecodeError, ValueError) as err:
        raise ModelError(f"header is not JSON ({err})") from None
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise ModelError(f"header does not name the format {fmt!r}")
    if header.get("version") != version:
        raise ModelError(f"format version {header.get('version')!r}; this lmforge reads version {version}")
    return header


def stratified_split(labels: np.ndarray, holdout: float, seed: int) -> np.ndarray:
    """A boolean mask of held-out rows: `holdout` of each class present (seeded), at least one of a
    class with two or more rows, so every class is measured."""
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for value in np.unique(labels):
        index = np.flatnonzero(labels == value)
        k = round(holdout * len(index))
        k = max(k, 1) if holdout > 0 and len(index) >= 2 else k
        held[rng.permutation(index)[:k]] = True
    return held
