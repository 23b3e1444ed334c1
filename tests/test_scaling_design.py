"""The sweep design's arithmetic (training/scaling/design.py): shapes, D = C / (6 N), steps, bounds."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from core.config import ScalingConfig
from training.model import GPT, GPTConfig, param_count
from training.scaling.design import (
    ASPECT,
    ASPECT_RANGE,
    HEAD_DIM,
    DesignError,
    design_points,
    grid_points,
    isoflop_points,
    log_spaced,
    shape_for,
)

VOCAB, SEQ, PER_STEP = 256, 64, 64 * 8  # byte-level shards, 8 sequences of 64 tokens a step


def test_log_spaced_ends_and_ratios() -> None:
    values = log_spaced(1e3, 1e5, 5)
    assert values[0] == pytest.approx(1e3) and values[-1] == pytest.approx(1e5)
    ratios = {round(b / a, 9) for a, b in itertools.pairwise(values)}
    assert ratios == {round(10**0.5, 9)}
    assert log_spaced(7.0, 7.0, 4) == [7.0]


@pytest.mark.parametrize("target", [2e4, 1e5, 5e5, 2e6, 1e8])
def test_shapes_follow_the_aspect_rule_and_count_exactly(target: float) -> None:
    shape = shape_for(target, VOCAB, SEQ)
    assert shape.n_embd % HEAD_DIM == 0 and shape.n_head == shape.n_embd // HEAD_DIM
    depth = max(1, round((target / (12 * ASPECT**2)) ** (1 / 3)))
    assert abs(shape.n_layer - depth) <= 1
    assert ASPECT_RANGE[0] <= shape.n_embd / shape.n_layer <= ASPECT_RANGE[1]
    with torch.device("meta"):  # the counts are those of the model the loop builds
        model = GPT(GPTConfig(VOCAB, SEQ, shape.n_layer, shape.n_head, shape.n_embd))
    assert (shape.params, shape.non_embedding_params) == (model.num_params(), model.num_params(True))
    # no shape at those depths with an allowed aspect ratio is nearer the target in log N
    best = min(
        abs(math.log(param_count(n_layer, width, VOCAB, SEQ).non_embedding / target))
        for n_layer in range(max(1, depth - 1), depth + 2)
        for width in range(HEAD_DIM, 4097, HEAD_DIM)
        if ASPECT_RANGE[0] <= width / n_layer <= ASPECT_RANGE[1]
    )
    assert abs(math.log(shape.non_embedding_params / target)) == pytest.approx(best)


def test_isoflop_tokens_are_c_over_6n_in_whole_steps() -> None:
    budgets = [3e10, 1e11, 3e11]
    points = isoflop_points(
        budgets, 4, 20_000, 400_000, vocab_size=VOCAB, seq_len=SEQ, tokens_per_step=PER_STEP
    )
    assert points and {p.budget for p in points} == set(budgets)
    for p in points:
        n = p.non_embedding_params
        assert p.steps == round(p.budget / (6 * n) / PER_STEP) and p.steps >= 1
        assert p.tokens == p.steps * PER_STEP
        assert p.flops == 6.0 * n * p.tokens
        assert abs(p.flops - p.budget) <= 6.0 * n * PER_STEP / 2 + 1  # off by at most half a step
        assert 20_000 <= n <= 400_000
        assert p.point_id == f"p{points.index(p):03d}-L{p.n_layer}-d{p.n_embd}-s{p.steps}"
    assert len({p.point_id for p in points}) == len(points)
    for budget in budgets:  # within a budget: distinct shapes, larger models see fewer tokens
        row = sorted((p for p in points if p.budget == budget), key=lambda p: p.non_embedding_params)
        assert len({(p.n_layer, p.n_embd) for p in row}) == len(row) >= 3
        assert [p.tokens for p in row] == sorted((p.tokens for p in row), reverse=True)


def test_isoflop_drops_what_does_not_fit() -> None:
    # 1e9 FLOPs: a 20k model gets 1e9 / 1.2e5 = 8,333 tokens, 16 steps; nothing fits 100 steps
    points = isoflop_points(
        [1e9], 3, 20_000, 2_000_000, vocab_size=VOCAB, seq_len=SEQ, tokens_per_step=PER_STEP, min_steps=100
    )
    assert points == []
    points = isoflop_points(
        [1e9], 3, 20_000, 2_000_000, vocab_size=VOCAB, seq_len=SEQ, tokens_per_step=PER_STEP
    )
    # the size range is clipped to what still gets a step: N <= C / (6 * tokens_per_step)
    assert points and all(p.non_embedding_params <= 1e9 / (6 * PER_STEP) * 1.5 for p in points)
    assert all(p.steps >= 1 for p in points)
    # a range narrower than the width granularity realises one shape: duplicates are dropped
    points = isoflop_points(
        [1e12], 5, 50_000, 50_200, vocab_size=VOCAB, seq_len=SEQ, tokens_per_step=PER_STEP
    )
    assert len(points) <= 1


def test_grid_is_the_product_in_whole_steps() -> None:
    points = grid_points(
        [30_000, 120_000],
        [PER_STEP * 10, PER_STEP * 40, 100],
        vocab_size=VOCAB,
        seq_len=SEQ,
        tokens_per_step=PER_STEP,
    )
    assert [(p.n_layer, p.n_embd, p.steps) for p in points] == [
        (points[0].n_layer, points[0].n_embd, 10),
        (points[0].n_layer, points[0].n_embd, 40),
        (points[2].n_layer, points[2].n_embd, 10),
        (points[2].n_layer, points[2].n_embd, 40),
    ]  # 100 tokens round to 0 steps: dropped
    assert points[0].non_embedding_params < points[2].non_embedding_params
    assert all(p.budget == p.flops == 6.0 * p.non_embedding_params * p.tokens for p in points)


def test_design_points_bounds_and_errors() -> None:
    kwargs = {"vocab_size": VOCAB, "seq_len": SEQ, "tokens_per_step": PER_STEP}
    cfg = ScalingConfig(budgets=[3e10, 1e11, 3e11], sizes_per_budget=4, min_params=20_000, max_params=400_000)
    points = design_points(cfg, **kwargs)
    assert len(points) >= 9
    with pytest.raises(DesignError, match=r"more than scaling\.max_points 5"):
        design_points(cfg.model_copy(update={"max_points": 5}), **kwargs)
    with pytest.raises(DesignError, match="no point of the isoflop design fits"):
        design_points(cfg.model_copy(update={"budgets": [1e3]}), **kwargs)
    with pytest.raises(DesignError, match=r"needs scaling\.model_sizes and scaling\.tokens"):
        design_points(ScalingConfig(design="grid"), **kwargs)
    grid = ScalingConfig(design="grid", model_sizes=[30_000], tokens=[PER_STEP * 5])
    assert [p.steps for p in design_points(grid, **kwargs)] == [5]
    assert points[0].as_dict()["point_id"] == points[0].point_id
