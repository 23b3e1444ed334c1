"""Per-source distributions for the data report, in one streaming pass over record batches.

Lengths are read from what the tokenizer trains on (the near_dedup output) and quality scores from every
document the quality stage judged (kept and removed: the score is written before any threshold). Each
is kept as counts in fixed bins with exact count, sum, min and max, so memory does not grow with the
corpus: log-spaced half-octave bins for lengths (token or word counts span five orders of magnitude),
twenty 0.05-wide bins for scores in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from core.registry import STAGES
from jobs.funnel import RunReader

SCORE = "quality.score"  # the annotation jobs/filters/quality.py writes
SCORE_BINS = 20


@dataclass
class Histogram:
    """Counts per bin with exact count, sum, min and max."""

    bins: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None

    def add(self, value: float, bin_index: int) -> None:
        self.bins[bin_index] = self.bins.get(bin_index, 0) + 1
        self.count += 1
        self.total += value
        self.low = value if self.low is None else min(self.low, value)
        self.high = value if self.high is None else max(self.high, value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean": round(self.total / self.count, 4) if self.count else None,
            "min": self.low,
            "max": self.high,
            "bins": {str(k): v for k, v in sorted(self.bins.items())},
        }


def length_bin(n: int) -> int:
    """0 for an empty document, else b with 2**((b-1)/2) <= n < 2**(b/2): half-octave bins."""
    return 0 if n <= 0 else math.floor(2 * math.log2(n)) + 1


def length_edges(b: int) -> tuple[float, float]:
    """The [low, high) range of length bin `b` (b >= 1)."""
    return 2 ** ((b - 1) / 2), 2 ** (b / 2)


def score_bin(score: float) -> int:
    return min(max(int(score * SCORE_BINS), 0), SCORE_BINS - 1)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _scores(batch: pa.RecordBatch) -> list[float | None]:
    if "annotations" not in batch.schema.names:
        return [None] * batch.num_rows
    return [_number(v) for v in pc.map_lookup(batch.column("annotations"), SCORE, "first").to_pylist()]


def lengths_by_source(reader: RunReader, stage: str) -> dict[str, Histogram]:
    """Tokens (the reader's unit) per document of `stage`'s kept data, binned per source."""
    out: dict[str, Histogram] = {}
    for batch in reader.batches(stage, "data", ("text", "source_type")):
        sources = batch.column("source_type").to_pylist()
        tokens = reader.count([t or "" for t in batch.column("text").to_pylist()])
        for source, n in zip(sources, tokens, strict=True):
            out.setdefault(source, Histogram()).add(n, length_bin(n))
    return out


def scores_by_source(
    reader: RunReader, stage: str = "quality"
) -> tuple[dict[str, Histogram], dict[str, int]]:
    """`quality.score` of every document the stage judged, binned per source, and the unscored count."""
    out: dict[str, Histogram] = {}
    unscored: dict[str, int] = {}
    for part in ("data", "rejected"):
        for batch in reader.batches(stage, part, ("source_type", "annotations")):
            for source, score in zip(batch.column("source_type").to_pylist(), _scores(batch), strict=True):
                if score is None:
                    unscored[source] = unscored.get(source, 0) + 1
                else:
                    out.setdefault(source, Histogram()).add(score, score_bin(score))
    return out, unscored


def distributions(reader: RunReader) -> dict[str, Any]:
    """Lengths of what the tokenizer reads and quality scores, per source, as plain dicts."""
    final = STAGES["tokenizer"].inputs[0]
    scores, unscored = scores_by_source(reader)
    return {
        "length_stage": final,
        "token_unit": reader.token_unit,
        "length": {s: h.as_dict() for s, h in sorted(lengths_by_source(reader, final).items())},
        "quality_score": {s: h.as_dict() for s, h in sorted(scores.items())},
        "unscored": dict(sorted(unscored.items())),
    }
