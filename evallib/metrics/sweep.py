"""The threshold sweep: confusion counts at every threshold, and every binary curve as a view of it.

A sample is predicted positive when ``score >= threshold``. The sweep holds cumulative
true- and false-positive counts at each distinct threshold, in descending order, like
scikit-learn's ``_binary_clf_curve``; ROC, precision-recall, DET, accuracy-vs-threshold,
EER, TAR@FAR, the threshold table and the threshold policies all read it.

A sweep is *exact* (built from every score) or *binned* (built from score histograms). A
binned sweep is exact at its bin edges; its AUC carries ``auc_bound``, a proven bound on
the distance to the exact AUC: only pairs of a positive and a negative score in the same bin
are unresolved, and each is counted as half.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import EvallibError

POLICIES = ("max_f1", "max_accuracy", "youden", "eer", "far")


class DegenerateWarning(UserWarning):
    """A metric is undefined for valid input (one class only, no genuine pairs...); it is NaN."""


def _warn(msg):
    warnings.warn(msg, DegenerateWarning, stacklevel=3)


def check_scores(name, scores, *, ndim=1):
    """Return ``scores`` as float64 after checking shape and finiteness; errors name ``name``."""
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise EvallibError(f"{name}: expected numbers; got {type(scores).__name__} that cannot become floats") from None
    if arr.ndim != ndim:
        want = "1-d array of shape (n_samples,)" if ndim == 1 else "2-d array of shape (n_samples, n_classes)"
        raise EvallibError(f"{name}: expected a {want}; got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(arr[tuple(where)]) else "infinite"
        raise EvallibError(f"{name}: expected finite values; got {int(bad.sum())} NaN or infinite "
                           f"(first: {kind} at index {tuple(int(w) for w in where) if ndim > 1 else int(where[0])})")
    return arr


def check_labels(name, y, n, *, per="score"):
    """``y`` as a 1-d array of ``n`` labels; errors name ``name``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise EvallibError(f"{name}: expected a 1-d array of shape (n_samples,); got shape {arr.shape}")
    if len(arr) != n:
        raise EvallibError(f"{name}: expected {n} labels, one per {per}; got {len(arr)}")
    return arr


def check_binary(name, y, n):
    arr = check_labels(name, y, n)
    if arr.dtype != bool:
        values = np.unique(arr)
        if not np.isin(values, [0, 1]).all():
            raise EvallibError(f"{name}: expected binary labels (0/1 or bool); got values {values[:5].tolist()}")
    return arr.astype(bool)


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold chosen by a policy, with the metrics there."""

    policy: str
    threshold: float
    tp: float
    fp: float
    tn: float
    fn: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    far: float

    @property
    def tar(self):
        return self.recall

    def to_dict(self):
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"tar": self.tar}


def _div(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


@dataclass(frozen=True)
class ThresholdSweep:
    """Confusion counts at every threshold (descending); positive means ``score >= threshold``.

    Attributes
    ----------
    thresholds : ndarray of shape (n_thresholds,)
    tp, fp : ndarray of shape (n_thresholds,)
        Positives and negatives with a score at or above each threshold.
    n_pos, n_neg : int
    exact : bool
        False for a sweep built from histograms (exact only at its bin edges).
    auc_bound : float
        Largest possible distance between :meth:`auc` and the exact AUC (0 when exact).
    n_thresholds : int or None
        For a sweep kept at some of its thresholds (the counts there unchanged): how many it had.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int
    n_neg: int
    exact: bool = True
    auc_bound: float = 0.0
    n_thresholds: int | None = None

    # ---- the counts and rates at each threshold
    @property
    def fn(self):
        return self.n_pos - self.tp

    @property
    def tn(self):
        return self.n_neg - self.fp

    @property
    def tpr(self):
        return _div(self.tp, self.n_pos) if self.n_pos else np.full(len(self.tp), np.nan)

    @property
    def fpr(self):
        return _div(self.fp, self.n_neg) if self.n_neg else np.full(len(self.fp), np.nan)

    recall = tpr
    tar = tpr
    far = fpr

    @property
    def fnr(self):
        return 1.0 - self.tpr

    @property
    def precision(self):
        return _div(self.tp, self.tp + self.fp)

    @property
    def f1(self):
        return _div(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def accuracy(self):
        return (self.tp + self.tn) / (self.n_pos + self.n_neg)

    def _degenerate(self, what):
        if self.n_pos == 0 or self.n_neg == 0:
            missing = "positive" if self.n_pos == 0 else "negative"
            _warn(f"{what} is undefined: there are no {missing} samples (pairs); it is NaN")
            return True
        return False

    # ---- curves
    def roc(self):
        """``(fpr, tpr, thresholds)`` starting at (0, 0) with threshold +inf."""
        return (np.r_[0.0, self.fpr], np.r_[0.0, self.tpr], np.r_[np.inf, self.thresholds])

    def pr(self):
        """``(precision, recall, thresholds)`` in descending threshold order."""
        return self.precision, self.recall, self.thresholds

    def det(self):
        """``(fpr, fnr, thresholds)``."""
        return self.fpr, self.fnr, self.thresholds

    # ---- summaries
    def auc(self):
        """Area under the ROC curve (trapezoids; ties count half)."""
        if self._degenerate("ROC AUC"):
            return float("nan")
        fpr, tpr, _ = self.roc()
        return float(np.trapezoid(tpr, fpr))

    def average_precision(self):
        """Sum over thresholds of (recall increase) x precision, as scikit-learn defines AP."""
        if self.n_pos == 0:
            _warn("average precision is undefined: there are no positive samples; it is NaN")
            return float("nan")
        r = np.r_[0.0, self.recall]
        return float(np.sum(np.diff(r) * self.precision))

    def eer(self):
        """Equal error rate and its threshold: where FAR meets FRR, interpolated linearly.

        Returns ``(eer, threshold)``; the threshold is the first one (from the top) at which
        FRR <= FAR.
        """
        if self._degenerate("EER"):
            return float("nan"), float("nan")
        fpr, fnr = np.r_[0.0, self.fpr], np.r_[1.0, self.fnr]
        k = int(np.argmax(fnr <= fpr))  # fnr - fpr goes from 1 to <= 0
        d0, d1 = fnr[k - 1] - fpr[k - 1], fnr[k] - fpr[k]
        t = d0 / (d0 - d1) if d0 != d1 else 0.0
        eer = fpr[k - 1] + t * (fpr[k] - fpr[k - 1])
        return float(eer), float(self.thresholds[k - 1])

    def index_at_far(self, far):
        """Index of the lowest threshold whose FAR is at most ``far`` (-1 when none is)."""
        ok = self.fp <= far * self.n_neg * (1 + 1e-12)
        return int(np.nonzero(ok)[0][-1]) if ok.any() else -1

    def tar_at_far(self, far):
        """TAR at the lowest threshold with FAR <= ``far``; NaN when the negatives cannot resolve it.

        A FAR target below ``1 / n_neg`` is not supported by the data and gives NaN.
        Returns ``(tar, threshold)``.
        """
        if self._degenerate("TAR@FAR"):
            return float("nan"), float("nan")
        if far * self.n_neg < 1:
            return float("nan"), float("nan")
        k = self.index_at_far(far)
        if k < 0:
            return 0.0, float("inf")
        return float(self.tp[k] / self.n_pos), float(self.thresholds[k])

    def counts_at(self, thresholds):
        """Exact confusion counts at arbitrary thresholds (exact sweeps; at bin edges for binned ones).

        Returns a dict of arrays ``threshold, tp, fp, tn, fn``.
        """
        t = np.asarray(thresholds, dtype=np.float64)
        # number of sweep thresholds >= t, minus one, indexes the cumulative counts
        k = np.searchsorted(-self.thresholds, -t, side="right") - 1
        tp = np.where(k >= 0, self.tp[np.maximum(k, 0)], 0)
        fp = np.where(k >= 0, self.fp[np.maximum(k, 0)], 0)
        return {"threshold": t, "tp": tp, "fp": fp, "tn": self.n_neg - fp, "fn": self.n_pos - tp}

    def table(self, thresholds):
        """The practitioners' table: counts, accuracy, precision, recall, F1 and FAR at each threshold."""
        c = self.counts_at(thresholds)
        n = self.n_pos + self.n_neg
        c["accuracy"] = (c["tp"] + c["tn"]) / n
        c["precision"] = _div(c["tp"], c["tp"] + c["fp"])
        c["recall"] = _div(c["tp"], self.n_pos)
        c["f1"] = _div(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])
        c["far"] = _div(c["fp"], self.n_neg)
        return c

    def _choice(self, policy, k):
        if k < 0:
            return ThresholdChoice(policy, float("inf"), 0, 0, self.n_neg, self.n_pos,
                                   self.n_neg / (self.n_pos + self.n_neg), float("nan"), 0.0, 0.0, 0.0)
        tp, fp = float(self.tp[k]), float(self.fp[k])
        fn, tn = self.n_pos - tp, self.n_neg - fp
        return ThresholdChoice(policy, float(self.thresholds[k]), tp, fp, tn, fn,
                               (tp + tn) / (self.n_pos + self.n_neg), float(_div(tp, tp + fp)),
                               float(_div(tp, self.n_pos)), float(_div(2 * tp, 2 * tp + fp + fn)),
                               float(_div(fp, self.n_neg)))

    def choose(self, policy="max_accuracy", *, far_target=1e-3):
        """Pick a threshold: ``max_f1``, ``max_accuracy``, ``youden`` (max TPR - FPR), ``eer`` or ``far``.

        Ties resolve to the highest threshold.
        """
        if policy not in POLICIES:
            raise EvallibError(f"policy: expected one of {', '.join(POLICIES)}; got {policy!r}")
        if policy == "max_f1":
            k = int(np.nanargmax(self.f1)) if np.isfinite(self.f1).any() else -1
        elif policy == "max_accuracy":
            k = int(np.argmax(self.accuracy))
        elif policy == "youden":
            j = self.tpr - self.fpr
            k = int(np.nanargmax(j)) if np.isfinite(j).any() else -1
        elif policy == "eer":
            _, t = self.eer()
            k = int(np.nonzero(self.thresholds == t)[0][0]) if np.isfinite(t) else -1
        else:
            k = self.index_at_far(far_target) if self.n_neg else -1
        return self._choice(policy, k)

    def to_dict(self, *, max_points=None):
        """Curves as lists (optionally thinned to ``max_points`` rows, extremes kept)."""
        idx = np.arange(len(self.thresholds))
        if max_points and len(idx) > max_points:
            idx = np.unique(np.r_[np.linspace(0, len(idx) - 1, max_points).round().astype(int)])
        return {"exact": self.exact, "auc_bound": self.auc_bound, "n_pos": int(self.n_pos), "n_neg": int(self.n_neg),
                "thresholds": self.thresholds[idx], "tp": self.tp[idx], "fp": self.fp[idx]}


def _sweep_sorted(y_sorted, s_sorted):
    """Counts at each distinct score of already descending-sorted scores."""
    distinct = np.nonzero(np.diff(s_sorted))[0]
    idx = np.r_[distinct, len(s_sorted) - 1]
    tp = np.cumsum(y_sorted, dtype=np.float64)[idx]
    fp = 1.0 + idx - tp
    return s_sorted[idx], tp, fp


def threshold_sweep(y_binary, scores):
    """Exact confusion counts at every distinct score.

    Parameters
    ----------
    y_binary : array-like of shape (n_samples,)
        True labels, 0/1 or bool (1 = positive, or genuine pair).
    scores : array-like of shape (n_samples,)
        Higher means more likely positive. Must be finite.

    Returns
    -------
    ThresholdSweep

    Examples
    --------
    >>> s = threshold_sweep([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> round(s.auc(), 2)
    0.75
    """
    s = check_scores("scores", scores)
    y = check_binary("y_binary", y_binary, len(s))
    if len(s) == 0:
        raise EvallibError("scores: expected at least one score; got an empty array")
    order = np.argsort(-s, kind="mergesort")
    thr, tp, fp = _sweep_sorted(y[order], s[order])
    return ThresholdSweep(thr, tp, fp, int(y.sum()), int(len(y) - y.sum()))


def sweep_from_histograms(pos_hist, neg_hist, edges):
    """Binned sweep: thresholds at the lower edges of non-empty bins; counts exact there.

    ``pos_hist[b]`` counts positives with ``edges[b] <= score < edges[b + 1]``.
    """
    pos = np.asarray(pos_hist, dtype=np.float64)
    neg = np.asarray(neg_hist, dtype=np.float64)
    nonempty = np.nonzero(pos + neg)[0][::-1]
    n_pos, n_neg = pos.sum(), neg.sum()
    tp = np.cumsum(pos[::-1])[::-1][nonempty]
    fp = np.cumsum(neg[::-1])[::-1][nonempty]
    bound = 0.5 * float(np.dot(pos, neg)) / (n_pos * n_neg) if n_pos and n_neg else float("nan")
    return ThresholdSweep(np.asarray(edges, dtype=np.float64)[nonempty], tp, fp, int(n_pos), int(n_neg),
                          exact=False, auc_bound=bound)
