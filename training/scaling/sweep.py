"""A scaling-law sweep over a run's committed shards: plan, one Ray Train run per point, results, fits.

The `scaling` DAG (dags/scaling.py) and scripts/sweep_demo.py call these functions; nothing here
knows Airflow. Layout under the run (`runs/<run>/scaling/`):

    <point_id>/point.json    one point's record, written last: the point is committed
    <point_id>/metrics.json  the training run's summary (training/launch.py)
    <point_id>/ray/          its Ray Train checkpoints
    results.csv, curves.csv  one row per point; one row per validation of every point
    report/                  fit.json, report.md, report.html and the figures (training/scaling/plots.py)
    summary.json             what the run summary links (jobs/report.py reads its `scaling` key)

A point is committed like a stage (core/stage_run.py): its record carries a fingerprint of the
training config, the point, the shards' fingerprint and the code version, and a rerun with the
same fingerprint skips it (`force` retrains). Stage manifests cannot nest (core/datasets.py stage
names have no `/`), so a point's record plays the manifest's part: written last, read as complete.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.config import PipelineConfig, TrainConfig, load_config
from core.datasets import check_run_id, fingerprint, require_manifest, stage_prefix
from core.shard_meta import ShardMeta
from core.storage import Storage, open_storage

log = logging.getLogger("lmforge.scaling")

SCALING = "scaling"
RECORD = "point.json"
RESULT_COLUMNS = (
    "run_id",  # one training run: "<lmforge run>/<point_id>" (training/scaling/table.py's run_id)
    "lmforge_run",
    "point_id",
    "design",
    "budget",
    "n_layer",
    "n_head",
    "n_embd",
    "params",
    "non_embedding_params",
    "tokens",
    "steps",
    "flops",  # 6 N D, N non-embedding (the design's C)
    "flops_total",  # 6 N D, N total
    "flops_measured",  # tokens seen x PaLM appendix-B FLOPs per token (training/metrics.py)
    "loss",  # the final validation loss (the name training/scaling/table.py reads)
    "final_val_loss",
    "best_val_loss",
    "final_train_loss",
    "evals",
    "tokens_per_s",
    "seconds",
    "skipped",
)
CURVE_COLUMNS = (
    "run_id",
    "lmforge_run",
    "point_id",
    "budget",
    "params",
    "non_embedding_params",
    "step",
    "tokens_seen",
    "val_loss",
    "loss",  # = val_loss, under training/scaling/table.py's name
)


class SweepError(RuntimeError):
    """A sweep point cannot train, or trained something other than the point it stands for."""


# ---------------------------------------------------------------- config and plan


def scaling_prefix(run_id: str) -> str:
    return stage_prefix(run_id, SCALING)


def point_prefix(run_id: str, point_id: str) -> str:
    return f"{scaling_prefix(run_id)}/{point_id}"


def tokens_per_step(cfg: PipelineConfig) -> int:
    """Tokens one optimizer step sees: seq_len x batch x grad_accum x data-parallel workers (a sweep
    trains with DDP, `point_config`)."""
    t = cfg.train
    return t.seq_len * t.batch_size * t.grad_accum * cfg.ray.num_workers


def shard_meta(storage: Storage, run_id: str) -> ShardMeta:
    """The committed shards' meta.json (fails when the run has no committed shards)."""
    require_manifest(storage, run_id, "shards")
    key = f"{stage_prefix(run_id, 'shards')}/meta.json"
    raw = json.loads(storage.read_bytes(key))
    # meta.json also carries the shard layout (training/data.py reads both): only the typed fields here
    fields = {k: v for k, v in raw.items() if k in ShardMeta.model_fields} if isinstance(raw, dict) else raw
    return ShardMeta.parse(json.dumps(fields), storage.uri(key))


def plan_sweep(
    run_id: str, profile: str | None, overrides_json: str | None, *, min_steps: int = 1
) -> list[dict[str, Any]]:
    """The sweep's points, each as {"run": {run_id, profile, overrides_json, min_steps}, "point": {...}}:
    one item per training run, what the DAG maps `train_point` over."""
    from training.scaling.design import design_points

    cfg = load_config(profile or None, overrides_json or None)
    run_id = check_run_id(run_id)
    meta = shard_meta(open_storage(cfg.storage), run_id)
    points = design_points(
        cfg.scaling,
        vocab_size=meta.vocab_size,
        seq_len=cfg.train.seq_len,
        tokens_per_step=tokens_per_step(cfg),
        min_steps=min_steps,
    )
    run = {
        "run_id": run_id,
        "profile": cfg.profile,
        "overrides_json": overrides_json or "{}",
        "min_steps": min_steps,
    }
    log.info("scaling sweep of run %s: %d %s points", run_id, len(points), cfg.scaling.design)
    return [{"run": run, "point": p.as_dict()} for p in points]


def point_config(cfg: PipelineConfig, point: Mapping[str, Any]) -> PipelineConfig:
    """The run's config trained as this point: a causal-LM pretraining of the point's shape for its
    steps, validated every `scaling.eval_every` steps, one checkpoint at the end. Warmup is the
    configured one, at most a tenth of the run (a 30-step point must not spend a third warming up);
    the cosine schedule spans the point's own steps (Hoffmann et al. 2022 section 3.1 match the
    schedule to each run's length: a longer cycle overestimates the loss of shorter runs)."""
    steps = int(point["steps"])
    train = TrainConfig.model_validate(
        cfg.train.model_dump()
        | {
            "objective": "causal",
            "mode": "pretrain",
            "init_from": None,
            "init_location": None,
            "parallelism": "ddp",
            "n_layer": int(point["n_layer"]),
            "n_head": int(point["n_head"]),
            "n_embd": int(point["n_embd"]),
            "steps": steps,
            "token_budget": None,
            "warmup_steps": min(cfg.train.warmup_steps, steps // 10),
            "eval_every": cfg.scaling.eval_every,
            "checkpoint_every": steps,
        }
    )
    return cfg.model_copy(update={"train": train})


def point_fingerprint(cfg: PipelineConfig, point: Mapping[str, Any], shards_fp: str) -> str:
    """What decides whether a committed point is current: its training and Ray config, the point,
    the shards and the code that trains it."""
    from core.code_version import code_version

    conf = {
        "train": cfg.train.model_dump(mode="json"),
        "ray": cfg.ray.model_dump(mode="json"),
        "point": dict(point),
    }
    code = code_version("training.scaling.sweep:train_work", "training.launch", "training.loop")
    return fingerprint(conf, {"shards": shards_fp}, code)


def read_record(storage: Storage, run_id: str, point_id: str) -> dict[str, Any] | None:
    key = f"{point_prefix(run_id, point_id)}/{RECORD}"
    if not storage.exists(key):
        return None
    try:
        record = json.loads(storage.read_bytes(key))
    except ValueError:
        log.warning("unreadable point record %s: the point will be retrained", storage.uri(key))
        return None
    return record if isinstance(record, dict) else None


# ---------------------------------------------------------------- one point


def train_point(run: Mapping[str, Any], point: Mapping[str, Any], *, force: bool = False) -> dict[str, Any]:
    """Train one point unless its committed record is current; the record (with `skipped`)."""
    cfg = point_config(load_config(run.get("profile") or None, run.get("overrides_json") or None), point)
    storage = open_storage(cfg.storage)
    run_id, point_id = check_run_id(str(run["run_id"])), str(point["point_id"])
    shards = require_manifest(storage, run_id, "shards")
    fp = point_fingerprint(cfg, point, shards.fingerprint)
    existing = None if force else read_record(storage, run_id, point_id)
    if existing is not None and existing.get("fingerprint") == fp:
        log.info("scaling point %s of run %s is current: skipped", point_id, run_id)
        return {**existing, "skipped": True}
    marker = f"{point_prefix(run_id, point_id)}/{RECORD}"
    if storage.exists(marker):
        storage.delete_prefix(marker)  # nothing reads as committed while the point retrains
    start = time.monotonic()
    metrics = train_work(cfg, storage, run_id, point_id, shards, fp)
    record = point_record(cfg, point, metrics, storage, fp, time.monotonic() - start)
    storage.write_bytes(
        f"{point_prefix(run_id, point_id)}/metrics.json", json.dumps(metrics, indent=1, default=str).encode()
    )
    storage.write_bytes(marker, json.dumps(record, indent=1, default=str).encode())  # last: committed
    log.info(
        "scaling point %s: N=%s D=%s final val loss %s",
        point_id,
        f"{point['non_embedding_params']:,}",
        f"{point['tokens']:,}",
        record["final_val_loss"],
    )
    return {**record, "skipped": False}


def train_work(
    cfg: PipelineConfig, storage: Storage, run_id: str, point_id: str, shards: Any, fp: str
) -> dict[str, Any]:
    """One Ray Train causal-LM run of the point (training/launch.py), as the pretrain stage runs it
    (training/stage.py): local shards verified and read in place, S3 shards streamed."""
    from core.datasets import default_cache_root, verified_local_dir
    from training.launch import run_pretraining

    local = verified_local_dir(storage, shards, default_cache_root())
    shards_src = str(local) if local else storage.uri(stage_prefix(run_id, "shards"))
    ray_uri = storage.uri(f"{point_prefix(run_id, point_id)}/ray")
    return run_pretraining(cfg, shards_src, ray_uri, name=f"scaling-{run_id}-{point_id}-{fp[:12]}")


def point_record(
    cfg: PipelineConfig,
    point: Mapping[str, Any],
    metrics: Mapping[str, Any],
    storage: Storage,
    fp: str,
    seconds: float,
) -> dict[str, Any]:
    """The committed record: the point, what it measured, and its validation curve. Refuses a run
    whose model is not the point's shape (the loop must honour train.n_layer/n_head/n_embd)."""
    if metrics.get("num_params") is not None and int(metrics["num_params"]) != int(point["params"]):
        raise SweepError(
            f"point {point['point_id']} asked for a model of {point['params']:,} parameters "
            f"(n_layer {point['n_layer']}, n_embd {point['n_embd']}) and trained {metrics['num_params']:,}: "
            "training/loop.py's model_config must build training/model.py config_for(train, vocab)"
        )
    per_step = tokens_per_step(cfg)
    history = run_history(metrics, storage)
    curve = eval_curve(history, per_step)
    final = history[-1] if history else {}
    steps = int(metrics.get("steps") or point["steps"])
    tokens_seen = int(final.get("tokens") or metrics.get("tokens") or steps * per_step)
    # the loop's own count of model FLOPs (training/metrics.py, PaLM appendix B), else the same count here
    measured = final.get("flops") or metrics.get("flops") or tokens_seen * flops_per_token(cfg.train, point)
    vals = [v for _, _, v in curve]
    final_val = metrics.get("val_loss")
    final_val = float(final_val) if final_val is not None else (vals[-1] if vals else None)
    return {
        "fingerprint": fp,
        "point": dict(point),
        "steps": steps,
        "tokens_seen": tokens_seen,
        "flops_measured": float(measured),
        "final_val_loss": final_val,
        "best_val_loss": min(vals) if vals else final_val,
        "final_train_loss": metrics.get("last_loss"),
        "tokens_per_s": metrics.get("tokens_per_s"),
        "curve": [list(c) for c in curve],
        "seconds": round(seconds, 3),
        "checkpoint": metrics.get("checkpoint"),
        "tensorboard": metrics.get("tensorboard"),
    }


def flops_per_token(train: TrainConfig, point: Mapping[str, Any]) -> int:
    """Training FLOPs per token of the point's model, PaLM appendix B (training/metrics.py): 6 N of
    the matmul parameters plus attention; the measured-compute column, beside the design's 6 N D."""
    from training.metrics import flops_per_token as palm

    matmul = int(point["params"]) - train.seq_len * int(point["n_embd"])  # the position table is a lookup
    head_dim = int(point["n_embd"]) // int(point["n_head"])
    return palm(matmul, int(point["n_layer"]), int(point["n_head"]), head_dim, train.seq_len)


def run_history(metrics: Mapping[str, Any], storage: Storage) -> list[dict[str, Any]]:
    """The run's metrics history by step: from training/launch.py's summary when it carries one
    (`history` or `evals`), else the history the last checkpoint holds (training/loop.py saves it
    with every checkpoint, and a sweep point checkpoints at its last step)."""
    history = (
        metrics.get("history")
        or metrics.get("evals")
        or _checkpoint_history(metrics.get("checkpoint"), storage)
    )
    entries = [dict(e) for e in history or [] if isinstance(e, Mapping) and "step" in e]
    return sorted(entries, key=lambda e: int(e["step"]))


def eval_curve(history: Sequence[Mapping[str, Any]], per_step: int) -> list[tuple[int, int, float]]:
    """(step, tokens seen, validation loss) of every validation in the history."""
    curve: dict[int, tuple[int, int, float]] = {}
    for entry in history:
        if entry.get("val_loss") is None:
            continue
        step = int(entry["step"])
        tokens = int(entry.get("tokens") or entry.get("tokens_seen") or step * per_step)
        curve[step] = (step, tokens, float(entry["val_loss"]))
    return [curve[s] for s in sorted(curve)]


def _checkpoint_history(checkpoint: str | None, storage: Storage) -> list[dict[str, Any]]:
    if not checkpoint:
        return []
    from training.session import STATE_FILE, load_state

    local = Path(checkpoint) / STATE_FILE
    if local.is_file():
        return list(load_state(local).get("history") or [])
    root = storage.uri("")
    if not checkpoint.startswith(root.rstrip("/")):
        log.warning("checkpoint %s is outside the storage root: no validation curve", checkpoint)
        return []
    key = f"{checkpoint[len(root.rstrip('/')) :].strip('/')}/{STATE_FILE}"
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / STATE_FILE
        path.write_bytes(storage.read_bytes(key))
        return list(load_state(path).get("history") or [])


# ---------------------------------------------------------------- results


def result_row(run_id: str, design: str, record: Mapping[str, Any], skipped: bool) -> dict[str, Any]:
    p = record["point"]
    tokens = int(p["tokens"])
    return {
        "run_id": f"{run_id}/{p['point_id']}",
        "lmforge_run": run_id,
        "point_id": p["point_id"],
        "design": design,
        "budget": p["budget"],
        "n_layer": p["n_layer"],
        "n_head": p["n_head"],
        "n_embd": p["n_embd"],
        "params": p["params"],
        "non_embedding_params": p["non_embedding_params"],
        "tokens": tokens,
        "steps": p["steps"],
        "flops": p["flops"],
        "flops_total": 6.0 * int(p["params"]) * tokens,
        "flops_measured": record.get("flops_measured"),
        "loss": record.get("final_val_loss"),
        "final_val_loss": record.get("final_val_loss"),
        "best_val_loss": record.get("best_val_loss"),
        "final_train_loss": record.get("final_train_loss"),
        "evals": len(record.get("curve") or []),
        "tokens_per_s": record.get("tokens_per_s"),
        "seconds": record.get("seconds"),
        "skipped": skipped,
    }


def curve_rows(run_id: str, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    p = record["point"]
    base = {
        "run_id": f"{run_id}/{p['point_id']}",
        "lmforge_run": run_id,
        "point_id": p["point_id"],
        "budget": p["budget"],
        "params": p["params"],
        "non_embedding_params": p["non_embedding_params"],
    }
    return [
        base | {"step": s, "tokens_seen": t, "val_loss": v, "loss": v}
        for s, t, v in record.get("curve") or []
    ]


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue().encode()


def collect_results(items: Sequence[Mapping[str, Any]], trained: Sequence[Any] = ()) -> dict[str, Any]:
    """results.csv and curves.csv from the committed records of the planned points whose fingerprint
    is current (a point that failed this time is listed in `missing`, never read from an older
    sweep). `trained` are the train tasks' returns, when known, for their `skipped` flags."""
    if not items:
        raise SweepError("the sweep planned no points")
    run = items[0]["run"]
    cfg = load_config(run.get("profile") or None, run.get("overrides_json") or None)
    storage = open_storage(cfg.storage)
    run_id = check_run_id(str(run["run_id"]))
    shards_fp = require_manifest(storage, run_id, "shards").fingerprint
    skipped = {
        str(t["point"]["point_id"]): bool(t.get("skipped"))
        for t in trained
        if isinstance(t, Mapping) and isinstance(t.get("point"), Mapping)
    }
    rows, curves, missing = [], [], []
    for item in items:
        point = item["point"]
        fp = point_fingerprint(point_config(cfg, point), point, shards_fp)
        record = read_record(storage, run_id, str(point["point_id"]))
        if record is None or record.get("fingerprint") != fp or record.get("final_val_loss") is None:
            missing.append(point["point_id"])
            continue
        rows.append(result_row(run_id, cfg.scaling.design, record, skipped.get(point["point_id"], False)))
        curves += curve_rows(run_id, record)
    if not rows:
        raise SweepError(f"no point of the sweep of run {run_id} finished with a validation loss: {missing}")
    prefix = scaling_prefix(run_id)
    storage.write_bytes(f"{prefix}/results.csv", to_csv(rows, RESULT_COLUMNS))
    storage.write_bytes(f"{prefix}/curves.csv", to_csv(curves, CURVE_COLUMNS))
    if missing:
        log.warning(
            "scaling sweep of run %s: %d point(s) without a result: %s", run_id, len(missing), missing
        )
    return {
        **dict(run),
        "design": cfg.scaling.design,
        "points": len(items),
        "done": len(rows),
        "missing": missing,
        "results": storage.uri(f"{prefix}/results.csv"),
        "curves": storage.uri(f"{prefix}/curves.csv"),
    }


# ---------------------------------------------------------------- fits and report


def fit_table(results_csv: bytes, curves_csv: bytes) -> Any:
    """The table the fits read (training/scaling/table.py), N = non-embedding parameters (the N the
    design spaces and its C = 6 N D uses): the validation curves, whose last point per run is the
    run's final result (approach 1 reads every point, approaches 2, 3 and Kaplan's the last ones);
    the results table when no run has a curve."""
    import pandas as pd

    from training.scaling.table import from_frame

    curves = pd.read_csv(io.BytesIO(curves_csv))
    frame = curves if len(curves) else pd.read_csv(io.BytesIO(results_csv))
    return from_frame(frame, "non_embedding_params")


def headline(fits: Mapping[str, Any]) -> dict[str, Any]:
    """The fitted values and their intervals, without the bootstrap samples (for summaries)."""
    brief: dict[str, Any] = {}
    for key, fit in fits.items():
        if isinstance(fit, Mapping) and "approach" in fit:
            brief[key] = {k: v for k, v in fit.items() if isinstance(v, Mapping) and "value" in v}
    if fits.get("skipped"):
        brief["skipped"] = dict(fits["skipped"])
    return brief


def recommendation(fits: dict[str, Any], compute: float) -> dict[str, Any]:
    """N_opt and D_opt at `compute` from each approach that was fitted (training/scaling/recommend.py),
    or why there is none."""
    from training.scaling.recommend import for_compute

    try:
        out = for_compute(fits, compute)
    except (ValueError, KeyError) as err:
        return {"compute": compute, "none": str(err)}
    return {k: v for k, v in out.items() if k == "compute" or isinstance(v, Mapping)}


def fit_and_report(collected: Mapping[str, Any]) -> dict[str, Any]:
    """Fit the sweep's results with bootstrap intervals and write `report/` (training/scaling/plots.py:
    fit.json, report.md, report.html and the figures the fits allow, plus the recommendation for ten
    times the sweep's largest budget) and summary.json."""
    from training.scaling.plots import write_report

    cfg = load_config(collected.get("profile") or None, collected.get("overrides_json") or None)
    storage = open_storage(cfg.storage)
    run_id = check_run_id(str(collected["run_id"]))
    prefix = scaling_prefix(run_id)
    results_csv = storage.read_bytes(f"{prefix}/results.csv")
    curves_csv = storage.read_bytes(f"{prefix}/curves.csv")
    table = fit_table(results_csv, curves_csv)
    budgets = [float(r["budget"]) for r in csv.DictReader(io.StringIO(results_csv.decode()))]
    target = 10 * max(budgets)  # one decade past the sweep: what the next, larger run should be
    with tempfile.TemporaryDirectory() as d:
        report_dir = Path(d)
        written = write_report(table, report_dir, bootstrap=cfg.scaling.bootstrap, seed=cfg.scaling.seed)
        fits = written["fit"]
        advice = recommendation(fits, target)
        with (report_dir / "report.md").open("a") as md:
            md.write(sweep_markdown(run_id, collected, advice))
        storage.delete_prefix(f"{prefix}/report")
        files = sorted(p.relative_to(report_dir).as_posix() for p in report_dir.rglob("*") if p.is_file())
        for name in files:
            storage.upload_file(report_dir / name, f"{prefix}/report/{name}")
    summary = {
        "design": collected.get("design"),
        "points": collected.get("points"),
        "done": collected.get("done"),
        "missing": list(collected.get("missing") or []),
        "results": collected.get("results"),
        "curves": collected.get("curves"),
        "report": storage.uri(f"{prefix}/report/report.md"),
        "report_files": files,
        "params_column": fits.get("params_column"),
        "fits": headline(fits),
        "recommendation": advice,
    }
    storage.write_bytes(f"{prefix}/summary.json", json.dumps(summary, indent=1, default=str).encode())
    return {**summary, "summary": storage.uri(f"{prefix}/summary.json")}


def _estimate(value: Any) -> str:
    if isinstance(value, Mapping) and "value" in value:
        v, lo, hi = (value.get(k) for k in ("value", "lo", "hi"))
        if isinstance(lo, float) and isinstance(hi, float) and math.isfinite(lo) and math.isfinite(hi):
            return f"{v:.4g} [{lo:.4g}, {hi:.4g}]"
        return f"{v:.4g}"
    return str(value)


def sweep_markdown(run_id: str, collected: Mapping[str, Any], advice: Mapping[str, Any]) -> str:
    """The report's sweep section: what ran, what is missing, and the recommendation."""
    missing = list(collected.get("missing") or [])
    lines = [
        "",
        f"## Sweep of run {run_id}",
        "",
        f"Design {collected.get('design')}: {collected.get('done')} of {collected.get('points')} points "
        "finished." + (f" Missing: {', '.join(missing)}." if missing else ""),
        "N counts non-embedding parameters; intervals are 95% bootstrap percentiles.",
        f"Results: {collected.get('results')}; validation curves: {collected.get('curves')}.",
        "",
        f"## Recommendation for C = {advice.get('compute', 0):.3g} FLOPs",
        "",
    ]
    if "none" in advice:
        lines.append(f"None: {advice['none']}")
    for key, rec in advice.items():
        if isinstance(rec, Mapping):
            lines.append(f"- {key}: " + "; ".join(f"{k} {_estimate(v)}" for k, v in rec.items()))
    return "\n".join(lines) + "\n"


def scaling_summary(storage: Storage, run_id: str) -> dict[str, Any] | None:
    """The run's sweep summary (`runs/<run>/scaling/summary.json`), None without a sweep: what the run
    summary (jobs/report.py) lists under `scaling`."""
    key = f"{scaling_prefix(run_id)}/summary.json"
    if not storage.exists(key):
        return None
    try:
        summary = json.loads(storage.read_bytes(key))
    except ValueError:
        return {"error": f"unreadable {storage.uri(key)}"}
    return summary if isinstance(summary, dict) else None
