"""The run summary: a funnel (documents in/out and rejects by reason per stage), tokens,
training loss, and where everything is. Written as `runs/<run id>/summary.json`."""

from __future__ import annotations

import json
from typing import Any

from core.config import load_config
from core.datasets import Manifest, read_manifest, stage_prefix
from core.registry import STAGES, Stage
from core.storage import Storage, open_storage


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
    ms = {n: read_manifest(storage, run_id, n) for n in STAGES}
    sections: dict[str, Any] = {}
    for stage in STAGES.values():
        if stage.summary_section:
            m = ms[stage.name]
            sections[stage.summary_section] = dict(pick(m.stats, k) for k in stage.summary) if m else {}
    return {
        "run_id": run_id,
        "run_folder": storage.uri(f"runs/{run_id}"),
        **sections,
        "documents_by_source": source_mix(ms),
        "funnel": [funnel_row(s, ms) for s in STAGES.values() if s.funnel],
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


def write_summary(run_id: str, profile: str | None = None, overrides_json: str | None = None) -> str:
    """Build, store and return the URI of `summary.json`."""
    cfg = load_config(profile or None, overrides_json or None)
    storage = open_storage(cfg.storage)
    summary = build_summary(storage, run_id)
    key = f"runs/{run_id}/summary.json"
    storage.write_bytes(key, json.dumps(summary, indent=1).encode())
    return storage.uri(key)


def _num(value: Any, fmt: str = "{:.3f}") -> str:
    return "n/a" if value is None else fmt.format(value)


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
    lines += ["", f"  {'stage':<10} {'in':>7} {'out':>7} {'rejected':>9}  reasons"]
    for f in s["funnel"]:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(f["rejected_by_reason"].items())) or "-"
        lines.append(
            f"  {f['stage']:<10} {f['documents_in']:>7} {f['documents_out']:>7} {f['rejected']:>9}  {reasons}"
        )
    nd = s.get("near_dedup") or {}
    if nd:
        lines.append(
            f"  near_dedup: {nd['bands']} bands x {nd['rows']} rows (P(hit | J = threshold) = "
            f"{nd['hit_probability_at_threshold']:.3f}), {nd['verified_pairs']} verified pairs, "
            f"{nd['clusters']} clusters"
        )
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
    lines += ["", "Stages:"] + [
        f"  {n:<10} {v['uri']}  (code {v.get('code_version')})"
        for n, v in s["stages"].items()
        if v["committed"]
    ]
    return "\n".join(lines)
