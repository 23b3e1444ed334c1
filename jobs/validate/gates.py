"""Run a stage's suites on its output folder, before the commit (jobs/spark/runner.py) or on a
committed run (`lmforge validate`); summarise the result for the manifest and for people.

`mode` fail raises `GateFailed` (a ValueError, so `lmforge stage` prints it as one readable error
and the Airflow task fails with it); warn logs the same summary and lets the stage commit, with
the failures in its manifest's `stats["validation"]`; off runs nothing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from core.config import PipelineConfig, ValidateConfig
from core.registry import STAGES
from jobs.validate import frames
from jobs.validate.suites import (
    Suite,
    data_suite,
    diversity_suite,
    rejected_suite,
    schema_suite,
    shards_suite,
    tokenizer_suite,
)

log = logging.getLogger("lmforge.validate")
DOCS_DIR = "validation"  # inside the stage's folder: committed with the dataset


class GateFailed(ValueError):
    """A gate in `fail` mode found failed expectations; the message is the readable summary."""


def plan_suites(
    stage: str, cfg: PipelineConfig, folder: Path, input_rows: int | None
) -> tuple[list[tuple[Suite, Any]], bool]:
    """(suite, frame) pairs for the stage's output in `folder`, and whether a part was sampled."""
    g = cfg.validation.for_stage(stage)
    if stage == "shards":
        return [(shards_suite(g), frames.shards_frame(folder))], False
    if stage == "tokenizer":
        return [(tokenizer_suite(cfg.tokenizer.vocab_size), frames.tokenizer_frame(folder))], False
    if stage == "diversity":
        return [(diversity_suite(), frames.diversity_frame(folder))], False
    parts = {
        name: part
        for name in ("data", "rejected")
        if (part := frames.read_part(folder / name, g.max_rows)) is not None
    }
    # A source with nothing to read (a crawl without seeds) writes no data/ part: an empty dataset.
    data = parts["data"] if "data" in parts else frames.empty_part()
    rejected = parts["rejected"].rows if "rejected" in parts else 0
    expected = None if input_rows is None or data.sampled else input_rows - rejected
    out = [(schema_suite(stage, list(parts)), frames.schema_frame(parts))] if parts else []
    out.append((data_suite(stage, g, expected), data.frame))
    if "rejected" in parts:
        out.append((rejected_suite(stage), parts["rejected"].frame))
    return out, any(p.sampled for p in parts.values())


def input_rows(stage: str, inputs: dict[str, Any]) -> int | None:
    """Rows the stage read (its document inputs' kept rows), for filters; None otherwise."""
    spec = STAGES[stage]
    if not spec.funnel or not spec.inputs:
        return None
    return sum(inputs[i].rows.get("data", 0) for i in spec.inputs)


def validate(
    stage: str, cfg: PipelineConfig, folder: Path, inputs: dict[str, Any], docs_dir: Path | None
) -> dict[str, Any]:
    """Run the suites; the record kept in the manifest: suites, success, mode, expectations (how
    many ran), failed (suite, expectation, kwargs, observed, sample_ids, error), sampled,
    data_docs (the index page, relative to the stage folder), seconds."""
    from jobs.validate.docs import build, context

    g = cfg.validation.for_stage(stage)
    start = time.monotonic()
    planned, sampled = plan_suites(stage, cfg, folder, input_rows(stage, inputs))
    ctx = context(docs_dir if g.data_docs else None)
    results = [(suite.name, _run(ctx, suite, frame, g.sample_rows)) for suite, frame in planned]
    docs = build(ctx, docs_dir) if g.data_docs and docs_dir is not None else None
    failed = [f for name, r in results for f in failures(name, r, g.sample_rows)]
    return {
        "suites": [name for name, _ in results],
        "success": not failed,
        "mode": g.mode,
        "expectations": sum(len(r.results) for _, r in results),
        "failed": failed,
        "sampled": sampled,
        "data_docs": None if docs is None else _relative(docs, folder),
        "seconds": round(time.monotonic() - start, 3),
    }


def _relative(path: Path, folder: Path) -> str:
    """The docs' index relative to the stage folder when inside it (as committed), else absolute."""
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)


def _run(ctx: Any, suite: Suite, frame: Any, sample_rows: int) -> Any:
    import great_expectations as gx

    source = ctx.data_sources.add_pandas(suite.name)
    batch = source.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe("whole")
    gx_suite = ctx.suites.add(gx.ExpectationSuite(name=suite.name, expectations=suite.expectations))
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
    )
    fmt: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": max(sample_rows, 1)}
    if "id" in frame.columns:
        fmt["unexpected_index_column_names"] = ["id"]
    return definition.run(batch_parameters={"dataframe": frame}, result_format=fmt)


def failures(suite: str, result: Any, sample_rows: int) -> list[dict[str, Any]]:
    """Each failed expectation: its type and arguments, the observed value, sample rows' ids."""
    out = []
    for r in result.results:
        if r.success:
            continue
        kwargs = {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"}
        out.append(
            {
                "suite": suite,
                "expectation": r.expectation_config.type,
                "kwargs": _jsonable(kwargs),
                "observed": _jsonable(observed(r.result)),
                "sample_ids": sample_ids(r.result, sample_rows),
                "error": (r.exception_info or {}).get("exception_message") if r.exception_info else None,
            }
        )
    return out


def observed(result: dict[str, Any]) -> Any:
    if result.get("observed_value") is not None:
        return result["observed_value"]
    if "partial_missing_list" in result:  # a set compared: what should not be there, what is missing
        extra = result.get("partial_unexpected_list", [])
        return f"unexpected {extra}, missing {result['partial_missing_list']}"
    if "unexpected_count" in result:
        examples = result.get("partial_unexpected_list", [])[:3]
        return (
            f"{result['unexpected_count']} of {result.get('element_count')} rows unexpected "
            f"({result.get('unexpected_percent') or 0:.2f}% of non-null), e.g. {examples}"
        )
    return None


def sample_ids(result: dict[str, Any], n: int) -> list[str]:
    rows = result.get("partial_unexpected_index_list") or []
    return [str(r["id"]) for r in rows if isinstance(r, dict) and "id" in r][:n]


def _jsonable(value: Any) -> Any:
    """numpy scalars and sets as plain JSON values (the record goes into the manifest)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def summary(stage: str, record: dict[str, Any]) -> str:
    """The readable account of a failed gate: which expectation, observed value, sample rows."""
    lines = [
        f"validation gate '{stage}' failed (mode {record['mode']}): {len(record['failed'])} of "
        f"{record['expectations']} expectations in suites {', '.join(record['suites'])}"
    ]
    for f in record["failed"]:
        args = ", ".join(f"{k}={_short(v)}" for k, v in f["kwargs"].items())
        lines.append(f"  {f['suite']}: {f['expectation']}({args}): observed {f['observed']}")
        if f["sample_ids"]:
            lines.append(f"    sample ids: {', '.join(f['sample_ids'])}")
        if f["error"]:
            lines.append(f"    error: {f['error']}")
    return "\n".join(lines)


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def gate(stage: str, cfg: PipelineConfig, out: Path, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The gate of a stage that has just written `out`: None when off; raises GateFailed in fail mode."""
    g: ValidateConfig = cfg.validation.for_stage(stage)
    if g.mode == "off":
        return None
    record = validate(stage, cfg, out, inputs, out / DOCS_DIR)
    if not record["success"]:
        if g.mode == "fail":
            raise GateFailed(summary(stage, record))
        log.warning("%s (committed: the gate is in warn mode)", summary(stage, record))
    else:
        log.info(
            "validation gate '%s' passed: %s expectations in %.2fs",
            stage,
            record["expectations"],
            record["seconds"],
        )
    return record
