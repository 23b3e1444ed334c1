"""Publishing the final shards, tokenizer and manifest to `publish.uri` (jobs/publish/run.py); the
curation DAG's `publish` task calls it and names the published manifest in the Asset event."""

from jobs.publish.destination import PublishError
from jobs.publish.run import PublishResult, open_destination, publish

__all__ = ["PublishError", "PublishResult", "open_destination", "publish"]
