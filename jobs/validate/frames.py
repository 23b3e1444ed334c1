"""Light pandas frames of a stage's output, what the suites run on: per document the id, source
type, language, domain, text length and the few annotations a check needs, never the text itself.

Why pandas and not the stage's Spark DataFrame: GX on Spark starts a Spark job per metric (dozens
per suite), seconds per stage on small runs, while these columns of a whole stage fit in memory
to millions of rows. A part larger than `max_rows` is checked on its first `max_rows` rows, and
the result says so (`sampled`); row counts always come from the parquet metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

ANNOTATIONS = {"text_sha256": "dedup.text_sha256", "license_class": "copyright.class"}
_COLUMNS = ("id", "source_type", "language", "domain")
_REJECT = ("reject_stage", "reject_reason")


@dataclass
class Part:
    """One parquet part (data/ or rejected/): its light frame, its full row count, its schema."""

    frame: Any  # pandas.DataFrame
    rows: int
    sampled: bool
    schema: pa.Schema


def type_name(t: pa.DataType) -> str:
    """A column type as the contract means it: Spark writes timestamps as ns without a zone and
    names the map's entries, neither of which changes what the column holds."""
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_map(t):
        return f"map<{type_name(t.key_type)},{type_name(t.item_type)}>"
    if pa.types.is_large_string(t):
        return "string"
    return str(t)


def _light(batch: pa.RecordBatch) -> pa.Table:
    names = batch.schema.names
    cols = {c: batch.column(c) for c in (*_COLUMNS, *_REJECT) if c in names}
    text = batch.column("text") if "text" in names else pa.nulls(batch.num_rows, pa.string())
    cols["text_chars"] = pc.fill_null(pc.utf8_length(text), 0)
    for name, key in ANNOTATIONS.items():
        cols[name] = (
            pc.map_lookup(batch.column("annotations"), key, "first")
            if "annotations" in names
            else pa.nulls(batch.num_rows, pa.string())
        )
    return pa.table(cols)


def read_part(folder: Path, max_rows: int) -> Part | None:
    """The part's light frame (None when the stage wrote no such part)."""
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    dataset = pads.dataset([str(f) for f in files], format="parquet")
    rows = dataset.count_rows()
    wanted = [c for c in (*_COLUMNS, *_REJECT, "text", "annotations") if c in dataset.schema.names]
    tables, read = [], 0
    for batch in dataset.to_batches(columns=wanted, batch_size=65_536):
        tables.append(_light(batch.slice(0, max_rows - read)))
        read += tables[-1].num_rows
        if read >= max_rows:
            break
    frame = pa.concat_tables(tables).to_pandas() if tables else _light(_empty(dataset.schema)).to_pandas()
    return Part(with_domain_share(frame), rows, read < rows, dataset.schema)


def empty_part() -> Part:
    """The light frame of a part with no rows (a stage that wrote none)."""
    from core.schema import DOCUMENT_SCHEMA

    return Part(with_domain_share(_light(_empty(DOCUMENT_SCHEMA)).to_pandas()), 0, False, DOCUMENT_SCHEMA)


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


def with_domain_share(frame: Any) -> Any:
    """Adds `domain_share`: the share of all rows that the row's domain holds (0 without one)."""
    if "domain" not in frame.columns or frame.empty:
        return frame.assign(domain_share=0.0)
    shares = frame["domain"].map(frame["domain"].value_counts(normalize=True))
    return frame.assign(domain_share=shares.fillna(0.0).astype(float))


def schema_frame(parts: dict[str, Part]) -> Any:
    """One row per column of each part: `signature` is `part.column:type`."""
    import pandas as pd

    rows = [
        {"part": name, "column": f.name, "signature": f"{name}.{f.name}:{type_name(f.type)}"}
        for name, part in parts.items()
        for f in part.schema
    ]
    return pd.DataFrame(rows, columns=["part", "column", "signature"])


def shards_frame(folder: Path) -> Any:
    """One row per split from meta.json and the files it lists: what the shards suite checks.
    Read as plain JSON so a field added to meta.json later does not break the gate."""
    import numpy as np
    import pandas as pd

    meta = json.loads((folder / "meta.json").read_text())
    rows = []
    for split in ("train", "val"):
        files = [folder / f for f in meta.get(f"{split}_files", [])]
        present = [f for f in files if f.is_file()]
        sizes = [f.stat().st_size for f in present]
        top = max(
            (int(np.memmap(f, dtype=np.uint16, mode="r").max()) for f in present if f.stat().st_size > 1),
            default=-1,
        )
        rows.append(
            {
                "split": split,
                "files": len(files),
                "missing_files": len(files) - len(present),
                "odd_size_files": sum(s % 2 for s in sizes),
                "file_tokens": sum(s // 2 for s in sizes),
                "meta_tokens": int(meta.get(f"{split}_tokens", 0)),
                "max_token_id": top,
                "vocab_size": int(meta.get("vocab_size", 0)),
            }
        )
    return pd.DataFrame(rows)


def tokenizer_frame(folder: Path) -> Any:
    """One row: the trained vocabulary's size and whether its end-of-text token exists."""
    import pandas as pd

    model = json.loads((folder / "tokenizer.json").read_text())
    vocab = model.get("model", {}).get("vocab", {})
    added = {t.get("content") for t in model.get("added_tokens", [])}
    return pd.DataFrame([{"vocab_size": len(vocab), "has_eos": "<|endoftext|>" in added | set(vocab)}])


def diversity_frame(folder: Path) -> Any:
    """One row per diversity gate (jobs/safety/diversity.py `gate_rows`): `id` names the check and
    its subject (`max_domain_share:example.com`), `margin` is how far inside the bound it is
    (limit - observed for a maximum, observed - limit for a minimum): negative fails."""
    import pandas as pd

    rows = json.loads((folder / "gates.json").read_text())
    frame = pd.DataFrame(rows, columns=["check", "subject", "observed", "limit", "ok"])
    frame["id"] = frame["check"] + ":" + frame["subject"].astype(str)
    is_max = frame["check"].str.startswith("max_")
    frame["margin"] = (frame["limit"] - frame["observed"]).where(is_max, frame["observed"] - frame["limit"])
    return frame
