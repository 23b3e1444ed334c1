"""Topic clusters for the diversity report: k-means over TF-IDF vectors of a bounded document sample.

TF-IDF (Salton & Buckley 1988, "Term-weighting approaches in automatic text retrieval") with
sublinear term frequency and English stop words removed, over a vocabulary bounded to `MAX_FEATURES`
terms so memory does not grow with the sample, reduced to `LSA_COMPONENTS` dimensions by truncated
SVD (latent semantic analysis, Deerwester et al. 1990) and L2-normalised, so Euclidean k-means
behaves like spherical k-means. Without the SVD, k-means on raw sparse TF-IDF of short texts (tweets)
splits them by single words: on 133 Python docstrings + 266 tweets, k=2 purity was 0.67 without and
0.99 with it. k-means++ seeding (Arthur & Vassilvitskii 2007) and the SVD use `seed`: the same texts
in the same order and the same seed give the same clusters. A cluster is labelled by the largest
term weights of its centroid mapped back from the SVD space.

We use scikit-learn's `TfidfVectorizer` (not the hashing trick) because the top terms must be
readable words; `MAX_FEATURES` bounds it instead. Only the sample is clustered by the report;
`Topics.assign` places other texts in the fitted clusters (one sparse transform and a nearest
centroid each), for a caller that wants labels for every document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_FEATURES = 20_000  # vocabulary bound
LSA_COMPONENTS = 100
TOP_TERMS = 10
N_INIT = 10  # k-means restarts, lowest inertia kept (3 split the tweets instead for one seed in 3)


@dataclass
class Topics:
    """Cluster label per input text, cluster sizes and top terms; `assign` labels new texts."""

    labels: list[int]
    sizes: list[int]
    top_terms: list[list[str]]
    _vectorizer: Any = field(default=None, repr=False)
    _svd: Any = field(default=None, repr=False)
    _model: Any = field(default=None, repr=False)

    @property
    def k(self) -> int:
        return len(self.sizes)

    def assign(self, texts: Sequence[str]) -> list[int]:
        """Nearest fitted centroid for each text (all 0 when nothing could be fitted)."""
        if self._model is None or self._vectorizer is None:
            return [0] * len(texts)
        return [
            int(x) for x in self._model.predict(_reduce(self._svd, self._vectorizer.transform(list(texts))))
        ]


def _reduce(svd: Any, matrix: Any) -> Any:
    from sklearn.preprocessing import normalize

    return matrix if svd is None else normalize(svd.transform(matrix))


def _single(n: int) -> Topics:
    return Topics(labels=[0] * n, sizes=[n] if n else [], top_terms=[[]] if n else [])


def topic_clusters(texts: Sequence[str], k: int, seed: int = 0) -> Topics:
    """k-means over TF-IDF; k is reduced to the number of distinct non-empty vectors when smaller."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    vectorizer = TfidfVectorizer(
        max_features=MAX_FEATURES,
        stop_words="english",
        sublinear_tf=True,
        token_pattern=r"(?u)\b[^\W\d_]{2,}\b",  # words of letters only: no numbers, no snake_case ids
        dtype=np.float32,
    )
    try:
        matrix = vectorizer.fit_transform(list(texts))
    except ValueError:  # empty vocabulary: no text has a usable word
        return _single(n)
    distinct = len({row.indices.tobytes() + row.data.tobytes() for row in matrix})
    k = min(k, distinct)
    if k < 2:
        return _single(n)
    components = min(LSA_COMPONENTS, matrix.shape[1] - 1, n - 1)
    svd = TruncatedSVD(components, random_state=seed).fit(matrix) if components >= k else None
    model = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(_reduce(svd, matrix))
    labels = [int(x) for x in model.labels_]
    terms = vectorizer.get_feature_names_out()
    centers = model.cluster_centers_ if svd is None else svd.inverse_transform(model.cluster_centers_)
    top = [[str(terms[j]) for j in np.argsort(-c, kind="stable")[:TOP_TERMS] if c[j] > 0] for c in centers]
    sizes = np.bincount(model.labels_, minlength=k).tolist()
    return Topics(labels=labels, sizes=sizes, top_terms=top, _vectorizer=vectorizer, _svd=svd, _model=model)
