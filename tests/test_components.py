"""Distributed connected components equal single-process union-find, exactly and deterministically."""

from __future__ import annotations

import itertools
import random

import pytest

from jobs.dedup.components import union_find
from jobs.spark.components import connected_components, connected_components_with_rounds, star_violations

Edges = list[tuple[str, str]]


def hex_ids(n: int, seed: int) -> list[str]:
    """Zero-padded hex ids in shuffled order, so node order and lexicographic order disagree."""
    ids = [f"{i:05x}" for i in range(n)]
    random.Random(seed).shuffle(ids)
    return ids


def random_graph(n: int, m: int, seed: int) -> Edges:
    rng = random.Random(seed)
    ids = hex_ids(n, seed)
    return [(rng.choice(ids), rng.choice(ids)) for _ in range(m)]


def chain(n: int, seed: int) -> Edges:
    """A path over shuffled ids, each edge in a random direction, edges in random order."""
    rng = random.Random(seed)
    ids = hex_ids(n, seed)
    edges = [(a, b) if rng.random() < 0.5 else (b, a) for a, b in itertools.pairwise(ids)]
    rng.shuffle(edges)
    return edges


def run(spark, edges: Edges, **kwargs) -> tuple[dict[str, str], int]:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame(edges, "src string, dst string")
    result, rounds = connected_components_with_rounds(spark, df, **kwargs)
    rows = result.collect()
    labels = {r["id"]: r["component"] for r in rows}
    assert len(labels) == len(rows), "one row per node"
    return labels, rounds


def test_union_find_hand_written() -> None:
    assert union_find([("b", "a"), ("c", "b"), ("x", "y"), ("z", "z")]) == {
        "a": "a",
        "b": "a",
        "c": "a",
        "x": "x",
        "y": "x",
        "z": "z",
    }
    assert union_find([]) == {}


HAND_WRITTEN: dict[str, Edges] = {
    "empty": [],
    "single edge": [("b", "a")],
    "self-loop only": [("q", "q")],
    "duplicates and reversals": [("a", "b"), ("b", "a"), ("a", "b"), ("c", "c"), ("c", "d")],
    "triangle and a pair": [("3", "1"), ("1", "2"), ("2", "3"), ("10", "9")],
    "lexicographic not numeric": [("10", "9"), ("9", "100"), ("2", "20")],
    "cycle": [("e", "a"), ("a", "d"), ("d", "b"), ("b", "c"), ("c", "e")],
    "star": [("hub", f"leaf{i:02d}") for i in range(30)],
    "disjoint cliques": [
        (f"k{c}_{i}", f"k{c}_{j}") for c in range(4) for i in range(c + 3) for j in range(c + 3) if i < j
    ],
    "ascending path": [(f"{i:03d}", f"{i + 1:03d}") for i in range(60)],
    "descending path": [(f"{i + 1:03d}", f"{i:03d}") for i in range(60)],
}


@pytest.mark.parametrize("name", HAND_WRITTEN)
def test_hand_written_graphs(spark, name: str) -> None:  # type: ignore[no-untyped-def]
    edges = HAND_WRITTEN[name]
    assert run(spark, edges)[0] == union_find(edges)


@pytest.mark.parametrize(("edges_per_node", "seed"), [(0.3, 1), (0.6, 2), (1.5, 3)])
def test_random_graphs_equal_union_find(spark, edges_per_node: float, seed: int) -> None:  # type: ignore[no-untyped-def]
    edges = random_graph(2000, int(2000 * edges_per_node), seed)
    assert run(spark, edges)[0] == union_find(edges)


def test_long_chain_in_logarithmic_rounds(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    edges = chain(3000, seed=7)
    labels, rounds = run(spark, edges, checkpoint_dir=str(tmp_path / "ckpt"))
    assert labels == union_find(edges)
    assert set(labels.values()) == {"00000"}
    assert rounds < 40  # min-label propagation alone would need about 3,000
    assert any((tmp_path / "ckpt").rglob("part-*")), "rounds were checkpointed in checkpoint_dir"


def test_null_ends_are_ignored(spark) -> None:  # type: ignore[no-untyped-def]
    assert run(spark, [("b", "a"), ("c", None), (None, "d"), ("a", "e")])[0] == {"a": "a", "b": "a", "e": "a"}


@pytest.mark.parametrize(
    ("edges", "bad"),
    [
        ([("b", "a"), ("c", "a"), ("e", "d")], 0),  # stars centred on their minimum
        ([("b", "a"), ("c", "b")], 1),  # path a-b-c: b has a smaller and a larger neighbour
        ([("c", "a"), ("c", "b")], 1),  # c has two smaller neighbours
    ],
)
def test_star_violations(spark, edges: Edges, bad: int) -> None:  # type: ignore[no-untyped-def]
    assert star_violations(spark.createDataFrame(edges, "src string, dst string")) == bad


def test_two_runs_identical(spark) -> None:  # type: ignore[no-untyped-def]
    edges = random_graph(500, 400, seed=11)
    df = spark.createDataFrame(edges, "src string, dst string")
    first = sorted(connected_components(spark, df).collect())
    second = sorted(connected_components(spark, df.repartition(3)).collect())
    assert first == second


def test_gives_up_after_max_iterations(spark) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="did not converge"):
        run(spark, chain(200, seed=5), max_iterations=1)
