"""Spark at the edge: the session, the stage adapters that map plain logic over DataFrames,
the committed-stage runner and the spark-submit entry point. The only folder of jobs/ that imports
pyspark."""
