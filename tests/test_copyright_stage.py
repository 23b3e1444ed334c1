"""The copyright stage on a real SparkSession: the protected-works index built in Spark, archived
robots.txt joined by origin, the policy per source type, overlap actions, the audit trail and the
summary counts; and `lmforge copyright` on JSON lines. Texts are real: Debian's licence files and the
Python standard library's own docstrings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import load_config
from core.schema import REJECTED_SCHEMA, documents_table, make_document
from jobs.copyright.screen import load_screen
from jobs.spark.copyright import run_copyright
from jobs.spark.frame import StageContext

COMMON = Path("/usr/share/common-licenses")
SHOP_NOTICE = "Copyright 2021 Shop Ltd. All rights reserved.\n"
pytestmark = pytest.mark.skipif(not (COMMON / "GPL-3").is_file(), reason="no Debian licence texts here")


def _prose() -> str:
    import textwrap

    return textwrap.dedent(textwrap.__doc__ or "") + "\n" + (json.__doc__ or "")


def _docs() -> list[dict[str, Any]]:
    gpl = (COMMON / "GPL-3").read_text()
    excerpt = gpl[gpl.index("The licenses for most software") :][:600]
    edited = excerpt.replace("freedom", "liberty", 1)  # a lightly edited copy
    robots_page = "https://archived.example/private/page.html"
    return [
        make_document("code", "repo/tagged.py", "# SPDX-License-Identifier: GPL-2.0-or-later\nx = 1\n",
                      license="MIT", license_source="LICENSE"),
        make_document("code", "repo/plain.py", "x = 2\n", license="MIT", license_source="LICENSE"),
        make_document("code", "repo/unknown.py", "x = 3\n"),
        make_document("web", robots_page, _prose(), domain="archived.example"),
        make_document("web", "https://archived.example/public/ok.html", _prose() + " ok"),
        make_document("web", "https://noai.example/a", _prose() + " a",
                      annotations={"warc.optout_signals": "noai"}),
        make_document("web", "https://nc.example/b", _prose() + " b",
                      annotations={"extract.license": "CC-BY-NC-4.0",
                                   "extract.license_url": "https://creativecommons.org/licenses/by-nc/4.0/"}),
        make_document("web", "https://shop.example/c", _prose() + "\n" + SHOP_NOTICE),
        make_document("web", "https://ads.blocked.example/d", _prose() + " d"),
        make_document("book", "books/copy.txt", _prose() + "\n\n" + edited + "\n\n" + _prose(),
                      license="LicenseRef-Public-Domain"),
        make_document("paper", "papers/p.xml", _prose() + " p", license="CC-BY-4.0"),
    ]  # fmt: skip


def _robots_reject() -> dict[str, Any]:
    row = make_document(
        "web", "https://archived.example/robots.txt", "User-agent: *\nDisallow: /private/\n",
        annotations={"warc.http_status": "200"},
    )  # fmt: skip
    return {**row, "reject_stage": "warc", "reject_reason": "warc_robots_txt"}


def _context(tmp: Path, spark: Any, **copyright: Any) -> StageContext:
    (tmp / "protected").mkdir()
    (tmp / "protected" / "GPL-3.txt").write_text((COMMON / "GPL-3").read_text())
    (tmp / "quality" / "data").mkdir(parents=True)
    pq.write_table(documents_table(_docs()), tmp / "quality" / "data" / "part-0.parquet")
    (tmp / "warc" / "rejected").mkdir(parents=True)
    rejects = pa.Table.from_pylist([_robots_reject()], schema=REJECTED_SCHEMA)
    pq.write_table(rejects, tmp / "warc" / "rejected" / "part-0.parquet")
    cfg = load_config(
        "local",
        {
            "spark": {"shuffle_partitions": 2},
            "copyright": {
                "protected_works_path": str(tmp / "protected"),
                "block_domains": ["blocked.example"],
                **copyright,
            },
        },
    )
    inputs = {"quality": tmp / "quality", "warc": tmp / "warc"}
    return StageContext(spark, cfg, inputs, {}, tmp / "out", "copyright")


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    rows = pq.read_table(path).to_pylist()
    return {r["origin"]: {**r, "annotations": dict(r["annotations"] or {})} for r in rows}


def test_stage_decides_every_document_with_its_reason(tmp_path: Path, spark: Any) -> None:
    stats = run_copyright(_context(tmp_path, spark))
    kept, rejected = _rows(tmp_path / "out" / "data"), _rows(tmp_path / "out" / "rejected")
    assert {o: r["reject_reason"].split(":")[0] for o, r in rejected.items()} == {
        "repo/tagged.py": "copyright_license",  # the file's own GPL tag wins over the repo's MIT
        "repo/unknown.py": "copyright_license",  # code: unknown is dropped (The Stack)
        "https://archived.example/private/page.html": "copyright_optout_robots",
        "https://noai.example/a": "copyright_optout_noai",
        "https://nc.example/b": "copyright_license",
        "https://ads.blocked.example/d": "copyright_blocklist_domain",
        "books/copy.txt": "copyright_overlap",
    }
    assert rejected["repo/tagged.py"]["reject_reason"] == "copyright_license:strong_copyleft"
    assert rejected["repo/tagged.py"]["license"] == "GPL-2.0-or-later"
    assert rejected["https://nc.example/b"]["reject_reason"] == "copyright_license:nc_nd"
    assert set(kept) == {
        "repo/plain.py", "https://archived.example/public/ok.html", "https://shop.example/c", "papers/p.xml",
    }  # fmt: skip
    shop = kept["https://shop.example/c"]["annotations"]
    assert shop["copyright.class"] == "proprietary" and shop["copyright.flag"] == "license:proprietary"
    assert json.loads(shop["copyright.holders"]) == ["Shop Ltd"]
    assert not any(k.startswith("copyright.robots") for r in kept.values() for k in r["annotations"])
    book = rejected["books/copy.txt"]["annotations"]
    [[start, end, work]] = json.loads(book["copyright.overlap_spans"])
    assert work == "GPL-3.txt" and end - start >= 500

    audit = pq.read_table(tmp_path / "out" / "audit").to_pylist()
    assert len(audit) == len(_docs()) and len({a["id"] for a in audit}) == len(audit)
    assert {a["decision"] for a in audit} == {"keep", "flag", "drop"}
    assert all(a["rule"] for a in audit)
    assert stats["decisions"]["code"] == {"permissive": {"keep": 1}, "strong_copyleft": {"drop": 1},
                                          "unknown": {"drop": 1}}  # fmt: skip
    assert stats["optouts"] == {"optout_robots": 1, "optout_noai": 1, "blocklist_domain": 1}
    assert stats["overlap_hits"] == 1 and stats["flags"] == {"license:proprietary": 1}
    index = stats["protected_index"]
    assert index["works"] == 1 and index["ngrams"] > 4000 and index["bytes"] > 30_000


def test_overlap_redact_and_flag(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "GPL-3.txt").write_text((COMMON / "GPL-3").read_text())
    gpl = (COMMON / "GPL-3").read_text()
    excerpt = gpl[gpl.index("The licenses for most software") :][:600]
    doc = make_document("book", "b", _prose() + "\n" + excerpt + "\n" + _prose(), license="CC0-1.0")
    for action in ("redact", "flag"):
        cfg = load_config("local", {"copyright": {"protected_works_path": str(tmp_path / "w"),
                                                  "overlap_action": action}}).copyright  # fmt: skip
        row, reason = load_screen(cfg)(dict(doc))
        assert reason is None
        ann = row["annotations"]
        assert ann["copyright.decision"] == action and ann["copyright.rule"] == "overlap"
        if action == "redact":
            assert "The licenses for most software" not in row["text"]
            assert int(ann["copyright.redacted_chars"]) >= 500 and _prose()[:200] in row["text"]
        else:
            assert row["text"] == doc["text"] and ann["copyright.flag"] == "overlap"


def test_optouts_recorded_not_honoured_when_switched_off(tmp_path: Path) -> None:
    cfg = load_config("local", {"copyright": {"honor_optouts": False}}).copyright
    doc = make_document(
        "web", "https://noai.example/a", _prose(), annotations={"crawl.optout_signals": "noai"}
    )
    row, reason = load_screen(cfg)(doc)
    assert reason is None
    assert row["annotations"]["copyright.optout_evidence"].startswith("optouts_not_honoured")


def test_lmforge_copyright_on_json_lines() -> None:
    lines = [
        {"id": "gpl", "text": "// SPDX-License-Identifier: GPL-3.0-only\nint x;\n", "source_type": "code"},
        {"id": "mit", "text": (COMMON / "Apache-2.0").read_text(), "source_type": "code"},
        {"id": "web", "text": _prose(), "origin": "https://example.org/"},
    ]
    stdin = "\n".join(json.dumps(x) for x in lines) + "\n{broken\n"
    done = subprocess.run(
        [sys.executable, "-m", "lmforge", "copyright"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    answers = {a["id"]: a for a in map(json.loads, done.stdout.splitlines()) if a.get("id")}
    assert done.returncode == 1  # one line was not JSON; the others are answered
    assert answers["gpl"]["kept"] is False and answers["gpl"]["reason"] == "copyright_license:strong_copyleft"
    assert answers["mit"]["kept"] is True and answers["mit"]["license"] == "Apache-2.0"
    assert answers["web"]["kept"] is True
    assert answers["web"]["annotations"]["copyright.class"] == "unknown"
    assert len(done.stdout.splitlines()) == 4
