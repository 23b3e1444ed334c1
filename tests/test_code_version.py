"""A stage's code version changes with the code it runs, and only with that code."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.code_version import code_version
from core.plans import stage_code_version
from core.registry import STAGES

FILES = {
    "jobs/__init__.py": "",
    "jobs/filters/__init__.py": "",
    "jobs/filters/rule.py": "LIMIT = 3\n\ndef keep(x):\n    return x > LIMIT\n",
    "jobs/filters/other.py": "def unrelated():\n    return 1\n",
    "jobs/spark/__init__.py": "",
    "jobs/spark/adapters.py": """
        from jobs.spark import frame

        def run_rule(ctx):
            from jobs.filters.rule import keep
            return helper(keep)

        def helper(fn):
            return fn

        def run_other(ctx):
            from jobs.filters.other import unrelated
            return unrelated()
    """,
    "jobs/spark/frame.py": "def write():\n    return 0\n",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_change_in_the_rule_or_a_helper_changes_only_that_stage(tree: Path) -> None:
    def versions() -> tuple[str, str]:
        return (
            code_version("jobs.spark.adapters:run_rule", root=tree),
            code_version("jobs.spark.adapters:run_other", root=tree),
        )

    rule, other = versions()
    assert rule != other and versions() == (rule, other)  # deterministic
    _edit(tree / "jobs/filters/rule.py", "LIMIT = 3", "LIMIT = 4")
    assert versions()[0] != rule and versions()[1] == other
    rule = versions()[0]
    _edit(tree / "jobs/spark/adapters.py", "return fn", "return fn or None")
    assert versions()[0] != rule and versions()[1] == other  # helper() is called by run_rule only
    rule = versions()[0]
    _edit(tree / "jobs/filters/other.py", "return 1", "return 2")
    assert versions()[0] == rule and versions()[1] != other
    _edit(tree / "jobs/spark/frame.py", "return 0", "return 1")  # imported at module level by both
    assert versions()[0] != rule


def test_unknown_entries_fail_clearly(tree: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        code_version("jobs.spark.adapters:nope", root=tree)
    with pytest.raises(ValueError, match="not a module of this project"):
        code_version("jobs.spark.missing:run", root=tree)


def test_every_registry_stage_has_a_code_version_of_its_own() -> None:
    versions = {name: stage_code_version(name) for name in STAGES}
    assert all(len(v) == 64 for v in versions.values())
    assert len(set(versions.values())) == len(versions)
