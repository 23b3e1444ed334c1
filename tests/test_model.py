"""Unit tests for the plain-PyTorch pieces: the GPT, the LR schedule and the shard reader."""

from __future__ import annotations

import itertools
import json
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.train_helpers import evaluate, train_step
from training.data import ShardError, ShardReader
from training.loop import build_optimizer, lr_at
from training.model import GPT, IGNORE_INDEX, SIZES, GPTConfig, attention_mask

VOCAB = 64


def tiny() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32))


def test_shapes_and_named_sizes() -> None:
    idx = torch.randint(0, VOCAB, (3, 16))
    logits, loss = tiny()(idx)
    assert logits.shape == (3, 16, VOCAB) and loss is None
    _, loss = tiny()(idx, idx)
    assert loss is not None and loss.shape == ()
    assert set(SIZES) >= {"tiny", "small"}
    small = GPT(GPTConfig.from_size("small", vocab_size=256, block_size=32))
    assert small.num_params() > GPT(GPTConfig.from_size("tiny", vocab_size=256, block_size=32)).num_params()
    with pytest.raises(ValueError, match="exceeds block_size"):
        tiny()(torch.zeros(1, 17, dtype=torch.long))


def test_tied_head_counted_once() -> None:
    model = tiny()
    assert model.lm_head.weight is model.wte.weight
    assert model.num_params() - model.num_params(non_embedding=True) == VOCAB * 32 + 16 * 32


def test_causal() -> None:
    model = tiny().eval()
    a = torch.randint(0, VOCAB, (2, 16))
    b = a.clone()
    b[:, 9:] = (b[:, 9:] + 1) % VOCAB
    with torch.no_grad():
        la, lb = model(a)[0], model(b)[0]
    torch.testing.assert_close(la[:, :9], lb[:, :9])
    assert not torch.allclose(la[:, 9:], lb[:, 9:])


def test_initial_loss_is_uniform() -> None:
    idx = torch.randint(0, VOCAB, (8, 16))
    _, loss = tiny()(idx, idx.roll(-1, dims=1))
    assert loss.item() == pytest.approx(math.log(VOCAB), rel=0.1)


def test_overfits_one_batch() -> None:
    model = tiny()
    x = torch.randint(0, VOCAB, (4, 16))
    y = torch.randint(0, VOCAB, (4, 16))
    opt = build_optimizer(model, lr=1e-2, weight_decay=0.0)
    losses = [train_step(model, opt, x, y, grad_clip=1.0) for _ in range(50)]
    assert losses[-1] < 0.5 * losses[0]
    assert evaluate(model, [(x, y)]) < 0.5 * losses[0] and model.training


def test_lr_schedule() -> None:
    lr = partial(lr_at, base_lr=1.0, warmup_steps=10, total_steps=110)
    assert lr(0) == pytest.approx(0.1)
    assert lr(9) == pytest.approx(1.0)  # warmup reaches the peak
    assert lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.55)  # cosine midpoint between peak and 10%
    assert lr(110) == pytest.approx(0.1)
    decay = [lr(s) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(decay))
    assert lr_at(0, base_lr=1.0, warmup_steps=0, total_steps=5) == pytest.approx(1.0)


def write_shards(root: Path, sizes: dict[str, list[int]], vocab: int = VOCAB) -> Path:
    """Shards whose token at position p of file f is unique, so windows can be told apart."""
    meta: dict = {"vocab_size": vocab, "eos_id": 0, "pad_id": 1, "dtype": "uint16"}
    for split, lengths in sizes.items():
        names = [f"{split}-{i:05d}.bin" for i in range(len(lengths))]
        for i, (name, n) in enumerate(zip(names, lengths, strict=True)):
            (np.arange(n, dtype="<u2") + 1000 * i).tofile(root / name)
        meta |= {f"{split}_files": names, f"{split}_tokens": sum(lengths)}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def test_reader_batches(tmp_path: Path) -> None:
    write_shards(tmp_path, {"train": [330, 170], "val": [40]})
    r = ShardReader(tmp_path, "train", seq_len=8, seed=3)
    assert r.num_windows == 329 // 8 + 169 // 8
    x, y = r.batch(0, 4)
    assert x.shape == y.shape == (4, 8) and x.dtype == torch.int64
    torch.testing.assert_close(x[:, 1:], y[:, :-1])
    assert bool(((y - x) == 1).all())  # windows never span two files


def test_reader_ranks_disjoint_and_deterministic(tmp_path: Path) -> None:
    write_shards(tmp_path, {"train": [400, 300], "val": [40]})
    readers = [ShardReader(tmp_path, "train", 8, rank=r, world_size=2, seed=7) for r in range(2)]
    starts = [{int(x[0]) for s in range(4) for x in r.batch(s, 5)[0]} for r in readers]
    assert len(starts[0]) == len(starts[1]) == 20 and not starts[0] & starts[1]
    again = ShardReader(tmp_path, "train", 8, rank=1, world_size=2, seed=7)
    torch.testing.assert_close(again.batch(3, 5), readers[1].batch(3, 5))
    other_seed = ShardReader(tmp_path, "train", 8, rank=1, world_size=2, seed=8)
    assert not torch.equal(other_seed.batch(3, 5)[0], readers[1].batch(3, 5)[0])


def test_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(ShardError, match=r"no meta\.json"):
        ShardReader(tmp_path, "train", 8)
    write_shards(tmp_path, {"train": [8, 0], "val": []})
    with pytest.raises(ShardError, match="seq_len \\+ 1 = 9"):
        ShardReader(tmp_path, "train", 8)


def test_causal_loss_matches_the_model_before_objectives() -> None:
    """Golden values computed with the model as it was before the attention options were added."""
    tokens = torch.randint(0, VOCAB, (3, 17), generator=torch.Generator().manual_seed(1))
    _, loss = tiny()(tokens[:, :-1], tokens[:, 1:])
    assert loss.item() == pytest.approx(4.17491340637207, rel=1e-6)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.1))
    torch.manual_seed(5)  # dropout draws in the same order as before
    assert model(tokens[:, :-1], tokens[:, 1:])[1].item() == pytest.approx(4.177971839904785, rel=1e-6)


@pytest.mark.parametrize(
    ("size", "params"),
    [("gpt2-small", 124_439_808), ("gpt2-medium", 354_823_168), ("1b", 1_011_476_480)],
)
def test_named_sizes_parameter_counts(size: str, params: int) -> None:
    with torch.device("meta"):  # shapes only, no memory
        model = GPT(GPTConfig.from_size(size, vocab_size=50257, block_size=1024))
    assert model.num_params() == params


def test_attention_masks_exact() -> None:
    assert attention_mask("causal", 4) is None and attention_mask("bidirectional", 4, n_prefix_kv=2) is None
    prefix = attention_mask("prefix", 4, prefix_len=torch.tensor([2, 0]))
    expected = [
        [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]],
        [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]],
    ]
    assert prefix is not None and prefix.dtype == torch.bool
    assert prefix[:, 0].int().tolist() == expected
    with_kv = attention_mask("causal", 3, n_prefix_kv=2)
    assert with_kv is not None and with_kv.shape == (1, 1, 3, 5)
    assert with_kv[0, 0].int().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    with pytest.raises(ValueError, match="prefix_len is required"):
        attention_mask("prefix", 4)
    with pytest.raises(ValueError, match="unknown attention"):
        attention_mask("sideways", 4)  # type: ignore[arg-type]


def outputs_after_change(at: int, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits for a batch and for the same batch with the token at `at` changed."""
    model = tiny().eval()
    a = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(2))
    b = a.clone()
    b[:, at] = (b[:, at] + 1) % VOCAB
    with torch.no_grad():
        return model(a, **kwargs)[0], model(b, **kwargs)[0]  # type: ignore[arg-type]


def test_bidirectional_and_prefix_attention() -> None:
    la, lb = outputs_after_change(12, attn="bidirectional")
    assert not torch.allclose(la[:, 0], lb[:, 0])  # the first position sees the last ones
    six = torch.tensor([6, 6])
    la, lb = outputs_after_change(4, attn="prefix", prefix_len=six)
    assert not torch.allclose(la[:, 0], lb[:, 0])  # inside the prefix: bidirectional
    la, lb = outputs_after_change(9, attn="prefix", prefix_len=six)
    torch.testing.assert_close(la[:, :9], lb[:, :9])  # after it: causal
    assert not torch.allclose(la[:, 9:], lb[:, 9:])
    model = tiny().eval()
    idx = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        causal, bidir = model(idx)[0], model(idx, attn="bidirectional")[0]
        torch.testing.assert_close(model(idx, attn="prefix", prefix_len=torch.tensor([0, 1]))[0], causal)
        torch.testing.assert_close(model(idx, attn="prefix", prefix_len=torch.tensor([16, 16]))[0], bidir)


def test_prefix_kv_acts_as_prepended_tokens() -> None:
    """With position embeddings zeroed, keys/values of real tokens passed as prefix_kv give the same
    logits as running those tokens in front of the sequence (what Li & Liang's prefix imitates)."""
    model = tiny().eval()
    with torch.no_grad():
        model.wpe.weight.zero_()
    pre, idx = torch.randint(0, VOCAB, (2, 3)), torch.randint(0, VOCAB, (2, 5))
    kv: list[tuple[torch.Tensor, torch.Tensor]] = []

    def keep_kv(_: nn.Module, __: tuple, out: torch.Tensor) -> None:
        _, k, v = (t.view(2, 8, 2, 16).transpose(1, 2)[:, :, :3] for t in out.split(32, dim=2))
        kv.append((k, v))

    hooks = [block.attn.c_attn.register_forward_hook(keep_kv) for block in model.h]
    with torch.no_grad():
        full = model(torch.cat([pre, idx], dim=1))[0]
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        tuned = model(idx, prefix_kv=kv)[0]
    torch.testing.assert_close(tuned, full[:, 3:])
    with pytest.raises(ValueError, match="prefix_kv has 1 layers"):
        model(idx, prefix_kv=kv[:1])


def test_hidden_states_and_ignored_targets() -> None:
    model = tiny().eval()
    idx = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        hidden, none = model(idx, return_hidden=True)
        logits, _ = model(idx)
    assert hidden.shape == (2, 16, 32) and none is None
    torch.testing.assert_close(model.lm_head(hidden), logits)
    targets = torch.full((2, 16), IGNORE_INDEX)
    targets[0, 3], targets[1, 7] = 5, 9
    _, loss = model(idx, targets)
    picked = torch.stack([logits[0, 3], logits[1, 7]])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(picked, torch.tensor([5, 9])))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("n_layer", "n_embd", "vocab", "block"), [(1, 32, 256, 64), (3, 96, 512, 128)])
def test_param_count_matches_the_built_model(
    n_layer: int, n_embd: int, vocab: int, block: int, bias: bool
) -> None:
    from training.model import param_count

    cfg = GPTConfig(
        vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_embd // 32, n_embd=n_embd, bias=bias
    )
    with torch.device("meta"):
        model = GPT(cfg)
    counted = param_count(n_layer, n_embd, vocab, block, bias=bias)
    assert counted.total == model.num_params()
    assert counted.non_embedding == model.num_params(non_embedding=True)


def test_explicit_shape_overrides_the_preset_and_presets_are_unchanged() -> None:
    from core.config import TrainConfig
    from training.model import config_for

    for size, shape in SIZES.items():  # every preset as before when no shape is given
        cfg = config_for(TrainConfig(model_size=size, seq_len=64), 256)
        assert (cfg.n_layer, cfg.n_head, cfg.n_embd) == (shape["n_layer"], shape["n_head"], shape["n_embd"])
    cfg = config_for(TrainConfig(model_size="small", n_layer=3, n_embd=96, n_head=3, seq_len=64), 256)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size) == (3, 3, 96, 64)
    partial_cfg = config_for(TrainConfig(model_size="tiny", n_layer=5, seq_len=64), 256)
    assert (partial_cfg.n_layer, partial_cfg.n_head, partial_cfg.n_embd) == (5, 4, 128)
    with pytest.raises(ValueError, match="not divisible by n_head"):
        config_for(TrainConfig(model_size="tiny", n_embd=90, seq_len=64), 256)
