"""The demo's safety inputs: an evaluation set to decontaminate against and, when the shared data is
beside the project, a toxicity classifier trained on the Davidson et al. (2017) tweets.

The evaluation sets are reading-comprehension quizzes over documentation, built the way benchmarks
are built from Wikipedia: the `json` module's docstring paragraphs, and the module docstrings of the
first few files of the demo's code (the standard library), which the corpus also carries, so the
decontamination stage has real overlap to find. Without the tweets, toxicity is the lexicon score.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DAVIDSON = REPO_ROOT.parent / "shared" / "data" / "social" / "davidson-tweets.csv"
MIN_PASSAGE_WORDS = 20  # a 13-gram benchmark check needs passages well above 13 words


def write_evaluation_sets(folder: Path, code: Path | None = None, modules: int = 3) -> Path:
    """`folder/json-docs-quiz.jsonl`: one item per docstring paragraph of `json` with 20+ words; with
    `code`, `folder/code-docs-quiz.jsonl`: the docstrings of 40+ words of the first `modules` files
    under it (sorted), as a benchmark built from a library's documentation would quote them."""
    import json as json_module

    folder.mkdir(parents=True, exist_ok=True)
    doc = inspect.getdoc(json_module) or ""
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n")]
    items = [p for p in paragraphs if len(p.split()) >= MIN_PASSAGE_WORDS]
    lines = [
        json.dumps({"id": f"json-{i}", "passage": p, "question": "What does this passage describe?"})
        for i, p in enumerate(items)
    ]
    (folder / "json-docs-quiz.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if code is not None:
        quoted = module_docstrings(code, modules)
        rows = [json.dumps({"id": name, "passage": text}) for name, text in quoted]
        (folder / "code-docs-quiz.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def module_docstrings(code: Path, limit: int, min_words: int = 40) -> list[tuple[str, str]]:
    """(file name, docstring) of the first `limit` Python files under `code` whose module docstring
    has `min_words` words or more; files that do not parse are passed over."""
    import ast

    out: list[tuple[str, str]] = []
    for path in sorted(code.rglob("*.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue
        if doc and len(doc.split()) >= min_words:
            out.append((path.relative_to(code).as_posix(), doc))
        if len(out) == limit:
            break
    return out


def train_toxicity_model(out: Path) -> tuple[Path, str] | None:
    """The Davidson tweets' classifier (jobs/safety/toxicity_model.py), or None without the tweets.
    Same tweets and seed, same bytes, same sha256: a rerun's safety stage stays current."""
    if not DAVIDSON.is_file():
        return None
    from jobs.safety.toxicity_model import train
    from lmforge.toxicity_commands import read_labelled

    texts, labels = read_labelled(DAVIDSON, "tweet", "class")
    model = train(texts, labels, seed=0)
    sha = model.save(out)
    print(f"Trained toxicity classifier on {len(texts)} Davidson et al. (2017) tweets: {out}", flush=True)
    return out, sha
