"""The historical entry points `jobs.readers.local.iter_books` / `iter_code` on awkward files: wrong
encodings, binary, empty, caches. The connectors' own rules are in test_connectors.py."""

from __future__ import annotations

import json
from pathlib import Path

from jobs.readers.local import iter_books, iter_code


def test_books_encodings_binary_and_empty(tmp_path: Path) -> None:
    (tmp_path / "utf8.txt").write_text("Caf\u00e9 cr\u00e8me and more words", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Caf\u00e9 cr\u00e8me".encode("latin-1"))
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "_sources.json").write_text(
        json.dumps({"utf8.txt": {"origin": "gutenberg:1", "license": "PD"}})
    )
    got = {Path(d["origin"]).name: (d, reason) for d, reason in iter_books(tmp_path)}
    assert got["gutenberg:1"][0]["license"] == "PD" and got["gutenberg:1"][1] is None
    latin, reason = got["latin1.txt"]
    assert latin["text"] == "Caf\u00e9 cr\u00e8me" and latin["annotations"]["ingest.encoding"] == "cp1252"
    assert reason is None
    assert got["binary.txt"][1] == "ingest_binary_file"
    assert got["empty.txt"][1] == "ingest_empty_file"


def test_code_tree_records_license_skips_caches_and_rejects_binary(tmp_path: Path) -> None:
    (tmp_path / "LICENSE").write_text("MIT License")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("print('hi')\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.py").write_text("stale\n")
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01")
    docs = list(iter_code(tmp_path, "MIT"))
    assert [(d["annotations"]["code.path"], r) for d, r in docs] == [
        ("notes.bin", "ingest_binary_file"),
        ("pkg/a.py", None),
    ]
    doc = docs[1][0]
    ann = doc["annotations"]  # "MIT License" alone is a title, not a licence text: the declared one holds
    assert (doc["license"], doc["license_source"], ann["code.language"], ann["code.license_detected"]) == (
        "MIT",
        "LICENSE",
        "python",
        "declared",
    )
