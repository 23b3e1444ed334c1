"""Spark job entry points and the curation logic they drive."""
