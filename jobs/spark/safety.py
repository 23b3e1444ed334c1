"""The safety stage on Spark: PII redaction (jobs/safety/pii.py), then the toxicity score and flag
(jobs/safety/toxicity.py), mapped over the copyright stage's documents; counts per type and source.

Order: redaction first, so a document the toxicity rule drops is stored redacted in `rejected/`
too, and the score is read on the text the model will see (placeholders carry no toxicity). With
redaction on, `raw_content` (the fetched HTML, which holds the same addresses) is cleared: nothing
after this stage needs it, and the shards must not be one join away from the PII. The earlier stages'
datasets in the run folder still hold it; the README says who may read them.

The pseudonymisation key is read on the driver (jobs/safety/pseudonym.py) and travels to the tasks
in the closure, so every executor hashes alike; the stage's fingerprint holds a key id (an HMAC of a
constant), never the key: a new key re-runs the stage.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.config import PipelineConfig
from core.registry import STAGES
from jobs.spark.arrow_map import map_batches
from jobs.spark.frame import StageContext, docs, write_split

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

Row = dict[str, Any]
PII_TYPES = ("email", "phone", "ip", "card", "iban", "secret")  # jobs/safety/pii.py PII_TYPES
KEY_ID_MESSAGE = b"lmforge pii key id"
BatchRule = Callable[[list[Row]], list[tuple[Row, str | None]]]


def safety_rule(
    cfg: PipelineConfig, key: bytes | None
) -> Callable[[list[Row]], list[tuple[Row, str | None]]]:
    """Redact each document, then score toxicity over the batch: the stage's one rule (per batch, so
    the classifier vectorises many documents at once)."""
    from jobs.safety.pii import redact_with
    from jobs.safety.toxicity import score_rows

    redact = redact_with(cfg.pii, key) if cfg.pii.enabled else None
    clear_raw = cfg.pii.enabled and cfg.pii.action == "redact"

    def rule(rows: list[Row]) -> list[tuple[Row, str | None]]:
        if redact is not None:
            rows = [redact(row)[0] for row in rows]
            if clear_raw:
                rows = [{**row, "raw_content": None} for row in rows]
        return score_rows(rows, cfg.toxicity)

    return rule


def stage_key(cfg: PipelineConfig) -> bytes | None:
    """The pseudonymisation key, when this run pseudonymises anything."""
    if not (cfg.pii.enabled and cfg.pii.pseudonymise):
        return None
    from jobs.safety.pseudonym import load_key

    return load_key(cfg.pii)


def safety_facts(cfg: PipelineConfig) -> dict[str, str | None]:
    """The registry's `external` facts: which key hashes the handles (an id, not the key) and the
    toxicity model's sha256, so a new key or a retrained model at the same path re-runs the stage;
    a configured model that is not a file is a clear error before any Spark job."""
    key = stage_key(cfg)
    key_id = None if key is None else hmac.new(key, KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:16]
    return {"pii_key_id": key_id, "toxicity_model": _model_digest(cfg)}


def _model_digest(cfg: PipelineConfig) -> str | None:
    from pathlib import Path

    from jobs.safety.toxicity_model import MAX_MODEL_BYTES

    path = cfg.toxicity.model_path
    if not (cfg.toxicity.enabled and path):
        return None
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"toxicity.model: {file} is not a file (train one with `lmforge toxicity train`)")
    if file.stat().st_size > MAX_MODEL_BYTES:
        raise ValueError(f"toxicity.model: {file} is above the {MAX_MODEL_BYTES}-byte cap")
    return hashlib.sha256(file.read_bytes()).hexdigest()


def run_safety(ctx: StageContext) -> dict[str, Any]:
    key = stage_key(ctx.cfg)
    df = map_batches(docs(ctx, STAGES["safety"].inputs[0]), safety_rule(ctx.cfg, key), "safety")
    stats = write_split(df, ctx)
    return {**stats, **safety_counts(ctx), "key_source": _key_source(ctx.cfg, key)}


def _key_source(cfg: PipelineConfig, key: bytes | None) -> str | None:
    import os

    if key is None:
        return None
    return f"env:{cfg.pii.key_env}" if os.environ.get(cfg.pii.key_env) else "key file"


def _rows(ctx: StageContext) -> DataFrame:
    """Kept and rejected rows together (a dropped document was redacted and scored too)."""
    from pyspark.sql import functions as F

    kept = ctx.spark.read.parquet(str(ctx.out / "data")).withColumn("_dropped", F.lit(False))
    rejected = ctx.spark.read.parquet(str(ctx.out / "rejected")).drop("reject_stage", "reject_reason")
    return kept.unionByName(rejected.withColumn("_dropped", F.lit(True)))


def safety_counts(ctx: StageContext) -> dict[str, Any]:
    """PII found per type and per source, pseudonymised posts, toxicity per source."""
    from pyspark.sql import functions as F

    ann = F.col("annotations")

    def count(key: str) -> Any:
        return F.sum(F.coalesce(ann.getItem(key).cast("long"), F.lit(0)))

    score = ann.getItem("toxicity.score").cast("double")
    rows = (
        _rows(ctx)
        .groupBy("source_type")
        .agg(
            F.count("*").alias("documents"),
            *[count(f"pii.{t}").alias(t) for t in PII_TYPES],
            F.sum(F.when(ann.getItem("pii.redacted").isNotNull(), 1).otherwise(0)).alias("with_pii"),
            F.sum(F.when(ann.getItem("pii.pseudonymised").isNotNull(), 1).otherwise(0)).alias("pseudo"),
            F.avg(score).alias("mean_toxicity"),
            F.sum(F.when(ann.getItem("toxicity.flag") == "1", 1).otherwise(0)).alias("flagged"),
            F.sum(F.when(F.col("_dropped"), 1).otherwise(0)).alias("dropped"),
        )
        .collect()
    )
    by_source: dict[str, Any] = {}
    by_type = dict.fromkeys(PII_TYPES, 0)
    toxicity: dict[str, Any] = {}
    for r in sorted(rows, key=lambda r: r["source_type"]):
        found = {t: int(r[t] or 0) for t in PII_TYPES if r[t]}
        by_source[r["source_type"]] = {"documents": r["documents"], "with_pii": r["with_pii"], **found}
        for t, n in found.items():
            by_type[t] += n
        mean = r["mean_toxicity"]
        toxicity[r["source_type"]] = {
            "documents": r["documents"], "flagged": r["flagged"], "dropped": r["dropped"],
            "mean_score": None if mean is None else round(float(mean), 4),
        }  # fmt: skip
    return {
        "pii_by_type": by_type,
        "pii_by_source": by_source,
        "pseudonymised": sum(int(r["pseudo"] or 0) for r in rows),
        "toxicity_by_source": toxicity,
    }
