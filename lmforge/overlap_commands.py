"""`lmforge overlap --registry DIR`: verbatim overlap of the user's documents with protected works.

Reads JSON lines `{"id", "text"}` on stdin and answers `{"id", "overlap_fraction", "spans",
"truncated"}` per line (jobs/copyright/overlap.py); a bad line gets `{"id", "line", "error"}` as in
every row command. The registry is a folder of `.txt` files, one work each, or an index saved
with `OverlapIndex.save` (`.npz`); it is built or loaded once per process.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.cli import command

if TYPE_CHECKING:  # keeps numpy out of `lmforge --help`
    from jobs.copyright.overlap import OverlapIndex


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry", required=True, type=Path,
        help="folder of protected works (.txt files, one work each) or a saved index (.npz)",
    )  # fmt: skip


@functools.cache
def load_registry(path: Path) -> OverlapIndex:
    """The index of a registry, built (folder) or loaded (.npz) once per process and path."""
    from jobs.copyright.overlap import OverlapIndex, build_index, registry_works

    if path.is_file() and path.suffix == ".npz":
        return OverlapIndex.load(path)
    return build_index(registry_works(path))


def overlap_answer(obj: dict[str, Any], index: OverlapIndex) -> dict[str, Any]:
    """One document's answer: containment and the spans with offsets into its `text`."""
    from jobs.copyright.overlap import find_overlap

    text = obj.get("text")
    if not isinstance(text, str):
        raise ValueError("no string field text")
    found = find_overlap(text, index)
    spans = [{"start": s.start, "end": s.end, "work": s.work, "ngrams": s.ngrams} for s in found.spans]
    return {"overlap_fraction": round(found.fraction, 6), "spans": spans, "truncated": found.truncated}


@command(
    "overlap",
    "Verbatim overlap with protected works: JSON lines {id, text} on stdin, answering {id, "
    "overlap_fraction, spans (start, end, work, ngrams), truncated}",
    _arguments,
)
def overlap(args: argparse.Namespace) -> int:
    from lmforge.jsonl import answer_all

    index = load_registry(args.registry.resolve())
    return 1 if answer_all(sys.stdin.buffer, sys.stdout, lambda obj: overlap_answer(obj, index)) else 0
