"""A trained toxicity classifier: hate / offensive / neither, from labelled text.

Source: Davidson, Warmsley, Macy and Weber (2017), "Automated Hate Speech Detection and the Problem of
Offensive Language", ICWSM, section "Model": TF-IDF weighted word uni-, bi- and trigrams (with POS,
readability and sentiment features), logistic regression with L2 regularisation, class weights
balanced; weighted precision 0.91, recall 0.90, F1 0.90 on their held-out tweets. We keep the linear
model and the TF-IDF word 1-3-grams, add character 2-5-grams within word boundaries (they catch
spelling variants such as `b1tch` and `niggah` that the paper's Porter stemming partly absorbed),
drop the POS/readability/sentiment features and fit one multinomial logistic regression with
`class_weight="balanced"` (the hate class is 6% of the tweets: balanced weights raise its recall and
the macro-F1, and measured here they do not lower the weighted F1).

Preprocessing (as in the paper's code): HTML entities decoded, URLs -> `URLHERE`, @mentions ->
`MENTIONHERE`, runs of whitespace -> one space; lowercasing is the vectorizer's.

The file is the quality model's format (jobs/filters/classifier.py), never a pickle: an `.npz` read
with `allow_pickle=False`, members `header` (UTF-8 JSON: format, version, classes, feature
parameters, training metadata), `weights` (3 x features, float32), `intercept` (3, float64) and `idf`
(features, float32); size and unpacked size capped, sha256 checked before parsing, fixed zip
timestamps so the same data and seed give the same bytes.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from jobs.model_files import ModelError, parse_npz, read_pinned, stratified_split, write_npz

FORMAT = "lmforge-toxicity-model"
VERSION = 1
CLASSES = ("hate", "offensive", "neither")
TOXIC = (0, 1)  # the classes whose probabilities make the score
MAX_MODEL_BYTES = 64 << 20
MAX_UNPACKED_BYTES = 256 << 20
MAX_FEATURES = 1 << 22  # per block (words, characters)
MAX_CHARS = 100_000  # characters of a document that are scored
_ARRAYS = ("weights", "intercept", "idf")
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")
_SPACE = re.compile(r"\s+")
_BLOCKS = ("word", "char_wb")


def preprocess(text: str) -> str:
    """Davidson et al.'s tweet cleaning: entities decoded, URLs and mentions replaced, spaces collapsed."""
    text = html.unescape(text)
    text = _URL.sub(" URLHERE ", text)
    text = _MENTION.sub(" MENTIONHERE ", text)
    return _SPACE.sub(" ", text).strip()


def feature_parameters(n_features: int = 1 << 17, max_chars: int = MAX_CHARS) -> dict[str, Any]:
    """What hashing needs to reproduce the training features at scoring time (stored in the file)."""
    return {
        "word": {"ngram_range": [1, 3], "n_features": n_features},
        "char_wb": {"ngram_range": [2, 5], "n_features": n_features},
        "sublinear_tf": True,
        "preprocess": "davidson2017",
        "max_chars": max_chars,
    }


def _vectorizers(features: Mapping[str, Any]) -> list[Any]:
    from sklearn.feature_extraction.text import HashingVectorizer

    out = []
    for block in _BLOCKS:
        lo, hi = features[block]["ngram_range"]
        out.append(
            HashingVectorizer(
                analyzer=block,
                ngram_range=(int(lo), int(hi)),
                n_features=int(features[block]["n_features"]),
                token_pattern=r"(?u)\b\w+\b",  # one-letter words (`u`, `n`) count in tweets
                alternate_sign=False,
                norm=None,
                dtype=np.float32,
            )
        )
    return out


def _counts(
    texts: Sequence[str], features: Mapping[str, Any], vectorizers: list[Any] | None = None
) -> list[sp.csr_matrix]:
    """Per block: sublinear term frequencies (1 + ln count) of the preprocessed texts."""
    limit = int(features["max_chars"])
    clean = [preprocess(t[:limit]) for t in texts]
    blocks = []
    for vectorizer in vectorizers or _vectorizers(features):
        m = sp.csr_matrix(vectorizer.transform(clean), dtype=np.float32)
        np.log(m.data, out=m.data)
        m.data += 1
        blocks.append(m)
    return blocks


def _tfidf(blocks: list[sp.csr_matrix], idf: np.ndarray) -> sp.csr_matrix:
    """Each block weighted by its IDF and L2-normalised, then side by side."""
    from sklearn.preprocessing import normalize

    out, start = [], 0
    for m in blocks:
        width = m.shape[1]
        out.append(normalize(m @ sp.diags(idf[start : start + width]), norm="l2"))
        start += width
    return sp.csr_matrix(sp.hstack(out, format="csr"), dtype=np.float32)


def _idf(blocks: list[sp.csr_matrix]) -> np.ndarray:
    """Smoothed IDF, ln((1 + n) / (1 + df)) + 1, per column of every block (scikit-learn's default)."""
    n = blocks[0].shape[0]
    parts = [np.log((1 + n) / (1 + np.bincount(m.indices, minlength=m.shape[1]))) + 1 for m in blocks]
    return np.concatenate(parts).astype(np.float32)


class ToxicityModel:
    """`predict_proba(texts)`: n x 3 probabilities, `CLASSES` order; `score(text)`: P(hate) + P(offensive)."""

    def __init__(
        self,
        weights: np.ndarray,
        intercept: np.ndarray,
        idf: np.ndarray,
        features: Mapping[str, Any],
        metadata: Mapping[str, Any],
    ):
        self.weights = np.asarray(weights, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.idf = np.asarray(idf, dtype=np.float32)
        self.features = dict(features)
        self.metadata = dict(metadata)
        self._vectorizers = _vectorizers(self.features)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 2048) -> np.ndarray:
        out = [self._batch(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(CLASSES)))

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        x = _tfidf(_counts(texts, self.features, self._vectorizers), self.idf)
        logits = np.asarray(x @ self.weights.T, dtype=np.float64) + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return np.asarray(p / p.sum(axis=1, keepdims=True))

    def score(self, text: str) -> float:
        return float(self.predict_proba([text])[0, list(TOXIC)].sum())

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Class indices (argmax of the probabilities)."""
        return np.asarray(self.predict_proba(texts).argmax(axis=1))

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the model atomically (jobs/model_files.py); returns its sha256."""
        header = {
            "format": FORMAT,
            "version": VERSION,
            "classes": list(CLASSES),
            "features": self.features,
            "metadata": self.metadata,
        }
        return write_npz(
            path, header, {"weights": self.weights, "intercept": self.intercept, "idf": self.idf}
        )


def label_index(label: object) -> int:
    """0/1/2 (Davidson's `class`, as int or digit string) or a class name -> the index in `CLASSES`."""
    if isinstance(label, str):
        key = label.strip().lower().replace("_", " ").replace("-", " ")
        names = {"hate": 0, "hate speech": 0, "offensive": 1, "offensive language": 1, "neither": 2}
        if key in names:
            return names[key]
        label = int(key) if key.isdigit() else label
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < len(CLASSES):
        return int(label)
    raise ValueError(f"label {label!r} is not one of 0, 1, 2 or {', '.join(CLASSES)}")


def train(
    texts: Sequence[str],
    labels: Iterable[object],
    *,
    seed: int = 0,
    holdout: float = 0.0,
    n_features: int = 1 << 17,
    c: float = 3.0,
    class_weight: str | None = "balanced",
    provenance: Mapping[str, Any] | None = None,
) -> ToxicityModel:
    """Fit on all but a stratified `holdout` share; with a holdout, its metrics go into the metadata."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    if not 1 <= n_features <= MAX_FEATURES:
        raise ValueError(f"n_features {n_features} outside [1, {MAX_FEATURES}]")
    y = np.array([label_index(v) for v in labels], dtype=np.int64)
    if len(y) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(y)} labels")
    if len(set(y.tolist())) < 2:
        raise ValueError("training needs at least two classes")
    held = stratified_split(y, holdout, seed)
    fit = np.flatnonzero(~held)
    features = feature_parameters(n_features)
    blocks = _counts([texts[int(i)] for i in fit], features)
    idf = _idf(blocks)
    clf = LogisticRegression(C=c, class_weight=class_weight, max_iter=1000, random_state=seed)
    with threadpool_limits(limits=1, user_api="blas"):  # L-BFGS's small BLAS calls: threads cost 3x
        clf.fit(_tfidf(blocks, idf), y[fit])
    weights = np.zeros((len(CLASSES), idf.shape[0]), dtype=np.float32)
    intercept = np.full(len(CLASSES), -1e3)  # a class absent from training is never predicted
    weights[clf.classes_] = clf.coef_ if len(clf.classes_) > 2 else np.vstack([-clf.coef_, clf.coef_]) / 2
    intercept[clf.classes_] = (
        clf.intercept_ if len(clf.classes_) > 2 else [-clf.intercept_[0] / 2, clf.intercept_[0] / 2]
    )
    counts = {name: int((y[fit] == i).sum()) for i, name in enumerate(CLASSES)}
    metadata = {
        "seed": seed,
        "holdout": holdout,
        "c": c,
        "class_weight": class_weight,
        "n_train": len(fit),
    }
    model = ToxicityModel(
        weights, intercept, idf, features, {**metadata, "counts": counts, **(provenance or {})}
    )
    if held.any():
        model.metadata["heldout_metrics"] = evaluate(
            model, [texts[int(i)] for i in np.flatnonzero(held)], y[held]
        )
    return model


def evaluate(model: ToxicityModel, texts: Sequence[str], labels: Iterable[object]) -> dict[str, Any]:
    """Per-class, weighted and macro precision / recall / F1, and accuracy, on labelled texts."""
    y = np.array([label_index(v) for v in labels], dtype=np.int64)
    return classification_metrics(y, model.predict(texts))


def classification_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = list(range(len(CLASSES)))
    p, r, f, s = precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    out: dict[str, Any] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(CLASSES)
    }
    for average in ("weighted", "macro"):
        ap, ar, af, _ = precision_recall_fscore_support(
            y, predicted, labels=labels, average=average, zero_division=0
        )
        out[average] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    out["accuracy"] = float(accuracy_score(y, predicted))
    out["n"] = len(y)
    return out


def load_model(path: str | os.PathLike[str], sha256: str | None = None) -> ToxicityModel:
    """Read a model file; with `sha256`, refuse one whose bytes differ before parsing any of them."""
    data = read_pinned(path, sha256, "toxicity model", MAX_MODEL_BYTES)
    try:
        header, arrays = parse_npz(data, FORMAT, VERSION, _ARRAYS, MAX_UNPACKED_BYTES)
        if header.get("classes") != list(CLASSES):
            raise ModelError(f"classes {header.get('classes')!r}, expected {list(CLASSES)}")
        return _checked(header, arrays)
    except ModelError as err:
        raise ModelError(f"toxicity model {path}: {err}") from None


def _checked(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> ToxicityModel:
    features = header.get("features")
    expected = feature_parameters()
    if not isinstance(features, dict) or set(features) != set(expected):
        raise ModelError(f"feature parameters must be exactly {sorted(expected)}")
    width = 0
    for block in _BLOCKS:
        n = features[block].get("n_features") if isinstance(features[block], dict) else None
        if features[block] != {**expected[block], "n_features": n}:
            raise ModelError(
                f"{block} features {features[block]} differ from the supported {expected[block]}"
            )
        if not isinstance(n, int) or not 1 <= n <= MAX_FEATURES:
            raise ModelError(f"{block} n_features {n!r} outside [1, {MAX_FEATURES}]")
        width += n
    fixed = {k: expected[k] for k in ("sublinear_tf", "preprocess")}
    if any(features[k] != v for k, v in fixed.items()):
        raise ModelError(f"feature parameters {features} differ from the supported {fixed}")
    if not isinstance(features["max_chars"], int) or features["max_chars"] < 1:
        raise ModelError(f"max_chars {features['max_chars']!r} is not a positive integer")
    shapes = {"weights": (len(CLASSES), width), "intercept": (len(CLASSES),), "idf": (width,)}
    for name, shape in shapes.items():
        a = arrays[name]
        if a.dtype.kind != "f" or a.shape != shape or not np.isfinite(a).all():
            raise ModelError(f"{name} must be {shape} finite floats, got {a.dtype} {a.shape}")
    metadata = header.get("metadata")
    return ToxicityModel(
        arrays["weights"],
        arrays["intercept"],
        arrays["idf"],
        features,
        metadata if isinstance(metadata, dict) else {},
    )
