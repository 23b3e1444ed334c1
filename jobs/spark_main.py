"""The application file handed to spark-submit: `spark-submit jobs/spark_main.py STAGE --run-id R`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, for the driver

from jobs.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
