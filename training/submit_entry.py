"""Entrypoint of a pretraining Ray job: `python -m training.submit_entry --run-id R --profile P ...`.

Runs on the cluster as the job's driver: connects to that cluster (Ray sets RAY_ADDRESS for a
job's entrypoint), runs the same `pretrain_stage` a local run does, and prints its summary as the
last line for `training.jobs_api.RayJobs.wait`.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from training.jobs_api import print_result


def run(run_id: str, profile: str, overrides_json: str, force: bool = False) -> dict[str, Any]:
    import ray

    from training.stage import pretrain_stage

    ray.init()  # the job's cluster; pretrain_stage then finds Ray initialised and reuses it
    try:
        return pretrain_stage(run_id, profile, overrides_json, force=force)
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--profile", default="")
    parser.add_argument("--overrides", default="{}", help="config overrides, JSON")
    parser.add_argument("--force", action="store_true", help="rerun even when committed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    print_result(run(args.run_id, args.profile, args.overrides, args.force))


if __name__ == "__main__":
    main()
