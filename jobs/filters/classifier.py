"""A trained quality score: logistic regression on hashed word 1-2-grams, reference text vs raw text.

Source: Brown et al. (2020), "Language Models are Few-Shot Learners" (GPT-3), appendix A: a logistic
regression classifier on hashed features, curated reference corpora as positives against raw Common
Crawl; Li et al. (2024), "DataComp-LM" (DCLM), section 4.4: a fastText bigram classifier
(OH-2.5 + ELI5 positives vs RefinedWeb negatives) beats the heuristic filters. We use scikit-learn's
`HashingVectorizer` (word 1-2-grams, `alternate_sign=False`, l2 norm) and `LogisticRegression`:
linear, no vocabulary to store, and the score is one sparse dot product per document.

The model file is never a pickle (the project never unpickles data): a `.npz` archive read with
`allow_pickle=False`, holding `header` (UTF-8 JSON: format version, hashing parameters, training
counts, seed and held-out metrics), `weights` (float32) and `intercept`. Its size and unpacked size
are capped, its sha256 is checked against the config's before any of it is parsed, and the same
training data and seed give the same bytes (fixed zip timestamps), hence the same sha256.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from jobs.model_files import ModelError, parse_npz, read_pinned, stratified_split, write_npz

FORMAT = "lmforge-quality-model"
VERSION = 1
MAX_MODEL_BYTES = 64 << 20  # a 2**20-feature float32 model is 4 MiB unpacked
MAX_UNPACKED_BYTES = 160 << 20  # the largest allowed model: 2**24 features x 8 bytes, plus the header
MAX_FEATURES = 1 << 24
MAX_CHARS = 100_000  # characters of a document that are scored: the opening decides, the cost is bounded
_ARRAYS = ("weights", "intercept")


class QualityModel:
    """`score(text)`: probability that `text` resembles the positives (good text), in [0, 1]."""

    def __init__(
        self, weights: np.ndarray, intercept: float, hashing: Mapping[str, Any], metadata: Mapping[str, Any]
    ):
        self.weights = np.asarray(weights, dtype=np.float32)
        self.intercept = float(intercept)
        self.hashing = dict(hashing)
        self.metadata = dict(metadata)
        self._vectorizer = _vectorizer(self.hashing)

    def score(self, text: str) -> float:
        return float(self.score_many([text])[0])

    def score_many(self, texts: Iterable[str], batch_size: int = 1024) -> np.ndarray:
        """Scores of many texts, vectorized a batch at a time (one sparse matrix product each)."""
        out: list[np.ndarray] = []
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if len(batch) >= batch_size:
                out.append(self._score_batch(batch))
                batch = []
        if batch or not out:
            out.append(self._score_batch(batch))
        return np.concatenate(out)

    def _score_batch(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        limit = int(self.hashing["max_chars"])
        features = self._vectorizer.transform([t[:limit] for t in texts])
        logits = np.asarray(features @ self.weights, dtype=np.float64) + self.intercept
        return np.asarray(expit(logits), dtype=np.float64)

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the model (atomically: a temporary sibling renamed into place); returns its sha256."""
        header = {"format": FORMAT, "version": VERSION, "hashing": self.hashing, "metadata": self.metadata}
        arrays: dict[str, np.ndarray] = {
            "weights": self.weights,
            "intercept": np.array([self.intercept], dtype=np.float64),
        }
        return write_npz(path, header, arrays)


def hashing_parameters(n_features: int = 1 << 20, max_chars: int = MAX_CHARS) -> dict[str, Any]:
    """What the vectorizer needs to hash text the same way at scoring time (stored in the file)."""
    return {
        "analyzer": "word",
        "ngram_range": [1, 2],
        "n_features": n_features,
        "alternate_sign": False,
        "lowercase": True,
        "norm": "l2",
        "max_chars": max_chars,
    }


def _vectorizer(hashing: Mapping[str, Any]) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    lo, hi = hashing["ngram_range"]
    return HashingVectorizer(
        analyzer="word",
        ngram_range=(int(lo), int(hi)),
        n_features=int(hashing["n_features"]),
        alternate_sign=bool(hashing["alternate_sign"]),
        lowercase=bool(hashing["lowercase"]),
        norm=hashing["norm"],
        dtype=np.float32,
    )


def train(
    positives: Iterable[str],
    negatives: Iterable[str],
    *,
    seed: int = 0,
    holdout: float = 0.2,
    n_features: int = 1 << 20,
    c: float = 1.0,
    provenance: Mapping[str, Any] | None = None,
) -> QualityModel:
    """Fit on a stratified (1 - holdout) share of each class and measure ROC AUC and accuracy on the
    rest; the model returned is the one measured. Classes are weighted to balance (`balanced`)."""
    from sklearn.linear_model import LogisticRegression

    pos, neg = list(positives), list(negatives)
    if not pos or not neg:
        raise ValueError(f"training needs positives and negatives; got {len(pos)} and {len(neg)}")
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    texts, labels = pos + neg, np.array([1] * len(pos) + [0] * len(neg))
    held = stratified_split(labels, holdout, seed)
    hashing = hashing_parameters(n_features)
    limit = hashing["max_chars"]
    features = _vectorizer(hashing).transform([t[:limit] for t in texts])
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    clf.fit(features[~held], labels[~held])
    counts = {
        "train": {"positives": int(labels[~held].sum()), "negatives": int((labels[~held] == 0).sum())},
        "heldout": {"positives": int(labels[held].sum()), "negatives": int((labels[held] == 0).sum())},
    }
    metadata = {"seed": seed, "holdout": holdout, "c": c, "counts": counts, **(provenance or {})}
    model = QualityModel(clf.coef_[0], float(clf.intercept_[0]), hashing, metadata)
    model.metadata["heldout_metrics"] = heldout_metrics(
        model, [texts[i] for i in np.flatnonzero(held)], labels[held]
    )
    model.metadata["sklearn_version"] = _sklearn_version()
    return model


def heldout_metrics(model: QualityModel, texts: Sequence[str], labels: np.ndarray) -> dict[str, float | None]:
    """ROC AUC (None unless both classes are present) and accuracy at 0.5 on labelled texts."""
    from sklearn.metrics import roc_auc_score

    if not len(texts):
        return {"roc_auc": None, "accuracy": None}
    scores = model.score_many(texts)
    auc = float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else None
    return {"roc_auc": auc, "accuracy": float(((scores >= 0.5) == (labels == 1)).mean())}


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def load_model(path: str | os.PathLike[str], sha256: str | None = None) -> QualityModel:
    """Read a model file; with `sha256`, refuse one whose bytes differ before parsing any of them."""
    data = read_pinned(path, sha256, "quality model", MAX_MODEL_BYTES)
    try:
        header, arrays = parse_npz(data, FORMAT, VERSION, _ARRAYS, MAX_UNPACKED_BYTES)
        return _checked_model(header, arrays["weights"], arrays["intercept"])
    except ModelError as err:
        raise ModelError(f"quality model {path}: {err}") from None


def _checked_model(header: dict[str, Any], weights: np.ndarray, intercept: np.ndarray) -> QualityModel:
    hashing = header.get("hashing")
    expected = hashing_parameters()
    if not isinstance(hashing, dict) or set(hashing) != set(expected):
        raise ModelError(f"hashing parameters must be exactly {sorted(expected)}")
    fixed = {k: v for k, v in expected.items() if k not in ("n_features", "max_chars")}
    if any(hashing[k] != v for k, v in fixed.items()):
        raise ModelError(f"hashing parameters {hashing} differ from the supported {fixed}")
    n = hashing["n_features"]
    if not isinstance(n, int) or not 1 <= n <= MAX_FEATURES:
        raise ModelError(f"n_features {n!r} outside [1, {MAX_FEATURES}]")
    if not isinstance(hashing["max_chars"], int) or hashing["max_chars"] < 1:
        raise ModelError(f"max_chars {hashing['max_chars']!r} is not a positive integer")
    if (
        weights.dtype.kind != "f"
        or weights.shape != (n,)
        or intercept.dtype.kind != "f"
        or intercept.shape != (1,)
    ):
        raise ModelError(f"weights must be {n} floats and the intercept one float")
    if not (np.isfinite(weights).all() and np.isfinite(intercept).all()):
        raise ModelError("weights or intercept are not finite")
    metadata = header.get("metadata")
    return QualityModel(weights, float(intercept[0]), hashing, metadata if isinstance(metadata, dict) else {})
