"""Toxicity scoring (jobs/safety): the classifier trained on part of the real Davidson et al. (2017)
tweets and measured on the rest beside the paper's weighted scores, the glin-profanity lexicon on real
words of several languages and on clean real prose (the standard library's docstrings), the model
file's round trip and refusals, and the safety stage's per-document rule."""

from __future__ import annotations

import ast
import hashlib
import pickle
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import ToxicityConfig
from jobs.filters.classifier import ModelError, QualityModel, hashing_parameters
from jobs.safety import toxicity_model
from jobs.safety.lexicon import LANGUAGES, lexicon_score, resolve_language
from jobs.safety.toxicity import score_row, toxicity_with
from jobs.safety.toxicity_model import CLASSES, load_model, train
from scripts.toxicity_eval import read_davidson, run, table

DAVIDSON = Path(__file__).resolve().parents[2] / "shared/data/social/davidson-tweets.csv"
needs_davidson = pytest.mark.skipif(not DAVIDSON.is_file(), reason="../shared/data is absent")
# measured on the seeded 80/20 split (seed 0): weighted F1 0.892, macro-F1 0.732 (lexicon alone,
# toxic vs neither: F1 0.952); floors just below
MIN_WEIGHTED_F1 = 0.88
MIN_MACRO_F1 = 0.70


@pytest.fixture(scope="module")
def tweets() -> tuple[list[str], np.ndarray]:
    if not DAVIDSON.is_file():
        pytest.skip("../shared/data is absent")
    return read_davidson(DAVIDSON)


@pytest.fixture(scope="module")
def small_model(tweets: tuple[list[str], np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model on a seeded sample of 1,500 tweets: enough to exercise the file format quickly."""
    texts, labels = tweets
    pick = np.random.default_rng(1).permutation(len(texts))[:1500]
    model = train([texts[i] for i in pick], labels[pick], seed=1, n_features=1 << 12)
    path = tmp_path_factory.mktemp("tox") / "small.npz"
    model.save(path)
    return path


@needs_davidson
def test_classifier_on_held_out_davidson_tweets() -> None:
    result = run(DAVIDSON, holdout=0.2, seed=0)
    print("\n" + table(result))
    model, lexicon = result["model"], result["lexicon"]
    assert result["split"]["test"] == 4957 and model["n"] == 4957
    assert model["weighted"]["f1"] >= MIN_WEIGHTED_F1
    assert model["macro"]["f1"] >= MIN_MACRO_F1
    assert model["hate"]["recall"] >= 0.3  # balanced class weights: the rare class is not ignored
    # the lexicon alone finds profanity (offensive tweets) but cannot tell hate from offensive
    assert lexicon["binary_toxic"]["precision"] >= 0.95 and lexicon["binary_toxic"]["f1"] >= 0.9
    assert model["binary_toxic"]["f1"] >= 0.95
    assert lexicon["three_class"]["macro"]["f1"] < model["macro"]["f1"]


def test_lexicon_finds_known_terms_in_several_languages() -> None:
    cases = {
        ("you stupid b!tch", "en"): "b!tch",
        ("what an @sshole!!!", "en"): "asshole",
        ("Quel connard, putain de merde", "fr"): "connard",
        ("Du bist ein Arschloch", "de-AT"): "arschloch",
        ("eres un cabrón", "es"): "cabrón",
        ("他妈的", "zh"): "他妈的",
        ("kurwa mać", "pl"): "kurwa",
    }
    for (text, language), term in cases.items():
        found = lexicon_score(text, language)
        assert found.score > 0 and found.hits >= 1 and term in found.terms, (text, found)
        assert found.language == resolve_language(language)
    assert lexicon_score("I watched 2 girls 1 cup", "en").terms == ["2 girls 1 cup"]  # a multi-word entry
    assert {"en", "fr", "de", "es", "zh", "ru", "ar", "hi", "ja"} <= set(LANGUAGES)


def test_lexicon_scoring_rules() -> None:
    assert lexicon_score("Pass the class, assess the bass", "en").hits == 0  # whole words only
    assert lexicon_score("455 items, 13 apples", "en").hits == 0  # numbers are not leetspeak
    assert lexicon_score("those hoes", "en").terms == ["hoe"]  # an English plural
    assert lexicon_score("classes and masses", "en").hits == 0
    assert lexicon_score("fuck you", "fr").hits == 0 and lexicon_score("fuck you", "all").hits == 1
    assert lexicon_score("fuck you", "xx").language == "en"  # an unknown language falls back to English
    assert lexicon_score("fuck you", None).hits == 1
    one_in_twenty = lexicon_score("shit " + "word " * 19, "en")
    assert one_in_twenty.words == 20 and one_in_twenty.score == pytest.approx(0.5)
    long_page = lexicon_score("shit " + "word " * 999, "en")
    assert 0 < long_page.score < 0.05
    assert lexicon_score("", "en") == lexicon_score("   ", "en")
    assert lexicon_score("", "en").score == 0.0 and lexicon_score("", "en").words == 0
    with pytest.raises(TypeError):
        lexicon_score(b"shit", "en")  # type: ignore[arg-type]


def test_lexicon_scores_clean_prose_zero_or_low() -> None:
    docs = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        if doc and len(doc) >= 200:
            docs.append(doc)
    scores = [lexicon_score(d, "en").score for d in docs]
    assert len(scores) >= 30
    assert sum(s == 0 for s in scores) >= 0.9 * len(scores)  # `XXX` markers in a few docstrings
    assert max(scores) < 0.1


@needs_davidson
def test_model_round_trip_and_deterministic_bytes(
    tweets: tuple[list[str], np.ndarray], small_model: Path, tmp_path: Path
) -> None:
    texts, labels = tweets
    pick = np.random.default_rng(1).permutation(len(texts))[:1500]
    again = train([texts[i] for i in pick], labels[pick], seed=1, n_features=1 << 12)
    sha = again.save(tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == small_model.read_bytes()
    assert sha == hashlib.sha256(small_model.read_bytes()).hexdigest()
    loaded = load_model(small_model, sha)
    sample = texts[:50]
    assert np.array_equal(loaded.predict_proba(sample), again.predict_proba(sample))
    p = loaded.predict_proba(sample)
    assert p.shape == (50, 3) and np.allclose(p.sum(axis=1), 1)
    assert loaded.score(sample[0]) == pytest.approx(p[0, 0] + p[0, 1])
    assert toxicity_model.CLASSES == CLASSES == ("hate", "offensive", "neither")


@needs_davidson
def test_bad_model_files_are_refused(small_model: Path, tmp_path: Path) -> None:
    data = small_model.read_bytes()
    bad = tmp_path / "bad.npz"
    cases: dict[str, tuple[bytes, str]] = {
        "truncated": (data[: len(data) // 2], "not a lmforge-toxicity-model file"),
        "empty": (b"", "not a lmforge-toxicity-model file"),
        "pickle": (pickle.dumps({"weights": [1.0]}), "pickles are never loaded"),
    }
    for content, message in cases.values():
        bad.write_bytes(content)
        with pytest.raises(ModelError, match=message):
            load_model(bad)
    with pytest.raises(ModelError, match="sha256 is"):
        load_model(small_model, "0" * 64)
    QualityModel(np.zeros(8), 0.0, hashing_parameters(8), {}).save(bad)  # another format's file
    with pytest.raises(ModelError, match="members"):
        load_model(bad)
    with bad.open("wb") as fh:  # sparse: no disk is used
        fh.truncate(toxicity_model.MAX_MODEL_BYTES + 1)
    with pytest.raises(ModelError, match="cap"):
        load_model(bad)


@needs_davidson
def test_score_row_annotations_flag_and_drop_by_source(small_model: Path) -> None:
    sha = hashlib.sha256(small_model.read_bytes()).hexdigest()
    cfg = ToxicityConfig(model_path=str(small_model), model_sha256=sha, drop_above={"social": 0.5})
    tweet = {"id": "t", "text": "you stupid bitch hoe", "source_type": "social", "annotations": None}
    row, reason = score_row(tweet, cfg)
    ann = row["annotations"]
    assert set(ann) >= {"toxicity.lexicon", "toxicity.lexicon_hits", "toxicity.model", "toxicity.hate"}
    assert ann["toxicity.score"] == ann["toxicity.model"] and ann["toxicity.flag"] == "1"
    assert int(ann["toxicity.lexicon_hits"]) == 2 and float(ann["toxicity.lexicon"]) > 0.5
    assert reason == f"toxicity_score:{float(ann['toxicity.model']):.3f}"
    web, web_reason = score_row({**tweet, "source_type": "web"}, cfg)  # no drop_above for web
    assert web_reason is None and web["annotations"]["toxicity.flag"] == "1"
    lexicon_only = ToxicityConfig(flag_threshold=0.9)
    clean, why = toxicity_with(lexicon_only)(
        {"text": "The weather is lovely today.", "source_type": "web", "annotations": {"quality.x": "1"}}
    )
    assert why is None and clean["annotations"] == {
        "quality.x": "1",
        "toxicity.lexicon": "0",
        "toxicity.lexicon_hits": "0",
        "toxicity.score": "0",
    }
    assert score_row(tweet, ToxicityConfig(enabled=False)) == (tweet, None)


@needs_davidson
def test_score_row_hostile_inputs(small_model: Path) -> None:
    cfg = ToxicityConfig(model_path=str(small_model), max_chars=200_000, drop_above={"web": 0.99})
    rows: list[dict[str, Any]] = [
        {"text": "", "source_type": "web"},
        {"text": None, "source_type": "web", "annotations": None},
        {"text": 12345, "source_type": "web", "language": 7},
        {"text": "x" * 1_000_000, "source_type": "web", "language": "en"},
        {"text": "bitch " * 200_000, "source_type": "book", "language": "zz-ZZ"},
    ]
    for row in rows:
        out, reason = score_row(row, cfg)
        score = float(out["annotations"]["toxicity.score"])
        assert 0 <= score <= 1 and (reason is None or reason.startswith("toxicity_score:"))
    assert float(score_row(rows[4], cfg)[0]["annotations"]["toxicity.lexicon"]) > 0.9
    megabyte = lexicon_score("word " * 200_000 + "\x00\ud800 \u202e" * 1000, "all")
    assert megabyte.hits == 0 and megabyte.words >= 200_000
