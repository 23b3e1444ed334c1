"""Connected components in one process: the reference the Spark star contraction
(jobs/spark/components.py) must equal, and what small runs and tests use directly."""

from __future__ import annotations

from collections.abc import Iterable


def union_find(edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Node -> minimum id of its component: the single-process reference.

    Union by rank with path compression by halving (Tarjan and van Leeuwen, 1984). Labels are the
    component's smallest id (string order), so they equal the distributed labels.
    """
    parent: dict[str, str] = {}
    rank: dict[str, int] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        for x in (a, b):
            if x not in parent:
                parent[x], rank[x] = x, 0
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        if rank[ra] < rank[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        rank[ra] += rank[ra] == rank[rb]
    smallest: dict[str, str] = {}
    for x in parent:
        root = find(x)
        smallest[root] = min(smallest.get(root, x), x)
    return {x: smallest[find(x)] for x in parent}
