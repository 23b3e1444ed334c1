"""The `scaling` DAG: its params map to the config, and a real `dag.test()` sweep (local Ray Train
runs of tiny models on tiny shards) writes results.csv, curves.csv, the report and summary.json."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_dags import _states, dagbag, deployment  # noqa: F401  # the module-scoped DagBag fixture

SEQ, BATCH, WORKERS = 32, 4, 1
PER_STEP = SEQ * BATCH * WORKERS


def commit_tiny_shards(root: Path, run_id: str) -> None:
    """Byte-level shards (tests/test_training_ray.py), committed as the run's `shards` stage."""
    from core.config import StorageConfig
    from core.datasets import commit
    from core.storage import open_storage
    from tests.test_training_ray import write_text_shards

    shards = root / "incoming-shards"
    shards.mkdir()
    write_text_shards(shards)
    commit(open_storage(StorageConfig(root=str(root))), run_id, "shards", shards, config={}, inputs={})


def test_scaling_dag_wiring_and_params(dagbag) -> None:  # noqa: F811
    dag = dagbag.get_dag("scaling")
    assert dag.max_active_runs == 1
    assert dag.task_dict["train_point"].upstream_task_ids == {"plan"}
    assert dag.task_dict["results"].upstream_task_ids == {"plan", "train_point"}
    assert dag.task_dict["fit"].upstream_task_ids == {"results"}
    schema = {k: dag.params.get_param(k).schema for k in dag.params}
    assert schema["design"]["enum"] == [None, "isoflop", "grid"]
    assert schema["budgets"]["type"] == ["null", "array"] and schema["sizes_per_budget"]["minimum"] == 3
    assert all(dag.params[k] is None for k in ("run_id", "design", "budgets", "eval_every", "overrides"))
    sections: list[str] = []
    for name in dag.params:
        section = dag.params.get_param(name).schema["section"]
        if not sections or sections[-1] != section:
            sections.append(section)
    assert sections == ["Run", "Design", "Training", "Fit", "Cluster", "Advanced"]
    for task in dag.tasks:
        assert task.retries == 2 and task.execution_timeout is not None, task.task_id


def test_params_map_to_the_config(tmp_path: Path, monkeypatch) -> None:
    from core.config import ConfigError, load_config
    from dags.scaling import sweep_overrides

    deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path)})
    params = {
        "design": "grid",
        "model_sizes": [20_000, 80_000],
        "tokens": [10_000],
        "eval_every": 5,
        "seq_len": 64,
        "workers": 2,
        "bootstrap": 0,
        "budgets": None,  # empty: the profile's
        "overrides": {"train": {"n_layer": 3}, "scaling": {"seed": 7}},
    }
    cfg = load_config(None, sweep_overrides(params))
    s = cfg.scaling
    assert (s.design, s.model_sizes, s.tokens, s.eval_every, s.seed) == (
        "grid",
        [20_000, 80_000],
        [10_000],
        5,
        7,
    )
    assert s.budgets == [1e12, 3e12, 1e13] and s.bootstrap == 0
    assert (cfg.train.seq_len, cfg.train.n_layer, cfg.ray.num_workers) == (64, 3, 2)
    with pytest.raises(ConfigError, match="refused"):
        sweep_overrides({"overrides": {"storage": {"root": "/elsewhere"}}})


def test_bad_params_fail_the_plan_without_training(dagbag, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path)})
    dag = dagbag.get_dag("scaling")
    dr = dag.test(run_conf={"run_id": "nothing-here"})  # no committed shards
    assert _states(dr)["plan"] == "failed"
    assert {_states(dr)[t] for t in ("train_point", "results", "fit")} == {"upstream_failed"}
    assert not (tmp_path / "runs/nothing-here/scaling").exists()


@pytest.fixture
def local_ray() -> Iterator[None]:
    """One local Ray for every point of the sweep (the tasks run in this process under `dag.test()`,
    and training/launch.py reuses a Ray it did not start): a Ray start per point costs seconds."""
    import ray

    from core.config import RayConfig
    from training.launch import ensure_ray

    owned = ensure_ray(RayConfig(num_workers=WORKERS))
    yield
    if owned:
        ray.shutdown()


@pytest.mark.timeout(300)
def test_a_small_sweep_writes_results_and_a_report(dagbag, tmp_path: Path, monkeypatch, local_ray) -> None:  # noqa: F811
    from training.scaling.sweep import CURVE_COLUMNS, RESULT_COLUMNS

    deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path)})
    commit_tiny_shards(tmp_path, "sw")
    # one IsoFLOP budget, three sizes (L1 d32, L2 d32, L1 d96: 12.8k, 25k, 112k non-embedding)
    budget = 6 * 50_112 * PER_STEP * 16
    conf = {
        "run_id": "sw",
        "budgets": [budget],
        "sizes_per_budget": 3,
        "min_params": 10_000,
        "max_params": 120_000,
        "min_steps": 4,
        "eval_every": 4,
        "seq_len": SEQ,
        "batch_size": BATCH,
        "workers": WORKERS,
        "bootstrap": 20,
        "overrides": {"train": {"log_every": 4, "warmup_steps": 2, "precision": "fp32"}},
    }
    dag = dagbag.get_dag("scaling")
    dr = dag.test(run_conf=conf)
    assert set(_states(dr).values()) == {"success"}, _states(dr)

    out = tmp_path / "runs/sw/scaling"
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert tuple(rows[0]) == RESULT_COLUMNS and len(rows) == 3
    assert [(int(r["n_layer"]), int(r["n_embd"])) for r in rows] == [(1, 32), (2, 32), (1, 96)]
    for r in rows:
        n, d = int(r["non_embedding_params"]), int(r["tokens"])
        assert r["run_id"] == f"sw/{r['point_id']}" and r["lmforge_run"] == "sw"
        assert d == int(r["steps"]) * PER_STEP and float(r["budget"]) == budget
        assert float(r["flops"]) == 6.0 * n * d and float(r["flops_total"]) == 6.0 * int(r["params"]) * d
        assert float(r["flops_measured"]) > float(r["flops_total"])  # attention and the tied head's matmul
        assert 0 < float(r["best_val_loss"]) <= float(r["final_val_loss"]) == float(r["loss"]) < 5.6  # ln 256
        assert r["skipped"] == "False"
    steps = [int(r["steps"]) for r in rows]
    assert steps == sorted(steps, reverse=True) and steps[-1] >= 4  # larger models, fewer tokens

    curves = list(csv.DictReader(io.StringIO((out / "curves.csv").read_text())))
    assert tuple(curves[0]) == CURVE_COLUMNS
    for r in rows:
        mine = [c for c in curves if c["point_id"] == r["point_id"]]
        assert int(mine[-1]["step"]) == int(r["steps"]) and float(mine[-1]["val_loss"]) == float(r["loss"])
        assert [int(c["tokens_seen"]) for c in mine] == [int(c["step"]) * PER_STEP for c in mine]
        assert int(r["evals"]) == len(mine) >= 1

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["points"], summary["done"], summary["missing"]) == (3, 3, [])
    assert summary["results"].endswith("runs/sw/scaling/results.csv")
    assert {"fit.json", "report.md", "report.html", "loss_vs_compute.png"} <= set(summary["report_files"])
    # every approach is fitted or says why not (one budget of three sizes: no IsoFLOP minimum, too
    # few points for the five parameters of approach 3)
    fits = summary["fits"]
    assert {k for k in fits if k != "skipped"} | set(fits.get("skipped", {})) == {
        "approach1", "approach2", "approach3", "kaplan"
    }  # fmt: skip
    assert "budgets" in fits["skipped"]["approach2"] and "approach3" in fits["skipped"]
    assert fits["kaplan"]["alpha_N"]["value"] == pytest.approx(fits["kaplan"]["alpha_N"]["value"])  # finite
    assert summary["recommendation"]["compute"] == pytest.approx(10 * budget)
    report = (out / "report/report.md").read_text()
    assert "## Sweep of run sw" in report and "3 of 3 points finished" in report
    assert (out / "report/loss_vs_compute.png").read_bytes().startswith(b"\x89PNG")
    assert (out / f"{rows[0]['point_id']}/point.json").exists()

    # a second run with the same params skips every point: committed like a stage
    dr = dag.test(run_conf=conf)
    assert set(_states(dr).values()) == {"success"}, _states(dr)
    again = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert [r["skipped"] for r in again] == ["True"] * 3
    assert [r["loss"] for r in again] == [r["loss"] for r in rows]
