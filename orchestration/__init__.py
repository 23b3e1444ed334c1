"""Airflow glue in one place: assets, trigger params, the embedded environment, operators.
`dags/` holds only DAG files; core/, jobs/ and training/ import no Airflow."""
