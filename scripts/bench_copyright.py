"""The copyright screen's speed: documents/s per core, and the protected-works index build time per GB.

Why (issue 14, "Must show"): `make bench` reports documents/s per core for the screen and the index
build time per GB of protected text.

1. Screen: the whole per-document decision (jobs/copyright/screen.py: opt-outs, licence detection
   with ScanCode's database, notices, policy, overlap against an index of protected works) over the
   quality benchmark's real documents of every source type (scripts/quality_corpus.py), one process
   pinned to one core, median of `runs`; and each part alone (licence detection, overlap lookup).
   The protected works are the 79 pydoc topics (as tests/test_overlap.py).
2. Index: the Spark build of the copyright stage (jobs/spark/copyright.py `build_protected_index`)
   on `local[1]` and `local[2]` over real text (the standard library's `.py` files and Debian's
   documentation, repeated with a numbered header until `--index-mb`), and the one-process numpy
   build (`build_index`) on the same text; seconds per GB, median of `runs`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from core.config import load_config
from jobs.copyright.licenses import detect, load_index
from jobs.copyright.overlap import build_index, find_overlap
from jobs.copyright.screen import load_screen
from scripts import quality_corpus
from scripts.bench_quality import one_core

GB = 1e9


def protected_works() -> dict[str, str]:
    from pydoc_data.topics import topics

    return dict(sorted(topics.items()))


def _rows(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"id": d["id"], "text": d["text"], "source_type": d["source_type"], "origin": d["id"],
         "domain": None, "license": None, "license_source": None, "annotations": {}}
        for d in docs
    ]  # fmt: skip


def time_screen(docs: list[dict[str, Any]], runs: int) -> dict[str, list[float]]:
    """Seconds per pass over `docs`: the whole screen, licence detection alone, overlap alone."""
    index = build_index(protected_works().items())
    screen = load_screen(load_config().copyright, index=index)
    load_index()
    parts = {
        "screen": lambda row: screen(row),
        "licence detection": lambda row: detect(row["text"]),
        "overlap lookup": lambda row: find_overlap(row["text"], index),
    }
    out: dict[str, list[float]] = {name: [] for name in parts}
    with one_core():
        for fn in parts.values():
            for row in _rows(docs[:50]):
                fn(row)  # warm-up
        for _ in range(runs):
            for name, fn in parts.items():
                rows = _rows(docs)
                start = time.perf_counter()
                for row in rows:
                    fn(row)
                out[name].append(time.perf_counter() - start)
    return out


def protected_folder(folder: Path, megabytes: float) -> int:
    """Real text written as .txt works of about 4 MB each until `megabytes`; returns the bytes."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = sorted(stdlib.rglob("*.py"))[:3000] + sorted(Path("/usr/share/doc").rglob("*.txt"))[:500]
    texts = [p.read_text("utf-8", "replace") for p in sources if p.is_file()]
    folder.mkdir(parents=True, exist_ok=True)
    total, work, chunk = 0, 0, []
    target = int(megabytes * 1e6)
    while total < target:
        for i, text in enumerate(texts):
            chunk.append(f"work {work} part {i}\n{text}")
            total += len(chunk[-1].encode())
            if sum(len(c) for c in chunk) > 4_000_000 or total >= target:
                (folder / f"w{work:05d}.txt").write_text("\n".join(chunk))
                work, chunk = work + 1, []
            if total >= target:
                break
    return total


def time_index(megabytes: float, runs: int) -> dict[str, Any]:
    from jobs.spark.copyright import build_protected_index
    from jobs.spark.session import get_spark

    tmp = Path(tempfile.mkdtemp(prefix="lmforge-bench-protected-"))
    try:
        size = protected_folder(tmp / "works", megabytes)
        out: dict[str, Any] = {"bytes": size}
        for master in ("local[1]", "local[2]"):
            spark = get_spark(f"bench-copyright-{master}", master, shuffle_partitions=2)
            spark.sparkContext.setLogLevel("ERROR")
            seconds = []
            for _ in range(runs):
                start = time.perf_counter()
                _, stats = build_protected_index(spark, str(tmp / "works"), 7)
                seconds.append(time.perf_counter() - start)
            out[master] = {"seconds": seconds, "ngrams": stats["ngrams"]}
            spark.stop()
        from jobs.copyright.overlap import registry_works

        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            build_index(registry_works(tmp / "works"))
            seconds.append(time.perf_counter() - start)
        out["numpy, one process"] = {"seconds": seconds}
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(runs: int = 3, index_mb: float = 64.0) -> str:
    docs = quality_corpus.build()
    mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    screen = time_screen(docs, runs)
    lines = [
        "", f"Copyright screen (one core, median of {runs}; {len(docs)} real documents, {mb:.1f} MB):",
        f"  {'part':<20} {'docs/s':>9} {'MB/s':>7}",
    ]  # fmt: skip
    for name, seconds in screen.items():
        s = statistics.median(seconds)
        lines.append(f"  {name:<20} {len(docs) / s:>9,.0f} {mb / s:>7.2f}")
    index = time_index(index_mb, runs)
    lines += [
        "",
        f"Protected-works index build ({index['bytes'] / 1e6:.0f} MB of real text, median of {runs}):",
    ]
    for name in ("local[1]", "local[2]", "numpy, one process"):
        s = statistics.median(index[name]["seconds"])
        lines.append(f"  {name:<20} {s:>7.1f} s   {s / (index['bytes'] / GB):>7.0f} s/GB")
    lines.append(f"  n-grams indexed: {index['local[1]']['ngrams']:,}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--index-mb", type=float, default=64.0)
    args = p.parse_args()
    print(report(args.runs, args.index_mb))


if __name__ == "__main__":
    main()
