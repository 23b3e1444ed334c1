"""The real Airflow UI's trigger form, in headless Chromium (scripts/ui_trigger_check.py).

Needs `apt-get install chromium` and `pip install playwright` (the system Chromium is used, no
`playwright install`); skipped when either is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.config import REPO_ROOT
from scripts.ui_trigger_check import find_chromium, main

pytestmark = pytest.mark.slow

pytest.importorskip(
    "playwright.sync_api", reason="Playwright not installed (pip install playwright; no `playwright install`)"
)
if find_chromium() is None:
    pytest.skip("no Chromium on PATH (apt-get install chromium, or set $CHROMIUM)", allow_module_level=True)


def run(tmp_path: Path, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run the check; its exit code and its JSON results by DAG id."""
    out = tmp_path / "results.json"
    code = main([*args, "--json", str(out)])
    assert out.exists(), f"the check did not get as far as the forms (exit code {code}; see stderr)"
    return code, {r["dag_id"]: r for r in json.loads(out.read_text())}


def test_trigger_enabled_with_default_params(tmp_path: Path) -> None:
    """Every DAG can be triggered as it comes; a curation run is created (queued, paused DAG)."""
    code, results = run(tmp_path)
    assert set(results) == {"curation", "pretrain", "scaling"}
    for dag_id, r in results.items():
        assert r["trigger_enabled"], f"{dag_id}: Trigger disabled; flagged params: {r['flagged']}"
        assert r["flagged"] == {}, f"{dag_id}: the form flags {r['flagged']}"
        assert r["missing_fields"] == [], f"{dag_id}: params without a form field: {r['missing_fields']}"
        assert r["errors"] == [], f"{dag_id}: {r['errors']}"
        assert sorted(r["shown"]) == sorted(r["params"]), f"{dag_id}: fields never shown"
        assert all(r["descriptions"].values()) and set(r["descriptions"]) == set(r["params"]), r
    curation = results["curation"]
    assert curation["triggered"] and curation["run_id"], curation
    assert curation["run_state"] == "queued"
    assert curation["conf_matches_defaults"]
    assert code == 0


def test_check_catches_a_non_nullable_empty_default(tmp_path: Path) -> None:
    """A scratch copy of the pretrain DAG with a `Param("", type="string")`: Trigger is disabled."""
    dags = tmp_path / "dags"
    dags.mkdir()
    source = (REPO_ROOT / "dags" / "pretrain.py").read_text()
    assert source.count("params={") == 1 and "from __future__ import annotations\n" in source
    source = source.replace(
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\nfrom airflow.sdk import Param as ScratchParam\n",
        1,
    ).replace("params={", 'params={\n        "legacy_profile": ScratchParam("", type="string"),', 1)
    (dags / "pretrain.py").write_text(source)

    code, results = run(tmp_path, "--dags-folder", str(dags), "--dags", "pretrain", "--trigger")
    pretrain = results["pretrain"]
    assert not pretrain["trigger_enabled"]
    assert "required, empty" in pretrain["flagged"].get("legacy_profile", []), pretrain["flagged"]
    assert set(pretrain["flagged"]) == {"legacy_profile"}
    assert code == 1
