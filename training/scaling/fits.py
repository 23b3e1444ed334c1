"""Scaling-law fits: Hoffmann et al. 2022 (Chinchilla) approaches 1, 2, 3 and Kaplan et al. 2020's L(N), L(D).

Approach 3 follows Besiroglu et al. 2024 ("Chinchilla Scaling: A replication attempt", Epoch AI):
L(N, D) = E + A/N^alpha + B/D^beta, fitted by minimising the Huber loss (delta = 1e-3) of
log(predicted) - log(observed), log-sum-exp parametrised (a = log A, b = log B, e = log E), with
L-BFGS-B from a grid of initialisations (alpha, beta in {0, .5, 1, 1.5, 2}, e in {-1, -.5, ..., 1},
a, b in {0, 5, ..., 25}: 4500 starts), optionally after dropping the highest-loss points (Besiroglu et
al. drop five from the Chinchilla data). Bounded cost: the objective is evaluated on the whole grid at
once and L-BFGS-B runs from its GRID_SCREEN (100) best points (screen=None: all 4500, 10-40 minutes);
bootstrap refits start from the main fit's BOOTSTRAP_STARTS (2) best distinct optima, so the main fit
and a 200-resample bootstrap take minutes on 2 cores. On the Chinchilla data the screened grid reaches
Epoch's published optimum (ours: E 1.817, A 478, B 2143, alpha 0.347, beta 0.367).

Every fitted number comes as an `Estimate` {value, lo, hi, se}: a seeded bootstrap (resampling points,
or runs for approach 1, with replacement), percentile interval and bootstrap standard error (Efron &
Tibshirani 1993). Each fit returns a JSON-ready dict (`as_dict`), with the bootstrap samples that
training/scaling/recommend.py turns into intervals on its recommendations.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from training.scaling.table import ResultsTable, budget_groups, group_budget

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, appendix D.2; Besiroglu et al. 2024
# Besiroglu et al. 2024's initialisation grid (Hoffmann et al.'s, with e's range as Epoch's code has it)
GRID_ALPHA = (0.0, 0.5, 1.0, 1.5, 2.0)
GRID_BETA = GRID_ALPHA
GRID_E = (-1.0, -0.5, 0.0, 0.5, 1.0)
GRID_A = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
GRID_B = GRID_A
BOOTSTRAP_STARTS = 2  # distinct best optima of the main fit a bootstrap refit starts from
# L-BFGS-B runs from the grid points of least objective only: scipy's L-BFGS-B costs ~0.1 s a start on
# a loaded 2-core machine, so the 4500-point grid would take 10-40 minutes per fit. None: the full grid.
GRID_SCREEN = 100
INTERVAL = 0.95
# Without a `budget` column, a group of runs whose FLOPs spread wider than this is not one IsoFLOP
# budget (runs of one budget differ by rounding only; Hoffmann et al.'s budgets are >= 0.2 dex apart)
MAX_BUDGET_SPAN_DEX = 0.3


@dataclass(frozen=True)
class Estimate:
    """A fitted value with its bootstrap percentile interval [lo, hi] and standard error."""

    value: float
    lo: float
    hi: float
    se: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "se": self.se}

    @staticmethod
    def from_samples(value: float, samples: np.ndarray, level: float = INTERVAL) -> Estimate:
        s = np.asarray(samples, np.float64)
        s = s[np.isfinite(s)]
        if len(s) < 2:
            return Estimate(value, math.nan, math.nan, math.nan)
        q = (1.0 - level) / 2.0
        lo, hi = np.quantile(s, [q, 1.0 - q])
        return Estimate(value, float(lo), float(hi), float(np.std(s, ddof=1)))


# ---------------------------------------------------------------- approach 3: parametric L(N, D)


def _huber_objective(
    theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float
) -> tuple[float, np.ndarray]:
    """Sum of Huber(log L_pred - log L_obs) / delta and its gradient in theta = (a, b, e, alpha, beta).

    Divided by delta (same minimiser): with delta = 1e-3 the raw sum's gradient falls under L-BFGS-B's
    default tolerance (1e-5) before convergence, and the refits would stop where they start.
    """
    a, b, e, alpha, beta = theta
    t = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    m = t.max(axis=0)
    w = np.exp(t - m)
    s = w.sum(axis=0)
    pred = m + np.log(s)
    w /= s
    r = pred - log_l
    absr = np.abs(r)
    small = absr <= delta
    value = float(np.sum(np.where(small, 0.5 * r * r, delta * (absr - 0.5 * delta))))
    psi = np.where(small, r, delta * np.sign(r)) / delta
    value /= delta
    grad = np.array(
        [
            psi @ w[0],
            psi @ w[1],
            psi @ w[2],
            -(psi * w[0]) @ log_n,
            -(psi * w[1]) @ log_d,
        ]
    )
    return value, grad


def default_grid() -> np.ndarray:
    """Besiroglu et al. 2024's 4500 starting points as rows (a, b, e, alpha, beta)."""
    return np.array(list(itertools.product(GRID_A, GRID_B, GRID_E, GRID_ALPHA, GRID_BETA)), np.float64)


def _grid_objective(
    grid: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float
) -> np.ndarray:
    """The Huber objective at every grid row at once (rows (a, b, e, alpha, beta))."""
    a, b, e, alpha, beta = (grid[:, j : j + 1] for j in range(5))
    t1, t2 = a - alpha * log_n, b - beta * log_d
    m = np.maximum(np.maximum(t1, t2), e)
    pred = m + np.log(np.exp(t1 - m) + np.exp(t2 - m) + np.exp(e - m))
    absr = np.abs(pred - log_l)
    return np.where(absr <= delta, 0.5 * absr * absr, delta * (absr - 0.5 * delta)).sum(axis=1)


def _minimise(
    starts: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float
) -> tuple[np.ndarray, np.ndarray]:
    """L-BFGS-B from each start: (optima, objective values)."""
    optima = np.empty_like(starts)
    values = np.empty(len(starts))
    for i, x0 in enumerate(starts):
        res = minimize(
            _huber_objective,
            x0,
            args=(log_n, log_d, log_l, delta),
            jac=True,
            method="L-BFGS-B",
        )
        optima[i] = res.x
        values[i] = res.fun if np.isfinite(res.fun) else np.inf
    return optima, values


def _distinct_best(optima: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """The k best optima that differ from each other (rounded), best first."""
    chosen: list[np.ndarray] = []
    for i in np.argsort(values):
        x = optima[i]
        if not np.all(np.isfinite(x)):
            continue
        if any(np.allclose(x, c, rtol=1e-2, atol=1e-2) for c in chosen):
            continue
        chosen.append(x)
        if len(chosen) == k:
            break
    return np.array(chosen)


def drop_highest_loss(n: np.ndarray, d: np.ndarray, loss: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Without the k highest-loss points (Besiroglu et al. 2024 drop five from the Chinchilla data)."""
    if k <= 0:
        return n, d, loss
    if k >= len(loss):
        raise ValueError(f"cannot drop {k} of {len(loss)} points")
    keep = np.sort(np.argsort(loss, kind="stable")[: len(loss) - k])
    return n[keep], d[keep], loss[keep]


@dataclass(frozen=True)
class ParametricFit:
    """L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, eq. 2)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
        return self.E + self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta)

    @property
    def a(self) -> float:
        """N_opt ∝ C^a with a = beta / (alpha + beta) (Hoffmann et al. 2022, eq. 4)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """D_opt ∝ C^b with b = alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    def vector(self) -> list[float]:
        return [self.E, self.A, self.B, self.alpha, self.beta]

    @staticmethod
    def from_theta(theta: np.ndarray) -> ParametricFit:
        a, b, e, alpha, beta = (float(x) for x in theta)
        return ParametricFit(math.exp(e), math.exp(a), math.exp(b), alpha, beta)


def fit_parametric_points(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    starts: np.ndarray | None = None,
    delta: float = HUBER_DELTA,
    keep_starts: int = BOOTSTRAP_STARTS,
    screen: int | None = GRID_SCREEN,
) -> tuple[ParametricFit, np.ndarray, float]:
    """Best fit over `starts` (default: the grid, screened): (fit, the best distinct optima, objective).

    screen=K runs L-BFGS-B from the K grid points of least objective; None runs it from all 4500.
    """
    if len(loss) < 5:
        raise ValueError(f"approach 3 fits 5 parameters: need at least 5 points, have {len(loss)}")
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)
    if starts is None:
        grid = default_grid()
        if screen is not None and screen < len(grid):
            with np.errstate(over="ignore", invalid="ignore"):
                values0 = _grid_objective(grid, log_n, log_d, log_l, delta)
            grid = grid[np.argsort(np.where(np.isfinite(values0), values0, np.inf), kind="stable")[:screen]]
    else:
        grid = starts
    with np.errstate(over="ignore", invalid="ignore"):
        optima, values = _minimise(grid, log_n, log_d, log_l, delta)
    best = _distinct_best(optima, values, keep_starts)
    if len(best) == 0:
        raise ValueError("approach 3: no start converged to a finite fit")
    return ParametricFit.from_theta(best[0]), best, float(np.min(values))


def approach3(
    table: ResultsTable,
    bootstrap: int = 200,
    seed: int = 0,
    drop_highest: int | None = None,
    delta: float = HUBER_DELTA,
) -> dict[str, Any]:
    """Approach 3 with bootstrap intervals. drop_highest None: 5 for the Chinchilla data, else 0."""
    n, d, loss = table.arrays()
    k = (5 if table.chinchilla else 0) if drop_highest is None else drop_highest
    n, d, loss = drop_highest_loss(n, d, loss, k)
    fit, best, objective = fit_parametric_points(n, d, loss, delta=delta)
    rng = np.random.default_rng(seed)
    samples = np.full((bootstrap, 5), np.nan)
    for i in range(bootstrap):
        idx = rng.integers(0, len(loss), len(loss))
        with np.errstate(over="ignore", invalid="ignore"):
            f, _, _ = fit_parametric_points(
                n[idx], d[idx], loss[idx], starts=best, delta=delta, keep_starts=1
            )
        samples[i] = f.vector()
    names = ["E", "A", "B", "alpha", "beta"]
    out: dict[str, Any] = {"approach": "3", "law": "L(N, D) = E + A/N^alpha + B/D^beta"}
    for j, name in enumerate(names):
        out[name] = Estimate.from_samples(getattr(fit, name), samples[:, j]).as_dict()
    sa = samples[:, 4] / (samples[:, 3] + samples[:, 4])
    out["a"] = Estimate.from_samples(fit.a, sa).as_dict()
    out["b"] = Estimate.from_samples(fit.b, 1.0 - sa).as_dict()
    out.update(
        n_points=len(loss),
        dropped_highest=int(k),
        huber_delta=delta,
        objective=objective,
        bootstrap=int(bootstrap),
        seed=int(seed),
        samples=samples.tolist(),
        sample_columns=names,
    )
    return out


def parametric_from_dict(fit: dict[str, Any]) -> ParametricFit:
    """The point estimate of an approach-3 dict (as `approach3` returns or the command prints)."""
    return ParametricFit(*(float(fit[k]["value"]) for k in ("E", "A", "B", "alpha", "beta")))


# ---------------------------------------------------------------- power laws N_opt, D_opt ∝ C^a, C^b


def _loglog_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares log y = slope log x + intercept: (slope, intercept)."""
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)


def _power_law_result(
    approach: str, c: np.ndarray, n_opt: np.ndarray, samples: np.ndarray, extra: dict[str, Any]
) -> dict[str, Any]:
    """a, b, log coefficients, with intervals from samples rows (a, log_kn, b, log_kd)."""
    a, log_kn = _loglog_fit(c, n_opt)
    b, log_kd = _loglog_fit(c, c / (6.0 * n_opt))
    names = ["a", "log_k_n", "b", "log_k_d"]
    out: dict[str, Any] = {"approach": approach, "law": "N_opt = exp(log_k_n) C^a, D_opt = exp(log_k_d) C^b"}
    for j, (name, value) in enumerate(zip(names, (a, log_kn, b, log_kd), strict=True)):
        out[name] = Estimate.from_samples(value, samples[:, j]).as_dict()
    out.update(
        points=[{"flops": float(ci), "n_opt": float(ni)} for ci, ni in zip(c, n_opt, strict=True)],
        samples=samples.tolist(),
        sample_columns=names,
        **extra,
    )
    return out


def _power_sample(c: np.ndarray, n_opt: np.ndarray) -> list[float]:
    if len(c) < 2 or np.ptp(np.log(c)) == 0:
        return [math.nan] * 4
    a, kn = _loglog_fit(c, n_opt)
    b, kd = _loglog_fit(c, c / (6.0 * n_opt))
    return [a, kn, b, kd]


def envelope(
    curves: pd.DataFrame, levels: int = 60, drop_edges: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Approach 1's frontier: at log-spaced compute levels, the run of least (interpolated) loss.

    C = 6 N tokens along each curve (Hoffmann et al. 2022, section 3.1); a run's loss at C is
    interpolated linearly in log C within the run's range. Levels won by the smallest or largest model
    are dropped (the optimum may lie outside the sweep). Returns (C, N_opt, loss) per kept level.
    """
    runs = []
    for _, g in curves.groupby("run_id", sort=False):
        g = g.sort_values("tokens")
        c = np.log(6.0 * g["params"].to_numpy(np.float64) * g["tokens"].to_numpy(np.float64))
        runs.append((float(g["params"].iloc[0]), c, g["loss"].to_numpy(np.float64)))
    if len(runs) < 2:
        raise ValueError("approach 1 needs training curves of at least 2 runs (run_id, step, tokens, loss)")
    lo = min(r[1][0] for r in runs)
    hi = max(r[1][-1] for r in runs)
    grid = np.linspace(lo, hi, levels)
    losses = np.full((len(runs), levels), np.inf)
    for i, (_, c, curve) in enumerate(runs):
        inside = (grid >= c[0]) & (grid <= c[-1])
        losses[i, inside] = np.interp(grid[inside], c, curve)
    best = np.argmin(losses, axis=0)
    sizes = np.array([r[0] for r in runs])
    ok = np.isfinite(losses[best, np.arange(levels)])
    if drop_edges:
        ok &= (sizes[best] > sizes.min()) & (sizes[best] < sizes.max())
    return np.exp(grid[ok]), sizes[best[ok]], losses[best[ok], np.arange(levels)[ok]]


def approach1(table: ResultsTable, bootstrap: int = 200, seed: int = 0, levels: int = 60) -> dict[str, Any]:
    """Approach 1: power laws fitted to the training-curve envelope; bootstrap resamples runs."""
    if not table.is_curves:
        raise ValueError("approach 1 needs training curves: columns run_id and step, one row per point")
    frame = table.frame
    c, n_opt, _ = envelope(frame, levels)
    if len(c) < 2:
        raise ValueError("approach 1: fewer than 2 compute levels won by an interior model size")
    run_ids = frame["run_id"].unique()
    by_run = {r: g for r, g in frame.groupby("run_id", sort=False)}
    rng = np.random.default_rng(seed)
    samples = np.full((bootstrap, 4), np.nan)
    for i in range(bootstrap):
        pick = rng.choice(run_ids, len(run_ids), replace=True)
        parts = [by_run[r].assign(run_id=f"{r}#{j}") for j, r in enumerate(pick)]
        try:
            cs, ns, _ = envelope(pd.concat(parts, ignore_index=True), levels)
        except ValueError:
            continue
        samples[i] = _power_sample(cs, ns)
    return _power_law_result("1", c, n_opt, samples, {"runs": len(run_ids), "levels": len(c)})


def isoflop_minima(
    frame: pd.DataFrame, groups: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Approach 2: per budget, loss = p0 + p1 x + p2 x^2 in x = log N; its vertex is N_opt(C).

    A budget with fewer than 3 distinct sizes, or a parabola that is not convex, gives no minimum.
    Returns (C, N_opt) of the usable budgets and every budget's parabola (for the plots).
    """
    log_n = np.log(frame["params"].to_numpy(np.float64))
    loss = frame["loss"].to_numpy(np.float64)
    flops = frame["flops"].to_numpy(np.float64)
    cs, ns, parabolas = [], [], []
    for rows in groups:
        budget = group_budget(frame, rows)
        entry: dict[str, Any] = {"flops": budget, "points": len(rows)}
        span = float(np.ptp(np.log10(flops[rows]))) if len(rows) else 0.0
        if "budget" not in frame and span > MAX_BUDGET_SPAN_DEX:
            entry["skipped"] = f"flops span {span:.2f} dex: not one IsoFLOP budget"
        elif len(np.unique(log_n[rows])) >= 3:
            p2, p1, p0 = np.polyfit(log_n[rows], loss[rows], 2)
            entry["coefficients"] = [float(p0), float(p1), float(p2)]
            if p2 > 0:
                x = -p1 / (2.0 * p2)
                entry["n_opt"] = float(math.exp(x))
                entry["loss_min"] = float(p0 + p1 * x + p2 * x * x)
                cs.append(budget)
                ns.append(math.exp(x))
        parabolas.append(entry)
    return np.array(cs), np.array(ns), parabolas


def approach2(
    table: ResultsTable, bootstrap: int = 200, seed: int = 0, gap_dex: float = 0.1
) -> dict[str, Any]:
    """Approach 2 (IsoFLOP profiles); bootstrap resamples points within each budget."""
    frame = table.final_points()
    groups = budget_groups(frame, gap_dex)
    c, n_opt, parabolas = isoflop_minima(frame, groups)
    if len(c) < 2:
        raise ValueError(
            "approach 2 needs at least 2 IsoFLOP budgets with 3+ model sizes and a convex profile"
        )
    rng = np.random.default_rng(seed)
    samples = np.full((bootstrap, 4), np.nan)
    for i in range(bootstrap):
        resampled = [rng.choice(g, len(g), replace=True) for g in groups]
        cs, ns, _ = isoflop_minima(frame, resampled)
        samples[i] = _power_sample(cs, ns)
    return _power_law_result("2", c, n_opt, samples, {"budgets": parabolas})


# ---------------------------------------------------------------- Kaplan et al. 2020


def _frontier(x: np.ndarray, loss: np.ndarray, tol_dex: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct x (within tol_dex), the least loss."""
    lx = np.log10(x)
    keys = np.round(lx / tol_dex).astype(np.int64)
    xs, ls = [], []
    for k in np.unique(keys):
        sel = keys == k
        xs.append(10 ** np.mean(lx[sel]))
        ls.append(loss[sel].min())
    return np.array(xs), np.array(ls)


def _kaplan_one(x: np.ndarray, loss: np.ndarray) -> tuple[float, float]:
    """L = (X_c / X)^alpha_X in log space: (alpha_X, X_c)."""
    xs, ls = _frontier(x, loss)
    if len(xs) < 2:
        return math.nan, math.nan
    slope, intercept = _loglog_fit(xs, ls)
    alpha = -slope
    return alpha, math.exp(intercept / alpha) if alpha != 0 else math.nan


def kaplan(table: ResultsTable, bootstrap: int = 200, seed: int = 0) -> dict[str, Any]:
    """Kaplan et al. 2020's L(N) = (N_c/N)^alpha_N and L(D) = (D_c/D)^alpha_D, in log space.

    Kaplan et al. fit L(N) to models trained near convergence and L(D) to large models stopped early:
    from a sweep's points, the least loss per distinct N (resp. D) stands for that limit.
    """
    n, d, loss = table.arrays()
    alpha_n, n_c = _kaplan_one(n, loss)
    alpha_d, d_c = _kaplan_one(d, loss)
    if not all(np.isfinite([alpha_n, n_c, alpha_d, d_c])):
        raise ValueError("Kaplan fits need at least 2 distinct N and 2 distinct D")
    rng = np.random.default_rng(seed)
    samples = np.full((bootstrap, 4), np.nan)
    for i in range(bootstrap):
        idx = rng.integers(0, len(loss), len(loss))
        samples[i, :2] = _kaplan_one(n[idx], loss[idx])
        samples[i, 2:] = _kaplan_one(d[idx], loss[idx])
    names = ["alpha_N", "N_c", "alpha_D", "D_c"]
    out: dict[str, Any] = {"approach": "kaplan", "law": "L(N) = (N_c/N)^alpha_N, L(D) = (D_c/D)^alpha_D"}
    for j, (name, value) in enumerate(zip(names, (alpha_n, n_c, alpha_d, d_c), strict=True)):
        out[name] = Estimate.from_samples(value, samples[:, j]).as_dict()
    out.update(samples=samples.tolist(), sample_columns=names)
    return out


def json_safe(obj: Any) -> Any:
    """NaN and infinities (an interval without bootstrap samples) as null: strict JSON has neither."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


APPROACHES = ("1", "2", "3", "kaplan")


def fit_all(
    table: ResultsTable,
    approaches: tuple[str, ...] = APPROACHES,
    bootstrap: int = 200,
    seed: int = 0,
    drop_highest: int | None = None,
) -> dict[str, Any]:
    """{"approach1": ..., "approach2": ..., "approach3": ..., "kaplan": ...} for the approaches asked.

    Asking for all skips approach 1 without training curves; an approach asked for alone that cannot
    be fitted raises ValueError. Each fit's "samples" are its bootstrap refits.
    """
    out: dict[str, Any] = {
        "params_column": table.params_column,
        "rows": len(table.frame),
        "points": len(table.final_points()),
    }
    for name in approaches:
        key = "kaplan" if name == "kaplan" else f"approach{name}"
        try:
            if name == "1":
                out[key] = approach1(table, bootstrap, seed)
            elif name == "2":
                out[key] = approach2(table, bootstrap, seed)
            elif name == "3":
                out[key] = approach3(table, bootstrap, seed, drop_highest)
            elif name == "kaplan":
                out[key] = kaplan(table, bootstrap, seed)
            else:
                raise ValueError(f"unknown approach {name!r} (one of {', '.join(APPROACHES)})")
        except ValueError as err:
            if len(approaches) == 1:
                raise
            out.setdefault("skipped", {})[key] = str(err)
    return out
