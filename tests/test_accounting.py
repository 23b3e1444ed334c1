"""The training loop's accounting against what really runs: FLOPs it reports against torch's own
FlopCounterMode on a real step (SimCSE's two views, prefix tuning's frozen base), gradient
accumulation and DDP against one big batch when micro-batches hold unequal labelled tokens, the
validation curve (`eval_every`) and the token budget in raw text tokens."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from core.config import TrainConfig
from scripts.bench_train import write_byte_shards
from training.data import ShardReader, read_meta
from training.loop import build, run_training, step_labelled_total
from training.objectives import Batch, TokenMean, build_objective, labelled_tokens
from training.plans import _generator
from training.session import STATE_FILE, LocalSession


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = write_byte_shards(tmp_path_factory.mktemp("shards") / "s", mb=0.3)
    meta = json.loads((root / "meta.json").read_text())
    meta["sentinel_ids"] = list(range(156, 256))  # byte ids unused by ASCII source text
    (root / "meta.json").write_text(json.dumps(meta))
    return str(root)


@pytest.fixture(scope="module")
def pretrained(shards: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A checkpoint directory for prefix tuning to start from."""
    session = LocalSession()
    run_training(_cfg(steps=2, checkpoint_every=2), shards, session)
    directory = tmp_path_factory.mktemp("base")
    torch.save(session.checkpoints[-1], directory / STATE_FILE)
    return str(directory)


def _cfg(**kw: object) -> TrainConfig:
    base = {"steps": 1, "seq_len": 64, "batch_size": 4, "log_every": 1, "checkpoint_every": 1, "lr": 3e-3}
    return TrainConfig.model_validate(base | kw)


def _measured_step_flops(cfg: TrainConfig, shards: str) -> int:
    """FLOPs torch counts in one forward and backward of the first step's batch (SDPA's math kernel,
    whose matmuls the counter sees; CPU's fused kernel is invisible to it)."""
    meta = read_meta(shards)
    built = build(cfg, meta, LocalSession(), None)
    objective = build_objective(cfg, meta)
    tokens = ShardReader(shards, "train", cfg.seq_len).rank_windows(0, 0, cfg.batch_size)
    batch = objective.make_batch(tokens, _generator(cfg, 0, 0, 0))
    with FlopCounterMode(display=False) as counter, sdpa_kernel([SDPBackend.MATH]):
        objective.loss(built.model, batch).backward()
    return counter.get_total_flops()


@pytest.mark.parametrize(
    ("objective", "extra"),
    [("causal", {}), ("contrastive", {"dropout": 0.1}), ("span", {})],
)
def test_reported_flops_match_what_torch_counts(shards: str, objective: str, extra: dict) -> None:
    """SimCSE encodes each row twice (and never runs the head): its FLOPs are twice its positions',
    not once (MFU was reported at half)."""
    cfg = _cfg(objective=objective, **extra)
    reported = run_training(cfg, shards, LocalSession())[0]["flops"]
    assert reported == pytest.approx(_measured_step_flops(cfg, shards), rel=0.02)


@pytest.mark.parametrize(("objective", "extra"), [("causal", {}), ("contrastive", {"dropout": 0.1})])
def test_prefix_tuning_flops_count_no_weight_gradients_of_the_frozen_base(
    shards: str, pretrained: str, objective: str, extra: dict
) -> None:
    """A frozen base costs about 4N per token (forward 2N, activation gradients 2N), not 6N."""
    cfg = _cfg(objective=objective, mode="prefix_tuning", init_from=pretrained, prefix_hidden=64, **extra)
    reported = run_training(cfg, shards, LocalSession())[0]["flops"]
    assert reported == pytest.approx(_measured_step_flops(cfg, shards), rel=0.02)


def _micro_batches(cfg: TrainConfig, shards: str, objective: object, rank: int, world: int) -> list[Batch]:
    reader = ShardReader(shards, "train", cfg.seq_len, rank, world, cfg.seed)
    return [
        objective.make_batch(reader.rank_windows(0, m, cfg.batch_size), _generator(cfg, 0, rank, m))  # type: ignore[attr-defined]
        for m in range(cfg.grad_accum)
    ]


def _big_batch_gradient(cfg: TrainConfig, shards: str, batches: list[Batch]) -> tuple[float, dict]:
    """One forward and backward over all `batches` stacked: the loss and gradients to match."""
    meta = read_meta(shards)
    built = build(cfg, meta, LocalSession(), None)  # seeded: the same initial weights
    objective = build_objective(cfg, meta)
    big = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    loss = objective.loss(built.model, big)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in built.model.named_parameters()}


def _accumulated_step(cfg: TrainConfig, shards: str, session: LocalSession) -> tuple[float, dict]:
    """The loop's own step (the plan, the step's labelled total): SGD at lr 1 and no clipping, so
    each parameter moves by exactly minus its gradient."""
    meta = read_meta(shards)
    built = build(cfg, meta, session, None)
    objective = TokenMean(build_objective(cfg, meta), cfg.grad_accum * built.plan.data_world)
    reader = ShardReader(shards, "train", cfg.seq_len, session.rank, session.world, cfg.seed)
    objective.total = step_labelled_total(cfg, objective.inner, reader, 0, 0, session.rank)
    before = {n: p.detach().clone() for n, p in built.model.named_parameters()}
    sgd = torch.optim.SGD(built.model.parameters(), lr=1.0)
    loss = built.plan.step(built.model, sgd, objective, reader, 0, 0)
    moved = {n.removeprefix("module."): before[n] - p.detach() for n, p in built.model.named_parameters()}
    return loss, moved


@pytest.mark.parametrize("objective", ["mlm", "prefix_lm"])
def test_accumulation_equals_one_big_batch_with_unequal_labelled_tokens(shards: str, objective: str) -> None:
    """Averaging micro-batch means weighs a micro-batch of few labelled tokens as much as one of
    many; the step must equal one batch of all of them (before the fix MLM's loss was off by ~1e-3)."""
    cfg = _cfg(objective=objective, batch_size=4, grad_accum=3, grad_clip=1e6)
    batches = _micro_batches(cfg, shards, build_objective(cfg, read_meta(shards)), 0, 1)
    counts = [labelled_tokens(b) for b in batches]
    assert len(set(counts)) == len(counts), counts  # the case that needs weighting
    loss, moved = _accumulated_step(cfg, shards, LocalSession())
    big_loss, grads = _big_batch_gradient(cfg, shards, batches)
    assert loss == pytest.approx(big_loss, rel=1e-6, abs=0)
    for name, grad in grads.items():
        torch.testing.assert_close(moved[name], grad, rtol=1e-4, atol=1e-7, msg=name)


class _DDPSession(LocalSession):
    """One gloo rank: LocalSession's interface with DDP's wrapping, as Ray Train's prepare_model."""

    def prepare(self, model: nn.Module) -> nn.Module:
        return nn.parallel.DistributedDataParallel(model)


def _ddp_rank(rank: int, world: int, port: int, cfg_json: str, shards: str, out: str) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cfg = TrainConfig.model_validate_json(cfg_json)
        loss, moved = _accumulated_step(cfg, shards, _DDPSession(rank=rank, world=world))
        from training.plans import mean_across_ranks

        loss = mean_across_ranks(loss, torch.device("cpu"))
        if rank == 0:
            torch.save({"loss": loss, "moved": moved}, out)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(180)
def test_ddp_with_accumulation_equals_one_big_batch(shards: str, tmp_path: Path) -> None:
    """2 gloo ranks x 2 micro-batches of MLM: the labelled-token count is summed over ranks too."""
    cfg = _cfg(objective="mlm", batch_size=4, grad_accum=2, grad_clip=1e6)
    out = tmp_path / "rank0.pt"
    mp.spawn(_ddp_rank, args=(2, _free_port(), cfg.model_dump_json(), shards, str(out)), nprocs=2)
    objective = build_objective(cfg, read_meta(shards))
    batches = [b for rank in range(2) for b in _micro_batches(cfg, shards, objective, rank, 2)]
    counts = [labelled_tokens(b) for b in batches]
    assert len(set(counts)) > 1, counts
    big_loss, grads = _big_batch_gradient(cfg, shards, batches)
    got = torch.load(out, weights_only=True)
    assert got["loss"] == pytest.approx(big_loss, rel=1e-6, abs=0)
    for name, grad in grads.items():
        torch.testing.assert_close(got["moved"][name], grad, rtol=1e-4, atol=1e-7, msg=name)


def test_validation_every_eval_every_steps_makes_a_curve(shards: str) -> None:
    cfg = _cfg(steps=12, eval_every=4, log_every=6, checkpoint_every=12, batch_size=8)
    history = run_training(cfg, shards, LocalSession())
    curve = [(m["step"], m["tokens"], m["val_loss"]) for m in history if "val_loss" in m]
    assert [(s, t) for s, t, _ in curve] == [(4, 4 * 8 * 64), (8, 8 * 8 * 64), (12, 12 * 8 * 64)]
    assert all(math.isfinite(v) for _, _, v in curve) and curve[-1][2] < curve[0][2]
    assert [m["step"] for m in history] == [1, 4, 6, 8, 12]
    assert "val_loss" not in history[0] and "val_loss" not in history[2]


def test_span_token_budget_counts_raw_text_not_padded_positions(shards: str) -> None:
    """Span corruption reads 57 raw tokens of each 64-position row (the rest is sentinels, EOS and
    padding): a budget of 10 steps' raw text takes 10 steps, not the 9 that positions would give."""
    objective = build_objective(_cfg(objective="span"), read_meta(shards))
    assert objective.tokens_length == 57  # type: ignore[attr-defined]
    budget = 10 * 8 * 57
    cfg = _cfg(objective="span", token_budget=budget, batch_size=8, log_every=5, checkpoint_every=10)
    history = run_training(cfg, shards, LocalSession())
    assert history[-1]["step"] == 10 and history[-1]["tokens"] == budget
    causal = run_training(
        _cfg(token_budget=10 * 8 * 64, batch_size=8, checkpoint_every=10), shards, LocalSession()
    )
    assert causal[-1]["step"] == 10 and causal[-1]["tokens"] == 10 * 8 * 64
