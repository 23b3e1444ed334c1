"""Registry-sourced demo parts, on a source distribution laid out like the pinned ones."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from demo.sources import reddit_posts, write_papers, write_social


def _sdist(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _cassette(*things: dict) -> bytes:
    listing = {"kind": "Listing", "data": {"children": list(things)}}
    body = {"string": json.dumps(listing)}
    return json.dumps(
        {"interactions": [{"response": {"body": body}}, {"response": {"body": {"string": "<html>"}}}]}
    ).encode()


def test_reddit_posts_are_flattened_unique_and_ordered(tmp_path: Path) -> None:
    post = {"kind": "t3", "data": {"name": "t3_b", "selftext": "A post", "author": "ann", "created_utc": 0}}
    reply = {
        "kind": "t1",
        "data": {
            "name": "t1_a",
            "body": "A reply @ann",
            "author": "bob",
            "created_utc": 60,
            "link_id": "t3_b",
            "parent_id": "t3_b",
            "subreddit": "test",
        },
    }
    empty = {"kind": "t1", "data": {"name": "t1_c", "body": "", "author": "x"}}
    sdist = _sdist(
        tmp_path / "praw-0.tar.gz",
        {
            "praw-0/tests/integration/cassettes/A.json": _cassette(post, reply, empty),
            "praw-0/tests/integration/cassettes/B.json": _cassette(reply),  # the same comment again
            "praw-0/README.json": _cassette(
                post | {"data": {**post["data"], "name": "t3_z"}}
            ),  # not a cassette
        },
    )
    posts = reddit_posts(sdist)
    assert [p["id"] for p in posts] == ["t1_a", "t3_b"]
    assert posts[0] == {
        "id": "t1_a",
        "text": "A reply @ann",
        "author": "bob",
        "created_at": "1970-01-01T00:01:00+00:00",
        "thread": "t3_b",
        "reply_to": "t3_b",
        "community": "test",
        "platform": "reddit",
    }
    out = tmp_path / "social"
    out.mkdir()
    assert write_social(sdist, out) == 2
    assert len((out / "reddit-praw-cassettes.jsonl").read_text().splitlines()) == 2


def test_papers_are_the_jats_files_of_the_data_folder(tmp_path: Path) -> None:
    sdist = _sdist(
        tmp_path / "pp.tar.gz", {"pp/data/a.nxml": b"<article/>", "pp/data/b.xml": b"<x/>", "pp/c.nxml": b""}
    )
    out = tmp_path / "papers"
    out.mkdir()
    assert write_papers(sdist, out) == 1
    assert (out / "a.nxml").read_bytes() == b"<article/>"
