"""Mixture weights: how many copies of each training document go into the shards.

A source's weight multiplies its natural (as curated) token count. Weight w >= 1 keeps every
document floor(w) times plus once more for a seeded sample worth frac(w) of the source's tokens;
w < 1 keeps only such a sample. The sample is the documents whose seeded hash bucket lies below a
cut chosen from a token histogram over the buckets, so the realised tokens land within one bucket
(1/65,536 of the source, or one document) of the target without a per-source sort or a driver-side
document list. Weights are capped at `max_repeats` (Muennighoff et al. 2023, section 5: up to 4
epochs of repeated data are nearly as good as unique data). Validation documents are never weighted.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.config import MixtureConfig

BUCKETS = 1 << 16  # the sample's resolution: the first 16 bits of a seeded sha256
NO_LANGUAGE = ""

Group = tuple[str, str]  # (source_type, language or NO_LANGUAGE)


def sample_bucket(seed: int, doc_id: str) -> int:
    """The document's seeded bucket in [0, BUCKETS); independent of the split's hash (unseeded)."""
    return int.from_bytes(hashlib.sha256(f"mix:{seed}:{doc_id}".encode()).digest()[:2], "big")


def weight(cfg: MixtureConfig, source: str, language: str) -> float:
    """The requested multiplier of a (source, language) group, before the repeat cap."""
    return cfg.weights.get(source, 1.0) * cfg.language_weights.get(language, 1.0)  # type: ignore[call-overload]


@dataclass(frozen=True)
class GroupPlan:
    """Every document `whole` times, plus once more when its bucket is below `cut`."""

    whole: int
    cut: int

    def copies(self, bucket: int) -> int:
        return self.whole + (1 if bucket < self.cut else 0)


def _cut(histogram: Mapping[int, int], target: float) -> int:
    """The bucket bound whose cumulative tokens are closest to `target`."""
    best, best_err, total = 0, float(target), 0
    for bucket in sorted(histogram):
        total += histogram[bucket]
        if abs(total - target) < best_err:
            best, best_err = bucket + 1, abs(total - target)
        if total >= target:
            break
    return best


def plan_mixture(histograms: Mapping[Group, Mapping[int, int]], cfg: MixtureConfig) -> dict[Group, GroupPlan]:
    """Per group, the copies rule that realises min(weight, max_repeats) x its natural tokens."""
    plans = {}
    for group, hist in histograms.items():
        w = min(weight(cfg, *group), cfg.max_repeats)
        whole = math.floor(w)
        plans[group] = GroupPlan(whole, _cut(hist, (w - whole) * sum(hist.values())))
    return plans


def mixture_report(
    cfg: MixtureConfig, natural: Mapping[Group, int], realised: Mapping[str, int]
) -> dict[str, Any]:
    """Per source: weight, natural, target (weight x natural, uncapped), realised tokens, shares,
    epochs (realised / natural), and the sources a cap kept below their target."""
    sources = sorted({s for s, _ in natural} | set(realised))
    nat = {s: sum(n for (src, _), n in natural.items() if src == s) for s in sources}
    target = {s: sum(weight(cfg, *g) * n for g, n in natural.items() if g[0] == s) for s in sources}
    real = {s: int(realised.get(s, 0)) for s in sources}

    def share(counts: Mapping[str, float]) -> dict[str, float]:
        total = sum(counts.values()) or 1
        return {s: round(counts[s] / total, 6) for s in sources}

    return {
        "weights": {s: cfg.weights.get(s, 1.0) for s in sources},  # type: ignore[call-overload]
        "language_weights": dict(cfg.language_weights),
        "max_repeats": cfg.max_repeats,
        "seed": cfg.seed,
        "natural_tokens": nat,
        "target_tokens": {s: round(t) for s, t in target.items()},
        "realised_tokens": real,
        "target_share": share(target),
        "realised_share": share(real),
        "epochs": {s: round(real[s] / nat[s], 4) if nat[s] else 0.0 for s in sources},
        "capped": sorted({g[0] for g in natural if weight(cfg, *g) > cfg.max_repeats}),
    }
