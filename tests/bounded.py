"""Run one parsing call in a fresh Python process and measure what it cost.

The hostile-input tests assert that cost is bounded (peak memory above the process's baseline,
wall time), so each call runs alone: `/proc/self/clear_refs` value 5 resets the kernel's peak-RSS
counter (VmHWM, Linux >= 4.0) after imports, and VmHWM after the call is the peak the call
caused. The target is `module:function`, called with JSON arguments; it returns a JSON-able
summary (counts, reasons), never the parsed data, so the parent's memory stays out of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20


@dataclass
class Cost:
    result: Any
    peak_above_baseline_mib: float
    seconds: float


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_bounded(target: str, *args: Any, timeout_s: float = 120.0) -> Cost:
    """Call `target(*args)` in a child process; its result, peak RSS growth and time."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "tests.bounded", target, json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise AssertionError(f"{target} failed in its child process:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return Cost(out["result"], out["peak_kib"] / 1024, out["seconds"])


def _child(target: str, raw_args: str) -> None:
    import gc
    import importlib

    module, _, name = target.partition(":")
    fn = getattr(importlib.import_module(module), name)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    baseline = _status_kib("VmRSS")
    start = time.perf_counter()
    result = fn(*json.loads(raw_args))
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") - baseline
    print(json.dumps({"result": result, "peak_kib": peak, "seconds": seconds}))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
