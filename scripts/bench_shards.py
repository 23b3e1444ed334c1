"""Shard write and read speed: the shards stage on a real-text corpus, and the shard reader with and
without block verification (median of runs).

The corpus is real text already on the machine, split into documents and labelled by what it is
like: the standard library's source cut at top-level definitions (code), its docstrings (paper),
pydoc's topic pages cut into sections (web) and the packages' copyright files and change logs under
/usr/share/doc (book). The tests' mixture check reads the same corpus (`real_documents`).

    .venv/bin/python scripts/bench_shards.py [--runs 3]
"""

from __future__ import annotations

import argparse
import ast
import gzip
import html
import json
import re
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MAX_CHARS = 2000  # documents are cut to this so no single one dominates a source's share


def _chunks(text: str, sep: str, max_chars: int = MAX_CHARS) -> Iterator[str]:
    """Consecutive `sep`-separated parts grouped up to `max_chars` (longer parts cut)."""
    buf = ""
    for part in text.split(sep):
        if buf and len(buf) + len(part) > max_chars:
            yield buf
            buf = ""
        buf = f"{buf}{sep}{part}" if buf else part
        while len(buf) > max_chars:
            yield buf[:max_chars]
            buf = buf[max_chars:]
    if buf.strip():
        yield buf


def _stdlib_files() -> list[Path]:
    return sorted(p for p in Path(sysconfig.get_paths()["stdlib"]).rglob("*.py") if "test" not in p.parts)


def _code_and_docstrings(limit: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    code: list[tuple[str, str]] = []
    papers: list[tuple[str, str]] = []
    for path in _stdlib_files():
        text = path.read_text(errors="replace")
        code += [(f"{path}#{i}", c) for i, c in enumerate(_chunks(text, "\ndef ")) if c.strip()]
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Module):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 80:
                    papers.append((f"{path}:{getattr(node, 'name', '')}:{getattr(node, 'lineno', 0)}", doc))
        if len(code) >= limit and len(papers) >= limit:
            break
    return code[:limit], papers[:limit]


def _web_pages(limit: int) -> list[tuple[str, str]]:
    """pydoc's topic pages by paragraph, then the HTML, Markdown and README pages under /usr/share/doc."""
    from pydoc_data.topics import topics

    out = []
    for name in sorted(topics):
        parts = [p for p in topics[name].split("\n\n") if len(p.strip()) >= 80]
        out += [(f"pydoc:{name}#{i}", p) for i, p in enumerate(parts)]
    pages = ("*.html", "*.md", "README*", "NEWS*")
    for path in sorted({p for pattern in pages for p in Path("/usr/share/doc").rglob(pattern)}):
        if len(out) >= limit or not path.is_file() or path.suffix == ".gz":
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".html":
            text = html.unescape(re.sub(r"(?s)<(script|style).*?</\1>|<[^>]+>", " ", text))
        out += [(f"{path}#{i}", c) for i, c in enumerate(_chunks(text, "\n\n")) if len(c.strip()) >= 80]
    return out[:limit]


def _doc_files(limit: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path in sorted(Path("/usr/share/doc").rglob("*")):
        if not path.is_file() or not (path.name == "copyright" or path.name.startswith("changelog")):
            continue
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        except (OSError, EOFError):
            continue
        text = raw.decode("utf-8", errors="replace")
        out += [(f"{path}#{i}", c) for i, c in enumerate(_chunks(text, "\n\n")) if len(c) > 100]
        if len(out) >= limit:
            break
    return out[:limit]


def real_documents(per_source: int = 3000) -> list[dict[str, Any]]:
    """Up to `per_source` documents each of code, paper, web and book, as DOCUMENT_SCHEMA rows."""
    from core.schema import make_document

    code, papers = _code_and_docstrings(per_source)
    sources = {"code": code, "paper": papers, "web": _web_pages(per_source), "book": _doc_files(per_source)}
    rows = [
        make_document(s, origin, text, language="en") for s, docs in sources.items() for origin, text in docs
    ]
    return list({r["id"]: r for r in rows}.values())  # one document per origin


def _tokens(docs: list[dict[str, Any]], folder: Path) -> tuple[list[bytes], int]:
    """Each document as EOS-terminated uint16 bytes under a BPE tokenizer trained on the corpus."""
    import numpy as np
    from tokenizers import Tokenizer

    from core.config import TokenizerConfig
    from jobs.tokens.tokenizer import train_tokenizer

    stats = train_tokenizer((d["text"] for d in docs), TokenizerConfig(vocab_size=4096), folder / "tok.json")
    tok, eos = Tokenizer.from_file(str(folder / "tok.json")), stats["eos_id"]
    encoded = tok.encode_batch([d["text"] for d in docs])
    return [np.asarray([*e.ids, eos], dtype="<u2").tobytes() for e in encoded], eos


def _write(stream: list[bytes], folder: Path, max_tokens: int, block: int) -> tuple[float, list[dict]]:
    """Seconds to cut and write the stream as the stage's tasks do (jobs/tokens/shards.py), hashing."""
    from jobs.tokens.shards import cut_pieces, write_pieces

    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = ({"p": 0, "split": "train", "tokens": t} for t in stream)
    entries = list(
        write_pieces(cut_pieces(rows, {(0, "train"): 0}, max_tokens), str(folder), max_tokens, block)
    )
    return time.perf_counter() - start, entries


def _meta(folder: Path, entries: list[dict], block: int | None) -> None:
    meta: dict[str, Any] = {
        "vocab_size": 4096,
        "train_files": [e["file"] for e in entries],
        "train_tokens": sum(e["tokens"] for e in entries),
    }
    if block is not None:
        meta.update(block_tokens=block, shards=entries)
    (folder / "meta.json").write_text(json.dumps(meta))


def _read(folder: Path, seq_len: int) -> tuple[float, float]:
    """Seconds to read the first epoch of shuffled windows (empty verified-block cache), then the
    second (every block already verified in this process)."""
    from training import data

    data._VERIFIED.clear()
    reader = data.ShardReader(folder, "train", seq_len, seed=0)
    times = []
    for epoch in range(2):
        start = time.perf_counter()
        first = epoch * reader.num_windows
        for at in range(first, first + reader.num_windows, 64):
            reader.windows(at, min(64, first + reader.num_windows - at))
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def measure(runs: int = 3, max_tokens: int = 4 << 20, block: int = 1 << 20, seq_len: int = 1024) -> dict:
    """Median write MB/s and read tokens/s (plain, verified) over `runs` on the real corpus."""
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-shards-") as tmp:
        root = Path(tmp)
        stream, _ = _tokens(real_documents(), root)
        size = sum(len(t) for t in stream)
        writes: list[float] = []
        plain: list[tuple[float, float]] = []
        verified: list[tuple[float, float]] = []
        for i in range(runs):
            seconds, entries = _write(stream, root / f"w{i}", max_tokens, block)
            writes.append(seconds)
        for folder, times, with_blocks in (
            (root / "plain", plain, None),
            (root / "checked", verified, block),
        ):
            _, entries = _write(stream, folder, max_tokens, block)
            _meta(folder, entries, with_blocks)
            for _ in range(runs):
                times.append(_read(folder, seq_len))
    tokens = size // 2
    return {
        "tokens": tokens,
        "mb": size / 1e6,
        "shards": len(entries),
        "write_mb_s": size / 1e6 / statistics.median(writes),
        "read_tokens_s": tokens / statistics.median(t[0] for t in plain),
        "read_verified_tokens_s": tokens / statistics.median(t[0] for t in verified),
        "read_tokens_s_epoch2": tokens / statistics.median(t[1] for t in plain),
        "read_verified_tokens_s_epoch2": tokens / statistics.median(t[1] for t in verified),
    }


def report(runs: int = 3) -> str:
    """A Markdown table for scripts/bench.py."""
    m = measure(runs)
    rows = []
    for label, suffix in (("first (every block hashed)", ""), ("second (blocks cached)", "_epoch2")):
        plain, checked = m[f"read_tokens_s{suffix}"], m[f"read_verified_tokens_s{suffix}"]
        rows.append(f"| {label} | {plain / 1e6:.2f} | {checked / 1e6:.2f} | {plain / checked - 1:+.1%} |")
    return "\n".join(
        [
            f"Shards (`scripts/bench_shards.py`, real text, {m['tokens']:,} tokens, {m['mb']:.1f} MB, "
            f"{m['shards']} shards of 4M tokens, blocks of 1M, median of {runs} runs): write (cut, "
            f"sha256 of shards and blocks) {m['write_mb_s']:.0f} MB/s; reads of 1,025-token windows:",
            "",
            "| epoch | unverified M tokens/s | verified M tokens/s | verification time |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    print(report(parser.parse_args().runs))


if __name__ == "__main__":
    main()
