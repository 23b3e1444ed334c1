"""The funnel per source and per rule, in documents and tokens, read from a run's committed datasets.

Every filter writes what it removed to its `rejected/` part with `reject_reason` = `<rule>[:<value>...]`
(`gopher_min_words:12`, `language:de:0.91`, `c4_curly_bracket`), so the rule is the reason up to its
first ':' and no rule name is known here. Tokens are counted with the run's trained tokenizer when the
`tokenizer` stage is committed, else as whitespace-separated words (`token_unit` says which). A
document's tokens are those of the content the stage sees: `text`, or the undecoded `raw_content`
(HTML) while extraction has not filled `text` yet. Every dataset is read through `materialize`, which
verifies it against its manifest, and one part at a time in record batches, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.datasets import Manifest, default_cache_root, materialize
from core.registry import STAGES, Stage
from core.storage import Storage

TokenCount = Callable[[list[str]], list[int]]
Key = tuple[str, str | None, str | None]  # (source type, language, rule): rule is None for kept rows
NO_LANGUAGE = "none"  # the language-mix key of documents whose `language` is null
_COLUMNS = ("text", "raw_content", "source_type", "language", "reject_reason")
_BATCH = 1024


@dataclass
class Tally:
    documents: int = 0
    tokens: int = 0

    def add(self, other: Tally) -> None:
        self.documents += other.documents
        self.tokens += other.tokens

    def as_dict(self) -> dict[str, int]:
        return {"documents": self.documents, "tokens": self.tokens}


def rule_of(reason: str | None) -> str:
    """`gopher_min_words:12` -> `gopher_min_words`: the rule without its measured value."""
    return (reason or "unknown").split(":", 1)[0]


def whitespace_words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def tokenizer_count(path: Path) -> TokenCount:
    """Token counts of a tokenizers JSON file, in Rust batches (no offsets, no special tokens)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    return lambda texts: [len(e.ids) for e in tok.encode_batch_fast(texts, add_special_tokens=False)]


def tally_batches(batches: Iterable[pa.RecordBatch], count: TokenCount) -> dict[Key, Tally]:
    """Documents and tokens per (source type, language, rule) of Arrow batches of documents."""
    out: dict[Key, Tally] = {}
    for batch in batches:
        cols = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        n = batch.num_rows
        raw = cols.get("raw_content") or [None] * n
        tokens = count([t or r or "" for t, r in zip(cols.get("text") or [None] * n, raw, strict=True)])
        languages = cols.get("language") or [None] * n
        reasons = cols.get("reject_reason")
        for i in range(n):
            rule = rule_of(reasons[i]) if reasons is not None else None
            key = (cols["source_type"][i], languages[i] or None, rule)
            out.setdefault(key, Tally()).add(Tally(1, tokens[i]))
    return out


def _batches(files: list[Path], wanted: tuple[str, ...] = _COLUMNS) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    for path in files:
        pf = pq.ParquetFile(path)
        columns = [c for c in wanted if c in pf.schema_arrow.names]
        yield from pf.iter_batches(batch_size=_BATCH, columns=columns)


class RunReader:
    """Tallies of a run's committed parts, each dataset verified once and each part read once. Most
    documents pass several stages unchanged, so token counts are cached by content: each distinct
    text is tokenized once per summary."""

    def __init__(self, storage: Storage, manifests: dict[str, Manifest | None]) -> None:
        self.storage, self.manifests, self.cache = storage, manifests, default_cache_root()
        self._folders: dict[str, Path] = {}
        self._parts: dict[tuple[str, str], dict[Key, Tally]] = {}
        tok = manifests.get("tokenizer")
        has_file = tok is not None and any(f["path"] == "tokenizer.json" for f in tok.files)
        self.token_unit = "tokenizer" if has_file else "whitespace_words"
        self._count = (
            tokenizer_count(self._folder(tok) / "tokenizer.json") if tok and has_file else whitespace_words
        )
        self._tokens: dict[int, int] = {}

    def count(self, texts: list[str]) -> list[int]:
        """Token counts, tokenizing only texts not seen before (keyed by their 64-bit hash)."""
        keys = [hash(t) for t in texts]
        new = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._tokens}
        self._tokens.update(zip(new, self._count(list(new.values())), strict=True))
        return [self._tokens[k] for k in keys]

    def _folder(self, manifest: Manifest) -> Path:
        if manifest.stage not in self._folders:
            self._folders[manifest.stage] = materialize(self.storage, manifest, self.cache)
        return self._folders[manifest.stage]

    def batches(self, stage: str, part: str, columns: tuple[str, ...] = _COLUMNS) -> Iterator[pa.RecordBatch]:
        """Record batches of `<stage>/<part>/*.parquet` (the `columns` it has); none when the stage is
        not committed. Other passes over a run (jobs/report_stats.py) read through this too."""
        m = self.manifests.get(stage)
        names = [f["path"] for f in m.files] if m else []
        files = [p for p in names if p.startswith(f"{part}/") and p.endswith(".parquet")]
        folder = self._folder(m) if m and files else Path()
        return _batches([folder / p for p in files], columns)

    def part(self, stage: str, part: str) -> dict[Key, Tally]:
        """Tallies of `<stage>/<part>/*.parquet`; empty when the stage is not committed."""
        if (stage, part) not in self._parts:
            self._parts[stage, part] = tally_batches(self.batches(stage, part), self.count)
        return self._parts[stage, part]


def merge(parts: Iterable[dict[Key, Tally]], key: Callable[[Key], Any]) -> dict[Any, Tally]:
    out: dict[Any, Tally] = {}
    for part in parts:
        for k, t in part.items():
            out.setdefault(key(k), Tally()).add(t)
    return out


def _source(k: Key) -> str:
    return k[0]


def stage_detail(stage: Stage, reader: RunReader) -> dict[str, Any]:
    """Tokens in/out/removed, and per source and per rule: what the stage took in, kept and removed.
    A stage's input is its inputs' kept rows, or for a source stage its own kept and rejected rows."""
    kept, rejected = reader.part(stage.name, "data"), reader.part(stage.name, "rejected")
    ins = [reader.part(i, "data") for i in stage.inputs] if stage.inputs else [kept, rejected]
    t_in, t_out, t_rm = merge(ins, _source), merge([kept], _source), merge([rejected], _source)
    by_source: dict[str, dict[str, int]] = {}
    for source in sorted({*t_in, *t_out, *t_rm}):
        sides = {
            side: t.get(source, Tally()) for side, t in (("in", t_in), ("out", t_out), ("removed", t_rm))
        }
        by_source[source] = {
            **{f"documents_{side}": t.documents for side, t in sides.items()},
            **{f"tokens_{side}": t.tokens for side, t in sides.items()},
        }
    rules: dict[str, dict[str, dict[str, int]]] = {}
    for (rule, source), t in sorted(merge([rejected], lambda k: (k[2] or "unknown", k[0])).items()):
        rules.setdefault(rule, {})[source] = t.as_dict()
    return {
        **{f"tokens_{side}": sum(t.tokens for t in d.values()) for side, d in (("in", t_in), ("out", t_out))},
        "tokens_removed": sum(t.tokens for t in t_rm.values()),
        "by_source": by_source,
        "removed_by_rule": rules,
    }


def language_mix(reader: RunReader) -> dict[str, Any]:
    """Documents and tokens per (source, language) of what the tokenizer stage trains on, and the
    share of each source's documents with no language (`language` null)."""
    stage = STAGES["tokenizer"].inputs[0]
    per = merge([reader.part(stage, "data")], lambda k: (k[0], k[1]))
    mix: dict[str, Any] = {}
    for (source, language), t in sorted(per.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        entry = mix.setdefault(source, {"documents": 0, "tokens": 0, "languages": {}})
        entry["documents"] += t.documents
        entry["tokens"] += t.tokens
        entry["languages"][language or NO_LANGUAGE] = t.as_dict()
    for entry in mix.values():
        none = entry["languages"].get(NO_LANGUAGE, {}).get("documents", 0)
        entry["no_language_share"] = round(none / entry["documents"], 4) if entry["documents"] else 0.0
    return {"stage": stage, "by_source": mix}
