"""The points of a scaling-law sweep: which model shapes train on how many tokens.

Two designs (core/config.py ScalingConfig):

* `isoflop` (Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", approach 2):
  for each compute budget C, `sizes_per_budget` model sizes N spread log-uniformly over the part of
  [`min_params`, `max_params`] where the run still gets `min_steps` steps, each trained on
  D = C / (6 N) tokens (the 6ND approximation of Kaplan et al. 2020 section 2.1).
* `grid` (Kaplan et al. 2020, "Scaling Laws for Neural Language Models"): every size in
  `model_sizes` times every token count in `tokens`.

N is the non-embedding parameter count, as in Kaplan et al. (2020), whose laws are cleanest in it
(embedding tables change with the vocabulary and the context, not with the model's capacity); the
total count is recorded beside it, since Pearce & Song (2024, "Reconciling Kaplan and Chinchilla
Scaling Laws") trace much of the Kaplan/Chinchilla disagreement to that choice at small scale.

Shapes: Kaplan et al. (2020) section 3.1 (figure 5) found the loss within a few percent over a wide
range of aspect ratios d_model / n_layer (about 20 to 200) at fixed N, so one fixed ratio serves:
`ASPECT` = 64, GPT-2 small's 768 / 12. The head size stays fixed (`HEAD_DIM` = 32, small enough that
tiny widths still get several heads), so widths are multiples of it. A target N is realised from the
depth round((N / (12 ASPECT^2))^(1/3)) (N ~ 12 L d^2 with d = ASPECT L): among that depth and its two
neighbours, each with the two widths around sqrt(N / (12 L)), the shape nearest the target in log N
whose d / L stays in `ASPECT_RANGE` (16 to 256, inside Kaplan's flat region give or take); neighbouring
depths fill the gaps that widths in steps of 32 leave between tiny models. A point records the
exact counts of the shape it trains (training/model.py `param_count`), never the target.

Tokens become whole optimizer steps of `tokens_per_step` (seq_len x batch x accumulation x
workers); a point records the tokens it will actually see, and its FLOPs as 6 N D with those.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from training.model import param_count

ASPECT = 64  # d_model / n_layer (Kaplan et al. 2020 figure 5: flat from ~20 to ~200)
ASPECT_RANGE = (16, 256)  # shapes outside are used only when no candidate is inside
HEAD_DIM = 32  # fixed head size: widths are multiples of it


class DesignError(ValueError):
    """A sweep design that cannot run: no point fits, or more points than `max_points`."""


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_head: int
    n_embd: int
    params: int  # total, the tied head counted once (GPT.num_params)
    non_embedding_params: int


@dataclass(frozen=True)
class Point:
    """One training run of a sweep."""

    point_id: str
    n_layer: int
    n_head: int
    n_embd: int
    params: int
    non_embedding_params: int
    tokens: int  # tokens the run sees: steps x tokens_per_step
    steps: int
    budget: float  # the compute budget C it belongs to (grid: 6 N D of its targets)
    flops: float  # 6 N D with N non-embedding and D `tokens`

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def shape_for(
    target: float,
    vocab_size: int,
    seq_len: int,
    aspect: float = ASPECT,
    head_dim: int = HEAD_DIM,
) -> Shape:
    """The shape whose non-embedding count is nearest `target` in log N, among depths next to
    round((target / (12 aspect^2))^(1/3)) and widths (multiples of `head_dim`) next to
    sqrt(target / (12 depth)), keeping d_model / n_layer within [ASPECT_RANGE] (module docstring):
    small models have few shapes, and neighbouring depths fill the gaps between widths."""
    depth = max(1, round((target / (12 * aspect * aspect)) ** (1 / 3)))
    candidates: list[tuple[bool, float, int, int, int]] = []  # (outside, log miss, depth gap, L, d)
    for n_layer in {max(1, depth - 1), depth, depth + 1}:
        low = max(1, math.floor(math.sqrt(target / (12 * n_layer)) / head_dim))
        for width in (low * head_dim, (low + 1) * head_dim):
            n = param_count(n_layer, width, vocab_size, seq_len).non_embedding
            outside = not ASPECT_RANGE[0] <= width / n_layer <= ASPECT_RANGE[1]
            candidates.append((outside, abs(math.log(n / target)), abs(n_layer - depth), n_layer, width))
    *_, n_layer, n_embd = min(candidates)
    count = param_count(n_layer, n_embd, vocab_size, seq_len)
    return Shape(n_layer, n_embd // head_dim, n_embd, count.total, count.non_embedding)


def log_spaced(low: float, high: float, count: int) -> list[float]:
    """`count` values from `low` to `high`, evenly spaced in log (one value when low == high)."""
    if count == 1 or high <= low:
        return [low]
    step = math.log(high / low) / (count - 1)
    return [low * math.exp(i * step) for i in range(count)]


def _point(index: int, shape: Shape, steps: int, tokens_per_step: int, budget: float) -> Point:
    tokens = steps * tokens_per_step
    pid = f"p{index:03d}-L{shape.n_layer}-d{shape.n_embd}-s{steps}"
    flops = 6.0 * shape.non_embedding_params * tokens
    return Point(pid, **asdict(shape), tokens=tokens, steps=steps, budget=float(budget), flops=flops)


def isoflop_points(
    budgets: Sequence[float],
    sizes_per_budget: int,
    min_params: int,
    max_params: int,
    *,
    vocab_size: int,
    seq_len: int,
    tokens_per_step: int,
    min_steps: int = 1,
    aspect: float = ASPECT,
    head_dim: int = HEAD_DIM,
) -> list[Point]:
    """Hoffmann et al. (2022) approach 2's IsoFLOP profiles. For each budget C, targets spread
    log-uniformly over [min_params, min(max_params, C / (6 min_steps tokens_per_step))] (larger
    models would see less than `min_steps` steps), realised as shapes; a shape already in this
    budget, or whose exact N leaves [min_params, max_params], is dropped, and so is a point whose
    D = C / (6 N) rounds to fewer than `min_steps` steps."""
    points: list[Point] = []
    for budget in sorted(budgets):
        fit_max = budget / (6 * min_steps * tokens_per_step)
        high = min(max_params, fit_max)
        if high < min_params:
            continue
        seen: set[tuple[int, int]] = set()
        for target in log_spaced(min_params, high, sizes_per_budget):
            shape = shape_for(target, vocab_size, seq_len, aspect, head_dim)
            n = shape.non_embedding_params
            if (shape.n_layer, shape.n_embd) in seen or not min_params <= n <= max_params:
                continue
            steps = round(budget / (6 * n) / tokens_per_step)
            if steps < min_steps:
                continue
            seen.add((shape.n_layer, shape.n_embd))
            points.append(_point(len(points), shape, steps, tokens_per_step, budget))
    return points


def grid_points(
    model_sizes: Sequence[int],
    tokens: Sequence[int],
    *,
    vocab_size: int,
    seq_len: int,
    tokens_per_step: int,
    min_steps: int = 1,
    aspect: float = ASPECT,
    head_dim: int = HEAD_DIM,
) -> list[Point]:
    """Every size (non-embedding target) times every token count; token counts round to whole steps
    and those under `min_steps` steps are dropped. `budget` is 6 N D of the realised point."""
    points: list[Point] = []
    shapes = {
        (s.n_layer, s.n_embd): s
        for s in (shape_for(n, vocab_size, seq_len, aspect, head_dim) for n in model_sizes)
    }
    for shape in sorted(shapes.values(), key=lambda s: s.non_embedding_params):
        for steps in sorted({round(d / tokens_per_step) for d in tokens}):
            if steps < min_steps:
                continue
            budget = 6.0 * shape.non_embedding_params * steps * tokens_per_step
            points.append(_point(len(points), shape, steps, tokens_per_step, budget))
    return points


def design_points(
    scaling: Any,
    *,
    vocab_size: int,
    seq_len: int,
    tokens_per_step: int,
    min_steps: int = 1,
) -> list[Point]:
    """The points of a ScalingConfig's design; a DesignError when none fits or more than
    `max_points` would run (a sweep is bounded up front, never cut short silently)."""
    if scaling.design == "isoflop":
        if scaling.min_params > scaling.max_params:
            raise DesignError(
                f"scaling.min_params {scaling.min_params} exceeds max_params {scaling.max_params}"
            )
        points = isoflop_points(
            scaling.budgets,
            scaling.sizes_per_budget,
            scaling.min_params,
            scaling.max_params,
            vocab_size=vocab_size,
            seq_len=seq_len,
            tokens_per_step=tokens_per_step,
            min_steps=min_steps,
        )
    else:
        if not scaling.model_sizes or not scaling.tokens:
            raise DesignError("design 'grid' needs scaling.model_sizes and scaling.tokens")
        points = grid_points(
            scaling.model_sizes,
            scaling.tokens,
            vocab_size=vocab_size,
            seq_len=seq_len,
            tokens_per_step=tokens_per_step,
            min_steps=min_steps,
        )
    if not points:
        raise DesignError(
            f"no point of the {scaling.design} design fits: each needs at least {min_steps} step(s) of "
            f"{tokens_per_step:,} tokens and N in [{scaling.min_params:,}, {scaling.max_params:,}]"
        )
    if len(points) > scaling.max_points:
        raise DesignError(
            f"the {scaling.design} design has {len(points)} points, more than scaling.max_points "
            f"{scaling.max_points}: raise it or shrink the design"
        )
    return points
