"""Crawl progress: per-level lines (fetched, failed, skipped by robots.txt, queued, hosts, elapsed)
and a line per host task, on a real loopback site."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.config import REPO_ROOT, CrawlConfig
from jobs.crawl.crawler import CrawlProgress, HostState, Scope, crawl_host


def _page(*links: str) -> bytes:
    anchors = "".join(f'<a href="{u}">{u}</a>' for u in links)
    return f"<html><body><p>A page with enough words to be a page.</p>{anchors}</body></html>".encode()


SITE = {
    "/robots.txt": b"User-agent: *\nDisallow: /no/\n",
    "/": _page("/a.html", "/b.html", "/no/secret.html", "/missing.html"),
    "/a.html": _page("/c.html"),
    "/b.html": _page(),
    "/no/secret.html": _page(),
    "/c.html": _page(),
}


@contextmanager
def _site() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = SITE.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/plain" if self.path.endswith(".txt") else "text/html")
            self.end_headers()
            self.wfile.write(body or b"not here")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_each_level_and_each_host_task_is_logged_with_its_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The driver's loop (jobs/spark/crawl.py) in small: levels of `crawl_host` tasks."""
    with _site() as base, caplog.at_level(logging.INFO, logger="lmforge.crawl"):
        cfg = CrawlConfig(seeds=[base], allow_loopback=True, max_retries=0, max_depth=1)
        scope, host = Scope.from_config(cfg, [base]), base.split("/")[2]
        progress, frontier, seen, state = CrawlProgress(), [base], {base}, HostState()
        for level in range(cfg.max_depth + 1):
            progress.started(level, {host: frontier})
            recs, state = crawl_host((host, frontier, state), cfg, scope, level, str(tmp_path))
            found = sorted({u for r in recs for u in r.links} - seen)
            seen.update(found)
            frontier = [u for u in found if scope.allows(u)]
            progress.finished(level, recs, queued=len(frontier))
    lines = [r.getMessage() for r in caplog.records if r.name == "lmforge.crawl"]
    assert len(lines) == 6, lines  # per level: started, the host's task, done
    assert lines[0] == "crawl level 0 started: 1 URLs on 1 hosts"
    assert re.fullmatch(
        rf"crawl level 0 host {host}: 1 URLs: 1 fetched, 0 failed, 0 skipped by robots.txt, 0 opted out, "
        r"0 other; 4 links found in \d+\.\d s",
        lines[1],
    )
    assert lines[3] == "crawl level 1 started: 4 URLs on 1 hosts"
    level1 = lines[5]
    assert level1.startswith("crawl level 1 done in ")
    assert (
        "4 URLs: 2 fetched, 1 failed, 1 skipped by robots.txt, 0 opted out, 0 other; 1 links found; "
        "1 hosts; 1 URLs queued for level 2; so far 5 URLs, 3 fetched, 1 failed, 1 skipped by robots.txt"
    ) in level1
    assert re.search(r"done in \d+\.\d s \(\d+\.\d s since the crawl started\)", level1)


def test_a_spark_crawl_s_host_tasks_log_into_the_driver_s_output(tmp_path: Path) -> None:
    """`lmforge stage crawl` in its own process: the host tasks run in Spark's Python workers, which
    configure no logging; their lines must still reach the driver's stderr (the task log)."""
    config = tmp_path / "deployment.json"
    config.write_text(json.dumps({"storage": {"root": str(tmp_path / "store")}}))
    with _site() as base:
        overrides = {
            "spark": {"master": "local[1]", "shuffle_partitions": 1},
            "crawl": {"seeds": [base], "allow_loopback": True, "max_retries": 0, "max_depth": 1},
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "lmforge",
                "stage",
                "crawl",
                "--run-id",
                "c",
                "--overrides",
                json.dumps(overrides),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "LMFORGE_CONFIG": str(config)},
            cwd=REPO_ROOT,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    host = base.split("/")[2]
    tasks = [line for line in done.stderr.splitlines() if "lmforge.crawl INFO crawl level" in line]
    assert any(f"crawl level 0 host {host}: 1 URLs: 1 fetched" in line for line in tasks), tasks
    assert any(f"crawl level 1 host {host}: 4 URLs: 2 fetched, 1 failed, 1 skipped" in line for line in tasks)
    # and the driver's per-level lines (jobs/spark/crawl.py), between them
    driver = [line for line in done.stderr.splitlines() if "crawl level" in line and " host " not in line]
    assert any("crawl level 0 started: 1 URLs on 1 hosts" in line for line in driver), driver
    level1 = [line for line in driver if "crawl level 1 done in " in line]
    assert level1 and "so far 5 URLs, 3 fetched" in level1[0], driver
