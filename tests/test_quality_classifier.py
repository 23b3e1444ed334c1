"""The trained quality score (jobs/filters/classifier.py) on a labelled set built from real text.

Positives (curated prose, present on every machine with Python): the language reference topics that
`pydoc` ships (`pydoc_data.topics`) and the module docstrings of the standard library, in chunks of a
few paragraphs. Negatives: spam-like and boilerplate pages that a seeded generator assembles from
real words (the stdlib documentation's own vocabulary, so topic alone does not separate the classes)
and, when ../shared/data is there, the text of the 16 real Common Crawl pages of the WARC excerpt
(the project's WARC reader and extractor, in line chunks). Held-out splits are by source document:
chunks of one page or topic never sit on both sides.
"""

from __future__ import annotations

import ast
import hashlib
import json
import pickle
import random
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jobs.filters.classifier import ModelError, QualityModel, load_model, train

SHARED_WARC = (
    Path(__file__).resolve().parents[2] / "shared/data/warc/commoncrawl-CC-MAIN-2020-34-excerpt.warc.gz"
)
Labelled = list[tuple[str, int, str]]  # (text, 1 good / 0 bad, source document)


def chunks(text: str, size: int = 1500) -> list[str]:
    """Paragraph-aligned pieces of about `size` characters (the last piece may be short)."""
    out, current = [], ""
    for para in re.split(r"\n\s*\n", text):
        current = f"{current}\n\n{para}" if current else para
        if len(current) >= size:
            out.append(current)
            current = ""
    return [*out, current] if current.strip() else out


def stdlib_positives() -> Labelled:
    from pydoc_data.topics import topics

    docs = [(f"topic:{k}", v) for k, v in sorted(topics.items())]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        if doc and len(doc) >= 400:
            docs.append((f"module:{path.stem}", doc))
    return [(c, 1, group) for group, text in docs for c in chunks(text) if len(c) >= 200]


_COMMERCE = (
    "buy", "cheap", "best", "price", "discount", "free", "shipping", "sale", "online", "deal", "offer",
    "coupon", "order", "now", "limited", "top", "rated", "review", "casino", "bonus", "win", "jackpot",
    "loan", "credit", "fast", "download",
)  # fmt: skip
_BOILERPLATE = (
    "Home", "About Us", "Contact", "Login", "Register", "Cart (0)", "My Account", "Privacy Policy",
    "Terms of Service", "Sitemap", "FAQ", "Newsletter", "Subscribe", "Share on Facebook", "Tweet",
    "Back to top", "Next page", "Previous", "Read more", "Related posts", "Tags", "Categories",
)  # fmt: skip


def spam_page(rng: random.Random, words: list[str]) -> str:
    """One generated page of a kind crawls are full of: keyword stuffing, a product grid, a
    navigation-and-footer shell, or spun word salad."""
    kw = [rng.choice(words) for _ in range(3)]
    kind = rng.randrange(4)
    if kind == 0:
        lines = [f"{rng.choice(_COMMERCE).title()} {kw[0]} {kw[1]} {rng.choice(_COMMERCE)} {kw[2]} 2020"]
        stuffing = [*kw, *_COMMERCE]
        lines += [" ".join(rng.choice(stuffing) for _ in range(rng.randint(6, 14))) for _ in range(12)]
    elif kind == 1:
        lines = [
            f"{rng.choice(words).title()} {rng.choice(words)} {rng.choice(['Pro', 'Max', 'Plus', 'Lite'])} - "
            f"${rng.randint(3, 300)}.{rng.randint(0, 99):02d} - Add to cart - {'★' * rng.randint(1, 5)} "
            f"({rng.randint(1, 999)} reviews)"
            for _ in range(rng.randint(8, 20))
        ]
    elif kind == 2:
        nav = " | ".join(rng.sample(_BOILERPLATE, 8))
        lines = [
            nav,
            f"{kw[0].title()} {kw[1]}",
            "We use cookies to improve your experience. Accept all cookies",
            "Tags: " + ", ".join(rng.choice(words) for _ in range(15)),
            f"Copyright © {rng.randint(2005, 2020)} {kw[2].title()} Inc. All rights reserved.",
            nav,
        ]
    else:
        lines = [
            " ".join(rng.choice(words) for _ in range(rng.randint(8, 20))).capitalize() + "."
            for _ in range(10)
        ]
    return "\n".join(lines)


def generated_negatives(count: int, seed: int, words: list[str]) -> Labelled:
    return [(spam_page(random.Random(f"spam:{seed}:{i}"), words), 0, f"spam:{i}") for i in range(count)]


def vocabulary(docs: Labelled) -> list[str]:
    """Distinct words of the positives (real English, in the documentation's own domain)."""
    return sorted({w.lower() for text, _, _ in docs for w in re.findall(r"[A-Za-z]{3,}", text)})


def common_crawl_negatives() -> Labelled:
    """The excerpt's pages as extracted text (trafilatura, the extract stage's default), in chunks of
    about 20 lines; each page is one group."""
    from jobs.extract.html import html_to_text
    from jobs.readers.warc import iter_warc

    out: Labelled = []
    for doc, reason in iter_warc(SHARED_WARC):
        if reason or not doc.get("raw_content"):
            continue
        lines = [ln for ln in html_to_text(doc["raw_content"])[0].splitlines() if ln.strip()]
        out += [("\n".join(lines[i : i + 20]), 0, f"cc:{doc['origin']}") for i in range(0, len(lines), 20)]
    return out


def split(data: Labelled, fraction: float = 0.25) -> tuple[Labelled, Labelled]:
    """(train, held out) by a hash of the source document: never the same document on both sides."""
    held = {g for _, _, g in data if int(hashlib.sha256(g.encode()).hexdigest(), 16) % 1000 < fraction * 1000}
    return [d for d in data if d[2] not in held], [d for d in data if d[2] in held]


def fit(data: Labelled) -> QualityModel:
    pos = [t for t, y, _ in data if y == 1]
    return train(pos, [t for t, y, _ in data if y == 0], seed=0, holdout=0.0)


def auc(model: QualityModel, data: Labelled) -> float:
    return float(roc_auc_score([y for _, y, _ in data], model.score_many([t for t, _, _ in data])))


@pytest.fixture(scope="module")
def positives() -> Labelled:
    return stdlib_positives()


@pytest.fixture(scope="module")
def labelled(positives: Labelled) -> Labelled:
    negatives = generated_negatives(len(positives), seed=0, words=vocabulary(positives))
    return positives + negatives + (common_crawl_negatives() if SHARED_WARC.is_file() else [])


@pytest.fixture(scope="module")
def model(labelled: Labelled) -> QualityModel:
    return fit(split(labelled)[0])


def test_separates_curated_prose_from_spam_and_crawl_on_held_out_documents(
    labelled: Labelled, model: QualityModel
) -> None:
    train_set, held = split(labelled)
    counts = {y: sum(1 for _, label, _ in held if label == y) for y in (0, 1)}
    assert counts[0] >= 50 and counts[1] >= 50
    measured = auc(model, held)
    print(f"held-out ROC AUC {measured:.4f} on {counts[1]} good / {counts[0]} bad (train {len(train_set)})")
    assert measured >= 0.9


def test_real_common_crawl_pages_score_below_documentation_without_training_on_them(
    positives: Labelled,
) -> None:
    """Trained on generated negatives only, the real crawl pages are still ranked below held-out
    documentation: the score generalises beyond the generator."""
    if not SHARED_WARC.is_file():
        pytest.skip("../shared/data is absent")
    train_set, held = split(positives + generated_negatives(len(positives), 0, vocabulary(positives)))
    crawl = common_crawl_negatives()
    measured = auc(fit(train_set), [d for d in held if d[1] == 1] + crawl)
    print(f"Common Crawl excerpt ({len(crawl)} chunks of 16 pages) vs documentation: ROC AUC {measured:.4f}")
    assert measured >= 0.9


def test_saved_model_round_trips_with_the_same_scores_and_bytes(
    labelled: Labelled, model: QualityModel, tmp_path: Path
) -> None:
    texts = [t for t, _, _ in labelled[::25]]
    sha = model.save(tmp_path / "q.npz")
    assert (
        model.save(tmp_path / "again.npz")
        == sha
        == hashlib.sha256((tmp_path / "q.npz").read_bytes()).hexdigest()
    )
    loaded = load_model(tmp_path / "q.npz", sha)
    assert np.array_equal(loaded.score_many(texts), model.score_many(texts))
    assert loaded.score(texts[0]) == pytest.approx(model.score(texts[0]))
    assert 0.0 <= min(loaded.score_many(texts)) <= max(loaded.score_many(texts)) <= 1.0


def test_train_reports_held_out_metrics_and_counts(positives: Labelled) -> None:
    pos = [t for t, _, _ in positives[:60]]
    neg = [t for t, _, _ in generated_negatives(60, 1, vocabulary(positives))]
    trained = train(pos, neg, seed=3, holdout=0.25)
    meta = trained.metadata
    assert meta["seed"] == 3 and meta["counts"]["heldout"] == {"positives": 15, "negatives": 15}
    assert meta["counts"]["train"] == {"positives": 45, "negatives": 45}
    assert meta["heldout_metrics"]["roc_auc"] >= 0.9
    with pytest.raises(ValueError, match="positives and negatives"):
        train(pos, [])


def test_sha256_mismatch_is_refused_naming_the_file(model: QualityModel, tmp_path: Path) -> None:
    path = tmp_path / "q.npz"
    model.save(path)
    with pytest.raises(ModelError, match=r"q\.npz: sha256 is [0-9a-f]{64}, the config pins 00"):
        load_model(path, "00" * 32)


class _Touch:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))  # what unpickling would run


def test_a_planted_pickle_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    for name, data in {
        "model.pkl": pickle.dumps(_Touch(marker)),
        "model.npz": _npz_with_object_array(_Touch(marker)),
    }.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelError):
            load_model(tmp_path / name)
        with pytest.raises(ModelError):  # a matching pin does not make it loadable
            load_model(tmp_path / name, hashlib.sha256(data).hexdigest())
    assert not marker.exists()


def _npz_with_object_array(payload: object) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in ("header", "weights", "intercept"):
            with zf.open(f"{name}.npy", "w") as fh:
                np.lib.format.write_array(fh, np.array([payload], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_oversized_and_foreign_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "text.npz").write_text("not a model")
    with pytest.raises(ModelError, match="not a lmforge-quality-model file"):
        load_model(tmp_path / "text.npz")
    monkeypatch.setattr("jobs.filters.classifier.MAX_MODEL_BYTES", 4)
    with pytest.raises(ModelError, match="above the 4-byte cap"):
        load_model(tmp_path / "text.npz")


def test_cli_trains_then_scores_users_documents(positives: Labelled, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad"
    good.write_text("".join(json.dumps({"text": t}) + "\n" for t, _, _ in positives[:80]))
    bad.mkdir()
    for i, (text, _, _) in enumerate(generated_negatives(40, 2, vocabulary(positives))):
        (bad / f"page{i}.txt").write_text(text)
    out = tmp_path / "q.npz"
    done = _lmforge("quality", "train", "--positives", str(good), "--negatives", str(bad), "--out", str(out))
    report = json.loads(done.stdout)
    assert report["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert report["counts"]["train"] == {"positives": 64, "negatives": 32} and report["roc_auc"] >= 0.9
    docs = [
        {"id": "doc", "text": positives[100][0], "source_type": "book"},
        {"id": "spam", "text": "buy " * 60},
    ]
    stdin = "".join(json.dumps(d) + "\n" for d in docs)
    # The printed `config` is what a deployment config needs: the model as a location, and its pin.
    scored = _lmforge("quality", "--overrides", json.dumps(report["config"]), stdin=stdin)
    answers = {a["id"]: a for a in map(json.loads, scored.stdout.splitlines())}
    assert set(answers["doc"]) == {"id", "keep", "reason", "language", "scores"}
    assert isinstance(answers["doc"]["keep"], bool) and isinstance(answers["doc"]["scores"]["words"], float)
    assert answers["doc"]["scores"]["score"] > 0.5 > answers["spam"]["scores"]["score"]
    pinned = json.loads(json.dumps(report["config"]))
    pinned["quality"]["classifier_sha256"] = "0" * 64
    refused = _lmforge("quality", "--overrides", json.dumps(pinned), stdin=stdin, check=False)
    assert refused.returncode == 1 and "sha256 is" in refused.stdout  # an error answer per document


def _lmforge(*args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "lmforge", *args], input=stdin, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 or not check, done.stderr[-3000:]
    return done
