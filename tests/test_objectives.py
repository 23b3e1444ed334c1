"""The five pretraining objectives: exact masks and labels on hand-made rows, the T5 length rules
against hand-computed values, the BERT 80/10/10 split on a large batch, and a short CPU training run
per objective in which the loss must fall."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from core.config import TrainConfig
from core.shard_meta import ShardMeta
from training.loop import build_optimizer
from training.model import GPT, IGNORE_INDEX, GPTConfig, attention_mask
from training.objectives import (
    CausalLM,
    MaskedLM,
    Objective,
    PrefixLM,
    SimCSE,
    SpanCorruption,
    build_objective,
    noise_counts,
    random_spans_noise_mask,
    t5_lengths,
)

# Token ids laid out as jobs/tokens/tokenizer.py does: eos, pad, mask, then 32 sentinels.
EOS, PAD, MASK = 0, 1, 2
SENTINELS = list(range(3, 35))
VOCAB = 96  # ids 35..95 are ordinary tokens
META = ShardMeta(vocab_size=VOCAB, eos_id=EOS, pad_id=PAD, mask_id=MASK, sentinel_ids=SENTINELS)
X = IGNORE_INDEX


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_build_objective_from_config() -> None:
    cases = {"causal": CausalLM, "mlm": MaskedLM, "span": SpanCorruption, "prefix_lm": PrefixLM}
    for name, cls in cases.items():
        assert isinstance(build_objective(TrainConfig(objective=name, seq_len=32), META), cls)
    simcse = build_objective(TrainConfig(objective="contrastive", dropout=0.1), META)
    assert isinstance(simcse, SimCSE) and simcse.temperature == 0.05
    old_shards = META.model_copy(update={"sentinel_ids": None})
    with pytest.raises(ValueError, match=r"'sentinel_ids'.*re-run the tokenizer stage"):
        build_objective(TrainConfig(objective="span"), old_shards)
    mlm = build_objective(TrainConfig(objective="mlm"), old_shards)
    assert isinstance(mlm, MaskedLM) and mlm.mlm_probability == 0.15


def test_causal_batch() -> None:
    batch = CausalLM().make_batch(torch.tensor([[5, 6, 7, 8]]), gen(0))
    assert batch["input"].tolist() == [[5, 6, 7]] and batch["target"].tolist() == [[6, 7, 8]]


def test_mlm_exact_positions() -> None:
    """Seed 3, p = 0.4: positions 0, 1, 3, 5, 12, 14 are drawn; 0, 5, 12, 14 become <mask>, 3 a
    random token (42 -> 44), 1 stays; eos (position 2) and pad (7) are never drawn."""
    mlm = MaskedLM(VOCAB, MASK, [EOS, PAD, *SENTINELS], mlm_probability=0.4)
    tokens = torch.tensor([[40, 41, EOS, 42, 43, 44, 45, PAD, 46, 47, 48, 49, 50, 51, 52, 53, 54]])
    batch = mlm.make_batch(tokens, gen(3))
    assert batch["input"].tolist() == [
        [MASK, 41, EOS, 44, 43, MASK, 45, PAD, 46, 47, 48, 49, MASK, 51, MASK, 53]
    ]
    assert batch["target"].tolist() == [[40, 41, X, 42, X, 44, X, X, X, X, X, X, 50, X, 52, X]]
    torch.testing.assert_close(mlm.make_batch(tokens, gen(3)), batch)  # deterministic per generator


def test_mlm_split_statistics() -> None:
    """Devlin et al. (2019) §3.1: 15% selected; of those 80% <mask>, 10% random, 10% unchanged."""
    mlm = MaskedLM(VOCAB, MASK, [EOS, PAD, *SENTINELS])
    tokens = torch.randint(35, VOCAB, (64, 513), generator=gen(0))
    tokens[:, ::10] = EOS  # special positions are never selected
    batch = mlm.make_batch(tokens, gen(1))
    x, inputs, selected = tokens[:, :-1], batch["input"], batch["target"] != X
    assert not selected[:, ::10].any() and torch.equal(batch["target"][selected], x[selected])
    assert torch.equal(inputs[~selected], x[~selected])
    n = selected.sum().item()
    assert n / (x != EOS).sum().item() == pytest.approx(0.15, abs=0.01)
    masked = (inputs[selected] == MASK).sum().item()
    unchanged = (inputs[selected] == x[selected]).sum().item()
    assert masked / n == pytest.approx(0.8, abs=0.02)
    assert unchanged / n == pytest.approx(0.1 + 0.1 / 61, abs=0.015)  # a random token can be the same
    assert (n - masked - unchanged) / n == pytest.approx(0.1 * 60 / 61, abs=0.015)
    replaced = selected & (inputs != MASK) & (inputs != x)
    assert inputs[replaced].min() >= 35  # random tokens come from the ordinary vocabulary


def test_mlm_selects_at_least_one_per_row() -> None:
    mlm = MaskedLM(VOCAB, MASK, [EOS, PAD, *SENTINELS], mlm_probability=0.001)
    tokens = torch.randint(35, VOCAB, (50, 9), generator=gen(0))
    tokens[:, :4] = PAD
    selected = mlm.make_batch(tokens, gen(0))["target"] != X
    assert selected.sum(dim=1).tolist() == [1] * 50 and not selected[:, :4].any()


@pytest.mark.parametrize(
    ("inputs_length", "density", "mean", "expected"),
    [
        (512, 0.15, 3.0, (568, 114)),  # T5's pair: 568 - 85 noise + 28 sentinels + eos = 512
        (128, 0.15, 3.0, (141, 29)),  # 141 - 21 + 7 + 1 = 128; 142 would give 129
        (114, 0.15, 3.0, (126, 26)),  # 126 - 19 + 6 + 1 = 114; 127 would give 115
        (512, 0.5, 3.0, (766, 512)),  # 767 fits (384 noise, half-to-even), targets 513: T5's hack
    ],
)
def test_t5_lengths(inputs_length: int, density: float, mean: float, expected: tuple[int, int]) -> None:
    assert t5_lengths(inputs_length, density, mean) == expected


def test_span_lengths_fit_the_sequence() -> None:
    """seq_len 128: 115 raw tokens, 17 noise in 6 spans; 105 inputs + 24 targets = 129 = seq_len + 1.
    seq_len 1024 would take ~930 raw tokens and 47 spans; 32 sentinels cap it at 649 (32 spans)."""
    span = SpanCorruption(128, SENTINELS, EOS, PAD)
    assert (span.tokens_length, span.inputs_length, span.targets_length, span.num_spans) == (115, 105, 24, 6)
    long = SpanCorruption(1024, SENTINELS, EOS, PAD)
    assert (long.tokens_length, long.num_spans, long.inputs_length + long.targets_length) == (649, 32, 715)
    with pytest.raises(ValueError, match="too short"):
        SpanCorruption(4, SENTINELS, EOS, PAD)


def test_noise_mask_shape_of_spans() -> None:
    mask = random_spans_noise_mask(200, 115, 0.15, 3.0, gen(0))
    assert noise_counts(115, 0.15, 3.0) == (17, 6)
    assert mask.sum(dim=1).tolist() == [17] * 200
    starts = mask & ~torch.nn.functional.pad(mask[:, :-1], (1, 0))
    assert starts.sum(dim=1).tolist() == [6] * 200
    assert not mask[:, 0].any() and mask[:, -1].all()  # starts with non-noise, ends with noise
    # T5's segmentation is uniform over compositions: 5 noise tokens in 2 spans -> first span 1..4.
    first = random_spans_noise_mask(4000, 18, 0.3, 2.0, gen(1))
    lengths = Counter(int(row[row.nonzero()[0] :].int().argmin()) for row in first)
    assert sorted(lengths) == [1, 2, 3, 4] and min(lengths.values()) > 850


def test_span_exact_layout() -> None:
    """seq_len 24, density 0.3, mean 2: 18 raw tokens 40..57, 5 noise in 2 spans. Seed 0 draws the
    noise at 41 and 54..57: inputs 40 <s0> 42..53 <s1> eos (16), targets <s0> 41 <s1> 54..57 eos (8);
    the model reads inputs + targets shifted by one (23 tokens) and one pad."""
    span = SpanCorruption(24, SENTINELS, EOS, PAD, noise_density=0.3, mean_noise_span_length=2.0)
    assert (span.tokens_length, span.inputs_length, span.targets_length) == (18, 16, 8)
    batch = span.make_batch(torch.arange(40, 65)[None], gen(0))
    s0, s1 = SENTINELS[:2]
    inputs = [40, s0, *range(42, 54), s1, EOS]
    assert batch["input"].tolist() == [[*inputs, s0, 41, s1, 54, 55, 56, 57, PAD]]
    assert batch["target"].tolist() == [[*[X] * 15, s0, 41, s1, 54, 55, 56, 57, EOS, X]]
    assert batch["prefix_len"].tolist() == [16]


def test_prefix_lm_exact_mask_and_labels() -> None:
    """Seed 0 splits row 0 after 1 token and row 1 after 4; loss on the suffix tokens only."""
    batch = PrefixLM().make_batch(torch.arange(10, 16).repeat(2, 1), gen(0))
    assert batch["input"].tolist() == [[10, 11, 12, 13, 14]] * 2
    assert batch["prefix_len"].tolist() == [1, 4]
    assert batch["target"].tolist() == [[11, 12, 13, 14, 15], [X, X, X, 14, 15]]
    mask = attention_mask("prefix", 5, batch["prefix_len"])
    assert mask is not None
    causal = [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    prefix4 = [[1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert mask[:, 0].int().tolist() == [causal, prefix4]
    splits = PrefixLM().make_batch(torch.zeros(4000, 9, dtype=torch.long), gen(1))["prefix_len"]
    assert sorted(Counter(splits.tolist())) == list(range(1, 8))  # uniform over 1..seq_len - 1


def tiny(dropout: float = 0.0, block: int = 32) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=block, n_layer=2, n_head=2, n_embd=48, dropout=dropout))


def test_simcse_views_and_positives() -> None:
    simcse = SimCSE()
    tokens = torch.randint(35, VOCAB, (4, 17), generator=gen(0))
    batch = simcse.make_batch(tokens, gen(0))
    assert torch.equal(batch["input"], tokens[:, :-1])
    model = tiny(dropout=0.1)
    with torch.no_grad():
        same = simcse.similarities(model.eval(), batch)  # no dropout: both views identical
        noisy = simcse.similarities(model.train(), batch)
    torch.testing.assert_close(same.diagonal(), torch.full((4,), 20.0))  # cos 1 / 0.05
    assert (noisy.diagonal() < 20.0).all()


def counting_rows(step: int, rows: int = 16, length: int = 33) -> torch.Tensor:
    """Structured windows: ordinary tokens counting up (mod 61) from a random start."""
    start = torch.randint(0, 61, (rows, 1), generator=gen(1000 + step))
    return 35 + (start + torch.arange(length)) % 61


def train(objective: Objective, model: GPT, steps: int = 100, lr: float = 3e-3) -> list[float]:
    optimizer = build_optimizer(model, lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        loss = objective.loss(model, objective.make_batch(counting_rows(step), gen(step)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# Measured (first 5 steps -> last 10 of 100): causal 4.15 -> 0.02, mlm 4.49 -> 2.8, span 4.25 -> 0.4,
# prefix_lm 4.19 -> 0.03, contrastive 1.10 -> 0.4.
@pytest.mark.parametrize(
    ("name", "dropout", "drop"),
    [("causal", 0, 3.0), ("mlm", 0, 1.0), ("span", 0, 2.5), ("prefix_lm", 0, 3.0), ("contrastive", 0.1, 0.4)],
)
def test_loss_falls(name: str, dropout: float, drop: float) -> None:
    objective = build_objective(TrainConfig(objective=name, seq_len=32, dropout=dropout), META)
    losses = train(objective, tiny(dropout))
    first, last = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    print(f"{name}: loss {first:.3f} -> {last:.3f}")
    assert math.isfinite(last) and last < first - drop
