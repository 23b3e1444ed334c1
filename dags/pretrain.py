"""Pretraining: a Ray Train `TorchTrainer` trains a causal LM on the `token_shards` Asset.

Scheduled by the curation DAG's shards; triggered by hand, the `run_id` param names which run's
shards to train on. Checkpoints and metrics land under `runs/<run id>/pretrain/`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from core.assets import TOKEN_SHARDS


@dag(
    dag_id="pretrain",
    schedule=[TOKEN_SHARDS],
    catchup=False,
    doc_md=__doc__,
    tags=["lmforge", "training"],
    params={
        "run_id": Param("", type="string", maxLength=128, description="Run whose shards to use"),
        "profile": Param("", type="string"),
        "steps": Param(0, type="integer", minimum=0, description="0: the profile's train.steps"),
        "workers": Param(0, type="integer", minimum=0, maximum=4096, description="0: the profile's"),
        "use_gpu": Param(False, type="boolean"),
        "overrides": Param({}, type="object"),
    },
)
def pretrain() -> None:
    @task
    def train(params: dict | None = None, triggering_asset_events=None) -> dict:
        from core.params import upstream_from_params
        from training.stage import pretrain_stage

        params = params or {}
        return pretrain_stage(params, upstream_from_params(params, triggering_asset_events))

    @task
    def report(trained: dict) -> str:
        from core.report import write_summary

        return write_summary(trained["run_id"], trained["profile"], trained["overrides_json"])

    report(train())


pretrain()
