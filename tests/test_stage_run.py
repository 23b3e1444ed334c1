"""The committed-stage protocol every engine uses: skip when current, rerun on config, code or force."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config import load_config
from core.datasets import commit, read_manifest
from core.stage_run import plan_stage, run_committed
from core.storage import LocalStorage, StorageError


def _work(calls: list[str], text: str) -> Any:
    def work(out: Path) -> dict[str, Any]:
        calls.append(text)
        (out / "result.txt").write_text(text)
        return {"text": text}

    return work


def test_skip_when_current_rerun_on_code_config_or_force(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    commit(storage, "r", "up", _empty(tmp_path / "up"), config={}, inputs={})
    cfg = load_config(overrides={"storage": {"root": str(tmp_path)}})

    def run(code: str, text: str, force: bool = False, **dedup: Any) -> bool:
        c = load_config(overrides={"storage": {"root": str(tmp_path)}, "dedup": dedup}) if dedup else cfg
        plan = plan_stage(storage, "r", "s", c, inputs=("up",), sections=("dedup",), code=code)
        return run_committed(storage, plan, _work(calls, text), force=force)[1]

    calls: list[str] = []
    assert run("v1", "first") is False
    assert run("v1", "second") is True  # current: skipped, the work never ran
    assert run("v2", "third") is False  # a code change reruns
    assert run("v2", "fourth", force=True) is False  # force reruns although current
    assert run("v2", "fifth", line_min_chars=40) is False  # a config change reruns
    assert calls == ["first", "third", "fourth", "fifth"]
    manifest = read_manifest(storage, "r", "s")
    assert manifest is not None and manifest.code_version == "v2" and manifest.stats["text"] == "fifth"
    assert (tmp_path / "runs/r/s/result.txt").read_text() == "fifth"
    assert not list((tmp_path / ".scratch").iterdir())  # scratch folders removed


def test_missing_input_and_failed_work_leave_nothing_complete(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    cfg = load_config(overrides={"storage": {"root": str(tmp_path)}})
    with pytest.raises(StorageError, match="stage 'up' of run 'r' is not committed"):
        plan_stage(storage, "r", "s", cfg, inputs=("up",), sections=(), code="v1")
    plan = plan_stage(storage, "r", "s", cfg, inputs=(), sections=(), code="v1")

    def broken(out: Path) -> dict[str, Any]:
        (out / "half.txt").write_text("half")
        raise RuntimeError("crashed mid-stage")

    with pytest.raises(RuntimeError, match="crashed mid-stage"):
        run_committed(storage, plan, broken)
    assert read_manifest(storage, "r", "s") is None


def _empty(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "x.txt").write_text("x")
    return path


def test_a_malformed_manifest_of_the_stage_itself_is_rerun_not_trusted(tmp_path: Path) -> None:
    from core.datasets import MANIFEST, stage_prefix
    from core.stage_run import Plan, current

    storage = LocalStorage(str(tmp_path))
    plan = Plan("extract", "r1", {}, {"x": 1}, "code", "f" * 64)
    storage.write_bytes(f"{stage_prefix('r1', 'extract')}/{MANIFEST}", b'{"run_id": "r1"')
    assert current(storage, plan) is None
