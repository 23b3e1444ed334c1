"""The results table a scaling-law fit reads: one row per finished run, or per point of a training curve.

Columns (CSV header names; `lmforge scaling fit --help` prints the same list):

    params                N, total parameters (Hoffmann et al. 2022 count all parameters)
    non_embedding_params  N without the embeddings (Kaplan et al. 2020 count these); used when
                          `params` is absent, or when asked for with params_column="non_embedding_params"
    tokens                D, training tokens seen (alias `tokens_seen`, the name in training curves)
    flops                 C, training FLOPs; 6*N*D when missing (Kaplan et al. 2020, section 2.1)
    loss                  validation loss (final, or at `step` for a curve)
    run_id                optional: which run a row belongs to (approach 1 needs it: one curve per run)
    budget                optional: the IsoFLOP budget a run was planned for (approach 2 groups by it;
                          without it runs are grouped by their `flops`)
    step                  optional: the training step of a curve point

Epoch AI's extraction of the Chinchilla points (Besiroglu et al. 2024) is read as it is: `Model Size`
is N, `Training FLOP` is C and D = C / (6 N).

A training-curve table (with `run_id` and `step`) gives approach 1 every point and the other fits each
run's last point (the largest `tokens`). Bad input fails with `TableError` naming the column and row.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

# Bound on the bytes read: a sweep's table is kilobytes, a training-curve table a few megabytes.
MAX_TABLE_BYTES = 64 * 1024 * 1024
CHINCHILLA_COLUMNS = ("Model Size", "Training FLOP", "loss")
ParamsColumn = Literal["auto", "params", "non_embedding_params"]


class TableError(ValueError):
    """The table cannot be fitted: a missing column, a non-positive or non-finite value, too large."""


@dataclass(frozen=True)
class ResultsTable:
    """Canonical columns params, tokens, flops, loss (+ run_id, budget, step when given), all finite > 0.

    `params_column` says which parameter count N is (`params`, `non_embedding_params`, `Model Size`);
    `chinchilla` is true for Epoch AI's extraction of Hoffmann et al.'s points.
    """

    frame: pd.DataFrame
    params_column: str
    chinchilla: bool = False

    @property
    def is_curves(self) -> bool:
        """True when rows are points of per-run training curves (approach 1's input)."""
        return "run_id" in self.frame and "step" in self.frame

    def final_points(self) -> pd.DataFrame:
        """One row per run (its largest `tokens`) for a curve table; the whole table otherwise."""
        if not self.is_curves:
            return self.frame
        idx = self.frame.groupby("run_id", sort=False)["tokens"].idxmax()
        return self.frame.loc[idx.to_numpy()].reset_index(drop=True)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, D, loss) of the final points, float64."""
        f = self.final_points()
        return (
            f["params"].to_numpy(np.float64),
            f["tokens"].to_numpy(np.float64),
            f["loss"].to_numpy(np.float64),
        )


def read_table(
    path: str | Path, params_column: ParamsColumn = "auto", max_bytes: int = MAX_TABLE_BYTES
) -> ResultsTable:
    """Read a CSV results table; at most `max_bytes` bytes (a larger file is refused, not truncated)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError as err:
        raise TableError(f"{p}: no such file") from err
    if size > max_bytes:
        raise TableError(f"{p}: {size} bytes, more than the {max_bytes} a results table may have")
    with p.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TableError(f"{p}: more than the {max_bytes} bytes a results table may have")
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise TableError(f"{p}: not a CSV table ({err})") from err
    return from_frame(frame, params_column)


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise TableError(
            f"column {column!r}: {int(bad.sum())} value(s) not a finite positive number "
            f"(first at data row {row + 1}: {frame[column].iloc[row]!r})"
        )
    return values


def from_frame(frame: pd.DataFrame, params_column: ParamsColumn = "auto") -> ResultsTable:
    """Validate and normalise a DataFrame to the canonical columns (see the module docstring)."""
    cols = set(frame.columns)
    if len(frame) == 0:
        raise TableError("the table has no rows")
    chinchilla = all(c in cols for c in CHINCHILLA_COLUMNS) and "params" not in cols
    out = pd.DataFrame(index=frame.index)
    if chinchilla:
        n = _numeric(frame, "Model Size")
        c = _numeric(frame, "Training FLOP")
        out["params"], out["flops"], out["tokens"] = n, c, c / (6.0 * n)
        used = "Model Size"
    else:
        if params_column == "auto":
            used = (
                "params" if "params" in cols or "non_embedding_params" not in cols else "non_embedding_params"
            )
        else:
            used = params_column
        if used not in cols:
            raise TableError(
                f"missing column {used!r} (need params or non_embedding_params, tokens or flops, loss; "
                f"found {sorted(map(str, cols))})"
            )
        n = _numeric(frame, used)
        out["params"] = n
        tok_col = "tokens" if "tokens" in cols else "tokens_seen" if "tokens_seen" in cols else None
        if tok_col is None and "flops" not in cols:
            raise TableError("missing column 'tokens' (or 'tokens_seen', or 'flops' to derive it)")
        if tok_col is not None:
            out["tokens"] = _numeric(frame, tok_col)
            out["flops"] = _numeric(frame, "flops") if "flops" in cols else 6.0 * n * out["tokens"]
        else:
            out["flops"] = _numeric(frame, "flops")
            out["tokens"] = out["flops"] / (6.0 * n)
    if "loss" not in cols:
        raise TableError(f"missing column 'loss' (found {sorted(map(str, cols))})")
    out["loss"] = _numeric(frame, "loss")
    if "run_id" in cols:
        if frame["run_id"].isna().any():
            raise TableError("column 'run_id': empty values")
        out["run_id"] = frame["run_id"].astype(str)
    if "budget" in cols:
        out["budget"] = _numeric(frame, "budget")
    if "step" in cols:
        step = pd.to_numeric(frame["step"], errors="coerce").to_numpy(np.float64)
        if (~np.isfinite(step) | (step < 0)).any():
            raise TableError("column 'step': values must be finite and >= 0")
        out["step"] = step
    return ResultsTable(out.reset_index(drop=True), used, chinchilla)


def budget_groups(frame: pd.DataFrame, gap_dex: float = 0.1) -> list[np.ndarray]:
    """Row indices per IsoFLOP budget: the `budget` column, else `flops` split where log10 gaps > gap_dex.

    Points read off a figure (Epoch's Chinchilla extraction) scatter ~0.04 dex around their budget,
    while Hoffmann et al.'s budgets (6e18, 1e19, 3e19, ...) are >= 0.2 dex apart: 0.1 dex separates them.
    """
    if "budget" in frame:
        return [np.flatnonzero(frame["budget"].to_numpy() == b) for b in sorted(frame["budget"].unique())]
    logc = np.log10(frame["flops"].to_numpy(np.float64))
    order = np.argsort(logc)
    groups: list[np.ndarray] = []
    start = 0
    for i in range(1, len(order) + 1):
        if i == len(order) or logc[order[i]] - logc[order[i - 1]] > gap_dex:
            groups.append(np.sort(order[start:i]))
            start = i
    return groups


def group_budget(frame: pd.DataFrame, rows: np.ndarray) -> float:
    """A group's compute: its `budget` when given, else the geometric mean of its `flops`."""
    if "budget" in frame:
        return float(frame["budget"].to_numpy()[rows[0]])
    return float(math.exp(np.mean(np.log(frame["flops"].to_numpy(np.float64)[rows]))))
