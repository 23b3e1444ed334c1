"""The data report's charts, drawn from the report's own numbers (plain dicts) so they always agree with
its tables. Each function returns PNG bytes; sources keep the funnel charts' colours."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.copyright_policy import CLASS_ORDER
from jobs.funnel_chart import COLORS, png_bytes, pyplot
from jobs.report_stats import SCORE_BINS, length_edges

_GREY = "#999999"
_CLASS_COLORS = ("#2ca02c", "#98df8a", "#ffbb78", "#ff7f0e", "#d62728", "#9467bd", "#c7c7c7")


def _shares(bins: dict[str, int], count: int) -> dict[int, float]:
    return {int(k): v / count for k, v in bins.items()} if count else {}


def plot_lengths(length: dict[str, dict[str, Any]], unit: str) -> bytes:
    """Share of each source's documents per half-octave length bin, on a log x axis."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    for source, h in length.items():
        shares = _shares(h["bins"], h["count"])
        drawn = [b for b in shares if b > 0]  # empty documents (bin 0) have no place on a log axis
        if not drawn:
            continue
        first, top = min(drawn), max(drawn)
        edges = [length_edges(b)[0] for b in range(first, top + 1)] + [length_edges(top)[1]]
        values = [shares.get(b, 0.0) for b in range(first, top + 1)]
        ax.stairs(values, edges, color=COLORS.get(source, _GREY), label=f"{source} ({h['count']:,})", lw=2)
    ax.set_xscale("log")
    ax.set_xlabel(f"length per document ({unit})")
    ax.set_ylabel("share of the source's documents")
    ax.set_title("Document length per source")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return png_bytes(fig)


def plot_scores(scores: dict[str, dict[str, Any]]) -> bytes:
    """Share of each source's scored documents per 0.05-wide quality-score bin."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    edges = [i / SCORE_BINS for i in range(SCORE_BINS + 1)]
    for source, h in scores.items():
        shares = _shares(h["bins"], h["count"])
        values = [shares.get(b, 0.0) for b in range(SCORE_BINS)]
        ax.stairs(values, edges, color=COLORS.get(source, _GREY), label=f"{source} ({h['count']:,})", lw=2)
    ax.set_xlim(0, 1)
    ax.set_xlabel("quality.score")
    ax.set_ylabel("share of the source's scored documents")
    ax.set_title("Trained quality score per source")
    if scores:
        ax.legend(fontsize=8)
    return png_bytes(fig)


def _stacked_shares(
    rows: Mapping[str, Mapping[str, float]],
    order: list[str],
    colors: Mapping[str, str],
    title: str,
    xlabel: str,
) -> bytes:
    """Horizontal bars, one per row (source), stacked by `order` as shares of the row's total."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 1.4 + 0.45 * max(len(rows), 1)), layout="constrained")
    names = list(rows)
    left = [0.0] * len(names)
    for key in order:
        totals = [sum(rows[n].values()) or 1 for n in names]
        values = [rows[n].get(key, 0) / t for n, t in zip(names, totals, strict=True)]
        ax.barh(range(len(names)), values, left=left, color=colors.get(key, _GREY), label=key)
        left = [a + v for a, v in zip(left, values, strict=True)]
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if names and order:
        fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside right upper")
    return png_bytes(fig)


def plot_languages(by_source: dict[str, Any], top: int = 6) -> bytes:
    """Each source's documents by language: the `top` languages overall, the rest as `other`."""
    overall: dict[str, int] = {}
    for v in by_source.values():
        for lang, c in v["languages"].items():
            overall[lang] = overall.get(lang, 0) + c["documents"]
    kept = sorted(overall, key=lambda k: (-overall[k], k))[:top]
    rows = {
        s: {
            **{lang: v["languages"].get(lang, {}).get("documents", 0) for lang in kept},
            "other": sum(c["documents"] for lang, c in v["languages"].items() if lang not in kept),
        }
        for s, v in by_source.items()
    }
    palette = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
    colors = {**dict(zip(kept, palette, strict=False)), "none": "#dddddd", "other": "#bbbbbb"}
    return _stacked_shares(rows, [*kept, "other"], colors, "Language mix per source", "share of documents")


def plot_licences(decisions: dict[str, dict[str, dict[str, int]]]) -> bytes:
    """Each source's screened documents by licence class (every decision counted)."""
    rows = {s: {cls: sum(d.values()) for cls, d in classes.items()} for s, classes in decisions.items()}
    seen = {cls for r in rows.values() for cls in r}
    order = [c for c in CLASS_ORDER if c in seen] + sorted(seen - set(CLASS_ORDER))
    colors: dict[str, str] = dict(zip(CLASS_ORDER, _CLASS_COLORS, strict=False))
    return _stacked_shares(rows, order, colors, "Licence classes per source", "share of screened documents")


def _grouped(groups: dict[str, dict[str, Any]], series: list[str], title: str, ylabel: str) -> bytes:
    """Vertical bars per group (source), one bar per series side by side."""
    plt = pyplot()
    from matplotlib.ticker import EngFormatter

    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    names, width = list(groups), 0.8 / max(len(series), 1)
    for i, key in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(names))]
        ax.bar(xs, [groups[n].get(key) or 0 for n in names], width, label=key)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.yaxis.set_major_formatter(EngFormatter())
    if names:
        ax.legend(fontsize=8)
    return png_bytes(fig)


def plot_dedup(rates: dict[str, dict[str, Any]]) -> bytes:
    """Exact and near duplicate rates per source (share of the stage's input documents)."""
    return _grouped(rates, ["exact", "near"], "Duplicate rate per source", "share of documents removed")


def plot_mixture(rows: dict[str, dict[str, Any]]) -> bytes:
    """Natural, target and realised training tokens per source."""
    series = ["natural_tokens", "target_tokens", "realised_tokens"]
    return _grouped(rows, series, "Mixture: training tokens per source", "tokens")
