"""Fault tolerance: a training worker is SIGKILLed mid-run; Ray Train restarts the worker group
from the last checkpoint (model, optimizer, step, data position) and the run finishes its steps
with the same losses as a run that never failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from core.config import load_config  # noqa: E402
from tests.test_training_ray import write_text_shards  # noqa: E402
from training.launch import run_pretraining  # noqa: E402
from training.loop import FAULT_ENV  # noqa: E402


@pytest.fixture
def no_ray_left() -> Iterator[None]:
    yield
    if ray.is_initialized():
        ray.shutdown()


def _cfg(root: Path):  # type: ignore[no-untyped-def]
    return load_config(
        overrides={
            "storage": {"root": str(root)},
            "ray": {"num_workers": 2, "cpus_per_worker": 1},
            "train": {
                "steps": 24,
                "seq_len": 32,
                "batch_size": 4,
                "grad_accum": 2,
                "log_every": 4,
                "checkpoint_every": 8,
                "warmup_steps": 2,
                "max_failures": 2,
            },
        }
    )


@pytest.mark.timeout(300)
def test_killed_worker_resumes_from_checkpoint_with_same_steps(
    tmp_path: Path, no_ray_left: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    write_text_shards(shards)
    clean = run_pretraining(_cfg(tmp_path / "a"), shards, str(tmp_path / "a" / "ray"), name="clean")

    marker = tmp_path / "killed"
    monkeypatch.setenv(FAULT_ENV, f"14:{marker}")  # rank 1 dies after step 14; checkpoint at 8
    faulty = run_pretraining(_cfg(tmp_path / "b"), shards, str(tmp_path / "b" / "ray"), name="faulty")

    assert marker.exists(), "the worker was not killed"
    assert faulty["steps"] == clean["steps"] == 24
    steps = [s for s, _ in faulty["losses"]]
    assert steps == [1, 4, 8, 12, 16, 20, 24]  # history from the step-8 checkpoint, then 9..24 rerun
    # Where the retry started: the step-8 checkpoint, not step 0 (a retry that ignored the checkpoint
    # would replay the same seeded losses and pass every other assertion here).
    assert faulty["resumed_from"] == [8] and clean["resumed_from"] == []
    # Same model, optimizer, data position and masks after the restore: the same losses.
    for (s1, l1), (s2, l2) in zip(clean["losses"], faulty["losses"], strict=True):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4), (s1, l1, l2)
    assert Path(faulty["checkpoint"], "state.pt").is_file()
