"""Pretraining: a Ray Train `TorchTrainer` trains a model on the `token_shards` Asset.

Scheduled by the curation DAG's shards; triggered by hand, the `run_id` param names which run's
shards to train on. With `ray.address` set in the deployment's config the run is a
Ray job on that cluster, submitted through the Ray Jobs API and stopped if this task is killed;
otherwise a local Ray trains inside the task. Checkpoints and metrics land under
`runs/<run id>/pretrain/`, TensorBoard files under `tensorboard/`.

Params left empty keep the deployment's value; `overrides` takes the other fields that
core/overrides.py allows (never storage, endpoints, paths or secrets).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from core.config import LOCATION_NAME
from orchestration.assets import TOKEN_SHARDS
from orchestration.callbacks import default_args
from orchestration.params import config_choices, nullable
from orchestration.pretrain_operator import PretrainOperator

# Trigger-form sections (the UI groups params by their `section`, in order of first appearance).
RUN, MODEL, TRAINING, CLUSTER, ADVANCED = "Run", "Model", "Training", "Cluster", "Advanced"
# Execution timeouts: upper bounds that catch a hung task, not budgets. Training runs for hours to
# days on a cluster (the 1b size on a token budget); on a timeout Airflow calls `on_kill`, which
# stops the Ray job, and a retry resumes nothing by itself, so the bound is deliberately loose.
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
    @task(execution_timeout=REPORT_TIMEOUT)
    def report(trained: dict) -> str:
        from jobs.report import write_summary

        return write_summary(trained["run_id"], trained["profile"], trained["overrides_json"])

    train = PretrainOperator(
        task_id="train", execution_timeout=TRAIN_TIMEOUT, pre_execute=fail_fast_on_config
    )
    report(train.output)  # type: ignore[arg-type]  # TaskFlow resolves XComArgs


pretrain()
