"""Pretraining: a Ray Train `TorchTrainer` trains a model on the `token_shards` Asset.

Scheduled by the curation DAG's shards; triggered by hand, the `run_id` param names which run's
shards to train on. With `ray.address` set (the `ray_address` param or the profile) the run is a
Ray job on that cluster, submitted through the Ray Jobs API and stopped if this task is killed;
otherwise a local Ray trains inside the task. Checkpoints and metrics land under
`runs/<run id>/pretrain/`, TensorBoard files under `tensorboard/`.

Params left empty keep the profile's value; `overrides` takes any other config field.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

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
        "profile": nullable("string", "Config profile (empty: the curation run's)"),
        "objective": choice("objective", "Training objective (training/objectives.py)"),
        "mode": choice("mode", "prefix_tuning freezes the init_from model (Li & Liang 2021)"),
        "init_from": Param(
            None, type=["null", "string"], description="Checkpoint folder (state.pt) to start from"
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
        "ray_address": Param(
            None,
            type=["null", "string"],
            description="Ray cluster (http://head:8265 or ray://head:10001); empty: the profile's",
        ),
        "force": Param(False, type="boolean", description="Train again even if committed"),
        "overrides": nullable("object", "Any other config fields, nested JSON"),
    },
)
def pretrain() -> None:
    @task
    def report(trained: dict) -> str:
        from jobs.report import write_summary

        return write_summary(trained["run_id"], trained["profile"], trained["overrides_json"])

    report(PretrainOperator(task_id="train").output)  # type: ignore[arg-type]  # TaskFlow resolves XComArgs


pretrain()
