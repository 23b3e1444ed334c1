"""The dedup decisions as plain functions, without Spark: the near-dedup keeper order, the exact-dedup
keeper, and which occurrence of a repeated line survives."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from jobs.dedup import exact, lines, near
from jobs.dedup.components import union_find

T0, T1 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)


def doc(
    doc_id: str,
    text: str = "same text",
    license: str | None = "MIT",
    score: str | None = None,
    fetched_at: datetime | None = T0,
) -> dict[str, Any]:
    ann = {} if score is None else {near.SCORE: score}
    return {"id": doc_id, "text": text, "license": license, "fetched_at": fetched_at, "annotations": ann}


# (why, the document that must stay, the one that must go)
KEEPER_TABLE = [
    ("licence beats score", doc("b", license="MIT", score="0.1"), doc("a", license="GPL-3.0", score="0.9")),
    (
        "licence beats length",
        doc("b", "short", license="BSD-2-Clause"),
        doc("a", "much longer", license="LGPL-2.1"),
    ),
    ("weak beats strong copyleft", doc("b", license="MPL-2.0"), doc("a", license="AGPL-3.0")),
    ("a known licence beats none", doc("b", license="CC-BY-NC-4.0"), doc("a", license=None)),
    (
        "an id outside SPDX is no licence",
        doc("a", "a longer text", license="Proprietary"),
        doc("b", "short", license=None),
    ),
    ("score beats length", doc("b", "short", score="0.9"), doc("a", "a longer text", score="0.5")),
    ("a missing score ranks last", doc("b", score="-5"), doc("a", score=None)),
    ("NaN ranks above every score, as Spark sorts it", doc("b", score="NaN"), doc("a", score="Infinity")),
    ("score beats fetch time", doc("b", score="0.6", fetched_at=T1), doc("a", score="0.5", fetched_at=T0)),
    ("longer text wins", doc("b", "same text, longer"), doc("a", "same text")),
    ("length counts code points", doc("b", "ééé"), doc("a", "ee")),
    ("length beats fetch time", doc("b", "longer text", fetched_at=T1), doc("a", "text", fetched_at=T0)),
    ("earlier fetch wins", doc("b", fetched_at=T0), doc("a", fetched_at=T1)),
    ("a missing fetch time ranks last", doc("b", fetched_at=T1), doc("a", fetched_at=None)),
    ("naive times are UTC", doc("b", fetched_at=datetime(2024, 1, 1)), doc("a", fetched_at=T1)),
    ("smaller id wins when all else ties", doc("a"), doc("b")),
    ("-0.0 ties with 0.0: id decides", doc("a", score="-0.0"), doc("b", score="0")),
    ("a score string read as Spark casts it", doc("b", score=" 0.9d"), doc("a", score="0.1")),
]


@pytest.mark.parametrize(("why", "stays", "goes"), KEEPER_TABLE, ids=[t[0] for t in KEEPER_TABLE])
def test_keeper_order(why: str, stays: dict[str, Any], goes: dict[str, Any]) -> None:
    assert near.keeper_key(stays) < near.keeper_key(goes), why
    assert near.choose_keeper([stays, goes]) == near.choose_keeper([goes, stays]) == stays["id"]


def test_keeper_order_full_priority_on_one_cluster() -> None:
    """The Spark test's cluster: licence, then length, then fetch time decide in turn."""
    cluster = [
        doc("gpl", "same text longer version", license="GPL-3.0", fetched_at=T0),
        doc("mit-short", "same text", fetched_at=T1),
        doc("mit-long-late", "same text, a bit longer", fetched_at=T1),
        doc("mit-long-early", "same text, a bit longer", fetched_at=T0),
    ]
    for seed in range(5):
        random.Random(seed).shuffle(cluster)
        assert near.choose_keeper(cluster) == "mit-long-early"
    ranked = sorted(cluster, key=near.keeper_key)
    assert [d["id"] for d in ranked] == ["mit-long-early", "mit-long-late", "mit-short", "gpl"]


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (None, None),
        ("0.25", 0.25),
        (" 1.5\t", 1.5),
        ("1.5d", 1.5),
        ("1.5F", 1.5),
        ("1.", 1.0),
        ("+.5e-3", 0.0005),
        ("12e+1d", 120.0),
        ("0x1p3", 8.0),
        ("0x1.8P1d", 3.0),
        ("1e400", math.inf),
        ("-Infinity", -math.inf),
        ("INF", math.inf),
        ("-inf", -math.inf),
        ("infinity", math.inf),
        ("+NaN", math.nan),
        ("nan", math.nan),
    ],
)
def test_parse_score_reads_what_sparks_cast_reads(value: str | None, number: float | None) -> None:
    got = near.parse_score(value)
    if number is None or math.isnan(number):
        assert got is number or (got is not None and math.isnan(got))
    else:
        assert got == number


@pytest.mark.parametrize("value", ["", "  ", "1_0", "١٢", "+nan", "1e", "e5", "\u00a01", "Infinityd", "high"])
def test_parse_score_refuses_what_sparks_cast_refuses(value: str) -> None:
    with pytest.raises(ValueError, match=r"quality\.score"):
        near.parse_score(value)


def test_near_marks_all_but_the_keeper_and_records_cluster() -> None:
    rows = [doc("c", "long text here"), doc("a"), doc("b", license="GPL-3.0"), doc("z", "alone")]
    out = {r["id"]: r for r in near.mark_near_duplicates(rows, {"a": "a", "b": "a", "c": "a"})}
    assert out["c"]["reject_reason"] is None and out["z"]["reject_reason"] is None
    assert {i for i, r in out.items() if r["reject_reason"] == "minhash_duplicate"} == {"a", "b"}
    for i in "abc":
        assert out[i]["annotations"] == {"dedup.cluster_id": "a", "dedup.keeper_id": "c"}
    assert out["z"]["annotations"] == {}


def exact_row(doc_id: str, text: str, url: str | None = None, rejected: str | None = None) -> dict[str, Any]:
    ann = {"dedup.text_sha256": exact.normalized_hash(text)}
    if url is not None:
        ann["dedup.url"] = url
    return {"id": doc_id, "text": text, "annotations": ann, "reject_stage": None, "reject_reason": rejected}


def test_exact_keeper_is_the_smallest_open_id_by_text_then_url() -> None:
    rows = [
        exact_row("c", "Hello   World", "http://a/1"),
        exact_row("b", "hello world"),
        exact_row("a", "HELLO WORLD\n", rejected="upstream_rule"),  # rejected already: takes no part
        exact_row("e", "something else", "http://a/3"),
        exact_row("d", "the same page fetched again", "http://a/3"),
        exact_row("f", "another", "http://a/1"),  # same URL as `c`, which is a text duplicate by then
    ]
    out = {r["id"]: r for r in exact.mark_exact_duplicates(rows)}
    marks = {i: (r["reject_reason"], r["annotations"].get("dedup.keeper_id")) for i, r in out.items()}
    assert marks == {
        "a": ("upstream_rule", None),
        "b": (None, None),
        "c": ("exact_duplicate", "b"),
        "d": (None, None),
        "e": ("exact_duplicate_url", "d"),
        "f": (None, None),
    }
    assert out["c"]["reject_stage"] == "dedup" and out["a"]["reject_stage"] is None
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    assert sorted(exact.mark_exact_duplicates(shuffled), key=lambda r: r["id"]) == sorted(
        out.values(), key=lambda r: r["id"]
    )


def test_exact_group_key_and_choice() -> None:
    row = exact_row("a", "x", "http://a/")
    assert exact.group_key(row, "dedup.url") == "http://a/"
    assert exact.group_key(exact_row("a", "x"), "dedup.url") is None
    assert exact.group_key({**row, "reject_reason": "exact_duplicate"}, "dedup.url") is None
    assert exact.choose_keeper(["b", "ab", "c"]) == "ab"


def test_one_copy_of_a_repeated_id_stays() -> None:
    rows = [exact_row("a", "same"), exact_row("a", "same"), exact_row("b", "same")]
    reasons = [r["reject_reason"] for r in exact.mark_exact_duplicates(rows)]
    assert reasons.count(None) == 1 and reasons.count("exact_duplicate") == 2


NEWS = "Subscribe to our newsletter for weekly updates."


def test_survivor_is_the_first_by_document_id_then_line_number() -> None:
    assert lines.survivor([("b", 0), ("a", 7), ("a", 2)]) == ("a", 2)
    assert lines.survivor([("ab", 5), ("b", 0)]) == ("ab", 5)  # ids compare as strings


def test_keyed_lines_skip_short_lines_and_keep_positions() -> None:
    keyed = list(lines.keyed_lines("d", f"Home\n\n{NEWS}\n{NEWS.upper()}", 30))
    assert [(i, p) for i, p, _ in keyed] == [("d", 2), ("d", 3)]
    assert keyed[0][2] == keyed[1][2] == lines.line_key(NEWS, 30)
    assert list(lines.keyed_lines("d", None, 30)) == []


def test_removals_keep_the_first_place_even_inside_one_document() -> None:
    k, other = b"k" * 16, b"o" * 16
    keyed = [("b", 1, k), ("a", 4, k), ("a", 2, k), ("b", 0, other)]
    assert lines.removals(keyed) == {"a": ([4], 2), "b": ([1], 2)}


@pytest.mark.parametrize(
    ("text", "removed", "compared", "expected"),
    [
        ("a\nb\nc\n", [1], 2, ("a\nc\n", False)),
        ("a\nb\nc", [], 3, ("a\nb\nc", False)),
        ("long\nshort\n\n", [0], 1, ("long\nshort\n\n", True)),  # only short lines left: rejected, kept whole
        ("x\ny\nz", [2, 0], 3, ("y", False)),
    ],
)
def test_cut_lines(text: str, removed: list[int], compared: int, expected: tuple[str, bool]) -> None:
    assert lines.cut_lines(text, removed, compared) == expected


def test_remove_repeated_lines_only_touches_open_line_sources() -> None:
    def row(doc_id: str, text: str, source: str = "web", rejected: str | None = None) -> dict[str, Any]:
        return {"id": doc_id, "text": text, "source_type": source, "annotations": {},
                "reject_stage": None, "reject_reason": rejected}  # fmt: skip

    rows = [
        row("b", f"Home\n{NEWS}\nThe second document has its own long line too."),
        row("a", f"{NEWS}\nA first document sentence that is long enough."),
        row("c", f"{NEWS}\nHome"),
        row("d", NEWS, source="code"),
        row("0", NEWS, rejected="exact_duplicate"),
    ]
    out = {r["id"]: r for r in lines.remove_repeated_lines(rows, 30, ["web"])}
    assert out["a"]["text"] == rows[1]["text"] and out["a"]["annotations"] == {lines.ANNOTATION: "0"}
    assert out["b"]["text"] == "Home\nThe second document has its own long line too."
    assert out["c"]["reject_reason"] == "repeated_lines" and out["c"]["text"] == rows[2]["text"]
    assert out["d"] == rows[3] and out["0"] == rows[4]


def test_union_find_is_plain() -> None:
    labels = union_find([("b", "a"), ("c", "b"), ("x", "y")])
    assert labels == {"a": "a", "b": "a", "c": "a", "x": "x", "y": "x"}
