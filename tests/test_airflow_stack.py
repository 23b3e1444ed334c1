"""The DAGs through a real Airflow: api-server, scheduler (LocalExecutor on SQLite), dag-processor and
triggerer (tests/airflow_stack.py), then the UI in headless Chromium.

One stack for the module. A curation run is triggered through REST API v2 with conf params; its
Spark stages run through spark-submit; its `token_shards` Asset event schedules `pretrain`, which
trains with Ray. The browser test then opens the DAG list and the trigger forms and triggers
`pretrain` for the same run from the form: its shards and config are unchanged, so training is
skipped (the committed stage) and the run takes seconds. Screenshots go to $LMFORGE_TEST_ARTIFACTS
(default `.artifacts/ui/`, git-ignored).

The module takes about 4.5 min on an idle 2-core machine (stack 16 s, curation's ten spark-submits
about 3 min, pretrain 30 s, browser 20 s), several times that when the cores are shared.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from core.config import REPO_ROOT
from demo.safety import write_evaluation_sets
from tests.airflow_stack import AirflowStack, ApiError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

RUN_ID = "e2e-airflow"
DAGS = ("curation", "pretrain")
TRAIN_STEPS = 12


def artifacts_dir() -> Path:
    """Where the UI screenshots go: $LMFORGE_TEST_ARTIFACTS, else `<repo>/.artifacts/ui/`."""
    return Path(os.environ.get("LMFORGE_TEST_ARTIFACTS") or REPO_ROOT / ".artifacts" / "ui")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("airflow-stack-data")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, data_root: Path, small_corpus: Path
) -> Iterator[AirflowStack]:
    """The real components on a fresh home; the deployment config holds the tiny model and the
    named locations (what params cannot set), so every run triggered here, by REST or from the
    UI's form, gets the same small config."""
    root = tmp_path_factory.mktemp("airflow-stack")
    deployment = root / "deployment.json"
    deployment.write_text(
        json.dumps(
            {
                "storage": {"root": str(data_root)},
                "locations": {
                    "books": str(small_corpus / "books"),
                    "code": str(small_corpus / "code"),
                    "evals": str(write_evaluation_sets(root / "evals", small_corpus / "code")),
                },
                "decontam": {"evals": "evals"},
                "spark": {"shuffle_partitions": 2},
                "tokenizer": {"vocab_size": 512},
                "train": {"seq_len": 64, "batch_size": 4, "steps": TRAIN_STEPS, "log_every": 4},
                "ray": {"num_workers": 1},
                # Each gate imports Great Expectations in its spark-submit (10-20 s a stage on a
                # busy 2-core machine); the gates have their own tests (test_validate*.py).
                "validation": {"mode": "off"},
            }
        )
    )
    started = time.monotonic()
    with AirflowStack.start(root / "home", {"LMFORGE_CONFIG": str(deployment)}) as running:
        running.wait_for_dags(DAGS)
        print(f"stack up and DAGs parsed in {time.monotonic() - started:.0f}s ({running.base_url})")
        running.unpause(*DAGS)
        yield running


@pytest.fixture(scope="module")
def pipeline(stack: AirflowStack, site: Any) -> dict[str, Any]:
    """A curation run triggered through the REST API, and the pretrain run its Asset event made."""
    conf = {
        "run_id": RUN_ID,
        "seeds": [site.base_url],
        "max_pages": 15,
        "max_depth": 2,
        "sources": ["books", "code"],
        "books": "books",
        "code": "code",
    }
    started = time.monotonic()
    curation = stack.trigger("curation", conf)
    assert curation["state"] == "queued" and curation["conf"] == conf, curation
    done = stack.wait_for_run("curation", curation["dag_run_id"], timeout_s=1500)
    assert done["state"] == "success", stack.failure_report("curation", curation["dag_run_id"])
    curated_s = time.monotonic() - started

    def asset_run() -> dict[str, Any] | None:
        return next(iter(stack.runs("pretrain")), None)

    pretrain = stack.wait("the token_shards event to schedule pretrain", asset_run, timeout_s=120)
    trained = stack.wait_for_run("pretrain", pretrain["dag_run_id"], timeout_s=600)
    assert trained["state"] == "success", stack.failure_report("pretrain", pretrain["dag_run_id"])
    print(f"curation {curated_s:.0f}s, then pretrain {time.monotonic() - started - curated_s:.0f}s")
    return {"conf": conf, "curation": done, "pretrain": trained}


def xcom_dict(value: Any) -> dict[str, Any]:
    """An XCom value as the API serves it (a dict, or its JSON / repr text)."""
    if isinstance(value, str):
        value = json.loads(value)
    assert isinstance(value, dict), value
    return value


def test_out_of_range_param_is_rejected_with_400(stack: AirflowStack) -> None:
    """The API validates conf against the DAG's params before creating a run."""
    before = [r["dag_run_id"] for r in stack.runs("curation")]
    with pytest.raises(ApiError) as err:
        stack.trigger("curation", {"run_id": "bad", "max_depth": 1000})
    assert err.value.status == 400, err.value
    assert "max_depth" in err.value.body and "maximum of 100" in err.value.body, err.value.body
    assert [r["dag_run_id"] for r in stack.runs("curation")] == before  # no run created


def test_curation_then_asset_triggered_pretrain(
    stack: AirflowStack, pipeline: dict[str, Any], data_root: Path
) -> None:
    """Every task succeeded; the shards' Asset event scheduled pretrain with the run's conf."""
    curation, pretrain = pipeline["curation"], pipeline["pretrain"]
    assert curation["run_type"] == "manual" and curation["conf"] == pipeline["conf"]
    states = stack.task_states("curation", curation["dag_run_id"])
    assert set(states) >= {"prepare", "crawl", "ingest", "extract", "near_dedup", "shards", "publish"}
    assert set(states.values()) == {"success"}, states
    assert (data_root / f"runs/{RUN_ID}/shards/_MANIFEST.json").is_file()
    run_path = f"/dags/curation/dagRuns/{quote(curation['dag_run_id'], safe='')}"
    pools = {t["task_id"]: t["pool"] for t in stack.api.get(f"{run_path}/taskInstances")["task_instances"]}
    assert pools["shards"] == pools["crawl"] == "spark", pools  # the pool the stack created

    events = stack.api.get("/assets/events?limit=100")["asset_events"]
    shards_events = [e for e in events if e["source_dag_id"] == "curation"]
    assert len(shards_events) == 1, events
    event = shards_events[0]
    assert event["source_run_id"] == curation["dag_run_id"] and event["extra"]["run_id"] == RUN_ID
    crawl = json.loads(event["extra"]["overrides_json"])["crawl"]  # the conf, as config overrides
    assert (crawl["max_pages"], crawl["max_depth"], crawl["seeds"]) == (15, 2, pipeline["conf"]["seeds"])

    assert pretrain["run_type"] == "asset_triggered", pretrain
    assert [r["run_id"] for r in event["created_dagruns"]] == [pretrain["dag_run_id"]], event
    assert set(stack.task_states("pretrain", pretrain["dag_run_id"]).values()) == {"success"}
    trained = xcom_dict(stack.xcom("pretrain", pretrain["dag_run_id"], "train"))
    assert trained["run_id"] == RUN_ID and trained["skipped"] is False
    assert trained["steps"] == TRAIN_STEPS  # the deployment config reached the Ray workers
    summary = json.loads((data_root / f"runs/{RUN_ID}/summary.json").read_text())
    assert summary["tokens"]["train_tokens"] > 0 and summary["documents_by_source"]["web"] > 0
    assert Path(summary["training"]["checkpoint"]).exists()
    assert summary["training"]["last_loss"] < summary["training"]["first_loss"]
    assert [f["stage"] for f in summary["funnel"]] == [
        "ingest", "extract", "dedup", "quality", "copyright", "safety", "near_dedup", "decontaminate"
    ]  # fmt: skip
    assert summary["copyright"]["decisions"]["code"]  # each stage's stats reach the summary
    assert summary["safety"]["pii_by_type"]["email"] > 0  # the standard library's author addresses
    assert summary["decontamination"]["hits_by_benchmark"]["code-docs-quiz"] >= 1  # the quoted modules
    assert {g["check"] for g in summary["diversity"]["gates"]} >= {"max_domain_share"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (no `playwright install`)")
    from playwright.sync_api import sync_playwright

    from scripts.ui_trigger_check import find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium, or set $CHROMIUM)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def test_ui_lists_the_dags_shows_the_form_and_triggers_a_run(
    stack: AirflowStack, pipeline: dict[str, Any], browser: Any
) -> None:
    """Headless Chromium: the DAG list, both trigger forms with every param shown and described and
    Trigger enabled; pretrain triggered from its form (run_id typed in) succeeds, training skipped."""
    from scripts.ui_trigger_check import check_dag_list, check_form

    shots = artifacts_dir()
    shutil.rmtree(shots, ignore_errors=True)  # a stale screenshot must not pass for this run's
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        missing = check_dag_list(page, stack.base_url, DAGS, 60_000, shots / "dag-list.png")
        assert missing == [], f"the DAG list does not show {missing}"

        shot = shots / "curation-form.png"
        form = check_form(page, stack.api, "curation", False, 60_000, shot, show="Crawl")
        details = stack.api.get("/dags/curation/details")["params"]
        assert form.trigger_enabled and form.flagged == {} and form.missing_fields == [], form
        assert form.sections == ["Run", "Crawl", "Sources", "Curation", "Copyright", "Safety", "Advanced"]
        assert sorted(form.shown) == sorted(details), "a param's field was never shown"
        assert form.descriptions == {n: p["description"] for n, p in details.items()}

        before = {r["dag_run_id"] for r in stack.runs("pretrain")}
        form = check_form(
            page,
            stack.api,
            "pretrain",
            True,
            60_000,
            shots / "pretrain-form.png",
            fill={"run_id": RUN_ID},
            keep_paused=False,
        )
    finally:
        page.close()
    assert form.trigger_enabled and form.flagged == {} and form.errors == [], form
    assert all(form.descriptions.values()) and sorted(form.shown) == sorted(form.params), form
    assert form.run_id and form.run_id not in before and form.conf_matches_defaults, form
    run = stack.wait_for_run("pretrain", form.run_id, timeout_s=300)
    assert run["state"] == "success", stack.failure_report("pretrain", form.run_id)
    assert run["run_type"] == "manual" and run["conf"]["run_id"] == RUN_ID
    trained = xcom_dict(stack.xcom("pretrain", form.run_id, "train"))
    # Same shards, config and code: the committed stage is reused (a source file edited while the
    # module runs changes the code version, and then it rightly trains again).
    assert trained["skipped"] is True and trained["steps"] == TRAIN_STEPS, trained
    for name in ("dag-list.png", "curation-form.png", "pretrain-form.png"):
        assert (shots / name).stat().st_size > 10_000, f"screenshot {name} missing or blank"
