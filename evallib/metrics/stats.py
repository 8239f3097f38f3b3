"""Small statistics shared by every view that reports findings: binomial intervals and false discovery control.

One home for each: the slices, version-comparison, label-review and identification views import these
instead of writing their own.
"""

from __future__ import annotations

import numpy as np


def wilson_interval(successes, n, *, confidence=0.95):
    """Wilson score interval for a binomial proportion (Wilson, JASA 1927).

    Parameters
    ----------
    successes : int or array-like of int
    n : int or array-like of int
        Trials; where ``n == 0`` the interval is ``(nan, nan)``.
    confidence : float, default 0.95

    Returns
    -------
    lo, hi : ndarray of float64 (0-d for scalar input)
    """
    from scipy.stats import norm

    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError(f"successes: expected counts between 0 and n; got {successes!r} of {n!r}")
    z = norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    lo, hi = np.where(n > 0, lo, np.nan), np.where(n > 0, hi, np.nan)
    return lo, hi


def benjamini_hochberg(p_values, *, alpha=0.05):
    """Benjamini–Hochberg step-up procedure (JRSS B 1995): which hypotheses to reject, and adjusted p-values.

    Parameters
    ----------
    p_values : array-like of shape (n_tests,)
        NaN entries (untestable) are never rejected and get NaN adjusted p-values.
    alpha : float, default 0.05
        The false discovery rate to control.

    Returns
    -------
    reject : ndarray of bool, shape (n_tests,)
    adjusted : ndarray of float64, shape (n_tests,)
        ``min_{j >= i} p_(j) * m / j`` in sorted order, capped at 1 (as ``statsmodels``' ``fdr_bh``).
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values: expected a 1-d array; got shape {p.shape}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number in (0, 1); got {alpha!r}")
    ok = np.isfinite(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p_values: expected values in [0, 1]")
    reject = np.zeros(p.shape, dtype=bool)
    adjusted = np.full(p.shape, np.nan)
    m = int(ok.sum())
    if m == 0:
        return reject, adjusted
    idx = np.nonzero(ok)[0]
    order = np.argsort(p[idx], kind="mergesort")
    ranked = p[idx][order]
    adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    adj = np.minimum(adj, 1.0)
    adjusted[idx[order]] = adj
    below = np.nonzero(ranked <= alpha * np.arange(1, m + 1) / m)[0]
    if len(below):
        reject[idx[order[: below[-1] + 1]]] = True
    return reject, adjusted


def format_interval(lo, hi, *, digits=4):
    """``[lo, hi]`` as the reports write an interval; NaN bounds read 'n/a'."""
    def one(v):
        return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"
    return f"[{one(lo)}, {one(hi)}]"
