"""A local Ray for training starts with its dashboard, whose URL is logged and answers; without the
dashboard's packages, or when asked not to, Ray starts without it."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import ray
import requests

from core.config import REPO_ROOT, RayConfig
from training.launch import DASHBOARD_ENV, dashboard_wanted, ensure_ray
from training.loop import PROGRESS_ENV


def test_a_local_ray_starts_with_its_dashboard_and_logs_its_url(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ray.is_initialized():  # another test's Ray: ensure_ray would reuse it
        ray.shutdown()
    monkeypatch.setenv(DASHBOARD_ENV, "1")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # ray.init sets it in this process: undone after
    with caplog.at_level(logging.INFO, logger="lmforge.train"):
        owned = ensure_ray(RayConfig(num_workers=2))
    try:
        assert owned
        (line,) = [r.getMessage() for r in caplog.records if r.name == "lmforge.train"]
        assert line.startswith("Ray dashboard: http://127.0.0.1:")
        url, _, note = line.removeprefix("Ray dashboard: ").partition(" ")
        headers = {}
        if note:  # Ray's token authentication: the line says where the token is, never the token
            assert note == "(token authentication: the dashboard asks for the token in ~/.ray/auth_token)"
            token = (Path.home() / ".ray" / "auth_token").read_text().strip()
            assert token not in line
            headers["Authorization"] = f"Bearer {token}"
        version = requests.get(f"{url}/api/version", headers=headers, timeout=30)
        assert version.status_code == 200 and version.json()["ray_version"] == ray.__version__
    finally:
        ray.shutdown()


def test_no_dashboard_without_its_packages_or_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DASHBOARD_ENV, "1")
    assert dashboard_wanted()  # this venv has ray[default]'s packages
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if aiohttp were not installed
    assert not dashboard_wanted()
    monkeypatch.delitem(sys.modules, "aiohttp")
    monkeypatch.setenv(DASHBOARD_ENV, "0")
    assert not dashboard_wanted()


TRAIN = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
sys.path.insert(0, "tests")
from test_training_ray import write_text_shards
from core.config import load_config
from core.storage import open_storage
from training.launch import run_pretraining
tmp = Path(sys.argv[1])
write_text_shards(tmp)
cfg = load_config(overrides={
    "storage": {"root": str(tmp / "store")},
    "ray": {"num_workers": 2, "cpus_per_worker": 1},
    "train": {"model_size": "tiny", "steps": 4, "seq_len": 32, "batch_size": 8, "log_every": 2,
              "checkpoint_every": 4},
})
run_pretraining(cfg, tmp, open_storage(cfg.storage).uri("runs/t/train"), name="t", tracking=False)
"""


def test_rank_0_s_step_lines_reach_the_driver_s_stderr_from_a_ray_worker(tmp_path: Path) -> None:
    """The task log is the driver's output: the workers' lines must get there, once (rank 0 only),
    without colour codes."""
    env = {**os.environ, DASHBOARD_ENV: "0", PROGRESS_ENV: "0"}  # a line every step
    env.pop("RAY_COLOR_PREFIX", None)
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    steps = re.findall(r"\(RayTrainWorker pid=\d+\S*\) train step (\d)/4 \(\d+%\): loss \d+\.\d{4}, ", output)
    assert steps == ["1", "2", "3", "4"], output[-3000:]
    assert "\x1b[" not in output.split("train step 1/4")[0].rsplit("\n", 1)[-1]  # no ANSI colour
    assert "lmforge.train INFO Ray dashboard: off" in output
