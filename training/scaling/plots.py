"""Scaling-law figures (matplotlib Agg, PNG bytes) and a report writer for the sweep DAG.

    write_report(table: ResultsTable | str | Path, out_dir: str | Path, *, approaches=("1", "2", "3",
                 "kaplan"), bootstrap: int = 200, seed: int = 0, drop_highest: int | None = None)
        -> {"fit": <fit document, as `lmforge scaling fit --json` prints>,
            "files": {"fit": out_dir/fit.json, "markdown": out_dir/report.md, "html": out_dir/report.html,
                      "loss_vs_compute": ...png, "isoflops": ...png, "surface": ...png}}

writes the fitted parameters with their intervals (fit.json, report.md, report.html) and the figures
that the fits allow: loss vs compute with the fitted frontier; IsoFLOP profiles with their parabolas
and minima (Hoffmann et al. 2022, figure 3); L(N, D)'s contours with the efficient frontier
(Hoffmann et al. 2022, figure 4). An approach that cannot be fitted is listed under "skipped".
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from training.scaling.fits import APPROACHES, fit_all, json_safe, parametric_from_dict
from training.scaling.table import ResultsTable, read_table


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_loss_vs_compute(table: ResultsTable, fit_doc: dict[str, Any]) -> bytes:
    """Every point's loss against C, coloured by N, with approach 3's compute-optimal frontier."""
    f = table.final_points()
    fig, ax = plt.subplots(figsize=(6, 4))
    sc = ax.scatter(f["flops"], f["loss"], c=np.log10(f["params"]), s=12, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="log10 N")
    if "approach3" in fit_doc:
        p = parametric_from_dict(fit_doc["approach3"])
        c = np.logspace(np.log10(f["flops"].min()), np.log10(f["flops"].max()) + 1, 100)
        g = (p.alpha * p.A / (p.beta * p.B)) ** (1 / (p.alpha + p.beta))
        n = g * (c / 6) ** p.a
        ax.plot(c, p.loss(n, c / (6 * n)), "r-", label="approach 3 frontier")
        ax.axhline(p.E, color="grey", ls=":", label=f"E = {p.E:.3g}")
        ax.legend()
    ax.set(xscale="log", xlabel="training FLOPs C", ylabel="loss", title="Loss vs compute")
    return _png(fig)


def plot_isoflops(fit_doc: dict[str, Any], table: ResultsTable) -> bytes:
    """IsoFLOP profiles: loss against N per budget, the fitted parabola in log N and its minimum."""
    f = table.final_points()
    fig, ax = plt.subplots(figsize=(6, 4))
    budgets = fit_doc.get("approach2", {}).get("budgets", [])
    cmap = plt.get_cmap("plasma")
    for i, b in enumerate(budgets):
        color = cmap(i / max(1, len(budgets) - 1))
        sel = np.abs(np.log10(f["flops"]) - np.log10(b["flops"])) < 0.1
        ax.scatter(f["params"][sel], f["loss"][sel], s=10, color=color)
        if "coefficients" in b:
            p0, p1, p2 = b["coefficients"]
            ns = f["params"][sel]
            x = np.linspace(np.log(ns.min()), np.log(ns.max()), 50)
            ax.plot(np.exp(x), p0 + p1 * x + p2 * x * x, color=color, label=f"{b['flops']:.2g}")
        if "n_opt" in b:
            ax.plot([b["n_opt"]], [b["loss_min"]], "kx")
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss", title="IsoFLOP profiles (approach 2)")
    if budgets:
        ax.legend(fontsize=6, title="C", title_fontsize=7)
    return _png(fig)


def plot_surface(fit_doc: dict[str, Any], table: ResultsTable) -> bytes:
    """Contours of the fitted L(N, D) over the data's range, with the points and the efficient frontier."""
    p = parametric_from_dict(fit_doc["approach3"])
    f = table.final_points()
    ln = np.linspace(np.log10(f["params"].min()) - 0.5, np.log10(f["params"].max()) + 0.5, 120)
    ld = np.linspace(np.log10(f["tokens"].min()) - 0.5, np.log10(f["tokens"].max()) + 0.5, 120)
    nn, dd = np.meshgrid(10**ln, 10**ld)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cs = ax.contour(nn, dd, p.loss(nn, dd), levels=15, cmap="viridis")
    ax.clabel(cs, fontsize=6)
    ax.scatter(f["params"], f["tokens"], s=6, color="k")
    g = (p.alpha * p.A / (p.beta * p.B)) ** (1 / (p.alpha + p.beta))
    c = 6 * nn.min() * dd.min() * np.logspace(0, 8, 100)
    n_opt = g * (c / 6) ** p.a
    ax.plot(n_opt, c / (6 * n_opt), "r-", label="efficient frontier")
    ax.set(xscale="log", yscale="log", xlim=(nn.min(), nn.max()), ylim=(dd.min(), dd.max()))
    ax.set(xlabel="parameters N", ylabel="tokens D", title="Fitted L(N, D)")
    ax.legend()
    return _png(fig)


def _param_rows(fit_doc: dict[str, Any]) -> list[tuple[str, str, dict[str, float]]]:
    rows = []
    for key, fit in fit_doc.items():
        if isinstance(fit, dict) and "approach" in fit:
            for name, value in fit.items():
                if isinstance(value, dict) and set(value) == {"value", "lo", "hi", "se"}:
                    rows.append((key, name, value))
    return rows


def write_report(
    table: ResultsTable | str | Path,
    out_dir: str | Path,
    *,
    approaches: tuple[str, ...] = APPROACHES,
    bootstrap: int = 200,
    seed: int = 0,
    drop_highest: int | None = None,
) -> dict[str, Any]:
    """Fit, draw and write fit.json, report.md, report.html and the PNGs; see the module docstring."""
    if not isinstance(table, ResultsTable):
        table = read_table(table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = fit_all(table, approaches, bootstrap, seed, drop_highest)
    files: dict[str, str] = {}
    figures: dict[str, bytes] = {"loss_vs_compute": plot_loss_vs_compute(table, doc)}
    if "approach2" in doc:
        figures["isoflops"] = plot_isoflops(doc, table)
    if "approach3" in doc:
        figures["surface"] = plot_surface(doc, table)
    for name, data in figures.items():
        path = out / f"{name}.png"
        path.write_bytes(data)
        files[name] = str(path)
    (out / "fit.json").write_text(json.dumps(json_safe(doc), indent=1, sort_keys=True, allow_nan=False))
    files["fit"] = str(out / "fit.json")
    rows = _param_rows(doc)
    md = [
        "# Scaling-law fit",
        "",
        "| fit | parameter | value | 95% interval | s.e. |",
        "|---|---|---|---|---|",
    ]
    md += [
        f"| {k} | {n} | {v['value']:.4g} | [{v['lo']:.4g}, {v['hi']:.4g}] | {v['se']:.3g} |"
        for k, n, v in rows
    ]
    for reason in doc.get("skipped", {}).items():
        md.append(f"\nskipped {reason[0]}: {reason[1]}")
    md += ["", *(f"![{name}]({name}.png)" for name in figures)]
    (out / "report.md").write_text("\n".join(md) + "\n")
    files["markdown"] = str(out / "report.md")
    cells = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(n)}</td><td>{v['value']:.4g}</td>"
        f"<td>[{v['lo']:.4g}, {v['hi']:.4g}]</td><td>{v['se']:.3g}</td></tr>"
        for k, n, v in rows
    )
    imgs = "".join(f'<img src="{name}.png" alt="{name}">' for name in figures)
    (out / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Scaling-law fit</title></head><body>"
        "<h1>Scaling-law fit</h1><table border='1'><tr><th>fit</th><th>parameter</th><th>value</th>"
        f"<th>95% interval</th><th>s.e.</th></tr>{cells}</table>{imgs}</body></html>\n"
    )
    files["html"] = str(out / "report.html")
    return {"fit": doc, "files": files}
