"""The application file handed to spark-submit: `spark-submit jobs/spark/main.py STAGE --run-id R`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, for the driver

from jobs.spark.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
