"""JSON lines in, one JSON answer per input `id` out: the shape of every per-document subcommand.

Input is hostile: a line longer than `max_line_bytes` is answered with an error and skipped without
being held whole in memory, a line that is not a JSON object gets an error answer with its line
number, and nothing stops the stream: one bad document costs that document only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO, Any

MAX_LINE_BYTES = 64 * 1024 * 1024  # 64 MiB: above any document the stages keep


def read_objects(stream: IO[bytes], max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object or an error string) for every non-blank line."""
    for number, line in enumerate(_bounded_lines(stream, max_line_bytes), start=1):
        if line is None:
            yield number, f"line {number}: longer than {max_line_bytes} bytes"
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as err:
            yield number, f"line {number}: not JSON ({str(err)[:120]})"
            continue
        yield number, obj if isinstance(obj, dict) else f"line {number}: not a JSON object"


def _bounded_lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Lines of at most `limit` bytes; None stands for a longer line, which is skipped in chunks."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line


def answer_all(stream: IO[bytes], out: IO[str], answer: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """Apply `answer` to each object; write `{"id", ...}` or `{"id", "error"}` lines. Returns the
    number of errors (the exit status is non-zero when any input failed)."""
    errors = 0
    for number, obj in read_objects(stream):
        if isinstance(obj, str):
            errors += 1
            _write(out, {"id": None, "line": number, "error": obj})
            continue
        doc_id = obj.get("id")
        try:
            _write(out, {"id": doc_id, **answer(obj)})
        except Exception as err:  # reported per document, never fatal to the stream
            errors += 1
            _write(out, {"id": doc_id, "line": number, "error": f"{type(err).__name__}: {err}"[:500]})
    return errors


def _write(out: IO[str], obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    out.flush()
