"""Airflow Assets shared by producer and consumer DAGs (one definition, no drift)."""

from airflow.sdk import Asset

TOKEN_SHARDS = Asset(name="token_shards", uri="lmforge://datasets/token_shards")
