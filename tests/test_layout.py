"""Imports point one way: stage logic under jobs/ is plain Python; only jobs/spark/ may use Spark
(DESIGN.md, "Engine-agnostic stages, thin engines")."""

from __future__ import annotations

import ast

from core.config import REPO_ROOT

JOBS = REPO_ROOT / "jobs"


def pyspark_import_lines(source: str) -> list[int]:
    """Lines importing pyspark anywhere in `source`: module level, in functions, under TYPE_CHECKING."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "pyspark" or name.startswith("pyspark.") for name in names):
            lines.append(node.lineno)
    return lines


def test_no_pyspark_outside_jobs_spark() -> None:
    files = [p for p in sorted(JOBS.rglob("*.py")) if JOBS / "spark" not in p.parents]
    assert len(files) > 10, "no plain modules found under jobs/"
    hits = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in files
        for line in pyspark_import_lines(path.read_text(encoding="utf-8"))
    ]
    assert hits == []


def test_the_check_sees_nested_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pyspark.sql import DataFrame\n"
        "def f():\n"
        "    import pyspark.sql.functions as F\n"
        "import pysparkish, os\n"
        "from . import pyspark\n"
        "class C:\n"
        "    def g(self):\n"
        "        import os, pyspark\n"
    )
    assert pyspark_import_lines(source) == [3, 5, 10]
