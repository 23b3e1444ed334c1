"""The run summary: a funnel (documents in/out and rejects by reason per stage), tokens,
training loss, and where everything is. Written as `runs/<run id>/summary.json`."""

from __future__ import annotations

import json
from typing import Any

from core.config import load_config
from core.datasets import Manifest, read_manifest, stage_prefix
from core.storage import Storage, open_storage

FUNNEL = [  # stage, the input stages whose `data` rows feed it (none: the stage's own files)
    ("ingest", ()),
    ("extract", ("crawl", "ingest", "warc")),
    ("dedup", ("extract",)),
    ("quality", ("dedup",)),
    ("near_dedup", ("quality",)),
]


def _rows(m: Manifest | None, part: str = "data") -> int:
    return int(m.rows.get(part, 0)) if m else 0


def build_summary(storage: Storage, run_id: str) -> dict[str, Any]:
    names = [
        "crawl",
        "ingest",
        "warc",
        "extract",
        "dedup",
        "quality",
        "near_dedup",
        "tokenizer",
        "shards",
        "pretrain",
    ]
    ms = {n: read_manifest(storage, run_id, n) for n in names}
    funnel = []
    for stage, inputs in FUNNEL:
        m = ms[stage]
        funnel.append(
            {
                "stage": stage,
                "documents_in": sum(_rows(ms[i]) for i in inputs)
                if inputs
                else _rows(m) + _rows(m, "rejected"),
                "documents_out": _rows(m),
                "rejected": _rows(m, "rejected"),
                "rejected_by_reason": (m.stats.get("rejected_by_reason", {}) if m else {}),
            }
        )
    crawl, ingest, warc, shards, pre = (ms[n] for n in ("crawl", "ingest", "warc", "shards", "pretrain"))
    sources = dict(ingest.stats.get("documents_by_source", {})) if ingest else {}
    sources["web"] = _rows(crawl) + _rows(warc)
    crawl_keys = ("pages_fetched", "skipped_robots", "skipped_optout", "errors_by_reason", "decisions")
    warc_keys = ("files", "records", "documents", "rejected_by_reason")
    pre_stats = pre.stats if pre else {}
    return {
        "run_id": run_id,
        "run_folder": storage.uri(f"runs/{run_id}"),
        "crawl": {k: crawl.stats.get(k) for k in crawl_keys} if crawl else {},
        "warc": {
            **{k: warc.stats.get(k) for k in warc_keys},
            "bad_records": len(warc.stats.get("bad_records", [])),
        }
        if warc
        else {},
        "documents_by_source": sources,
        "near_dedup": _near_dedup(ms["near_dedup"]),
        "funnel": funnel,
        "tokens": {
            k: (shards.stats.get(k) if shards else None)
            for k in ("vocab_size", "train_tokens", "val_tokens", "train_documents", "val_documents")
        },
        "training": {
            k: pre_stats.get(k)
            for k in (
                "objective",
                "mode",
                "parallelism",
                "steps",
                "first_loss",
                "last_loss",
                "val_loss",
                "val_ppl",
                "tokens_per_s",
                "mfu",
                "num_params",
                "workers",
                "checkpoint",
                "tensorboard",
            )
        },
        "stages": {
            n: {
                "uri": storage.uri(stage_prefix(run_id, n)),
                "committed": m is not None,
                "rows": m.rows if m else {},
                "bytes": m.bytes if m else 0,
                "seconds": m.stats.get("seconds") if m else None,
            }
            for n, m in ms.items()
        },
    }


def _near_dedup(m: Manifest | None) -> dict[str, Any]:
    if m is None:
        return {}
    keys = ("bands", "rows", "hit_probability_at_threshold", "candidate_pairs", "verified_pairs", "clusters")
    rep = m.stats.get("report", {})
    return {
        **{k: m.stats.get(k) for k in keys},
        "duplicate_rate_by_source": rep.get("duplicate_rate_by_source"),
        "cluster_size_histogram": rep.get("cluster_size_histogram"),
        "chart": rep.get("chart"),
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
    c, w = s["crawl"], s["warc"]
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
    t, tr = s["tokens"], s["training"]
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
    lines += ["", "Stages:"] + [f"  {n:<10} {v['uri']}" for n, v in s["stages"].items() if v["committed"]]
    return "\n".join(lines)
