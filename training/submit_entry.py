"""Entrypoint of a pretraining Ray job: `python -m training.submit_entry --params J --upstream J`.

Runs on the cluster as the job's driver: connects to that cluster (Ray sets RAY_ADDRESS for a
job's entrypoint), runs the same `pretrain_stage` a local run does, and prints its summary as the
last line for `training.jobs_api.RayJobs.wait`.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from training.jobs_api import print_result


def run(params: dict[str, Any], upstream: dict[str, str]) -> dict[str, Any]:
    import ray

    from training.stage import pretrain_stage

    ray.init()  # the job's cluster; pretrain_stage then finds Ray initialised and reuses it
    try:
        return pretrain_stage(params, upstream)
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="the DAG params, JSON")
    parser.add_argument("--upstream", required=True, help="run_id, profile, overrides_json; JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    print_result(run(json.loads(args.params), json.loads(args.upstream)))


if __name__ == "__main__":
    main()
