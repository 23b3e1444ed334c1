"""Near-duplicate removal, as plain rules: which member of a cluster stays, and the report's
arithmetic. The Spark mapping (MinHash LSH candidates, verified edges, connected components, the
keeper per cluster) is jobs/spark/near_dedup.py.

Keeper priority (first wins): the least restrictive licence class of the copyright policy
(jobs/copyright/policy.py, the one ranking), then a higher quality score
(`quality.score`, when a scoring stage provides one), then the longer text, then the earliest
fetch, then the smallest id. Permissive licences first follows the licence-aware selection of
The Stack (Kocetkov et al. 2022, section 3.1): when two copies exist, keep the one we may use most
freely. Removed documents keep their cluster id and keeper id.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from jobs.copyright.policy import rank as policy_rank

Row = dict[str, Any]
SCORE = "quality.score"
REASON = "minhash_duplicate"
CLUSTER_ANNOTATION = "dedup.cluster_id"
KEEPER_ANNOTATION = "dedup.keeper_id"


# What Spark's (ANSI) string-to-double cast accepts, as Java's Double.parseDouble does: decimal or
# hexadecimal, an optional f/d suffix, NaN and Infinity; plus Spark's own inf/infinity/nan in any case.
_DECIMAL = re.compile(r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?)")
_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+[fFdD]?")
_SPECIAL = {"inf": math.inf, "+inf": math.inf, "infinity": math.inf, "+infinity": math.inf,
            "-inf": -math.inf, "-infinity": -math.inf, "nan": math.nan}  # fmt: skip
_JAVA_SPACE = "".join(map(chr, range(33)))  # String.trim: every char up to U+0020
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def license_rank(license_id: str | None) -> int:
    """The copyright policy's class order (jobs/copyright/policy.py): 0 public domain, 1 permissive,
    2 weak copyleft, 3 strong copyleft, 4 NC/ND, 5 proprietary, 6 unknown."""
    return policy_rank(license_id)


def parse_score(value: str | None) -> float | None:
    """The `quality.score` annotation as a number, read as the stage always has (Spark's ANSI
    cast to double); a malformed value fails the stage rather than silently ranking last."""
    if value is None:
        return None
    text = value.strip(_JAVA_SPACE)
    number = text[:-1] if text[-1:] in ("f", "F", "d", "D") else text  # a Java f/d suffix
    if _DECIMAL.fullmatch(text):
        return float(number)
    if _HEX.fullmatch(text):
        return float.fromhex(number)
    if text.lower() in _SPECIAL:
        return _SPECIAL[text.lower()]
    raise ValueError(f"{SCORE} {value!r} is not a number")


class KeeperKey(NamedTuple):
    """A document's place in the keeper order: the smallest key of a cluster wins. Flat and
    null-free (ranks stand in for missing values) so that Spark orders it as Python does."""

    licence: int  # license_rank
    score_rank: int  # 0 NaN (Spark sorts NaN above every number), 1 a score, 2 none: last
    neg_score: float  # minus the score, so higher scores come first
    length_rank: int  # 0 a text, 1 none: last
    neg_length: int  # minus the length in code points (Spark's `length`)
    fetched_rank: int  # 0 a fetch time, 1 none: last
    fetched_us: int  # microseconds since the epoch (naive times are UTC)
    id: str


def _micros(value: datetime) -> int:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


def keeper_key(row: Mapping[str, Any]) -> KeeperKey:
    """The keeper order of a document row (id, license, text, fetched_at, annotations)."""
    score = parse_score((row.get("annotations") or {}).get(SCORE))
    if score is None:
        score_rank, neg_score = 2, 0.0
    elif math.isnan(score):
        score_rank, neg_score = 0, 0.0
    else:
        score_rank, neg_score = 1, 0.0 - score  # 0.0 - x also turns -0.0 into 0.0, as Spark compares
    text, fetched = row.get("text"), row.get("fetched_at")
    return KeeperKey(
        licence=license_rank(row.get("license")),
        score_rank=score_rank,
        neg_score=neg_score,
        length_rank=0 if text is not None else 1,
        neg_length=-len(text) if text is not None else 0,
        fetched_rank=0 if fetched is not None else 1,
        fetched_us=_micros(fetched) if fetched is not None else 0,
        id=row["id"],
    )


def choose_keeper(rows: Iterable[Mapping[str, Any]]) -> str:
    """The id of the cluster member that stays."""
    return min(keeper_key(r) for r in rows).id


def mark_near_duplicates(rows: Iterable[Row], components: Mapping[str, str]) -> list[Row]:
    """Rows with reject columns: every non-keeper member of a cluster (id -> cluster id, from
    connected components) gets `minhash_duplicate`; all members get the cluster and keeper ids.
    The single-process form of the decision, which the Spark mapping must equal."""
    rows = list(rows)
    clusters: dict[str, list[Row]] = {}
    for row in rows:
        if row["id"] in components:
            clusters.setdefault(components[row["id"]], []).append(row)
    keepers = {cluster: choose_keeper(members) for cluster, members in clusters.items()}
    out = []
    for row in rows:
        cluster = components.get(row["id"])
        dup = cluster is not None and row["id"] != keepers[cluster]
        ann = row.get("annotations") or {}
        if cluster is not None:
            ann = {**ann, CLUSTER_ANNOTATION: cluster, KEEPER_ANNOTATION: keepers[cluster]}
        out.append(
            {
                **row,
                "annotations": ann,
                "reject_stage": "near_dedup" if dup else None,
                "reject_reason": REASON if dup else None,
            }
        )
    return out


def build_report(
    per_source: Iterable[tuple[str, int, int]],
    sizes: Iterable[tuple[int, int]],
    samples: Mapping[str, Sequence[Row]],
    out: Path,
    per_cluster: int = 4,
) -> dict[str, Any]:
    """The report from small collected aggregates: (source, documents, duplicates) per source,
    (cluster size, clusters) pairs, and member rows of the sample clusters (id order). Writes the
    cluster-size chart under `out`."""
    rates = {source: round(dups / docs, 4) for source, docs, dups in per_source}
    histogram = dict(sorted((int(size), int(n)) for size, n in sizes))
    chart = out / "report" / "cluster_sizes.png"
    plot_histogram(histogram, chart)
    return {
        "duplicate_rate_by_source": dict(sorted(rates.items())),
        "cluster_size_histogram": {str(k): v for k, v in histogram.items()},
        "sample_clusters": {c: list(members[:per_cluster]) for c, members in samples.items()},
        "chart": "report/cluster_sizes.png",
    }


def plot_histogram(histogram: dict[int, int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([str(k) for k in histogram], list(histogram.values()), color="#4c72b0")
    ax.set_xlabel("cluster size (documents)")
    ax.set_ylabel("clusters")
    ax.set_title("Near-duplicate clusters")
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    path.write_bytes(buf.getvalue())
