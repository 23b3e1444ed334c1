"""Pretraining objectives over one decoder (training/model.py): each turns raw shard windows into a
batch and a batch into a loss, so the loop, parallelism and checkpoints stay the same for all five.

An objective is two methods. `make_batch(tokens [B, seq_len + 1], generator)` does all the
sampling on the host, deterministically from the generator (the loop seeds it from seed, step and
rank, so a resumed run draws the same masks). `loss(model, batch)` only calls `model(...)`, so the
DDP/FSDP forward hooks run. Labels use IGNORE_INDEX (-100) where no loss is taken.

Every objective keeps one architecture and one set of weights, the decoder-only transformer, and
changes only the attention pattern: Raffel et al. (2020, §3.2.1) train the same objectives on a
decoder-only "prefix LM" and Wang et al. (2022, "What language model architecture and pretraining
objective work best for zero-shot generalization?") compare causal, non-causal (prefix) decoders and
encoder-decoders under the same objectives; a separate encoder-decoder would need a second model
definition, checkpoint format and parallelism plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from core.shard_meta import ShardMeta
from training.model import IGNORE_INDEX, Attn

if TYPE_CHECKING:  # torch-only at run time, like model.py, so GPU scripts need no pydantic
    from core.config import TrainConfig

Batch = dict[str, torch.Tensor]


class Objective(Protocol):
    name: str

    def make_batch(self, tokens: torch.Tensor, generator: torch.Generator) -> Batch: ...

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor: ...


def _rand(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) draws from `generator` (on its device), moved to `like`'s device."""
    return torch.rand(shape, generator=generator, device=generator.device).to(like.device)


def _lm_loss(model: nn.Module, batch: Batch, attn: Attn) -> torch.Tensor:
    prefix_len = batch.get("prefix_len")
    kwargs: dict[str, Any] = {} if prefix_len is None else {"prefix_len": prefix_len}
    return model(batch["input"], batch["target"], attn=attn, **kwargs)[1]


class CausalLM:
    """Next-token prediction (GPT, Radford et al. 2018/2019): inputs tokens[:, :-1], targets [:, 1:]."""

    name = "causal"

    def make_batch(self, tokens: torch.Tensor, generator: torch.Generator) -> Batch:
        return {"input": tokens[:, :-1], "target": tokens[:, 1:]}

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch["input"], batch["target"])[1]


@dataclass
class MaskedLM:
    """BERT's masked LM (Devlin et al. 2019, §3.1) with RoBERTa's dynamic masking (Liu et al. 2019,
    §4.1: a fresh mask every batch, here drawn from the generator).

    Over bidirectional attention on tokens[:, :-1], each non-special position is selected with
    probability `mlm_probability`; of those, 80% become `mask_id`, 10% a random non-special token
    and 10% stay as they are; the loss is on selected positions only. A row where no position was
    drawn gets its lowest-scoring non-special position selected, so every row contributes (at
    p = 0.15 and 128 tokens that happens with probability 0.85^128, about 1e-9). A row made only of
    special tokens cannot contribute; a batch of only such rows has no loss tokens.
    """

    vocab_size: int
    mask_id: int
    special_ids: Sequence[int]
    mlm_probability: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1
    name: str = field(default="mlm", init=False)

    def __post_init__(self) -> None:
        self._special = torch.tensor(sorted({*self.special_ids, self.mask_id}), dtype=torch.long)
        ordinary = torch.ones(self.vocab_size, dtype=torch.bool)
        ordinary[self._special] = False
        self._ordinary = ordinary.nonzero().squeeze(1)
        if len(self._ordinary) == 0:
            raise ValueError("every token id is special; MLM has no token to mask")

    def make_batch(self, tokens: torch.Tensor, generator: torch.Generator) -> Batch:
        x = tokens[:, :-1]
        maskable = ~torch.isin(x, self._special.to(x.device))
        score = _rand(tuple(x.shape), generator, x)
        selected = (score < self.mlm_probability) & maskable
        empty = ~selected.any(dim=1) & maskable.any(dim=1)
        lowest = score.masked_fill(~maskable, 2.0).argmin(dim=1)
        selected[empty, lowest[empty]] = True
        action = _rand(tuple(x.shape), generator, x)
        pick = torch.randint(
            len(self._ordinary), tuple(x.shape), generator=generator, device=generator.device
        )
        random_tokens = self._ordinary.to(pick.device)[pick].to(x.device)
        masked = selected & (action < self.mask_fraction)
        randomised = selected & ~masked & (action < self.mask_fraction + self.random_fraction)
        inputs = torch.where(masked, self.mask_id, torch.where(randomised, random_tokens, x))
        return {"input": inputs, "target": torch.where(selected, x, IGNORE_INDEX)}

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return _lm_loss(model, batch, "bidirectional")


def t5_lengths(
    inputs_length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[int, int]:
    """(tokens_length, targets_length): the longest raw span whose corrupted inputs, one sentinel per
    noise span and EOS included, fit in `inputs_length`, and the length of its targets.

    Source: t5.data.preprocessors.random_spans_helper (Raffel et al. 2020), with one sentinel per
    span on each side; also HF's `compute_input_and_target_lengths`. 512 -> (568, 114).
    """

    def corrupted(tokens_length: int) -> tuple[int, int]:
        num_noise = round(tokens_length * noise_density)
        num_spans = round(num_noise / mean_noise_span_length)
        return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1

    tokens_length = inputs_length - 1
    while corrupted(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    _, targets_length = corrupted(tokens_length)
    # T5: "minor hack to get the targets length to be equal to inputs length".
    if noise_density == 0.5 and targets_length > inputs_length:
        tokens_length, targets_length = tokens_length - 1, targets_length - 1
    return tokens_length, targets_length


def noise_counts(length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """(noise tokens, noise spans) as T5's random_spans_noise_mask clamps them: at least one noise
    and one non-noise token, at least one span."""
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    return num_noise, max(round(num_noise / mean_noise_span_length), 1)


def _random_segmentation(num_items: int, num_segments: int, rows: int, gen: torch.Generator) -> torch.Tensor:
    """[rows, num_segments] positive lengths summing to num_items: T5 shuffles num_segments - 1 ones
    among num_items - 1 slots to mark where a new segment starts."""
    order = torch.stack(
        [torch.randperm(num_items - 1, generator=gen, device=gen.device) for _ in range(rows)]
    )
    first_in_segment = F.pad((order < num_segments - 1).long(), (1, 0)).cpu()
    segment_id = first_in_segment.cumsum(dim=1)
    lengths = torch.zeros(rows, num_segments, dtype=torch.long)
    return lengths.scatter_add_(1, segment_id, torch.ones_like(segment_id))


def random_spans_noise_mask(
    rows: int, length: int, noise_density: float, mean_noise_span_length: float, gen: torch.Generator
) -> torch.Tensor:
    """[rows, length] bool, True on noise: T5's random_spans_noise_mask (Raffel et al. 2020, §3.1.4).

    Noise and non-noise token counts are each cut into the same number of random segments, which
    are interleaved starting with non-noise, so every row ends in a noise span."""
    num_noise, num_spans = noise_counts(length, noise_density, mean_noise_span_length)
    noise = _random_segmentation(num_noise, num_spans, rows, gen)
    nonnoise = _random_segmentation(length - num_noise, num_spans, rows, gen)
    interleaved = torch.stack([nonnoise, noise], dim=2).view(rows, 2 * num_spans)
    starts = interleaved.cumsum(dim=1)[:, :-1]
    indicator = torch.zeros(rows, length, dtype=torch.long).scatter_(1, starts, 1)
    return indicator.cumsum(dim=1) % 2 == 1


def _spans_to_sentinels(tokens: torch.Tensor, spans: torch.Tensor, sentinels: torch.Tensor) -> torch.Tensor:
    """T5's noise_span_to_unique_sentinel: each run of `spans` becomes one sentinel, the first run
    extra_id_0; every row keeps the same number of tokens, so rows stay a rectangle."""
    starts = spans & ~F.pad(spans[:, :-1], (1, 0), value=False)
    replaced = torch.where(starts, sentinels[(starts.cumsum(dim=1) - 1).clamp(min=0)], tokens)
    return replaced[~spans | starts].view(tokens.size(0), -1)


@dataclass
class SpanCorruption:
    """T5 span corruption (Raffel et al. 2020, §3.1.4): noise density 0.15, mean span length 3.

    Inputs keep the non-noise tokens with one sentinel per noise span; targets hold each sentinel
    followed by the span it replaced; both end in EOS. Decoder-only form (Raffel et al. §3.2.1's
    "prefix LM"; Wang et al. 2022's non-causal decoder): one sequence, inputs then targets, with
    bidirectional attention over the inputs, causal over the targets and loss on the targets only,
    padded to seq_len with pad_id. That keeps one codebase and one set of weights for every
    objective. The raw length is the longest T5 `tokens_length` (`t5_lengths`) whose inputs plus
    targets fit in seq_len + 1 tokens (the model sees them shifted by one) and whose spans each get
    a sentinel: T5 has 100, our tokenizer 32, which caps the raw length near 650 tokens.
    """

    seq_len: int
    sentinel_ids: Sequence[int]
    eos_id: int
    pad_id: int
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0
    name: str = field(default="span", init=False)

    def __post_init__(self) -> None:
        self.tokens_length = self._fit()
        noise, self.num_spans = noise_counts(
            self.tokens_length, self.noise_density, self.mean_noise_span_length
        )
        self.inputs_length = self.tokens_length - noise + self.num_spans + 1
        self.targets_length = noise + self.num_spans + 1

    def _fits(self, inputs_length: int) -> bool:
        tokens_length, _ = t5_lengths(inputs_length, self.noise_density, self.mean_noise_span_length)
        if tokens_length < 2:
            return False
        noise, spans = noise_counts(tokens_length, self.noise_density, self.mean_noise_span_length)
        # inputs (t - noise + spans + eos) + targets (noise + spans + eos), shifted by one
        fits_sequence = tokens_length + 2 * spans + 1 <= self.seq_len
        return fits_sequence and spans <= len(self.sentinel_ids) and spans <= tokens_length - noise

    def _fit(self) -> int:
        """Largest T5 inputs_length that fits (the total grows with it), by bisection."""
        low, high = 0, self.seq_len
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if self._fits(mid) else (low, mid - 1)
        if low == 0:
            raise ValueError(f"seq_len {self.seq_len} is too short for span corruption")
        return t5_lengths(low, self.noise_density, self.mean_noise_span_length)[0]

    def make_batch(self, tokens: torch.Tensor, generator: torch.Generator) -> Batch:
        rows, device = tokens.size(0), tokens.device
        raw = tokens[:, : self.tokens_length]
        noise = random_spans_noise_mask(
            rows, self.tokens_length, self.noise_density, self.mean_noise_span_length, generator
        ).to(device)
        sentinels = torch.tensor(self.sentinel_ids, dtype=torch.long, device=device)
        eos = torch.full((rows, 1), self.eos_id, dtype=torch.long, device=device)
        inputs = torch.cat([_spans_to_sentinels(raw, noise, sentinels), eos], dim=1)
        targets = torch.cat([_spans_to_sentinels(raw, ~noise, sentinels), eos], dim=1)
        sequence = torch.cat([inputs, targets], dim=1)
        n = sequence.size(1)
        labels = sequence[:, 1:].clone()
        labels[:, : self.inputs_length - 1] = IGNORE_INDEX  # positions that predict input tokens
        pad = self.seq_len - (n - 1)
        return {
            "input": F.pad(sequence[:, :-1], (0, pad), value=self.pad_id),
            "target": F.pad(labels, (0, pad), value=IGNORE_INDEX),
            "prefix_len": torch.full((rows,), self.inputs_length, dtype=torch.long, device=device),
        }

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return _lm_loss(model, batch, "prefix")


class PrefixLM:
    """Prefix LM (Raffel et al. 2020, §3.2.1; Wang et al. 2022): each row is split at a point drawn
    uniformly from 1..seq_len - 1; attention is bidirectional over the first `split` tokens and
    causal after; the loss covers the suffix tokens (tokens[split:], predicted from position split - 1
    on), so no position is scored on a token it can see. At least one prefix and two suffix tokens.
    """

    name = "prefix_lm"

    def make_batch(self, tokens: torch.Tensor, generator: torch.Generator) -> Batch:
        x, y = tokens[:, :-1], tokens[:, 1:]
        rows, length = x.shape
        split = torch.randint(1, length, (rows,), generator=generator, device=generator.device).to(x.device)
        scored = torch.arange(length, device=x.device)[None, :] >= split[:, None] - 1
        return {"input": x, "target": torch.where(scored, y, IGNORE_INDEX), "prefix_len": split}

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return _lm_loss(model, batch, "prefix")


@dataclass
class SimCSE:
    """Unsupervised SimCSE (Gao et al. 2021, §3): every sequence is encoded twice in one forward
    pass (the batch is stacked on itself), and dropout, the only noise, makes the two views differ;
    cosine similarity over `temperature` (0.05) against in-batch negatives, cross-entropy with the
    matching view as the positive. The model must be in train mode with dropout > 0.

    Pooling: we mean-pool the final hidden states under bidirectional attention. The decoder has no
    [CLS] token, and Gao et al. report that the pooling choice ([CLS] with or without MLP, averaged
    layers) changes results little; mean pooling is Sentence-BERT's default (Reimers & Gurevych 2019).
    """

    temperature: float = 0.05
    name: str = field(default="contrastive", init=False)

    def make_batch(self, tokens: torch.Tensor, generator: torch.Generator) -> Batch:
        return {"input": tokens[:, :-1]}

    def similarities(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """[B, B] cosine similarities / temperature between first views (rows) and second views."""
        x = batch["input"]
        hidden, _ = model(torch.cat([x, x]), attn="bidirectional", return_hidden=True)
        first, second = F.normalize(hidden.float().mean(dim=1), dim=-1).chunk(2)
        return first @ second.T / self.temperature

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        sims = self.similarities(model, batch)
        return F.cross_entropy(sims, torch.arange(sims.size(0), device=sims.device))


def _meta(meta: ShardMeta, key: str, objective: str) -> Any:
    if getattr(meta, key) is None:
        raise ValueError(
            f"objective {objective!r} needs {key!r} in the shard meta.json, which these shards lack; "
            "re-run the tokenizer stage (and the shard stage after it)"
        )
    return getattr(meta, key)


def build_objective(cfg: TrainConfig, meta: ShardMeta) -> Objective:
    """The objective `cfg.objective` names, with its settings from cfg and token ids from `meta`."""
    name = cfg.objective
    if name == "causal":
        return CausalLM()
    if name == "prefix_lm":
        return PrefixLM()
    if name == "contrastive":
        return SimCSE(temperature=cfg.contrastive_temperature)
    if name == "mlm":
        special = [i for i in (meta.eos_id, meta.pad_id) if i is not None]
        return MaskedLM(
            vocab_size=meta.vocab_size,
            mask_id=_meta(meta, "mask_id", name),
            special_ids=[*special, *(meta.sentinel_ids or ())],
            mlm_probability=cfg.mlm_probability,
        )
    if name == "span":
        return SpanCorruption(
            seq_len=cfg.seq_len,
            sentinel_ids=_meta(meta, "sentinel_ids", name),
            eos_id=_meta(meta, "eos_id", name),
            pad_id=_meta(meta, "pad_id", name),
            noise_density=cfg.span_noise_density,
            mean_noise_span_length=cfg.span_mean_length,
        )
    raise ValueError(f"unknown objective {name!r}")


def text_tokens_per_window(objective: Objective, seq_len: int) -> int:
    """Raw text tokens one stream window gives the objective: what `token_budget` counts.

    Windows start `seq_len` tokens apart (training/data.py), so a window adds `seq_len` new tokens
    of text; span corruption reads only its first `tokens_length` (the rest of the row is its
    sentinels, EOS and padding), so it counts those, not the padded positions the model runs."""
    return objective.tokens_length if isinstance(objective, SpanCorruption) else seq_len


def positions_per_window(objective: Objective, seq_len: int) -> int:
    """Positions the model runs forward and backward per window: what FLOPs and MFU count.

    SimCSE encodes every row twice (Gao et al. 2021, §3: the batch is stacked on itself), so it
    runs 2 x seq_len; every other objective runs seq_len positions, padding included."""
    return 2 * seq_len if isinstance(objective, SimCSE) else seq_len


def labelled_tokens(batch: Batch) -> int:
    """Loss terms in a batch: targets that are not IGNORE_INDEX (one per row without targets)."""
    target = batch.get("target")
    if target is None:
        return int(batch["input"].size(0))
    return int((target != IGNORE_INDEX).sum().item())


class TokenMean:
    """Wraps an objective whose micro-batches hold unequal numbers of labelled tokens (MLM, prefix
    LM) so that accumulation and data parallelism give the loss, and gradient, of one big batch.

    The plans average per-micro-batch means: the loss over `grad_accum` micro-batches on `world`
    ranks is (1 / (A·W)) Σ mean_i, which is the big batch's mean Σ n_i·mean_i / Σ n_i only when
    every n_i is equal. With the step's total N = Σ n_i (all micro-batches, all ranks) set in
    `total` beforehand, `loss` returns mean_i · n_i · A·W / N; the plan's division by A and the
    gradient averaging over W then leave Σ n_i·mean_i / N exactly. `total` None: the plain mean
    (evaluation).
    """

    def __init__(self, inner: Objective, terms_per_step: int) -> None:
        self.inner, self.terms_per_step = inner, terms_per_step  # terms: grad_accum x data world
        self.name = inner.name
        self.total: int | None = None

    def make_batch(self, tokens: torch.Tensor, generator: torch.Generator) -> Batch:
        return self.inner.make_batch(tokens, generator)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        mean = self.inner.loss(model, batch)
        if self.total is None:
            return mean
        if self.total == 0:  # no labelled token anywhere in the step: no gradient, as one big batch
            return mean * 0.0
        return mean * (labelled_tokens(batch) * self.terms_per_step / self.total)


def varies_in_labels(objective: Objective) -> bool:
    """Objectives whose rows hold a random number of labelled tokens (`TokenMean`)."""
    return isinstance(objective, MaskedLM | PrefixLM)
