"""The GPU MFU script stays runnable: its CPU dry run goes through every path the GPU run takes
(model, train step, attention-kernel choice, a refused kernel reported as an error row, JSON out)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.config import REPO_ROOT


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
    assert flash["loss_first_last"][0] > 10.0  # ln(50304) = 10.83 at initialisation
    assert cudnn["attention"] == "cudnn" and "No viable backend" in cudnn["error"]  # CPU has no cuDNN
    assert out.stdout.strip().splitlines()[-1].startswith("best: batch 2, flash attention")
