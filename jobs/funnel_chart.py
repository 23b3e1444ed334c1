"""Charts of the run funnel (jobs/funnel.py), drawn from the summary's numbers so they always agree
with it: documents and tokens in/out per stage stacked by source, and what each rule removed."""

from __future__ import annotations

import io
from typing import Any

from core.schema import SOURCE_TYPES

COLORS = dict(
    zip(SOURCE_TYPES, ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"), strict=True)
)


def _sources(funnel: list[dict[str, Any]]) -> list[str]:
    seen = {s for row in funnel for s in row.get("by_source", {})}
    return [s for s in SOURCE_TYPES if s in seen] + sorted(seen - set(SOURCE_TYPES))


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes, closed after; no software version in the metadata, so same bytes."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def pyplot() -> Any:
    """pyplot on the Agg backend: charts are drawn in workers and tests without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_funnel(funnel: list[dict[str, Any]], token_unit: str) -> bytes:
    """PNG: per stage an `in` bar (light) and an `out` bar, stacked by source; documents, then tokens."""
    plt = pyplot()
    from matplotlib.ticker import EngFormatter

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    stages, sources = [row["stage"] for row in funnel], _sources(funnel)
    for ax, unit in zip(axes, ("documents", "tokens"), strict=True):
        for offset, side, alpha in ((-0.2, "in", 0.4), (0.2, "out", 1.0)):
            bottom = [0] * len(stages)
            for source in sources:
                values = [row.get("by_source", {}).get(source, {}).get(f"{unit}_{side}", 0) for row in funnel]
                xs = [i + offset for i in range(len(stages))]
                label = source if side == "out" else None
                ax.bar(xs, values, 0.38, bottom=bottom, color=COLORS.get(source, "#999999"), alpha=alpha,
                       label=label)  # fmt: skip
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_xticks(range(len(stages)), stages)
        ax.set_ylabel(unit if unit == "documents" else f"tokens ({token_unit})")
        ax.yaxis.set_major_formatter(EngFormatter())
        ax.set_title(f"{unit.capitalize()} in (light) and out per stage")
    if sources:
        fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="outside right upper")
    return png_bytes(fig)


def plot_rules(funnel: list[dict[str, Any]], token_unit: str) -> bytes:
    """PNG: documents and tokens each rule removed (`stage: rule`), stacked by source."""
    plt = pyplot()
    from matplotlib.ticker import EngFormatter

    bars = [
        (f"{row['stage']}: {rule}", per)
        for row in funnel
        for rule, per in row.get("removed_by_rule", {}).items()
    ]
    fig, axes = plt.subplots(
        1, 2, figsize=(12, 1.5 + 0.3 * max(len(bars), 1)), sharey=True, layout="constrained"
    )
    sources, ys = _sources(funnel), list(range(len(bars)))
    for ax, unit in zip(axes, ("documents", "tokens"), strict=True):
        left = [0] * len(bars)
        for source in sources:
            values = [per.get(source, {}).get(unit, 0) for _, per in bars]
            ax.barh(ys, values, left=left, color=COLORS.get(source, "#999999"), label=source)
            left = [a + v for a, v in zip(left, values, strict=True)]
        ax.set_xlabel(unit if unit == "documents" else f"tokens ({token_unit})")
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.set_title(f"{unit.capitalize()} removed per rule")
    axes[0].set_yticks(ys, [name for name, _ in bars])
    axes[0].invert_yaxis()
    if sources and bars:
        fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="outside right upper")
    return png_bytes(fig)
