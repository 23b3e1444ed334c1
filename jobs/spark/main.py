"""The application file handed to spark-submit: `spark-submit jobs/spark/main.py STAGE --run-id R ...`.

A thin caller of `lmforge stage` (lmforge/cli.py), so a stage runs the same way from Airflow and
from a terminal.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, for the driver

from lmforge.cli import main

if __name__ == "__main__":
    sys.exit(main(["stage", *sys.argv[1:]]))
