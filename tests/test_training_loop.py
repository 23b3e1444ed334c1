"""The training loop in one process (`LocalSession`): every objective learns, accumulation equals a
bigger batch, the token budget fixes the steps, a resume replays exactly, prefix tuning freezes the
base."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path

import pytest
import torch

from core.config import TrainConfig
from scripts.bench_train import write_byte_shards
from training.loop import run_training, total_steps
from training.plans import PLANS, ParallelPlan, plan_for
from training.session import STATE_FILE, LocalSession, load_state


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = write_byte_shards(tmp_path_factory.mktemp("shards") / "s", mb=0.3)
    meta = json.loads((root / "meta.json").read_text())
    meta["sentinel_ids"] = list(range(156, 256))  # byte ids unused by ASCII source text
    (root / "meta.json").write_text(json.dumps(meta))
    return str(root)


def _cfg(**kw: object) -> TrainConfig:
    base = {"steps": 30, "seq_len": 64, "batch_size": 8, "log_every": 10, "checkpoint_every": 10, "lr": 3e-3}
    return TrainConfig.model_validate(base | kw)


@pytest.mark.parametrize(
    ("objective", "extra"),
    [("causal", {}), ("mlm", {}), ("span", {}), ("prefix_lm", {}), ("contrastive", {"dropout": 0.1})],
)
def test_every_objective_learns_and_reports_validation(shards: str, objective: str, extra: dict) -> None:
    history = run_training(_cfg(objective=objective, **extra), shards, LocalSession())
    assert [m["step"] for m in history] == [1, 10, 20, 30]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"], [m["loss"] for m in history]
    assert history[-1]["val_ppl"] == pytest.approx(
        torch.tensor(history[-1]["val_loss"]).exp().item(), rel=1e-6
    )
    assert history[-1]["position"] == 30 * 8


def test_accumulation_equals_one_bigger_batch(shards: str) -> None:
    """2 micro-batches of 4 read the same 8 windows as one batch of 8: the same gradients."""
    big = run_training(_cfg(batch_size=8, steps=10, log_every=1), shards, LocalSession())
    accum = run_training(_cfg(batch_size=4, grad_accum=2, steps=10, log_every=1), shards, LocalSession())
    for a, b in zip(big, accum, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4) and a["position"] == b["position"]


def test_token_budget_fixes_the_steps() -> None:
    cfg = _cfg(token_budget=100_000, batch_size=8, grad_accum=2, seq_len=64)
    assert total_steps(cfg, world=2) == 49  # ceil(100000 / (64 * 8 * 2 * 2))


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_resume_from_a_checkpoint_replays_the_same_run(shards: str, tmp_path: Path, dropout: float) -> None:
    """With dropout too: the checkpoint holds the generators' states (torch, numpy, Python), in a
    file `torch.load(weights_only=True)` reads. The resumed attempt says where it started: a retry
    that ignored the checkpoint and began at step 0 would replay the same seeded losses."""
    cfg = _cfg(objective="mlm", steps=20, checkpoint_every=10, dropout=dropout)
    whole = run_training(cfg, shards, LocalSession())
    first = LocalSession()
    run_training(cfg, shards, first)
    torch.save(first.checkpoints[0], tmp_path / STATE_FILE)  # the step-10 checkpoint only, on disk
    resumed = LocalSession(checkpoints=[load_state(tmp_path / STATE_FILE)])
    again = run_training(cfg, shards, resumed)
    assert first.checkpoints[0]["step"] == 10 and first.checkpoints[0]["position"] == 80
    assert [m["step"] for m in again] == [m["step"] for m in whole]
    assert [m["resumed_from_step"] for m in again] == [0, 0, 10]  # steps 1 and 10 came from the file
    assert all(m["resumed_from_step"] == 0 for m in whole)
    for a, b in zip(whole, again, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_prefix_tuning_trains_only_the_prefix(shards: str, tmp_path: Path) -> None:
    pretrain = LocalSession()
    run_training(_cfg(steps=10), shards, pretrain)
    torch.save(pretrain.checkpoints[-1], tmp_path / STATE_FILE)
    base = {k: v.clone() for k, v in pretrain.checkpoints[-1]["model"].items()}
    tuned = LocalSession()
    cfg = _cfg(mode="prefix_tuning", init_from=str(tmp_path), steps=40, prefix_hidden=64, lr=1e-2)
    history = run_training(cfg, shards, tuned)
    assert history[-1]["loss"] < history[0]["loss"]
    state = tuned.checkpoints[-1]["model"]
    for key, value in base.items():  # the frozen base is bit-identical after training
        assert torch.equal(state[f"base.{key}"], value), key
    assert any(k.startswith("mlp.") for k in state) and "prefix" in state


def test_the_loop_flushes_denormals_on_cpu(shards: str) -> None:
    """AdamW's tiny second moments turn denormal and slow x86 arithmetic (training/loop.py): the
    loop sets flush-to-zero on the thread that trains (a fresh thread here, as in Ray Train V2)."""
    import threading

    denormal = 1e-39  # below float32's smallest normal, 1.18e-38
    seen: dict[str, float] = {}

    def train_then_probe() -> None:
        torch.set_flush_denormal(False)  # threads inherit the FP mode: earlier tests set it here
        seen["before"] = (torch.full((8,), denormal) * 1.0).sum().item()
        run_training(_cfg(steps=2, log_every=1, checkpoint_every=2), shards, LocalSession())
        seen["after"] = (torch.full((8,), denormal) * 1.0).sum().item()

    thread = threading.Thread(target=train_then_probe)
    thread.start()
    thread.join()
    assert seen["before"] > 0.0 and seen["after"] == 0.0, seen


def _public(cls: type) -> dict[str, object]:
    """A class's public methods (their signatures) and properties."""
    members = [(n, m) for n, m in inspect.getmembers(cls) if not n.startswith("_")]
    return {n: "property" if isinstance(m, property) else inspect.signature(m) for n, m in members}


def test_every_parallelism_has_a_plan_with_the_same_methods() -> None:
    """The loop calls plans only through ParallelPlan's methods: every strategy implements all of
    them, with the same signatures, and offers nothing more the loop could branch on."""
    parallelisms = typing.get_args(TrainConfig.model_fields["parallelism"].annotation)
    assert sorted(PLANS) == sorted(parallelisms)
    interface = _public(ParallelPlan)
    assert set(interface) == {"wrap", "state", "load", "step", "evaluate", "data_rank", "data_world"}
    for name, plan in PLANS.items():
        assert issubclass(plan, ParallelPlan) and not inspect.isabstract(plan), name
        assert _public(plan) == interface, name
        assert type(plan_for(_cfg(parallelism=name), LocalSession())) is plan


def test_rank_0_logs_progress_at_the_first_and_last_step_and_at_a_bounded_rate_between(
    shards: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging
    import re

    from training.loop import PROGRESS_ENV

    monkeypatch.setenv(PROGRESS_ENV, "3600")  # nothing between the ends on any machine
    with caplog.at_level(logging.INFO, logger="lmforge.train"):
        history = run_training(_cfg(steps=12, log_every=4, checkpoint_every=12), shards, LocalSession())
    lines = [r.getMessage() for r in caplog.records if r.name == "lmforge.train"]
    assert len(lines) == 2, lines  # 12 steps, 3 reports: still only the first and the last step
    pattern = (
        r"train step (\d+)/12 \(\d+%\): loss (\d+\.\d{4}), [\d,]+ tokens/s, elapsed [\dhms.]+, ETA [\dhms.]+"
    )
    matches = [re.fullmatch(pattern, line) for line in lines]
    assert all(matches), lines
    (first, _), (last, last_loss) = [m.groups() for m in matches if m]
    assert (first, last) == ("1", "12")
    assert lines[1].endswith("ETA 0.0s")
    assert abs(float(last_loss) - history[-1]["loss"]) < 1e-4  # one rank: its loss is the mean

    caplog.clear()
    monkeypatch.setenv(PROGRESS_ENV, "0")  # a line every step
    with caplog.at_level(logging.INFO, logger="lmforge.train"):
        run_training(_cfg(steps=5, log_every=5, checkpoint_every=5), shards, LocalSession())
    steps = [r.getMessage().split("/")[0] for r in caplog.records if r.name == "lmforge.train"]
    assert steps == [f"train step {i}" for i in range(1, 6)]
