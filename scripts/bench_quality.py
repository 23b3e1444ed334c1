"""Quality rules vs datatrove on real documents of every source type: agreement and speed per core.

Why (issue 13, "Must show"): the web profile must match the published rule sets, and the stack must
be fast. Documents: scripts/quality_corpus.py (real web pages, book and paper parts, code files,
tweets and posts, generated synthetic documents; cached under .bench/). datatrove 0.10.1 runs in
the peer venv the dedup bench installs (scripts/bench_dedup_peers.py), through
scripts/quality_peers.py.

1. Agreement: each rule set of the web profile (core/config.py `DEFAULT_PROFILES["web"]`) and the
   datatrove filter for the same paper rule (GopherQualityFilter, GopherRepetitionFilter,
   C4QualityFilter, FineWebQualityFilter) decide every document on their own; we count identical
   keep/drop decisions. datatrove gets our thresholds, which are the papers' (`datatrove_settings`:
   C4's 5 words a line and 3 sentences instead of its 3 and 5, FineWeb's 0.1 duplicated-line share
   instead of 0.01, its inclusive comparisons, no newline-ratio rule). What no setting can align
   (tokenisers, line splitting, which lines C4's page rules see) is each module's
   DATATROVE_DIFFERENCES; every disagreement is listed by its pair of reasons. C4 is also compared
   with `page_rules_on_kept_lines=True`, TFDS's and datatrove's reading.
2. Speed: our whole web-profile stack (`jobs.filters.quality.assess_with`: language ID, Gopher
   repetition and quality, FineWeb, C4) and datatrove's chain (Gopher quality, repetition, C4,
   FineWeb) on the same documents, each pinned to the same single core, median of `runs`; ours also
   without language ID (the same four rule sets as datatrove) and with the per-source profiles.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.config import QualityConfig, SourceProfile, load_config
from scripts import quality_corpus
from scripts.bench_dedup_peers import CHILD_ENV, PeerUnavailable, ensure_peer_venv

ROOT = Path(__file__).resolve().parents[1]
RULE_SETS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")
EPS = 1e-9  # turns datatrove's strict comparisons into the papers' inclusive ones
Decisions = dict[str, list[str | None]]  # rule set -> per document: None keeps, else the reason


def web_profile() -> SourceProfile:
    return load_config().quality.profiles["web"]


def datatrove_settings(p: SourceProfile) -> dict[str, dict[str, Any]]:
    """datatrove's keyword arguments set to our (the papers') thresholds."""
    gq, gr, c4, fw = p.gopher_quality, p.gopher_repetition, p.c4, p.fineweb
    assert gq and gr and c4 and fw, "the web profile has every published rule set"
    return {
        "gopher_quality": {
            "min_doc_words": gq.min_words, "max_doc_words": gq.max_words,
            "min_avg_word_length": gq.min_mean_word_length, "max_avg_word_length": gq.max_mean_word_length,
            "max_symbol_word_ratio": gq.max_hash_word_ratio,  # one ratio for '#' and ellipsis there
            "max_bullet_lines_ratio": gq.max_bullet_lines, "max_ellipsis_lines_ratio": gq.max_ellipsis_lines,
            "max_non_alpha_words_ratio": gq.min_alpha_words, "min_stop_words": gq.min_stop_words,
            "stop_words": gq.stop_words,
        },
        "gopher_repetition": {
            "dup_line_frac": gr.max_dup_lines, "dup_para_frac": gr.max_dup_paragraphs,
            "dup_line_char_frac": gr.max_dup_line_chars, "dup_para_char_frac": gr.max_dup_paragraph_chars,
            "top_n_grams": sorted(gr.max_top_ngram_chars.items()),
            "dup_n_grams": sorted(gr.max_dup_ngram_chars.items()),
        },
        "c4": {
            "split_paragraph": True,  # lines, as the paper; False would need nltk punkt (not installed)
            "min_num_sentences": c4.min_sentences, "min_words_per_line": c4.min_words_per_line,
            "max_word_length": c4.max_word_length or -1, "remove_citations": c4.remove_citations,
            "filter_no_terminal_punct": c4.line_terminal_punct, "filter_javascript": c4.filter_javascript,
            "filter_policy": c4.filter_policy, "filter_lorem_ipsum": c4.filter_lorem_ipsum,
            "filter_curly_bracket": c4.filter_curly_bracket,
        },
        "fineweb": {  # datatrove drops at ratio < thr, > thr, > thr; the paper at <=, >=, >=
            "line_punct_thr": fw.max_line_punct + EPS,
            "short_line_length": fw.short_line_chars - 1,  # "shorter than 30": <= 29
            "short_line_thr": fw.max_short_lines - EPS,
            "char_duplicates_ratio": fw.max_dup_line_chars - EPS,
            "new_line_ratio": 1e9,  # not a FineWeb paper rule
        },
    }  # fmt: skip


def our_decisions(texts: list[str], p: SourceProfile) -> Decisions:
    """Each rule set of the profile on its own, on every text."""
    from jobs.filters.c4 import c4_filter
    from jobs.filters.fineweb import fineweb_reason
    from jobs.filters.gopher import gopher_quality_reason, gopher_repetition_reason

    assert p.gopher_quality and p.gopher_repetition and p.c4 and p.fineweb
    kept_lines = p.c4.model_copy(update={"page_rules_on_kept_lines": True})
    rules: dict[str, Callable[[str], str | None]] = {
        "gopher_quality": lambda t: gopher_quality_reason(t, p.gopher_quality),  # type: ignore[arg-type]
        "gopher_repetition": lambda t: gopher_repetition_reason(t, p.gopher_repetition),  # type: ignore[arg-type]
        "c4": lambda t: c4_filter(t, p.c4)[1],  # type: ignore[arg-type]
        "c4_kept_lines": lambda t: c4_filter(t, kept_lines)[1],
        "fineweb": lambda t: fineweb_reason(t, p.fineweb),  # type: ignore[arg-type]
    }
    return {name: [fn(t) for t in texts] for name, fn in rules.items()}


@contextmanager
def one_core() -> Iterator[int]:
    """Pin this process to the core the peer child pins itself to (the lowest allowed)."""
    before = os.sched_getaffinity(0)
    core = min(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def time_ours(
    docs: list[dict[str, Any]], cfg: QualityConfig, web_only: bool, runs: int
) -> dict[str, list[float]]:
    """Wall and CPU seconds per pass of `assess_with(cfg)` over fresh rows (one process, one core)."""
    from jobs.filters.quality import assess_with

    assess = assess_with(cfg)
    out: dict[str, list[float]] = {"seconds": [], "cpu_seconds": []}
    with one_core():
        for row in [_row(d, web_only) for d in docs[:: max(1, len(docs) // 100)]]:
            assess(row)  # warm-up: py3langid's model, the regexes
        for _ in range(runs):
            rows = [_row(d, web_only) for d in docs]
            start, cpu = time.perf_counter(), time.process_time()
            for row in rows:
                assess(row)
            out["seconds"].append(time.perf_counter() - start)
            out["cpu_seconds"].append(time.process_time() - cpu)
    return out


def _row(doc: dict[str, Any], web_only: bool) -> dict[str, Any]:
    source = "web" if web_only else doc["source_type"]
    return {"id": doc["id"], "text": doc["text"], "source_type": source, "language": None, "annotations": {}}


def run_datatrove(
    docs: list[dict[str, Any]], settings: dict[str, Any], runs: int, timeout_s: float = 900
) -> dict[str, Any]:
    """scripts/quality_peers.py in the peer venv, on the same texts; its JSON result."""
    python = ensure_peer_venv()
    (ROOT / ".bench").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="quality-peers-", dir=ROOT / ".bench"))
    try:
        corpus = work / "corpus.jsonl"
        with corpus.open("w", encoding="utf-8") as fh:
            for d in docs:
                fh.write(json.dumps({"id": d["id"], "text": d["text"]}) + "\n")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env |= CHILD_ENV | {"HF_HOME": str(work / "hf-home")}
        cmd = [str(python), str(Path(__file__).with_name("quality_peers.py")), "--input", str(corpus),
               "--settings", json.dumps(settings), "--runs", str(runs)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s, cwd=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if done.returncode != 0 or not done.stdout.strip():
        raise PeerUnavailable(f"exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def agreement(ours: Decisions, theirs: Decisions, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per rule set: share of identical keep/drop decisions, per source too, and the disagreements
    grouped by (our rule, datatrove's reason) with a count and up to three example ids."""
    out: dict[str, Any] = {}
    for name in (*RULE_SETS, "c4_kept_lines"):
        peer = theirs["c4" if name == "c4_kept_lines" else name]
        same = [(a is None) == (b is None) for a, b in zip(ours[name], peer, strict=True)]
        groups: dict[str, dict[str, Any]] = {}
        for k, ok in enumerate(same):
            if not ok:
                key = f"ours {_rule(ours[name][k])} / datatrove {_rule(peer[k])}"
                g = groups.setdefault(key, {"count": 0, "by_source": Counter(), "examples": []})
                g["count"] += 1
                g["by_source"][docs[k]["source_type"]] += 1
                if len(g["examples"]) < 3:
                    g["examples"].append({"id": docs[k]["id"], "ours": ours[name][k], "datatrove": peer[k]})
        out[name] = {
            "agree": sum(same) / len(same),
            "disagree": len(same) - sum(same),
            "dropped_ours": sum(r is not None for r in ours[name]),
            "dropped_datatrove": sum(r is not None for r in peer),
            "by_source": _by_source(same, docs),
            "disagreements": dict(sorted(groups.items(), key=lambda kv: -kv[1]["count"])),
        }
    return out


def _rule(reason: str | None) -> str:
    return "keep" if reason is None else reason.split(":", 1)[0]


def _by_source(same: list[bool], docs: list[dict[str, Any]]) -> dict[str, float]:
    total, hits = Counter(d["source_type"] for d in docs), Counter()
    for ok, d in zip(same, docs, strict=True):
        hits[d["source_type"]] += ok
    return {s: hits[s] / n for s, n in total.items()}


def differences() -> dict[str, tuple[str, ...]]:
    """What each of our modules says it does differently from datatrove (printed with the table)."""
    from jobs.filters import c4, fineweb, gopher

    return {"gopher": gopher.DATATROVE_DIFFERENCES, "c4": c4.DATATROVE_DIFFERENCES,
            "fineweb": fineweb.DATATROVE_DIFFERENCES}  # fmt: skip


def run(runs: int = 3) -> dict[str, Any]:
    """The whole bench: corpus, agreement, speed; the result as a JSON-able dict."""
    docs = quality_corpus.build()
    profile = web_profile()
    settings = datatrove_settings(profile)
    mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    result: dict[str, Any] = {"docs": len(docs), "mb": mb, "composition": quality_corpus.composition(docs)}
    result["datatrove_settings"] = settings
    ours = our_decisions([d["text"] for d in docs], profile)
    no_language = QualityConfig(profiles={"web": {"language": None}})
    speed = {
        "lmforge_web_stack": time_ours(docs, load_config().quality, web_only=True, runs=runs),
        "lmforge_web_rules": time_ours(docs, no_language, web_only=True, runs=runs),
        "lmforge_per_source": time_ours(docs, load_config().quality, web_only=False, runs=runs),
    }
    try:
        peer = run_datatrove(docs, settings, runs)
    except (PeerUnavailable, OSError, subprocess.SubprocessError) as e:
        result["error"] = f"datatrove not available: {e}"
        peer = None
    if peer:
        speed["datatrove_chain"] = {"seconds": peer["seconds"], "cpu_seconds": peer["cpu_seconds"]}
        result |= {"datatrove": peer["version"], "spacy": peer["spacy"], "datatrove_kept": peer["kept"]}
        result["agreement"] = {
            "spacy_words": agreement(ours, peer["decisions"], docs),
            "whitespace_words": agreement(ours, peer["decisions_whitespace_words"], docs),
        }
    result["speed"] = {k: _rates(v, len(docs), mb) for k, v in speed.items()}
    result["differences"] = differences()
    return result


def _rates(times: dict[str, list[float]], docs: int, mb: float) -> dict[str, Any]:
    """Rates from the median CPU seconds: per core even when other processes share the machine."""
    cpu = statistics.median(times["cpu_seconds"])
    return {**times, "median_s": statistics.median(times["seconds"]), "median_cpu_s": cpu,
            "docs_per_s": docs / cpu, "mb_per_s": mb / cpu}  # fmt: skip


SPEED_LABELS = {
    "lmforge_web_stack": "lmforge web profile (language ID + 4 rule sets)",
    "lmforge_web_rules": "lmforge web rules (the 4 rule sets, no language ID)",
    "lmforge_per_source": "lmforge per-source profiles (the stage's default)",
    "datatrove_chain": "datatrove Gopher Q + Gopher R + C4 + FineWeb",
}


def table(r: dict[str, Any]) -> str:
    """The result as the text `make bench` prints."""
    kinds = Counter[str]()
    for row in r["composition"].values():
        kinds.update({k: int(row[k]) for k in ("real", "split", "generated")})
    lines = [
        f"quality: {r['docs']} documents, {r['mb']:.2f} MB ({kinds['real']} real, {kinds['split']} split, "
        f"{kinds['generated']} generated); per source: "
        + ", ".join(
            f"{s} {int(c['real'] + c['split'] + c['generated'])}" for s, c in r["composition"].items()
        )
    ]
    if "error" in r:
        lines.append(f"  {r['error']}")
    agree = r.get("agreement", {})
    if agree:
        lines.append("  same keep/drop decision, ours vs datatrove with spaCy words | with whitespace words:")
    for name in agree.get("spacy_words", {}):
        a, w = agree["spacy_words"][name], agree["whitespace_words"][name]
        lines.append(
            f"    {name:<18} {a['agree']:7.2%} ({a['disagree']:>3} differ) | {w['agree']:7.2%} "
            f"({w['disagree']:>3} differ)  dropped: ours {a['dropped_ours']}, datatrove "
            f"{a['dropped_datatrove']} | {w['dropped_datatrove']}"
        )
        for label, groups in (("spaCy", a["disagreements"]), ("ws", w["disagreements"])):
            for key, g in list(groups.items())[:4]:
                lines.append(f"      {label:<5} {g['count']:>4}  {key}  {dict(g['by_source'])}")
    speed = r["speed"]
    runs = len(next(iter(speed.values()))["seconds"])
    lines.append(f"  speed, one core, CPU time, median of {runs} runs:")
    for key, s in speed.items():
        lines.append(f"    {SPEED_LABELS[key]:<52} {s['docs_per_s']:>8.0f} docs/s {s['mb_per_s']:>6.2f} MB/s")
    if "datatrove_chain" in speed:
        base = speed["datatrove_chain"]["median_cpu_s"]
        lines.append(
            f"    ours / datatrove: web stack {base / speed['lmforge_web_stack']['median_cpu_s']:.1f}x, "
            f"rules only {base / speed['lmforge_web_rules']['median_cpu_s']:.1f}x"
        )
    return "\n".join(lines)


def report(runs: int = 3, out: Path = ROOT / ".bench" / "quality.json", diffs: bool = False) -> str:
    """Run the bench, write every number to `out`, return the table (what `make bench` prints)."""
    result = run(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=list))
    lines = [table(result)]
    if diffs:
        for module, known in result["differences"].items():
            lines.append(f"  {module}: known differences from datatrove" + "\n    ".join(("", *known)))
    lines.append(f"  raw results: {out}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", type=Path, default=ROOT / ".bench" / "quality.json")
    p.add_argument("--differences", action="store_true", help="also print each module's known differences")
    args = p.parse_args()
    print(report(args.runs, args.json, args.differences))


if __name__ == "__main__":
    main()
