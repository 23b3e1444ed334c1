"""`lmforge airflow ...` and `lmforge ui`: the embedded Airflow without exporting its environment by hand.

The embedded Airflow (orchestration/airflow_env.py) keeps its SQLite metadata DB in
`$LMFORGE_HOME/.airflow`, reads the DAGs that ship with this package and defines `spark_default`;
a plain `airflow` command knows none of that, and a missing `spark_default` silently means YARN.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys

from lmforge.cli import command


def embedded_env() -> dict[str, str]:
    from orchestration.airflow_env import airflow_environ

    return airflow_environ()


def airflow_executable() -> str:
    """The `airflow` next to this interpreter (a venv's), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "airflow")
    found = here if os.access(here, os.X_OK) else shutil.which("airflow")
    if found is None:
        raise SystemExit("lmforge: the `airflow` command is missing (pip install lmforge brings it)")
    return found


def prepare_metadata(env: dict[str, str]) -> None:
    """Migrate the metadata DB and create the Spark pool: a scheduler never schedules a task whose
    pool does not exist (orchestration/pools.py)."""
    from core.config import load_config
    from orchestration.pools import ensure_spark_pool

    subprocess.run([airflow_executable(), "db", "migrate"], env=env, check=True, capture_output=True)
    ensure_spark_pool(load_config(), env)


def airflow_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for `airflow` (e.g. dags list)")


@command(
    "airflow", "run `airflow ARGS` with the embedded environment (.airflow/, our DAGs)", airflow_arguments
)
def airflow_cmd(args: argparse.Namespace) -> int:
    env = embedded_env()
    if not os.path.exists(os.path.join(env["AIRFLOW_HOME"], "airflow.db")):
        prepare_metadata(env)
    return subprocess.run([airflow_executable(), *args.args], env=env, check=False).returncode


def ui_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8080, help="the UI and REST API port (default 8080)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default loopback; 0.0.0.0 exposes the UI)"
    )


@command(
    "ui", "start the Airflow UI, scheduler, DAG processor and triggerer (airflow standalone)", ui_arguments
)
def ui_cmd(args: argparse.Namespace) -> int:
    from core.prereqs import check_prereqs

    problems = check_prereqs()  # Java 17+ for the Spark stages the DAGs submit
    for problem in problems:
        print(f"lmforge ui: {problem}", file=sys.stderr)
    if problems:
        return 1
    env = {**embedded_env(), "AIRFLOW__API__PORT": str(args.port), "AIRFLOW__API__HOST": args.host}
    prepare_metadata(env)
    home = env["AIRFLOW_HOME"]
    print(
        f"lmforge: Airflow UI on http://localhost:{args.port} (user admin; its password is printed below and "
        f"kept in {home}/simple_auth_manager_passwords.json.generated). DAGs start paused: unpause "
        "`curation` and `pretrain`, then Trigger. Ctrl-C stops everything.",
        flush=True,
    )
    return run_group([airflow_executable(), "standalone"], env)


def run_group(cmd: list[str], env: dict[str, str], grace_s: float = 30.0) -> int:
    """Run `cmd` in a process group of its own and stop the whole group when this process is
    interrupted or terminated: `airflow standalone`'s components outlive a killed parent otherwise."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait_s)
                break
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
