"""The token shards' `meta.json`: the hand-off from the shards stage to pretraining, typed.

Written by the shards stage (jobs/spark/tokens.py), read by the shard reader and the objectives
(training/data.py, training/objectives.py). One model, so a renamed or missing key fails when the
file is read, with the field's name, instead of as a KeyError deep inside a Ray worker.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

META_FILE = "meta.json"


class ShardMetaError(ValueError):
    """meta.json is not what the shards stage writes; the message names the field."""


class ShardMeta(BaseModel):
    """Tokenizer facts and the file lists of both splits (fields in meta.json's order)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vocab_size: int
    eos_id: int | None = None
    pad_id: int | None = None
    mask_id: int | None = None
    sentinel_ids: tuple[int, ...] | None = None  # None: shards older than span corruption
    dtype: str = "uint16"
    train_files: tuple[str, ...] = ()
    val_files: tuple[str, ...] = ()
    train_tokens: int = 0
    train_documents: int = 0
    val_tokens: int = 0
    val_documents: int = 0

    @classmethod
    def parse(cls, text: str | bytes, where: str = META_FILE) -> ShardMeta:
        try:
            return cls.model_validate_json(text)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(file)"
            raise ShardMetaError(f"{where}: field {field!r}: {first['msg']}") from err

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    def files(self, split: str) -> tuple[str, ...]:
        return self.train_files if split == "train" else self.val_files
