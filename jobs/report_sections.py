"""The data report's sections, read off the registry: `RENDERERS` maps a stage to the function that
writes its sections, and the report calls them in pipeline order for every committed stage. A later
stage reports by adding one function and one entry here. Stats a stage may or may not write
(`mixture`, `validation`) are read defensively: absent or malformed, the section says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.datasets import Manifest
from core.storage import StorageError, safe_key
from jobs import report_charts as charts
from jobs.report_doc import Block, Cell, Chart, Link, Section, Table
from jobs.report_stats import length_edges

MIX_FIELDS = (
    "weights", "natural_tokens", "target_tokens", "realised_tokens", "target_share", "realised_share",
    "epochs", "capped",
)  # fmt: skip
DECISIONS = ("keep", "flag", "redact", "drop")


@dataclass
class Context:
    """What every renderer reads: the run summary, the distributions, the manifests; the charts it
    draws are collected here (file name -> PNG bytes) and written beside the report."""

    summary: dict[str, Any]
    dists: dict[str, Any]
    manifests: dict[str, Manifest | None]
    charts: dict[str, bytes] = field(default_factory=dict)

    def chart(self, name: str, png: bytes, caption: str) -> Chart:
        self.charts[f"{name}.png"] = png
        return Chart(f"{name}.png", caption)

    def stats(self, stage: str) -> dict[str, Any]:
        m = self.manifests.get(stage)
        return m.stats if m else {}

    def funnel(self, stage: str) -> dict[str, Any]:
        return next((f for f in self.summary.get("funnel", []) if f["stage"] == stage), {})


def pct(part: float | None, whole: float | None = 1.0) -> str:
    return "-" if part is None or not whole else f"{part / whole:.1%}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def stage_link(text: str, stage: str, path: str) -> Link | str:
    """A link from the report folder to a file a stage reported (relative to its folder); a path that
    would leave the stage folder (absolute, `..`) is shown as text, not linked."""
    try:
        return Link(text, f"../{stage}/{safe_key(path)}")
    except StorageError:
        return path


# ------------------------------------------------------------------------------------ whole-run sections


def overview(ctx: Context) -> list[Section]:
    s = ctx.summary
    unit = {"tokenizer": "the run's tokenizer"}.get(s.get("token_unit", ""), "whitespace words")
    stages = Table(
        ["stage", "kept", "rejected", "seconds", "code"],
        [
            [n, v["rows"].get("data"), v["rows"].get("rejected"), v.get("seconds"), v.get("code_version")]
            for n, v in s.get("stages", {}).items()
            if v.get("committed")
        ],
    )
    sources = Table(["source", "documents"], [[k, v] for k, v in sorted(s["documents_by_source"].items())])
    text = f"Run `{s['run_id']}` in {s['run_folder']}. Tokens are counted with {unit}."
    return [Section("Run", [text, "Committed stages:", stages, "Documents read per source:", sources])]


def funnel(ctx: Context) -> list[Section]:
    """Per stage, per source and per rule, in documents and tokens (the summary's funnel)."""
    from jobs.funnel_chart import plot_funnel, plot_rules

    rows, unit = ctx.summary.get("funnel", []), ctx.summary.get("token_unit", "")
    head = ["documents in", "out", "removed", "tokens in", "out", "removed"]
    stages = Table(
        ["stage", *head],
        [[f["stage"], f["documents_in"], f["documents_out"], f["rejected"], f.get("tokens_in"),
          f.get("tokens_out"), f.get("tokens_removed")] for f in rows],
    )  # fmt: skip
    keys = ("documents_in", "documents_out", "documents_removed", "tokens_in", "tokens_out", "tokens_removed")
    per_source = Table(
        ["stage", "source", *head],
        [[f["stage"], src, *(v[k] for k in keys)] for f in rows for src, v in f.get("by_source", {}).items()],
    )
    per_rule = Table(
        ["stage", "rule", "source", "documents", "tokens"],
        [[f["stage"], rule, src, c["documents"], c["tokens"]]
         for f in rows for rule, per in f.get("removed_by_rule", {}).items() for src, c in per.items()],
    )  # fmt: skip
    blocks: list[Block] = ["Per stage:", stages, ctx.chart("funnel", plot_funnel(rows, unit), "Funnel")]
    blocks += ["Per stage and source:", per_source, "Removed per rule and source:", per_rule]
    blocks.append(ctx.chart("funnel_rules", plot_rules(rows, unit), "Removed per rule"))
    return [Section("Funnel", blocks)]


def validation(ctx: Context) -> list[Section]:
    """Each stage's data gate (`stats["validation"]`, Great Expectations), in pipeline order."""
    rows: list[list[Cell]] = []
    for stage in ctx.manifests:
        v = ctx.stats(stage).get("validation")
        if isinstance(v, dict):
            rows.append(_validation_row(stage, v))
    if not rows:
        return [Section("Data checks", ["No stage reported a data check (`validation`)."])]
    head = ["stage", "suite", "mode", "result", "expectations", "failed", "data docs"]
    return [Section("Data checks", [Table(head, rows)])]


def _validation_row(stage: str, v: dict[str, Any]) -> list[Cell]:
    """suite(s), mode, result, expectations, failed expectations (with their column) and a data-docs
    link; a data-docs path outside the stage folder is shown, not linked."""
    suites: list[Any] = v["suites"] if isinstance(v.get("suites"), list) else [v.get("suite")]
    expectations, failed = v.get("expectations"), v.get("failed") or []
    names = [_failure(f) for f in (failed if isinstance(failed, list) else [failed])]
    docs = stage_link("data docs", stage, v["data_docs"]) if isinstance(v.get("data_docs"), str) else None
    success = v.get("success")
    result = "passed" if success is True else "FAILED" if success is False else "-"
    count = len(expectations) if isinstance(expectations, list | dict) else expectations
    suite = ", ".join(str(x) for x in suites if x) or None
    return [stage, suite, v.get("mode"), result, count, ", ".join(names) or "-", docs]


def _failure(f: Any) -> str:
    """`expect_x (column)` of a failed-expectation record, or the record as text."""
    if not isinstance(f, dict):
        return str(f)
    column = _dict(f.get("kwargs")).get("column")
    name = str(f.get("expectation") or f.get("expectation_type") or f.get("name") or f)
    return f"{name} ({column})" if column else name


# ---------------------------------------------------------------------------------- per-stage sections


def crawl(ctx: Context) -> list[Section]:
    c = _dict(ctx.summary.get("crawl"))
    rows = [[k, c.get(k)] for k in ("pages_fetched", "skipped_robots", "skipped_optout")]
    rows += [[f"error: {k}", v] for k, v in sorted(_dict(c.get("errors_by_reason")).items())]
    return [Section("Crawl", [Table(["", "pages"], rows)])]


def warc(ctx: Context) -> list[Section]:
    w = _dict(ctx.summary.get("warc"))
    rows = [[k, w.get(k)] for k in ("files", "records", "documents", "bad_records")]
    return [Section("WARC", [Table(["", "count"], rows)])]


def exact_rates(ctx: Context) -> dict[str, float]:
    by_source = ctx.funnel("dedup").get("by_source", {})
    return {s: v["documents_removed"] / v["documents_in"] for s, v in by_source.items() if v["documents_in"]}


def dedup(ctx: Context) -> list[Section]:
    by_source = ctx.funnel("dedup").get("by_source", {})
    rows = [
        [s, v["documents_in"], v["documents_removed"], pct(v["documents_removed"], v["documents_in"]),
         v["tokens_removed"]]
        for s, v in by_source.items()
    ]  # fmt: skip
    head = ["source", "documents in", "exact duplicates", "rate", "tokens removed"]
    return [Section("Exact deduplication", [Table(head, rows)])]


def quality(ctx: Context) -> list[Section]:
    scores, unscored = ctx.dists.get("quality_score", {}), ctx.dists.get("unscored", {})
    if not scores:
        return [Section("Quality score", ["No document carries `quality.score` (no classifier configured)."])]
    rows = [[s, h["count"], unscored.get(s, 0), h["min"], h["mean"], h["max"]] for s, h in scores.items()]
    table = Table(["source", "scored", "unscored", "min", "mean", "max"], rows)
    text = "Every document the quality stage judged (kept and removed), per source:"
    chart = ctx.chart("quality_scores", charts.plot_scores(scores), "Quality score per source")
    return [Section("Quality score", [text, table, chart])]


def copyright(ctx: Context) -> list[Section]:
    c = _dict(ctx.summary.get("copyright"))
    decisions = _dict(c.get("decisions"))
    rows = [
        [s, cls, *(_dict(d).get(k, 0) for k in DECISIONS), sum(_dict(d).values())]
        for s, classes in sorted(decisions.items())
        for cls, d in sorted(_dict(classes).items())
    ]
    blocks: list[Block] = [Table(["source", "licence class", *DECISIONS, "documents"], rows)]
    if decisions:
        blocks.append(ctx.chart("licences", charts.plot_licences(decisions), "Licence classes per source"))
    optouts = ", ".join(f"{k}: {v}" for k, v in sorted(_dict(c.get("optouts")).items())) or "none"
    flags = ", ".join(f"{k}: {v}" for k, v in sorted(_dict(c.get("flags")).items())) or "none"
    index = _dict(c.get("protected_index"))
    works = f" against {index.get('works')} protected works" if index else ""
    blocks += [f"Opt-outs and blocklists: {optouts}.", f"Flags: {flags}."]
    blocks.append(f"Verbatim overlap hits: {c.get('overlap_hits', 0)}{works}.")
    return [Section("Copyright: licence classes and decisions", blocks)]


def near_dedup(ctx: Context) -> list[Section]:
    nd = _dict(ctx.summary.get("near_dedup"))
    near, exact = _dict(nd.get("duplicate_rate_by_source")), exact_rates(ctx)
    rates: dict[str, dict[str, Any]] = {
        s: {"exact": exact.get(s), "near": near.get(s)} for s in sorted({*near, *exact})
    }
    rows: list[list[Cell]] = [[s, pct(r["exact"]), pct(r["near"])] for s, r in rates.items()]
    blocks: list[Block] = [
        f"MinHash LSH: {nd.get('bands')} bands x {nd.get('rows')} rows, {nd.get('verified_pairs')} verified "
        f"pairs, {nd.get('clusters')} clusters.",
        Table(["source", "exact duplicate rate", "near duplicate rate"], rows),
    ]
    if rates:
        blocks.append(ctx.chart("dedup_rates", charts.plot_dedup(rates), "Duplicate rate per source"))
    sizes = _dict(nd.get("cluster_size_histogram"))
    blocks += ["Clusters by size:", Table(["cluster size", "clusters"], [[k, v] for k, v in sizes.items()])]
    if isinstance(nd.get("chart"), str):
        blocks.append(stage_link("Cluster-size chart", "near_dedup", nd["chart"]))
    return [Section("Near deduplication", blocks)]  # what follows it: jobs/report_safety.py


def final_documents(ctx: Context) -> list[Section]:
    """Lengths and languages of what the tokenizer reads."""
    length, unit = ctx.dists.get("length", {}), ctx.dists.get("token_unit", "")
    rows = [[s, h["count"], h["min"], h["mean"], h["max"], _mode_range(h["bins"])] for s, h in length.items()]
    blocks: list[Block] = [
        f"Length per document ({unit}) of the {ctx.dists.get('length_stage')} output:",
        Table(["source", "documents", "min", "mean", "max", "most common range"], rows),
    ]
    if length:
        blocks.append(ctx.chart("lengths", charts.plot_lengths(length, unit), "Length per source"))
    mix = _dict(_dict(ctx.summary.get("language_mix")).get("by_source"))
    lang_rows = [
        [s, lang, c["documents"], pct(c["documents"], v["documents"]), c["tokens"]]
        for s, v in mix.items()
        for lang, c in sorted(v["languages"].items(), key=lambda kv: (-kv[1]["documents"], kv[0]))
    ]
    blocks += ["Language mix:", Table(["source", "language", "documents", "share", "tokens"], lang_rows)]
    if mix:
        blocks.append(ctx.chart("languages", charts.plot_languages(mix), "Language mix per source"))
    return [Section("What the tokenizer reads: lengths and languages", blocks)]


def _mode_range(bins: dict[str, int]) -> str:
    if not bins:
        return "-"
    b = int(max(bins, key=lambda k: (bins[k], -int(k))))
    if b == 0:
        return "0"
    low, high = length_edges(b)
    return f"{low:.0f}-{high:.0f}"


def mixture_rows(mix: Any) -> dict[str, dict[str, Any]]:
    """Per source, the mixture's fields: accepts {field: {source: value}} (a `capped` list of sources
    too) or {source: {field: value}}."""
    mix = _dict(mix)
    if not any(k in MIX_FIELDS for k in mix):
        return {s: v for s, v in mix.items() if isinstance(v, dict)}
    rows: dict[str, dict[str, Any]] = {}
    for name in MIX_FIELDS:
        for s, v in _dict(mix.get(name)).items():
            rows.setdefault(s, {})[name] = v
    capped = mix.get("capped")
    if isinstance(capped, list):
        for s in capped:
            rows.setdefault(str(s), {})
        for s, row in rows.items():
            row["capped"] = s in capped
    return dict(sorted(rows.items()))


def shards(ctx: Context) -> list[Section]:
    t = _dict(ctx.summary.get("tokens"))
    blocks: list[Block] = [
        Table(["split", "tokens", "documents"], [["train", t.get("train_tokens"), t.get("train_documents")],
                                                 ["val", t.get("val_tokens"), t.get("val_documents")]]),
    ]  # fmt: skip
    rows = mixture_rows(ctx.stats("shards").get("mixture"))
    if not rows:
        return [Section("Token shards and mixture", [*blocks, "No mixture reported (natural proportions)."])]
    table = Table(
        ["source", "weight", "natural tokens", "target tokens", "realised tokens", "target share",
         "realised share", "epochs", "capped"],
        [[s, r.get("weights"), r.get("natural_tokens"), r.get("target_tokens"), r.get("realised_tokens"),
          pct(r.get("target_share")), pct(r.get("realised_share")), r.get("epochs"), r.get("capped")]
         for s, r in rows.items()],
    )  # fmt: skip
    mix = _dict(ctx.stats("shards").get("mixture"))
    text = f"Mixture (training split; at most {mix.get('max_repeats', '-')} epochs per document):"
    chart = ctx.chart("mixture", charts.plot_mixture(rows), "Mixture: target vs realised tokens")
    return [Section("Token shards and mixture", [*blocks, text, table, chart])]


def pretrain(ctx: Context) -> list[Section]:
    tr = _dict(ctx.summary.get("training"))
    keys = ("objective", "parallelism", "steps", "workers", "num_params", "first_loss", "last_loss",
            "val_loss", "val_ppl", "tokens_per_s", "mfu", "checkpoint")  # fmt: skip
    return [Section("Pretraining", [Table(["", "value"], [[k, tr.get(k)] for k in keys])])]


Renderer = Callable[[Context], list[Section]]
RENDERERS: dict[str, Renderer] = {
    "crawl": crawl,
    "warc": warc,
    "dedup": dedup,
    "quality": quality,
    "copyright": copyright,
    "near_dedup": near_dedup,
    "shards": shards,
    "pretrain": pretrain,
}
