"""Scaling-law fits (training/scaling/): Epoch AI's Chinchilla replication reproduced, and known
parameters recovered from seeded synthetic sweeps by approaches 1, 2 and 3 within their bootstrap
intervals; the table's bad input; recommendations; the report writer's files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.config import REPO_ROOT
from training.scaling import recommend
from training.scaling.fits import ParametricFit, approach1, approach2, approach3, json_safe, kaplan
from training.scaling.plots import write_report
from training.scaling.table import MAX_TABLE_BYTES, TableError, from_frame, read_table

CHINCHILLA = REPO_ROOT.parent / "shared" / "data" / "scaling" / "chinchilla_svg_extracted_data.csv"
# Besiroglu et al. 2024, table 1 (value, standard error); Hoffmann et al. 2022's own fit (eq. 10)
EPOCH = {"E": (1.817, 0.026), "A": (482.0, 125.0), "B": (2085.0, 1293.0), "alpha": (0.348, 0.015),
         "beta": (0.366, 0.021)}  # fmt: skip
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
TRUE = ParametricFit(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def _n_opt(c: float) -> float:
    g = (TRUE.alpha * TRUE.A / (TRUE.beta * TRUE.B)) ** (1 / (TRUE.alpha + TRUE.beta))
    return float(g * (c / 6) ** TRUE.a)


def isoflop_frame(seed: int = 1, noise: float = 0.005) -> pd.DataFrame:
    """Seven IsoFLOP budgets (1e18..1e21), nine sizes each over +-0.6 dex of the true N_opt."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.logspace(18, 21, 7):
        for n in _n_opt(c) * np.logspace(-0.6, 0.6, 9):
            d = c / (6 * n)
            loss = float(TRUE.loss(n, d)) * float(np.exp(rng.normal(0, noise)))
            rows.append({"params": n, "tokens": d, "loss": loss, "budget": c})
    return pd.DataFrame(rows)


def curves_frame(seed: int = 2, noise: float = 0.003) -> pd.DataFrame:
    """25 runs (1e7..1e10 parameters), each a 60-point curve from 0.5 to 200 tokens per parameter."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate(np.logspace(7, 10, 25)):
        for step, t in enumerate(np.logspace(np.log10(n * 0.5), np.log10(n * 200), 60)):
            loss = float(TRUE.loss(n, t)) * float(np.exp(rng.normal(0, noise)))
            rows.append({"run_id": f"r{i}", "step": step, "params": n, "tokens_seen": t, "loss": loss})
    return pd.DataFrame(rows)


def _inside(est: dict[str, float], truth: float) -> bool:
    return est["lo"] <= truth <= est["hi"]


@pytest.mark.skipif(not CHINCHILLA.exists(), reason=f"{CHINCHILLA} absent")
def test_approach3_reproduces_epoch_on_chinchilla(tmp_path: Path) -> None:
    table = read_table(CHINCHILLA)
    assert table.chinchilla and table.params_column == "Model Size" and len(table.frame) == 245
    t0 = time.perf_counter()
    fit = approach3(table, bootstrap=200, seed=0)
    elapsed = time.perf_counter() - t0
    assert fit["dropped_highest"] == 5 and fit["n_points"] == 240
    print(f"\napproach 3 on Chinchilla, 200-resample bootstrap: {elapsed:.1f} s")
    print(f"{'':6} {'ours':>10} {'95% interval':>24} {'se':>8} {'Epoch (se)':>18} {'Hoffmann':>9}")
    for name, (value, se) in EPOCH.items():
        ours = fit[name]
        print(
            f"{name:6} {ours['value']:10.4g} [{ours['lo']:10.4g}, {ours['hi']:10.4g}] {ours['se']:8.3g} "
            f"{value:10.4g} ({se:5.3g}) {HOFFMANN[name]:9.4g}"
        )
        assert abs(ours["value"] - value) <= 2 * se, (name, ours["value"], value, se)
        # our bootstrap standard error is of the same order as Epoch's
        assert se / 3 < ours["se"] < se * 3, (name, ours["se"], se)
    assert fit["a"]["value"] == pytest.approx(0.366 / (0.348 + 0.366), abs=0.02)
    assert len(fit["samples"]) == 200

    # recommendations from that fit: the closed form is the minimum of L along C = 6ND
    doc = {"approach3": fit}
    rec = recommend.for_compute(doc, 1e23)["approach3"]
    n, d = rec["params"]["value"], rec["tokens"]["value"]
    assert 6 * n * d == pytest.approx(1e23)
    p = ParametricFit(*(fit[k]["value"] for k in ("E", "A", "B", "alpha", "beta")))
    for scale in (0.8, 1.25):
        assert p.loss(n * scale, d / scale) > p.loss(n, d)
    assert rec["params"]["lo"] < n < rec["params"]["hi"]
    assert rec["loss"]["value"] == pytest.approx(float(p.loss(n, d)))
    print(
        f"C = 1e23: N_opt {n:.3g}, D_opt {d:.3g}, {d / n:.1f} tokens/param, loss {rec['loss']['value']:.3f}"
    )
    # given N, the optimal D is the one for_compute picks at that N's optimal compute
    by_n = recommend.for_params(doc, n)["approach3"]
    assert by_n["tokens"]["value"] == pytest.approx(d, rel=1e-6)
    # given a target loss, the least compute reaching it; below E unreachable
    by_loss = recommend.for_target_loss(doc, rec["loss"]["value"])
    assert by_loss["reachable"] and by_loss["approach3"]["flops"]["value"] == pytest.approx(1e23, rel=1e-6)
    low = recommend.for_target_loss(doc, fit["E"]["value"] * 0.99)
    assert low["reachable"] is False and "irreducible" in low["reason"]


def test_synthetic_recovery_approach3() -> None:
    table = from_frame(isoflop_frame())
    t0 = time.perf_counter()
    fit = approach3(table, bootstrap=60, seed=0)
    print(f"\napproach 3, 63 synthetic points, 60 resamples: {time.perf_counter() - t0:.1f} s")
    for name in ("E", "A", "B", "alpha", "beta"):
        est, truth = fit[name], getattr(TRUE, name)
        print(f"{name:6} true {truth:8.4g} fit {est['value']:8.4g} [{est['lo']:.4g}, {est['hi']:.4g}]")
        assert _inside(est, truth), (name, est, truth)
    assert _inside(fit["a"], TRUE.a) and _inside(fit["b"], TRUE.b)


def test_synthetic_recovery_approaches_1_2() -> None:
    fit2 = approach2(from_frame(isoflop_frame()), bootstrap=200, seed=0)
    fit1 = approach1(from_frame(curves_frame()), bootstrap=200, seed=0)
    for fit in (fit1, fit2):
        for name, truth in (("a", TRUE.a), ("b", TRUE.b)):
            est = fit[name]
            print(f"approach {fit['approach']} {name}: true {truth:.4f} fit {est['value']:.4f} "
                  f"[{est['lo']:.4f}, {est['hi']:.4f}]")  # fmt: skip
            assert _inside(est, truth), (fit["approach"], name, est, truth)
    assert len(fit2["points"]) == 7 and all("n_opt" in b for b in fit2["budgets"])
    # Kaplan-style laws: loss falls with N and with D
    k = kaplan(from_frame(isoflop_frame()), bootstrap=20, seed=0)
    assert k["alpha_N"]["value"] > 0 and k["alpha_D"]["value"] > 0


def test_bootstrap_is_seeded() -> None:
    table = from_frame(isoflop_frame())
    assert approach2(table, 30, seed=3)["a"] == approach2(table, 30, seed=3)["a"]
    assert approach2(table, 30, seed=3)["a"]["lo"] != approach2(table, 30, seed=4)["a"]["lo"]


def test_table_columns_and_bad_input(tmp_path: Path) -> None:
    # flops default 6ND; non-embedding params used when asked (or when params is absent)
    t = from_frame(
        pd.DataFrame({"params": [1e8], "non_embedding_params": [8e7], "tokens": [2e9], "loss": [3.0]})
    )
    assert t.frame["flops"][0] == pytest.approx(6 * 1e8 * 2e9) and t.params_column == "params"
    t = from_frame(
        pd.DataFrame({"params": [1e8], "non_embedding_params": [8e7], "tokens": [2e9], "loss": [3.0]}),
        "non_embedding_params",
    )
    assert t.frame["params"][0] == 8e7
    t = from_frame(pd.DataFrame({"non_embedding_params": [8e7], "flops": [6e18], "loss": [3.0]}))
    assert t.frame["tokens"][0] == pytest.approx(6e18 / (6 * 8e7))
    bad = [
        (pd.DataFrame({"tokens": [1.0], "loss": [1.0]}), "missing column 'params'"),
        (pd.DataFrame({"params": [1.0], "loss": [1.0]}), "missing column 'tokens'"),
        (pd.DataFrame({"params": [1.0], "tokens": [1.0]}), "missing column 'loss'"),
        (pd.DataFrame({"params": [1.0, -2], "tokens": [1.0, 1], "loss": [1.0, 1]}), "'params'"),
        (pd.DataFrame({"params": [1.0], "tokens": [1.0], "loss": [float("nan")]}), "'loss'"),
        (pd.DataFrame({"params": ["x"], "tokens": [1.0], "loss": [1.0]}), "'x'"),
        (pd.DataFrame({"params": [], "tokens": [], "loss": []}), "no rows"),
    ]
    for frame, message in bad:
        with pytest.raises(TableError, match=message):
            from_frame(frame)
    big = tmp_path / "big.csv"
    big.write_text("params,tokens,loss\n" + "1,1,1\n" * 20)
    with pytest.raises(TableError, match="more than the 50"):
        read_table(big, max_bytes=50)
    assert MAX_TABLE_BYTES == 64 * 1024 * 1024
    with pytest.raises(TableError, match="no such file"):
        read_table(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="approach 1 needs training curves"):
        approach1(from_frame(isoflop_frame()), 5)


def test_write_report(tmp_path: Path) -> None:
    frame = isoflop_frame()
    frame.to_csv(tmp_path / "sweep.csv", index=False)
    out = write_report(tmp_path / "sweep.csv", tmp_path / "report", bootstrap=10, seed=0)
    files = out["files"]
    for name in ("loss_vs_compute", "isoflops", "surface"):
        assert Path(files[name]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "approach1" in out["fit"]["skipped"]  # no training curves in an IsoFLOP table
    md = Path(files["markdown"]).read_text()
    assert "| approach3 | alpha |" in md and "![surface](surface.png)" in md
    assert "<table" in Path(files["html"]).read_text()
    assert json.loads(Path(files["fit"]).read_text())["approach3"]["E"]["value"] > 0


def test_recommend_needs_approach3_and_json_is_strict() -> None:
    fit2 = approach2(from_frame(isoflop_frame()), bootstrap=0, seed=0)
    assert np.isnan(fit2["a"]["lo"])  # no resamples, no interval
    strict = json.dumps(json_safe({"approach2": fit2}), allow_nan=False)
    assert json.loads(strict)["approach2"]["a"]["lo"] is None
    rec = recommend.for_compute({"approach2": fit2}, 1e21)["approach2"]
    assert rec["params"]["value"] == pytest.approx(
        np.exp(fit2["log_k_n"]["value"]) * 1e21 ** fit2["a"]["value"]
    )
    with pytest.raises(ValueError, match="approach-3 fit"):
        recommend.for_params({"approach2": fit2}, 1e9)
    with pytest.raises(ValueError, match="positive"):
        recommend.for_compute({"approach2": fit2}, -1.0)
