"""The run summary: a funnel (documents and tokens in/out per stage and per source, and what each rule
removed from each source), the language mix of what reaches the tokenizer, tokens, training loss, and
where everything is. Written as `runs/<run id>/summary.json`, with the funnel's charts beside it and
the data report (`report/index.html`, jobs/data_report.py) listed under `report`."""

from __future__ import annotations

import json
from typing import Any

from core.config import load_config
from core.datasets import Manifest, read_manifest, stage_prefix
from core.failures import failure_text, read_failures
from core.registry import STAGES, Stage
from core.storage import Storage, open_storage
from jobs.funnel import RunReader, language_mix, stage_detail
from jobs.safety_summary import safety_lines

CHARTS = {"funnel": "funnel.png", "rules": "funnel_rules.png"}  # files next to summary.json


def _rows(m: Manifest | None, part: str = "data") -> int:
    return int(m.rows.get(part, 0)) if m else 0


def pick(stats: dict[str, Any], key: str) -> tuple[str, Any]:
    """(name, value) of a registry summary key: "a.b" reads a nested key, "k:len" a list's length."""
    key, _, fn = key.partition(":")
    value: Any = stats
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if fn == "len":
        value = len(value or [])
    return key.rsplit(".", 1)[-1], value


def funnel_row(stage: Stage, ms: dict[str, Manifest | None]) -> dict[str, Any]:
    """Documents in (the inputs' kept rows, or a source's own rows), out, rejected, by reason."""
    m = ms[stage.name]
    documents_in = (
        sum(_rows(ms[i]) for i in stage.inputs) if stage.inputs else _rows(m) + _rows(m, "rejected")
    )
    return {
        "stage": stage.name,
        "documents_in": documents_in,
        "documents_out": _rows(m),
        "rejected": _rows(m, "rejected"),
        "rejected_by_reason": (m.stats.get("rejected_by_reason", {}) if m else {}),
    }


def source_mix(ms: dict[str, Manifest | None]) -> dict[str, int]:
    """Kept documents per source type: stages of one source type count their rows, the others
    report `documents_by_source`."""
    mix: dict[str, int] = {}
    for stage in STAGES.values():
        m = ms[stage.name]
        if stage.source_type:
            mix[stage.source_type] = mix.get(stage.source_type, 0) + _rows(m)
        elif m and not stage.inputs:
            for source, n in m.stats.get("documents_by_source", {}).items():
                mix[source] = mix.get(source, 0) + n
    return mix


def build_summary(storage: Storage, run_id: str) -> dict[str, Any]:
    """Every section is read off the registry (core/registry.py): a new stage reports by declaring
    `funnel`, `summary_section` and `summary` there."""
    return summarise(storage, run_id)[0]


def stage_checks(ms: dict[str, Manifest | None]) -> dict[str, Any]:
    """Each committed stage's data gate (`stats["validation"]`), when it ran one."""
    return {
        n: m.stats["validation"] for n, m in ms.items() if m and isinstance(m.stats.get("validation"), dict)
    }


def summarise(storage: Storage, run_id: str) -> tuple[dict[str, Any], RunReader]:
    """The summary and the reader that counted it (its token counts are reused by the data report)."""
    from training.scaling.sweep import scaling_summary  # core-only imports at module level

    ms = {n: read_manifest(storage, run_id, n) for n in STAGES}
    sections: dict[str, Any] = {}
    for stage in STAGES.values():
        if stage.summary_section:
            m = ms[stage.name]
            sections[stage.summary_section] = dict(pick(m.stats, k) for k in stage.summary) if m else {}
    reader = RunReader(storage, ms)
    shards = ms.get("shards")
    summary = {
        "run_id": run_id,
        "run_folder": storage.uri(f"runs/{run_id}"),
        **sections,
        "documents_by_source": source_mix(ms),
        "token_unit": reader.token_unit,
        "funnel": [{**funnel_row(s, ms), **stage_detail(s, reader)} for s in STAGES.values() if s.funnel],
        "language_mix": language_mix(reader),
        "mixture": shards.stats.get("mixture") if shards else None,
        "validation": stage_checks(ms),
        "charts": {name: storage.uri(f"runs/{run_id}/{file}") for name, file in CHARTS.items()},
        # failed tries of any task, recorded by the DAGs' failure callback (orchestration/callbacks.py)
        "failures": read_failures(storage, run_id),
        "scaling": scaling_summary(storage, run_id),  # a scaling sweep on this run's shards, if any
        "stages": {
            n: {
                "uri": storage.uri(stage_prefix(run_id, n)),
                "committed": m is not None,
                "rows": m.rows if m else {},
                "bytes": m.bytes if m else 0,
                "seconds": m.stats.get("seconds") if m else None,
                "code_version": m.code_version[:12] if m else None,
            }
            for n, m in ms.items()
        },
    }
    return summary, reader


def write_summary(run_id: str, profile: str | None = None, overrides_json: str | None = None) -> str:
    """Build, store and return the URI of `summary.json`; the charts are drawn from its numbers, and
    the data report (jobs/data_report.py) is written under `report/` and listed in it."""
    from jobs.data_report import write_report
    from jobs.funnel_chart import plot_funnel, plot_rules
    from jobs.report_stats import distributions

    cfg = load_config(profile or None, overrides_json or None)
    storage = open_storage(cfg.storage)
    summary, reader = summarise(storage, run_id)
    funnel, unit = summary["funnel"], summary["token_unit"]
    storage.write_bytes(f"runs/{run_id}/{CHARTS['funnel']}", plot_funnel(funnel, unit))
    storage.write_bytes(f"runs/{run_id}/{CHARTS['rules']}", plot_rules(funnel, unit))
    summary["distributions"] = distributions(reader)
    summary["report"] = write_report(storage, summary, reader, summary["distributions"])
    key = f"runs/{run_id}/summary.json"
    storage.write_bytes(key, json.dumps(summary, indent=1).encode())
    return storage.uri(key)


def _num(value: Any, fmt: str = "{:.3f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _si(n: int | None) -> str:
    """1234567 -> 1.2M: token counts stay readable in a narrow column."""
    if n is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{suffix}"
    return str(n)


_UNITS = {"tokenizer": "the run's tokenizer", "whitespace_words": "whitespace words, no tokenizer committed"}


def _funnel_lines(s: dict[str, Any]) -> list[str]:
    """Per stage a line, then a line per source; rules as documents (stage) or documents/tokens (source)."""
    unit = s.get("token_unit")
    lines = ["", f"Funnel (tokens: {_UNITS.get(unit or '', unit or 'not counted')}):"]
    lines.append(
        f"  {'stage / source':<16} {'in':>7} {'out':>7} {'removed':>8} {'tok in':>8} {'tok out':>8}  rules"
    )
    for f in s["funnel"]:
        rules = f.get("removed_by_rule")
        by_rule = (
            {r: sum(v["documents"] for v in per.values()) for r, per in rules.items()}
            if rules is not None
            else f["rejected_by_reason"]
        )
        text = ", ".join(f"{k}={v}" for k, v in sorted(by_rule.items())) or "-"
        lines.append(
            f"  {f['stage']:<16} {f['documents_in']:>7} {f['documents_out']:>7} {f['rejected']:>8} "
            f"{_si(f.get('tokens_in')):>8} {_si(f.get('tokens_out')):>8}  {text}"
        )
        for src, v in (f.get("by_source") or {}).items():
            per = [(r, p[src]) for r, p in sorted((rules or {}).items()) if src in p]
            text = ", ".join(f"{r}={c['documents']}/{_si(c['tokens'])}" for r, c in per) or "-"
            lines.append(
                f"    {src:<14} {v['documents_in']:>7} {v['documents_out']:>7} {v['documents_removed']:>8} "
                f"{_si(v['tokens_in']):>8} {_si(v['tokens_out']):>8}  {text}"
            )
    return lines + [f"  chart: {uri}" for uri in (s.get("charts") or {}).values()]


def _copyright_lines(s: dict[str, Any]) -> list[str]:
    """Decisions per source and licence class (keep/flag/drop), opt-outs, flags and overlap hits."""
    c = s.get("copyright") or {}
    if not c.get("decisions"):
        return []
    lines = ["", "Copyright: decisions per source and licence class (keep/flag/drop):"]
    for source, classes in sorted(c["decisions"].items()):
        text = ", ".join(
            f"{cls}={d.get('keep', 0) + d.get('redact', 0)}/{d.get('flag', 0)}/{d.get('drop', 0)}"
            for cls, d in sorted(classes.items())
        )
        lines.append(f"  {source:<14} {text}")
    optouts = ", ".join(f"{k}={v}" for k, v in sorted((c.get("optouts") or {}).items())) or "none"
    flags = ", ".join(f"{k}={v}" for k, v in sorted((c.get("flags") or {}).items())) or "none"
    index = c.get("protected_index") or {}
    works = f" against {index['works']} protected works ({index['ngrams']} n-grams)" if index else ""
    lines += [f"  opt-outs and blocklists: {optouts}", f"  flags: {flags}"]
    return [*lines, f"  overlap hits: {c.get('overlap_hits', 0)}{works}"]


def _language_lines(s: dict[str, Any], top: int = 5) -> list[str]:
    """Per source: documents, tokens, the share with no language, the `top` languages by documents."""
    mix = s.get("language_mix") or {}
    if not mix.get("by_source"):
        return []
    lines = ["", f"Language mix of what the tokenizer reads ({mix['stage']} output), documents/tokens:"]
    for source, v in mix["by_source"].items():
        langs = sorted(v["languages"].items(), key=lambda kv: (-kv[1]["documents"], kv[0]))
        shown = " ".join(f"{k}={c['documents']}/{_si(c['tokens'])}" for k, c in langs[:top])
        more = f" (+{len(langs) - top} more)" if len(langs) > top else ""
        lines.append(
            f"  {source:<14} {v['documents']:>7} {_si(v['tokens']):>8}  "
            f"no language {v['no_language_share']:.1%}  {shown}{more}"
        )
    return lines


def render_summary(s: dict[str, Any]) -> str:
    """Readable text for the terminal."""
    c, w = s.get("crawl") or {}, s.get("warc") or {}
    lines = [f"Run {s['run_id']}  ({s['run_folder']})", ""]
    if c:
        lines.append(
            f"Crawl: {c['pages_fetched']} pages fetched, {c['skipped_robots']} skipped by robots.txt, "
            f"{c['skipped_optout']} skipped by AI opt-out"
        )
        lines += [f"  error {k:<26} {v:>7}" for k, v in (c["errors_by_reason"] or {}).items()]
    if w:
        lines.append(
            f"WARC: {w['files']} files, {w['records']} records, {w['documents']} documents, "
            f"{w['bad_records']} bad records"
        )
    lines += ["", "Documents by source:"] + [
        f"  {k:<28} {v:>7}" for k, v in sorted(s["documents_by_source"].items())
    ]
    lines += _funnel_lines(s)
    nd = s.get("near_dedup") or {}
    if nd.get("bands") is not None:
        lines.append(
            f"  near_dedup: {nd['bands']} bands x {nd['rows']} rows (P(hit | J = threshold) = "
            f"{nd['hit_probability_at_threshold']:.3f}), {nd['verified_pairs']} verified pairs, "
            f"{nd['clusters']} clusters"
        )
    lines += _copyright_lines(s)
    lines += safety_lines(s)
    lines += _language_lines(s)
    if sc := s.get("scaling"):
        lines += ["", f"Scaling sweep: {sc.get('done')}/{sc.get('points')} points, report {sc.get('report')}"]
    if s.get("failures"):
        lines += ["", "Failed tries:"] + [f"  {failure_text(f)}" for f in s["failures"]]
    t, tr = s.get("tokens") or {}, s.get("training") or {}
    if t:
        lines += ["", f"Tokens: train={t['train_tokens']} val={t['val_tokens']} vocab={t['vocab_size']}"]
    if tr.get("first_loss") is not None:
        lines += [
            f"Training: {tr.get('objective') or 'causal'} objective ({tr.get('mode') or 'pretrain'}, "
            f"{tr.get('parallelism') or 'ddp'}), {tr['steps']} steps on {tr['workers']} Ray workers, "
            f"{tr['num_params']:,} params",
            f"  loss {tr['first_loss']:.3f} -> {tr['last_loss']:.3f}, val loss {_num(tr['val_loss'])}, "
            f"{_num(tr['tokens_per_s'], '{:,.0f}')} tokens/s, MFU {_num(tr.get('mfu'), '{:.1%}')}",
            f"  checkpoint: {tr['checkpoint']}",
            f"  TensorBoard: {tr.get('tensorboard')}",
        ]
    report = s.get("report") or {}
    if report:
        lines += ["", f"Data report: {report.get('html')}", f"  markdown: {report.get('markdown')}"]
    lines += ["", "Stages:"] + [
        f"  {n:<10} {v['uri']}  (code {v.get('code_version')})"
        for n, v in s["stages"].items()
        if v["committed"]
    ]
    return "\n".join(lines)
