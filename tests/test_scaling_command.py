"""`lmforge scaling fit|recommend` as a user runs them: real subprocesses, JSON parsed and checked;
bad input answered with one readable error line and a nonzero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.config import REPO_ROOT

CHINCHILLA = REPO_ROOT.parent / "shared" / "data" / "scaling" / "chinchilla_svg_extracted_data.csv"
# imports the module itself, so the test holds whether or not lmforge/cli.py's MODULES lists it yet
LAUNCH = "import sys, lmforge.scaling_commands; from lmforge.cli import main; sys.exit(main())"


def lmforge(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.skipif(not CHINCHILLA.exists(), reason=f"{CHINCHILLA} absent")
def test_fit_chinchilla_json_then_recommend(tmp_path: Path) -> None:
    done = lmforge("scaling", "fit", str(CHINCHILLA), "--approach", "3", "--json", "--bootstrap", "12",
                   "--seed", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    fit = doc["approach3"]
    assert doc["params_column"] == "Model Size" and fit["dropped_highest"] == 5 and fit["n_points"] == 240
    for name, value, se in (("E", 1.817, 0.026), ("A", 482, 125), ("B", 2085, 1293), ("alpha", 0.348, 0.015),
                            ("beta", 0.366, 0.021)):  # fmt: skip
        est = fit[name]
        assert set(est) == {"value", "lo", "hi", "se"}
        assert abs(est["value"] - value) <= 2 * se, (name, est)
        assert est["lo"] <= est["hi"] and est["se"] > 0
    assert fit["a"]["value"] + fit["b"]["value"] == pytest.approx(1.0)
    assert len(fit["samples"]) == 12

    path = tmp_path / "fit.json"
    path.write_text(done.stdout)
    rec = lmforge("scaling", "recommend", "--fit", str(path), "--compute", "5.76e23")
    assert rec.returncode == 0, rec.stderr
    out = json.loads(rec.stdout)["approach3"]
    n, d = out["params"]["value"], out["tokens"]["value"]
    assert 6 * n * d == pytest.approx(5.76e23)
    # Chinchilla's own budget: Epoch's fit puts N_opt in the tens of billions (Hoffmann et al.: 70B)
    assert 1e10 < n < 2e11 and out["params"]["lo"] <= n <= out["params"]["hi"]
    assert np.isfinite(out["loss"]["value"]) and out["loss"]["value"] > fit["E"]["value"]
    unreachable = lmforge("scaling", "recommend", "--fit", str(path), "--target-loss", "1.5")
    assert unreachable.returncode == 0 and json.loads(unreachable.stdout)["reachable"] is False


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    missing.write_text("params,loss\n1e8,3.0\n2e8,2.9\n")
    negative = tmp_path / "negative.csv"
    negative.write_text("params,tokens,loss\n1e8,2e9,3.0\n-2e8,4e9,2.9\n")
    nan = tmp_path / "nan.csv"
    nan.write_text("params,tokens,loss\n1e8,2e9,\n2e8,4e9,2.9\n")
    for path, message in (
        (missing, "missing column 'tokens'"),
        (negative, "column 'params'"),
        (nan, "column 'loss'"),
        (tmp_path / "absent.csv", "no such file"),
    ):
        done = lmforge("scaling", "fit", str(path), "--approach", "3", "--json", timeout=120)
        assert done.returncode == 2, (path, done.stdout, done.stderr)
        assert done.stdout == ""
        assert f"lmforge scaling: {path}" in done.stderr or "lmforge scaling:" in done.stderr
        assert message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    too_few = tmp_path / "few.csv"
    too_few.write_text("params,tokens,loss\n1e8,2e9,3.0\n2e8,4e9,2.9\n")
    done = lmforge("scaling", "fit", str(too_few), "--approach", "3", "--json", timeout=120)
    assert done.returncode == 2 and "at least 5 points" in done.stderr
    bad_fit = tmp_path / "fit.json"
    bad_fit.write_text("{not json")
    done = lmforge("scaling", "recommend", "--fit", str(bad_fit), "--compute", "1e21", timeout=120)
    assert done.returncode == 2 and "not JSON" in done.stderr
    usage = lmforge("scaling", "fit", "--help", timeout=120)
    assert usage.returncode == 0 and "non_embedding_params" in usage.stdout and "Model Size" in usage.stdout
