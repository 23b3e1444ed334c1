"""The data report: `runs/<run id>/report/index.md` and `index.html` with PNG charts beside them,
gathering what the stages report (funnel, dedup, quality scores, licences, languages, lengths, the
mixture, data checks). Sections come in pipeline order from the registry through
`jobs.report_sections.RENDERERS`; the numbers are the run summary's plus one streaming pass for the
distributions (jobs/report_stats.py). Written through the storage, so local and S3 roots work alike.
"""

from __future__ import annotations

from typing import Any

from core.registry import STAGES
from core.storage import Storage
from jobs.funnel import RunReader
from jobs.report_doc import Section, to_html, to_markdown
from jobs.report_safety import RENDERERS as SAFETY_RENDERERS
from jobs.report_sections import RENDERERS, Context, funnel, overview, validation
from jobs.report_stats import distributions

REPORT_DIR = "report"  # under runs/<run id>/


def sections(ctx: Context) -> list[Section]:
    """Run and funnel first, then each committed stage with a renderer in registry order, then checks."""
    out = [*overview(ctx), *funnel(ctx)]
    renderers = RENDERERS | SAFETY_RENDERERS
    for name in STAGES:
        if name in renderers and ctx.manifests.get(name) is not None:
            out += renderers[name](ctx)
    return out + validation(ctx)


def build_report(
    summary: dict[str, Any], dists: dict[str, Any], reader: RunReader
) -> tuple[str, str, dict[str, bytes]]:
    """Markdown, HTML and the charts (file name -> PNG) of a run."""
    ctx = Context(summary, dists, reader.manifests)
    parts = sections(ctx)
    title = f"Data report: run {summary['run_id']}"
    return to_markdown(title, parts), to_html(title, parts), ctx.charts


def write_report(
    storage: Storage, summary: dict[str, Any], reader: RunReader, dists: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Store the report and its charts; return the summary's `report` entry (URIs)."""
    dists = distributions(reader) if dists is None else dists
    markdown, html, charts = build_report(summary, dists, reader)
    prefix = f"runs/{summary['run_id']}/{REPORT_DIR}"
    for file, png in charts.items():
        storage.write_bytes(f"{prefix}/{file}", png)
    storage.write_bytes(f"{prefix}/index.md", markdown.encode())
    storage.write_bytes(f"{prefix}/index.html", html.encode())
    return {
        "markdown": storage.uri(f"{prefix}/index.md"),
        "html": storage.uri(f"{prefix}/index.html"),
        "charts": {file.removesuffix(".png"): storage.uri(f"{prefix}/{file}") for file in charts},
    }
