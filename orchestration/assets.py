"""Airflow Assets shared by producer and consumer DAGs (one definition, no drift)."""

from airflow.sdk import Asset

# The published shards (jobs/publish). Its URI is static for scheduling; each event's extra names the
# run (`run_id`, `overrides_json`, read back by the pretrain DAG) and the published manifest
# (`manifest`, written after every file verified; `uri` is its folder).
TOKEN_SHARDS = Asset(name="token_shards", uri="lmforge://datasets/token_shards")
