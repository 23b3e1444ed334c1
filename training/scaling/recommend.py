"""Compute-optimal recommendations from a fit document (what `lmforge scaling fit --json` prints).

For approach 3 (Hoffmann et al. 2022, eq. 4; Besiroglu et al. 2024) the closed form
    N_opt(C) = G (C/6)^(beta/(alpha+beta)),  D_opt(C) = G^-1 (C/6)^(alpha/(alpha+beta)),
    G = (alpha A / (beta B))^(1/(alpha+beta)),
with C = 6 N D (Kaplan et al. 2020). Approaches 1 and 2 give N_opt = k_n C^a, D_opt = C / (6 N_opt).
Every number carries a 95% percentile interval from the fit's bootstrap samples.

Reverse questions (approach 3): given N, the compute-optimal D solves alpha A N^-alpha = beta B D^-beta
(the optimum's first-order condition under C = 6ND); given a target loss L > E, the least compute
reaching it splits L - E as A N^-alpha = beta (L-E)/(alpha+beta), B D^-beta = alpha (L-E)/(alpha+beta).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from training.scaling.fits import Estimate


def _est(values: np.ndarray) -> dict[str, float]:
    """Point value (first entry) with the interval of the rest (the bootstrap samples)."""
    return Estimate.from_samples(float(values[0]), values[1:]).as_dict()


def _params3(fit: dict[str, Any]) -> np.ndarray:
    """Rows (E, A, B, alpha, beta): the point estimate, then each finite bootstrap sample."""
    point = [float(fit[k]["value"]) for k in ("E", "A", "B", "alpha", "beta")]
    samples = np.asarray(fit.get("samples") or np.empty((0, 5)), np.float64).reshape(-1, 5)
    samples = samples[np.all(np.isfinite(samples), axis=1)]
    return np.vstack([point, samples])


def _opt3(p: np.ndarray, compute: float) -> tuple[np.ndarray, np.ndarray]:
    _e, a, b, alpha, beta = p.T
    g = (alpha * a / (beta * b)) ** (1.0 / (alpha + beta))
    n = g * (compute / 6.0) ** (beta / (alpha + beta))
    return n, compute / (6.0 * n)


def _loss3(p: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    e, a, b, alpha, beta = p.T
    return np.asarray(e + a / n**alpha + b / d**beta)


def _summary(n: np.ndarray, d: np.ndarray, c: np.ndarray, loss: np.ndarray | None) -> dict[str, Any]:
    out = {
        "params": _est(n),
        "tokens": _est(d),
        "flops": _est(c),
        "tokens_per_param": _est(d / n),
    }
    if loss is not None:
        out["loss"] = _est(loss)
    return out


def for_compute(fit_doc: dict[str, Any], compute: float) -> dict[str, Any]:
    """N_opt, D_opt, tokens per parameter (and predicted loss, approach 3) per approach in the fit."""
    if not compute > 0 or not math.isfinite(compute):
        raise ValueError(f"compute must be a positive FLOP count, not {compute}")
    out: dict[str, Any] = {"compute": compute}
    if "approach3" in fit_doc:
        p = _params3(fit_doc["approach3"])
        n, d = _opt3(p, compute)
        out["approach3"] = _summary(n, d, np.full_like(n, compute), _loss3(p, n, d))
    for key in ("approach1", "approach2"):
        if key in fit_doc:
            f = fit_doc[key]
            point = [float(f["a"]["value"]), float(f["log_k_n"]["value"])]
            s = np.asarray(f.get("samples") or np.empty((0, 4)), np.float64).reshape(-1, 4)[:, :2]
            rows = np.vstack([point, s[np.all(np.isfinite(s), axis=1)]])
            n = np.exp(rows[:, 1]) * compute ** rows[:, 0]
            d = compute / (6.0 * n)
            out[key] = _summary(n, d, np.full_like(n, compute), None)
    if len(out) == 1:
        raise ValueError("the fit has none of approach1, approach2, approach3")
    return out


def _require3(fit_doc: dict[str, Any]) -> np.ndarray:
    if "approach3" not in fit_doc:
        raise ValueError("this question needs an approach-3 fit (lmforge scaling fit --approach 3)")
    return _params3(fit_doc["approach3"])


def for_params(fit_doc: dict[str, Any], params: float) -> dict[str, Any]:
    """Given N, the compute-optimal D (and its C = 6ND and predicted loss), approach 3."""
    if not params > 0 or not math.isfinite(params):
        raise ValueError(f"params must be a positive count, not {params}")
    p = _require3(fit_doc)
    _e, a, b, alpha, beta = p.T
    n = np.full(len(p), float(params))
    d = (beta * b * n**alpha / (alpha * a)) ** (1.0 / beta)
    return {"params_given": params, "approach3": _summary(n, d, 6.0 * n * d, _loss3(p, n, d))}


def for_target_loss(fit_doc: dict[str, Any], target: float) -> dict[str, Any]:
    """Given a target loss, the least compute (and its N, D) reaching it, approach 3.

    A target at or below the irreducible loss E is unreachable at any compute; bootstrap samples whose E
    is above the target are left out of the intervals and counted in `reachable_fraction`.
    """
    if not target > 0 or not math.isfinite(target):
        raise ValueError(f"target loss must be a positive number, not {target}")
    p = _require3(fit_doc)
    e, a, b, alpha, beta = p.T
    if target <= e[0]:
        return {
            "target_loss": target,
            "reachable": False,
            "reason": f"target loss {target} is at or below the fitted irreducible loss E = {e[0]:.4g}",
        }
    ok = target > e
    gap = target - e[ok]
    n = (a[ok] / (beta[ok] * gap / (alpha[ok] + beta[ok]))) ** (1.0 / alpha[ok])
    d = (b[ok] / (alpha[ok] * gap / (alpha[ok] + beta[ok]))) ** (1.0 / beta[ok])
    return {
        "target_loss": target,
        "reachable": True,
        "reachable_fraction": float(ok[1:].mean()) if len(ok) > 1 else 1.0,
        "approach3": _summary(n, d, 6.0 * n * d, None),
    }
