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

from airflow.sdk import Param, dag, task

from core.config import LOCATION_NAME
from orchestration.assets import TOKEN_SHARDS
from orchestration.params import config_choices, nullable
from orchestration.pretrain_operator import PretrainOperator


def choice(field: str, description: str) -> Param:
    """An optional drop-down over a `train` Literal field (empty: the profile's value)."""
    return nullable("string", description, enum=config_choices("train", field))


@dag(
    dag_id="pretrain",
    schedule=[TOKEN_SHARDS],
    catchup=False,
    doc_md=__doc__,
    tags=["lmforge", "training"],
    params={
        "run_id": nullable(
            "string", "Run whose shards to use (empty: the run that triggered this one)", maxLength=128
        ),
        "objective": choice("objective", "Training objective (training/objectives.py)"),
        "mode": choice("mode", "prefix_tuning freezes the init_from model (Li & Liang 2021)"),
        "init_from": Param(
            None,
            type=["null", "string"],
            maxLength=64,
            pattern=LOCATION_NAME,
            description="Checkpoint folder (state.pt) to start from: the name of an entry of the "
            "deployment config's `locations` (paths are config-only)",
        ),
        "model_size": choice("model_size", "Named GPT size (training/model.py SIZES)"),
        "token_budget": Param(
            None, type=["null", "integer"], minimum=1, description="Training tokens; sets the steps"
        ),
        "steps": Param(0, type="integer", minimum=0, description="0: the profile's train.steps"),
        "grad_accum": Param(
            None, type=["null", "integer"], minimum=1, maximum=4096, description="Micro-steps per step"
        ),
        "workers": Param(0, type="integer", minimum=0, maximum=4096, description="0: the profile's"),
        "use_gpu": Param(False, type="boolean", description="One GPU per Ray worker (NCCL)"),
        "parallelism": choice("parallelism", "ddp, fsdp (FSDP2) or pipeline stages"),
        "precision": choice("precision", "bf16: autocast on GPU"),
        "force": Param(False, type="boolean", description="Train again even if committed"),
        "overrides": nullable(
            "object",
            "Other config fields, nested JSON; only the fields listed in core/overrides.py "
            "(storage, endpoints, paths, the Ray address and secrets are refused)",
        ),
    },
)
def pretrain() -> None:
    @task
    def report(trained: dict) -> str:
        from jobs.report import write_summary

        return write_summary(trained["run_id"], trained["profile"], trained["overrides_json"])

    report(PretrainOperator(task_id="train").output)  # type: ignore[arg-type]  # TaskFlow resolves XComArgs


pretrain()
