"""Great Expectations gates at the stage boundaries: suites as code (suites.py) over light frames
of a stage's output (frames.py), run and summarised by gates.py, rendered as Data Docs (docs.py)."""

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # before GX is imported: no network calls from a task
