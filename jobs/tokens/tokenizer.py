"""Train a byte-level BPE tokenizer (Hugging Face `tokenizers`) on the curated corpus.

Byte-level BPE as in GPT-2 (Radford et al. 2019, section 2.2): no unknown tokens for any input.
Special tokens cover the objectives later issues add (pad, mask, span sentinels).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.config import TokenizerConfig

EOS = "<|endoftext|>"
PAD = "<|pad|>"
MASK = "<|mask|>"
SENTINELS = [f"<|extra_id_{i}|>" for i in range(100)]  # T5 has 100 span sentinels (Raffel et al. 2020)
SPECIAL_TOKENS = [EOS, PAD, MASK, *SENTINELS]


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig, out_file: Path) -> dict[str, Any]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_file))
    return {
        "vocab_size": tok.get_vocab_size(),
        "eos_id": tok.token_to_id(EOS),
        "pad_id": tok.token_to_id(PAD),
        "mask_id": tok.token_to_id(MASK),
        "sentinel_ids": [tok.token_to_id(t) for t in SENTINELS],
    }
