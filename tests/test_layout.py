"""Imports point one way: stage logic under jobs/ is plain Python; only jobs/spark/ may use Spark,
and only orchestration/ and dags/ may use Airflow (DESIGN.md, "Engine-agnostic stages, thin
engines")."""

from __future__ import annotations

import ast

from core.config import REPO_ROOT

JOBS = REPO_ROOT / "jobs"


def pyspark_import_lines(source: str, package: str = "pyspark") -> list[int]:
    """Lines importing `package` anywhere in `source`: module level, in functions, under TYPE_CHECKING."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == package or name.startswith(package + ".") for name in names):
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


def test_no_airflow_in_core_jobs_training() -> None:
    """Airflow glue lives in orchestration/ and dags/; the library runs without Airflow."""
    files = [p for d in ("core", "jobs", "training") for p in sorted((REPO_ROOT / d).rglob("*.py"))]
    hits = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in files
        for line in pyspark_import_lines(path.read_text(encoding="utf-8"), "airflow")
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
