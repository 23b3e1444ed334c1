"""Check the real Airflow UI's trigger form: is Trigger enabled with every DAG's default params?

Starts an embedded Airflow 3 (tests/airflow_stack.py: temporary AIRFLOW_HOME, SQLite, `airflow
api-server` on a free loopback port and `airflow dag-processor`, the simple auth manager with
everyone an admin), waits until the DAGs are parsed, then opens each DAG's trigger form in headless
Chromium (Playwright), opens each param section in turn, and reports whether the Trigger button is
enabled, which params the form flags (required and empty, or invalid), which it never shows, and
each field's description. tests/test_airflow_stack.py reuses `check_form` and `check_dag_list`
against a full stack (with a scheduler) and triggers a run that executes.

For the DAGs in `--trigger` (default: curation) it then unticks "Unpause ... on trigger", clicks
Trigger with the defaults and checks through the REST API that a run was created with the default
conf. No scheduler is started and the DAG stays paused, so the run stays queued: no Spark work.

    PYTHONPATH=. .venv/bin/python scripts/ui_trigger_check.py [--dags-folder DIR] [--json OUT]

Needs `apt-get install chromium` and `pip install playwright` (no `playwright install`: the
system Chromium is used; `--chromium` or $CHROMIUM names another binary). Exits 1 when a Trigger
button is disabled, a param is flagged or a check fails, 2 when the browser or driver is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.airflow_stack import AirflowStack, Api, StackError  # noqa: E402

DEFAULT_DAGS = ("curation", "pretrain", "scaling")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

# Per field of the form's "Run Parameters": its label, whether it is required, and why it is
# flagged (required but empty, Chakra's data-invalid / aria-invalid, native constraint failure,
# error text). Switches are skipped for the native check: a required unticked checkbox is
# `:invalid` to the browser, yet `false` is a valid value for a boolean param.
FIELDS_JS = """
(dialog) => [...dialog.querySelectorAll('[data-scope="field"][data-part="root"]')].map((root) => {
  const label = root.querySelector('[data-scope="field"][data-part="label"]');
  const name = label ? label.textContent.replace('*', '').trim() : '';
  const required = !!(label && label.hasAttribute('data-required'));
  const controls = [...root.querySelectorAll('input, textarea, select')]
    .filter((el) => el.type !== 'checkbox' && el.type !== 'radio' && el.type !== 'hidden');
  const reasons = [];
  if (required && controls.length && controls.every((el) => el.value === '')) reasons.push('required, empty');
  if (root.hasAttribute('data-invalid') || root.querySelector('[data-invalid], [aria-invalid="true"]'))
    reasons.push('marked invalid');
  if (controls.some((el) => !el.checkValidity())) reasons.push('browser validation failed');
  const errors = [...root.querySelectorAll('[data-part="error-text"]')].map((e) => e.textContent.trim());
  for (const text of errors) if (text) reasons.push(text);
  const helper = root.querySelector('[data-scope="field"][data-part="helper-text"]');
  const description = helper ? helper.textContent.trim() : '';
  return {name, required, reasons, description};
})
"""


@dataclass
class FormResult:
    """What the trigger form of one DAG shows with the default params."""

    dag_id: str
    trigger_enabled: bool = False
    params: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    flagged: dict[str, list[str]] = field(default_factory=dict)
    missing_fields: list[str] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)  # params whose field was seen (visible)
    triggered: bool = False
    run_id: str | None = None
    run_state: str | None = None
    conf_matches_defaults: bool | None = None  # the run's conf is the form's: defaults and `fill`
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Trigger enabled, nothing flagged, and (when triggered) the run created as expected."""
        run_ok = not self.triggered or (self.run_id is not None and bool(self.conf_matches_defaults))
        return self.trigger_enabled and not self.flagged and not self.errors and run_ok


_STARTED = time.monotonic()


def log(message: str) -> None:
    """A progress line on stderr, with the seconds since the script started."""
    print(f"[{time.monotonic() - _STARTED:5.1f}s] {message}", file=sys.stderr, flush=True)


class CheckError(RuntimeError):
    """The embedded Airflow or the browser could not be brought to the point of checking."""


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium binary: `--chromium`, $CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    for candidate in (explicit, os.environ.get("CHROMIUM"), *CHROMIUM_NAMES):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@contextlib.contextmanager
def embedded_airflow(
    dag_ids: tuple[str, ...], dags_folder: Path | None, keep: bool = False, timeout: float = 240
) -> Iterator[Api]:
    """A migrated temporary Airflow home, an API server and a DAG processor (tests/airflow_stack.py,
    no scheduler: a triggered run stays queued); `dag_ids` parsed."""
    home = Path(tempfile.mkdtemp(prefix="lmforge-ui-check-"))
    extra = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder.resolve())} if dags_folder is not None else {}
    try:
        log(f"AIRFLOW_HOME {home}: starting the api-server and the dag-processor")
        try:
            stack = AirflowStack.start(home, extra, ("api-server", "dag-processor"), timeout)
        except StackError as exc:
            raise CheckError(str(exc)) from None
        with stack:
            log(f"API server up on {stack.base_url}; waiting for the DAGs to be parsed")
            try:
                stack.wait_for_dags(dag_ids, timeout)
            except StackError as exc:
                raise CheckError(str(exc)) from None
            log(f"parsed: {', '.join(dag_ids)}")
            yield stack.api
    finally:
        if keep:
            print(f"kept AIRFLOW_HOME {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)


def default_conf(api: Api, dag_id: str) -> dict[str, Any]:
    """The DAG's params at their defaults, as the REST API serves them."""
    params = api.get(f"/dags/{dag_id}/details")["params"] or {}
    return {name: p.get("value") if isinstance(p, dict) else p for name, p in params.items()}


def check_form(
    page: Any,
    api: Api,
    dag_id: str,
    trigger: bool,
    timeout_ms: int,
    screenshot: Path | None = None,
    fill: Mapping[str, str] | None = None,
    keep_paused: bool = True,
    show: str | None = None,
) -> FormResult:
    """Open the DAG's trigger form, expand its param sections, read the Trigger button and the
    fields (with their descriptions); type `fill` into text fields; optionally trigger. The
    screenshot shows section `show` open (default: the one with `fill`'s fields, else the first)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    defaults = default_conf(api, dag_id)
    result = FormResult(dag_id=dag_id, params=list(defaults))
    log(f"{dag_id}: opening the trigger form")
    page.goto(f"{api.base_url}/dags/{dag_id}", wait_until="domcontentloaded")
    page.get_by_role("button", name="Trigger Dag").click(timeout=timeout_ms)
    dialog = page.get_by_role("dialog")
    dialog.wait_for(timeout=timeout_ms)
    button = dialog.get_by_role("button", name="Trigger", exact=True)
    button.wait_for(timeout=timeout_ms)
    # The fields render (and validate) after the DAG's details load, in collapsed sections (the
    # params' `section`): wait for the first label, then open every section but the run options.
    labels = dialog.locator('[data-scope="field"][data-part="label"]')
    with contextlib.suppress(PlaywrightTimeout):  # a form without fields is reported below
        labels.first.wait_for(state="attached", timeout=timeout_ms)
    shown_in = open_sections(dialog, result, timeout_ms)
    with contextlib.suppress(PlaywrightTimeout):  # a param without a field is reported below
        for name in defaults:
            labels.filter(has_text=name).first.wait_for(state="attached", timeout=2000)
    # The accordion keeps one section open: the one with the fields to fill, else the first.
    to_fill = [shown_in[n] for n in (fill or {}) if n in shown_in]
    if show is None:
        show = next(iter(to_fill or result.sections), None)
    if show is not None:
        open_section(dialog, show, timeout_ms)
    for name, value in (fill or {}).items():
        dialog.locator(f"#element_{name}").fill(value)
    with contextlib.suppress(AssertionError):  # let validation settle; a disabled button stays so
        expect(button).to_be_enabled(timeout=5000)
    page.wait_for_timeout(1000)  # and catch a button enabled only until validation runs
    result.trigger_enabled = button.is_enabled()
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        # The dialog scrolls inside the viewport: make the viewport tall enough for the open section.
        size = page.viewport_size or {"width": 1400, "height": 1000}
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], 2400)})
        try:
            dialog.screenshot(path=str(screenshot))
        finally:
            page.set_viewport_size(size)
    log(f"{dag_id}: Trigger {'enabled' if result.trigger_enabled else 'DISABLED'}")
    fields = {f["name"]: f for f in dialog.evaluate(FIELDS_JS) if f["name"]}
    result.missing_fields = [n for n in defaults if n not in fields]
    result.required = [n for n in defaults if fields.get(n, {}).get("required")]
    result.flagged = {n: f["reasons"] for n, f in fields.items() if f["reasons"]}
    result.descriptions = {n: fields[n]["description"] for n in defaults if n in fields}
    if trigger and result.trigger_enabled:
        conf = {**defaults, **(fill or {})}
        trigger_run(page, dialog, button, api, result, conf, timeout_ms, keep_paused)
    return result


def _sections(dialog: Any) -> dict[str, Any]:
    """The form's param sections (accordion triggers) by name; not the run options."""
    triggers = dialog.locator('[data-scope="accordion"][data-part="item-trigger"]')
    found = {triggers.nth(i).inner_text().strip(): triggers.nth(i) for i in range(triggers.count())}
    found.pop("Advanced Options", None)  # conf JSON, run id and note: not params
    return found


def open_section(dialog: Any, name: str, timeout_ms: int) -> list[str]:
    """Open one section (the accordion closes the others); the param labels it shows."""
    trigger = _sections(dialog)[name]
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    content = dialog.locator(f'[id="{trigger.get_attribute("aria-controls")}"]')
    labels = content.locator('[data-scope="field"][data-part="label"]')
    labels.first.wait_for(timeout=timeout_ms)  # visible
    return [labels.nth(i).inner_text().replace("*", "").strip() for i in range(labels.count())]


def open_sections(dialog: Any, result: FormResult, timeout_ms: int) -> dict[str, str]:
    """Open each section in turn, so each param is seen shown, not only in the DOM: param -> section."""
    shown_in: dict[str, str] = {}
    for name in _sections(dialog):
        result.sections.append(name)
        shown_in.update(dict.fromkeys(open_section(dialog, name, timeout_ms), name))
    result.shown = list(shown_in)
    return shown_in


def check_dag_list(
    page: Any, base_url: str, dag_ids: Iterable[str], timeout_ms: int, screenshot: Path | None
) -> list[str]:
    """Open the UI's DAG list; the DAG ids of `dag_ids` that it does not show (empty: all shown)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{base_url}/dags", wait_until="domcontentloaded")
    missing = []
    for i, dag_id in enumerate(dag_ids):
        try:
            page.get_by_role("link", name=dag_id, exact=True).first.wait_for(
                timeout=timeout_ms if i == 0 else 5000
            )
        except PlaywrightTimeout:
            missing.append(dag_id)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    return missing


def trigger_run(
    page: Any,
    dialog: Any,
    button: Any,
    api: Api,
    result: FormResult,
    conf: dict[str, Any],
    timeout_ms: int,
    keep_paused: bool = True,
) -> None:
    """Click Trigger and check through the REST API that the run exists with `conf`. With
    `keep_paused` "Unpause on trigger" is unticked, and the DAG must still be paused after."""
    dag_id = result.dag_id
    before = {r["dag_run_id"] for r in api.get(f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]}
    unpause = dialog.get_by_role("checkbox", name=f"Unpause {dag_id} on trigger")
    if keep_paused and unpause.count() and unpause.is_checked():
        dialog.get_by_text(f"Unpause {dag_id} on trigger").click()
        if unpause.is_checked():
            result.errors.append("could not untick 'Unpause on trigger'; not triggering")
            return

    def is_trigger_post(resp: Any) -> bool:
        return resp.request.method == "POST" and resp.url.endswith(f"/dags/{dag_id}/dagRuns")

    log(f"{dag_id}: clicking Trigger{' (DAG stays paused)' if keep_paused else ''}")
    with page.expect_response(is_trigger_post, timeout=timeout_ms) as info:
        button.click()
    result.triggered = True
    if info.value.status >= 300:
        result.errors.append(f"trigger POST answered {info.value.status}: {info.value.text()[:300]}")
        return
    runs = [
        r for r in api.get(f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"] if r["dag_run_id"] not in before
    ]
    if len(runs) != 1:
        result.errors.append(f"expected one new dag run, found {len(runs)}")
        return
    run = runs[0]
    result.run_id, result.run_state = run["dag_run_id"], run["state"]
    result.conf_matches_defaults = run.get("conf") == conf
    if not result.conf_matches_defaults:
        diff = {k: (run.get("conf", {}).get(k), v) for k, v in conf.items() if run["conf"].get(k) != v}
        result.errors.append(f"run conf differs from the form's (conf, form): {diff}")
    if run.get("run_type") != "manual":
        result.errors.append(f"run type {run.get('run_type')!r}, expected 'manual'")
    if keep_paused and not api.get(f"/dags/{dag_id}")["is_paused"]:
        result.errors.append("the DAG was unpaused by the trigger")


def run_check(
    dag_ids: tuple[str, ...] = DEFAULT_DAGS,
    trigger: tuple[str, ...] = ("curation",),
    dags_folder: Path | None = None,
    chromium: str | None = None,
    keep: bool = False,
    screenshots: Path | None = None,
    timeout: float = 240,
) -> list[FormResult]:
    """Start Airflow, check every DAG's trigger form in headless Chromium, stop everything."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium(chromium)
    if executable is None:
        raise CheckError(f"no Chromium found (tried {', '.join(CHROMIUM_NAMES)}; set --chromium)")
    with embedded_airflow(dag_ids, dags_folder, keep, timeout) as api, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True)
        try:
            results = []
            for dag_id in dag_ids:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                shot = screenshots / f"{dag_id}.png" if screenshots is not None else None
                try:
                    results.append(check_form(page, api, dag_id, dag_id in trigger, 60_000, shot))
                finally:
                    page.close()
            return results
        finally:
            browser.close()


def format_table(results: list[FormResult]) -> str:
    """A small fixed-width table: one row per DAG."""
    rows = [("DAG", "Trigger", "params", "required", "flagged", "triggered run")]
    for r in results:
        flagged = "; ".join(f"{n} ({', '.join(why)})" for n, why in r.flagged.items()) or "-"
        if r.triggered:
            run = f"{r.run_state}, conf={'defaults' if r.conf_matches_defaults else 'DIFFERS'}"
        else:
            run = "-"
        enabled = "enabled" if r.trigger_enabled else "DISABLED"
        rows.append((r.dag_id, enabled, str(len(r.params)), str(len(r.required)), flagged, run))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1] for row in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    for r in results:
        lines.extend(f"{r.dag_id}: {e}" for e in r.errors)
        if r.missing_fields:
            lines.append(f"{r.dag_id}: params without a form field: {', '.join(r.missing_fields)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: 0 when every Trigger button is enabled and every check passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dags", nargs="+", default=list(DEFAULT_DAGS), help="DAG ids to check")
    parser.add_argument("--trigger", nargs="*", default=["curation"], help="DAG ids to trigger (stay queued)")
    parser.add_argument("--dags-folder", type=Path, help="another dags folder (default: the project's)")
    parser.add_argument("--chromium", help="Chromium binary (default: $CHROMIUM, else chromium on PATH)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--screenshots", type=Path, help="save a screenshot of each form here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary AIRFLOW_HOME")
    parser.add_argument("--timeout", type=float, default=240, help="seconds for start-up and parsing")
    args = parser.parse_args(argv)

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        print(
            "playwright is not installed: pip install playwright (no `playwright install`)", file=sys.stderr
        )
        return 2
    if find_chromium(args.chromium) is None:
        print("no Chromium: apt-get install -y chromium (or pass --chromium)", file=sys.stderr)
        return 2

    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM: run the finally blocks
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    try:
        results = run_check(
            tuple(args.dags),
            tuple(args.trigger),
            args.dags_folder,
            args.chromium,
            args.keep,
            args.screenshots,
            args.timeout,
        )
    except CheckError as exc:
        print(f"check failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; Airflow and the browser stopped", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(format_table(results))
    print(f"({time.monotonic() - started:.0f}s)")
    if args.json:
        payload = [{**asdict(r), "ok": r.ok} for r in results]
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
