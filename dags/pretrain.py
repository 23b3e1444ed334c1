"""Pretraining: a Ray Train `TorchTrainer` trains a model on the `token_shards` Asset.

Scheduled by the curation DAG's shards; triggered by hand, the `run_id` param names which run's
shards to train on. With `ray.address` set in the deployment's config the run is a
Ray job on that cluster, submitted through the Ray Jobs API, waited for in the triggerer (the task
defers: no worker slot is held while it trains, and the job's log streams into the task's log) and
stopped if this task is killed or times out; otherwise a local Ray trains inside the task.
Checkpoints and metrics land under `runs/<run id>/pretrain/`, TensorBoard files under
`tensorboard/`. The report runs after a failed `train` too: the run summary then lists why it failed
(`failures`), and the report fails with that reason.

Params left empty keep the deployment's value; `overrides` takes the other fields that
core/overrides.py allows (never storage, endpoints, paths or secrets).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, task

from core.config import LOCATION_NAME
from orchestration.assets import TOKEN_SHARDS
from orchestration.callbacks import default_args
from orchestration.params import config_choices, nullable
from orchestration.pretrain_operator import PretrainOperator

# Trigger-form sections (the UI groups params by their `section`, in order of first appearance).
RUN, MODEL, TRAINING, CLUSTER, ADVANCED = "Run", "Model", "Training", "Cluster", "Advanced"
# Execution timeouts: upper bounds that catch a hung task, not budgets. Training runs for hours to
# days on a cluster (the 1b size on a token budget); on a timeout the Ray job is stopped (`on_kill`
# in a worker; deferred, PretrainOperator.resume_execution) and a retry resumes nothing by itself,
# so the bound is deliberately loose.
# The report only reads the run's manifests and metrics.
TRAIN_TIMEOUT = timedelta(hours=72)
REPORT_TIMEOUT = timedelta(minutes=30)


def choice(field: str, description: str, section: str) -> Param:
    """An optional drop-down over a `train` Literal field (empty: the profile's value)."""
    return nullable("string", description, section=section, enum=config_choices("train", field))


def fail_fast_on_config(context: Any) -> None:
    """pre_execute of `train`: a bad config or run id fails the same way on every try, so it fails
    the task without the retries (AirflowFailException) that a lost Ray connection deserves."""
    from airflow.sdk.exceptions import AirflowFailException

    from core.config import load_config
    from orchestration.params import merged_config_args, upstream_from_params

    params = dict(context.get("params") or {})
    try:
        upstream = upstream_from_params(params, context.get("triggering_asset_events"))
        load_config(*merged_config_args(upstream, params))
    except ValueError as err:  # ConfigError is one
        raise AirflowFailException(str(err)) from err


def summarise_run(context: Mapping[str, Any]) -> str:
    """The `report` task: write the run summary whether `train` succeeded or not, with the run's
    recorded failures (`failures`, from orchestration/callbacks.py) in it; the summary's URI.

    It runs after a failed `train` too (trigger rule ALL_DONE), so the summary says why training
    failed, then fails itself with that reason: the DAG run ends failed and names it. Before the
    run's config could be read (a bad param) nothing was recorded, and nothing is written."""
    from airflow.sdk.exceptions import AirflowFailException

    from core.config import load_config
    from core.failures import failure_text, last_failure, read_failures
    from core.storage import open_storage
    from jobs.report import write_summary
    from orchestration.callbacks import run_of

    ti = context.get("ti") or context.get("task_instance")
    trained = ti.xcom_pull(task_ids="train") if ti is not None else None
    ok = isinstance(trained, Mapping) and bool(trained.get("run_id"))
    try:
        run = dict(trained) if isinstance(trained, Mapping) and ok else run_of(context)
        if run is None:
            raise ValueError("no run id in the params or the triggering asset event")
        cfg = load_config(run.get("profile") or None, run.get("overrides_json") or None)
    except ValueError as err:  # ConfigError is one: `train` failed on it as well
        raise AirflowFailException(f"train failed and no summary is written: {err}") from err
    uri = write_summary(run["run_id"], run.get("profile"), run.get("overrides_json"))  # with `failures`
    if ok:
        return uri
    failure = last_failure(read_failures(open_storage(cfg.storage), run["run_id"]), "train")
    reason = failure_text(failure) if failure else "no failure was recorded (see the train task's log)"
    raise AirflowFailException(f"train failed: {reason}; run summary: {uri}")


@dag(
    dag_id="pretrain",
    schedule=[TOKEN_SHARDS],
    catchup=False,
    doc_md=__doc__,
    tags=["lmforge", "training"],
    default_args=default_args(),
    max_active_runs=1,  # one training run at a time holds the GPUs / the Ray cluster
    params={
        "run_id": nullable(
            "string",
            "Run whose shards to use (empty: the run that triggered this one)",
            section=RUN,
            maxLength=128,
        ),
        "force": Param(False, type="boolean", section=RUN, description="Train again even if committed"),
        "objective": choice("objective", "Training objective (training/objectives.py)", MODEL),
        "mode": choice("mode", "prefix_tuning freezes the init_from model (Li & Liang 2021)", MODEL),
        "init_from": Param(
            None,
            type=["null", "string"],
            maxLength=64,
            pattern=LOCATION_NAME,
            section=MODEL,
            description="Checkpoint folder (state.pt) to start from: the name of an entry of the "
            "deployment config's `locations` (paths are config-only)",
        ),
        "model_size": choice("model_size", "Named GPT size (training/model.py SIZES)", MODEL),
        "token_budget": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            section=TRAINING,
            description="Training tokens; sets the steps",
        ),
        "steps": Param(
            0, type="integer", minimum=0, section=TRAINING, description="0: the profile's train.steps"
        ),
        "grad_accum": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=4096,
            section=TRAINING,
            description="Micro-steps per step",
        ),
        "precision": choice("precision", "bf16: autocast on GPU", TRAINING),
        "workers": Param(
            0, type="integer", minimum=0, maximum=4096, section=CLUSTER, description="0: the profile's"
        ),
        "use_gpu": Param(False, type="boolean", section=CLUSTER, description="One GPU per Ray worker (NCCL)"),
        "parallelism": choice("parallelism", "ddp, fsdp (FSDP2) or pipeline stages", CLUSTER),
        "overrides": nullable(
            "object",
            "Other config fields, nested JSON; only the fields listed in core/overrides.py "
            "(storage, endpoints, paths, the Ray address and secrets are refused)",
            section=ADVANCED,
        ),
    },
)
def pretrain() -> None:
    @task(execution_timeout=REPORT_TIMEOUT, trigger_rule=TriggerRule.ALL_DONE)
    def report() -> str:
        from airflow.sdk import get_current_context

        return summarise_run(get_current_context())

    train = PretrainOperator(
        task_id="train", execution_timeout=TRAIN_TIMEOUT, pre_execute=fail_fast_on_config
    )
    train >> report()


pretrain()
