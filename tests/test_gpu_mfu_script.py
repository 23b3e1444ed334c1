"""The GPU MFU script stays runnable: its CPU dry run goes through every path the GPU run takes
(model, train step, attention-kernel choice, a refused kernel reported as an error row, JSON out)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import REPO_ROOT
from scripts.gpu_mfu import peak_for, peak_note


@pytest.mark.parametrize(
    ("name", "tflops"),
    [  # names as torch.cuda.get_device_name returns them; NVIDIA data sheets, dense bf16
        ("NVIDIA H100 80GB HBM3", 989.4),  # H100 SXM5
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),  # H200 SXM
        ("NVIDIA H200 NVL", 835.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
    ],
)
def test_peak_matches_the_exact_product(name: str, tflops: float) -> None:
    """PCIe and NVL parts are not scored against the SXM peak (a substring match on "H100" did)."""
    assert peak_for(name) == tflops * 1e12
    assert peak_note(name) == f"peak {tflops:g} dense bf16 TFLOP/s for {name!r}"


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 4090", "NVIDIA H100", "NVIDIA L40S", "cpu"])
def test_unknown_device_says_so_rather_than_guessing(name: str) -> None:
    assert peak_for(name) is None
    assert peak_note(name) == f"unknown device {name!r}: no datasheet peak in training/metrics.py, so no MFU"


def test_cpu_dry_run_measures_and_reports_a_refused_kernel(tmp_path: Path) -> None:
    cmd = [sys.executable, "scripts/gpu_mfu.py", "--cpu-dry-run", "--no-compile", "--batch", "2"]
    cmd += [
        "--seq",
        "32",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--attention",
        "flash",
        "cudnn",
        "--out",
        str(tmp_path),
    ]
    out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True)
    rows = json.loads((tmp_path / "gpu_mfu.json").read_text())
    flash, cudnn = rows
    assert flash["attention"] == "flash" and flash["tokens_per_s"] > 0 and flash["params"] > 0
    assert flash["mfu"] is None and flash["peak_note"].startswith("unknown device 'cpu'")
    assert flash["loss_first_last"][0] > 10.0  # ln(50304) = 10.83 at initialisation
    assert cudnn["attention"] == "cudnn" and "No viable backend" in cudnn["error"]  # CPU has no cuDNN
    assert out.stdout.strip().splitlines()[-1].startswith("best: batch 2, flash attention")
