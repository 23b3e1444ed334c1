"""Scaling-law sweep: many small causal-LM runs on one run's committed shards, then the fitted laws.

`plan` turns the design (IsoFLOP profiles, Hoffmann et al. 2022 approach 2, or a size x tokens
grid, Kaplan et al. 2020) into points, each a concrete model shape and step count
(training/scaling/design.py); `train_point` is mapped over them, one Ray Train run per point (a local
Ray inside the task, or the cluster at `ray.address`), each committed under
`runs/<run>/scaling/<point_id>/` and skipped on a rerun with the same config, shards and code;
`results` gathers the finished points into `runs/<run>/scaling/results.csv` (one row per point) and
`curves.csv` (every validation, for approach 1) even when some points failed; `fit` fits the laws with
bootstrap intervals (training/scaling/fits.py) and writes `runs/<run>/scaling/report/` and
`summary.json`.

Params left empty keep the deployment's value (`scaling` and `train` in its config); `overrides`
takes the other fields that core/overrides.py allows.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, task

from orchestration.callbacks import default_args
from orchestration.params import config_choices, nullable

RUN, DESIGN, TRAINING, FIT, CLUSTER, ADVANCED = "Run", "Design", "Training", "Fit", "Cluster", "Advanced"
# Upper bounds that catch a hung task, not budgets: a point of a large sweep trains for hours.
PLAN_TIMEOUT = timedelta(minutes=30)
POINT_TIMEOUT = timedelta(hours=72)
RESULTS_TIMEOUT = timedelta(minutes=30)
FIT_TIMEOUT = timedelta(hours=2)  # bootstrap refits of approach 3: seconds to minutes

# Param name -> config path, beside orchestration/params.py's PARAM_FIELDS (workers, use_gpu).
SCALING_FIELDS = {
    "design": ("scaling", "design"),
    "budgets": ("scaling", "budgets"),
    "sizes_per_budget": ("scaling", "sizes_per_budget"),
    "min_params": ("scaling", "min_params"),
    "max_params": ("scaling", "max_params"),
    "model_sizes": ("scaling", "model_sizes"),
    "tokens": ("scaling", "tokens"),
    "max_points": ("scaling", "max_points"),
    "eval_every": ("scaling", "eval_every"),
    "bootstrap": ("scaling", "bootstrap"),
    "seed": ("scaling", "seed"),
    "seq_len": ("train", "seq_len"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
}


def sweep_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """The config overrides the params ask for: the shared ones (orchestration/params.py), these
    DAG's own, and `overrides`, all checked by core/overrides.py. Empty values keep the profile's."""
    from core.config import deep_merge
    from core.overrides import check_overrides
    from orchestration.params import params_to_overrides

    own: dict[str, Any] = {}
    for name, (section, field) in SCALING_FIELDS.items():
        value = params.get(name)
        if value is None or value == "" or value == []:
            continue
        own.setdefault(section, {})[field] = value
    merged = deep_merge(own, params_to_overrides(params))  # `overrides` wins over the fields
    check_overrides(merged)
    return merged


def plan_from_params(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The `plan` task: the points to train. A bad param, design or run fails without retries (it
    would fail the same way on every try)."""
    from airflow.sdk.exceptions import AirflowFailException

    from core.config import load_config
    from core.storage import StorageError
    from training.scaling.sweep import plan_sweep

    try:
        if not params.get("run_id"):
            raise ValueError("param run_id: name the run whose committed shards the sweep trains on")
        overrides = sweep_overrides(params)
        cfg = load_config(None, overrides)  # the deployment's profile; ConfigError names the field
        overrides_json = json.dumps(overrides, sort_keys=True)
        return plan_sweep(
            params["run_id"], cfg.profile, overrides_json, min_steps=int(params.get("min_steps") or 1)
        )
    except (ValueError, StorageError) as err:  # ConfigError and DesignError are ValueErrors
        raise AirflowFailException(str(err)) from err


def refresh_run_summary(run: dict[str, Any]) -> str:
    """Rewrite the run's summary.json so that it links the sweep (its `scaling` key); the sweep's own
    results stand without it, so a failure is logged and returned, not raised."""
    import logging

    from jobs.report import write_summary

    try:
        return write_summary(run["run_id"], run.get("profile"), run.get("overrides_json"))
    except Exception as err:  # the run may lack the curation stages the summary reads
        logging.getLogger("lmforge.scaling").warning("run summary not refreshed: %s", err)
        return f"not refreshed: {err}"


def previous_returns(context: Any, task_id: str) -> list[Any]:
    """The mapped task's returns that exist (a failed point returned nothing)."""
    ti = context.get("ti") or context.get("task_instance")
    try:
        values = ti.xcom_pull(task_ids=task_id) if ti is not None else None
    except Exception:  # no XCom at all: every point failed
        return []
    if values is None:
        return []
    return [v for v in (values if isinstance(values, list) else [values]) if v is not None]


@dag(
    dag_id="scaling",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["lmforge", "training", "scaling"],
    default_args=default_args(),
    max_active_runs=1,  # a sweep holds the Ray cluster, like pretrain
    params={
        "run_id": nullable(
            "string", "Run whose committed shards the sweep trains on (required)", section=RUN, maxLength=128
        ),
        "force": Param(False, type="boolean", section=RUN, description="Retrain points already committed"),
        "design": nullable(
            "string",
            "isoflop: sizes per compute budget (Hoffmann et al. 2022); grid: model_sizes x tokens",
            section=DESIGN,
            enum=config_choices("scaling", "design"),
        ),
        "budgets": nullable(
            "array",
            "isoflop: compute budgets C in FLOPs (C = 6 N D, N non-embedding)",
            section=DESIGN,
            items={"type": "number", "exclusiveMinimum": 0, "maximum": 1e27},
            maxItems=64,
        ),
        "sizes_per_budget": Param(
            None,
            type=["null", "integer"],
            minimum=3,
            maximum=64,
            section=DESIGN,
            description="isoflop: model sizes per budget, log-spaced",
        ),
        "min_params": Param(
            None,
            type=["null", "integer"],
            minimum=1000,
            section=DESIGN,
            description="isoflop: smallest non-embedding parameter count",
        ),
        "max_params": Param(
            None,
            type=["null", "integer"],
            minimum=1000,
            section=DESIGN,
            description="isoflop: largest non-embedding parameter count",
        ),
        "model_sizes": nullable(
            "array",
            "grid: non-embedding parameter counts",
            section=DESIGN,
            items={"type": "integer", "minimum": 1000},
            maxItems=64,
        ),
        "tokens": nullable(
            "array",
            "grid: training tokens",
            section=DESIGN,
            items={"type": "integer", "minimum": 1000},
            maxItems=64,
        ),
        "max_points": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=10_000,
            section=DESIGN,
            description="Refuse a design with more points",
        ),
        "min_steps": Param(
            1,
            type="integer",
            minimum=1,
            maximum=10**6,
            section=DESIGN,
            description="Drop points that would train fewer steps",
        ),
        "eval_every": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            section=TRAINING,
            description="Validation every N steps (the curves of approach 1)",
        ),
        "seq_len": Param(
            None,
            type=["null", "integer"],
            minimum=8,
            maximum=8192,
            section=TRAINING,
            description="Context length",
        ),
        "batch_size": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=65_536,
            section=TRAINING,
            description="Sequences per worker per step",
        ),
        "lr": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=1,
            section=TRAINING,
            description="Peak learning rate",
        ),
        "bootstrap": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            maximum=100_000,
            section=FIT,
            description="Bootstrap resamples for the intervals",
        ),
        "seed": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            maximum=2**32 - 1,
            section=FIT,
            description="Bootstrap seed",
        ),
        "workers": Param(
            0, type="integer", minimum=0, maximum=4096, section=CLUSTER, description="0: the profile's"
        ),
        "use_gpu": Param(False, type="boolean", section=CLUSTER, description="One GPU per Ray worker (NCCL)"),
        "overrides": nullable(
            "object",
            "Other config fields, nested JSON; only the fields listed in core/overrides.py "
            "(storage, endpoints, paths, the Ray address and secrets are refused)",
            section=ADVANCED,
        ),
    },
)
def scaling() -> None:
    @task(execution_timeout=PLAN_TIMEOUT)
    def plan() -> list[dict[str, Any]]:
        from airflow.sdk import get_current_context

        return plan_from_params(dict(get_current_context()["params"]))

    @task(execution_timeout=POINT_TIMEOUT, map_index_template="{{ point_id }}")
    def train_point(item: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from training.scaling.sweep import SweepError
        from training.scaling.sweep import train_point as train

        context = get_current_context()
        context["point_id"] = item["point"]["point_id"]  # type: ignore[typeddict-unknown-key]
        try:
            record = train(item["run"], item["point"], force=bool(context["params"].get("force")))
        except SweepError as err:  # a model of the wrong shape: every try would train it again
            raise AirflowFailException(str(err)) from err
        return {
            "point": record["point"],
            "skipped": record["skipped"],
            "final_val_loss": record["final_val_loss"],
        }

    @task(execution_timeout=RESULTS_TIMEOUT, trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def results(items: list[dict[str, Any]]) -> dict[str, Any]:
        from airflow.sdk import get_current_context

        from training.scaling.sweep import collect_results

        return collect_results(items, previous_returns(get_current_context(), "train_point"))

    @task(execution_timeout=FIT_TIMEOUT)
    def fit(collected: dict[str, Any]) -> dict[str, Any]:
        from training.scaling.sweep import fit_and_report

        return {**fit_and_report(collected), "run_summary": refresh_run_summary(collected)}

    items = plan()
    trained = train_point.expand(item=items)
    collected = results(items)  # type: ignore[arg-type]  # TaskFlow resolves XComArgs
    trained >> collected
    fit(collected)  # type: ignore[arg-type]


scaling()
