"""Mixture weights: the plan's arithmetic, then the shards stage on more than 10,000 real documents
with web upsampled 2x and code downsampled to half: realised token shares within 1 point of target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config import MixtureConfig
from jobs.tokens.mixture import BUCKETS, GroupPlan, mixture_report, plan_mixture, sample_bucket
from tests.test_shards_stage import run_with, shard_bytes, shard_inputs


def test_plan_realises_the_weight_within_one_bucket() -> None:
    hist = {b: 10 + b % 7 for b in range(0, BUCKETS, 3)}
    total = sum(hist.values())
    cfg = MixtureConfig(weights={"web": 2.5, "code": 0.3, "book": 9.0}, max_repeats=4.0)
    plans = plan_mixture(
        {("web", ""): hist, ("code", ""): hist, ("book", ""): hist, ("paper", ""): hist}, cfg
    )
    for source, w in (("web", 2.5), ("code", 0.3), ("book", 4.0), ("paper", 1.0)):
        plan = plans[(source, "")]
        realised = sum(n * plan.copies(b) for b, n in hist.items())
        assert abs(realised - w * total) <= 16, source  # one bucket's tokens at most
    assert plans[("book", "")] == GroupPlan(4, 0) and plans[("paper", "")] == GroupPlan(1, 0)


def test_language_weights_multiply_and_buckets_are_seeded() -> None:
    cfg = MixtureConfig(weights={"web": 2.0}, language_weights={"de": 0.5})
    plans = plan_mixture({("web", "de"): {0: 5, 1: 5}, ("web", "en"): {0: 5}}, cfg)
    assert plans[("web", "de")].whole == 1 and plans[("web", "en")].whole == 2
    assert sample_bucket(0, "a") == sample_bucket(0, "a") != sample_bucket(1, "a")


def test_report_states_targets_realised_shares_epochs_and_caps() -> None:
    cfg = MixtureConfig(weights={"web": 6.0, "code": 0.5}, max_repeats=4.0)
    report = mixture_report(cfg, {("web", ""): 100, ("code", ""): 300}, {"web": 400, "code": 150})
    assert report["target_tokens"] == {"code": 150, "web": 600}
    assert report["target_share"] == {"code": 0.2, "web": 0.8}
    assert report["realised_share"] == {"code": round(150 / 550, 6), "web": round(400 / 550, 6)}
    assert report["epochs"] == {"code": 0.5, "web": 4.0}
    assert report["capped"] == ["web"]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Any]:
    from scripts.bench_shards import real_documents

    docs = list({d["text"]: d for d in real_documents(per_source=3000)}.values())
    return docs, shard_inputs(tmp_path_factory.mktemp("mix-in"), docs)


def test_weighted_mixture_on_real_documents(spark: Any, big: Any, tmp_path: Path) -> None:
    docs, inputs = big
    assert len(docs) >= 10_000
    shards = {"val_fraction": 0.05, "max_shard_tokens": 1_000_000}
    weighted = run_with(
        spark, inputs, tmp_path / "w", shards=shards, mixture={"weights": {"web": 2, "code": 0.5}}
    )
    mix = weighted["mixture"]
    assert set(mix["natural_tokens"]) == {"book", "code", "paper", "web"}
    for source in mix["natural_tokens"]:
        assert abs(mix["realised_share"][source] - mix["target_share"][source]) < 0.01, source
        assert abs(mix["realised_tokens"][source] / mix["target_tokens"][source] - 1) < 0.01, source
    assert mix["epochs"]["web"] == pytest.approx(2.0, abs=0.01)
    assert mix["epochs"]["code"] == pytest.approx(0.5, abs=0.01)
    assert mix["epochs"]["book"] == mix["epochs"]["paper"] == 1.0 and mix["capped"] == []
    assert weighted["train_tokens"] == sum(mix["realised_tokens"].values())
    # the split comes first: validation is the natural, unweighted documents
    plain = run_with(spark, inputs, tmp_path / "p", shards=shards)
    assert plain["mixture"]["epochs"] == {s: 1.0 for s in mix["natural_tokens"]}
    assert plain["mixture"]["natural_tokens"] == mix["natural_tokens"]
    val = {k: v for k, v in shard_bytes(tmp_path / "w").items() if k.startswith("val")}
    assert val and val == {k: v for k, v in shard_bytes(tmp_path / "p").items() if k.startswith("val")}
    assert (weighted["val_tokens"], weighted["val_documents"]) == (
        plain["val_tokens"],
        plain["val_documents"],
    )
    print("mixture", {k: mix[k] for k in ("target_share", "realised_share", "epochs")})
