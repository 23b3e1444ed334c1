"""Serve a directory (the demo site) over HTTP on localhost, recording every request.

Why: the crawler needs a real server to crawl (status codes, robots.txt, redirects on directories)
without the internet, and tests need to see what it fetched, in which order, under which
User-Agent, e.g. that it never asked for a robots-disallowed page.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RequestRecord = tuple[str, str, str | None]  # method, path (with query), User-Agent header


class LocalSite:
    """A running server: its `base_url` and the requests it has received so far."""

    def __init__(self, base_url: str, directory: Path) -> None:
        self.base_url = base_url
        self.directory = directory
        self._requests: list[RequestRecord] = []
        self._lock = threading.Lock()

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot, in the order the requests arrived."""
        with self._lock:
            return list(self._requests)

    def _record(self, method: str, path: str, user_agent: str | None) -> None:
        with self._lock:
            self._requests.append((method, path, user_agent))


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, site: LocalSite, **kwargs: Any) -> None:
        self.site = site  # before super(): the base class handles the request in __init__
        super().__init__(*args, **kwargs)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:  # a request line too malformed to parse gets its 400 but no record
            self.site._record(self.command, self.path, self.headers.get("User-Agent"))
        return ok

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the default writes every request to stderr


@contextmanager
def serve_directory(directory: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[LocalSite]:
    """Serve `directory` on a background thread until the block exits; port 0 picks a free one."""
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise NotADirectoryError(f"cannot serve {directory}: not a directory")
    site = LocalSite("", directory)
    server = ThreadingHTTPServer((host, port), partial(_Handler, site=site, directory=str(directory)))
    bound_host, bound_port = server.socket.getsockname()[:2]
    site.base_url = f"http://{bound_host}:{bound_port}/"
    with serving(server, f"local-site:{bound_port}"):
        yield site


@contextmanager
def serving(server: ThreadingHTTPServer, name: str) -> Iterator[None]:
    """Run `server` on a daemon thread for the block, then shut it down and close its socket."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.site", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # `kill` or a container stop: shut down cleanly
    with serve_directory(args.directory, args.host, args.port) as site:
        print(f"serving {site.directory} at {site.base_url} (Ctrl-C stops)", flush=True)
        with suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
