"""ROC and precision-recall curves of a classifier, one class against the rest, with bootstrap bands.

One home for the curves the report draws: the micro average (every image x class score as one
binary problem), the macro average (per-class TPR on a common FPR grid, averaged), each class's
own curve, and pointwise 95% bootstrap bands around any of them.

A band is pointwise: at each grid value of the x axis (FPR for ROC, recall for precision-recall)
it holds the 2.5th and 97.5th percentiles of the y value over bootstrap resamples of the images.
Resamples are stratified by true class, so a rare class is in every resample (the scikit-learn
request for such bands is scikit-learn #25856; the method is Macskassy & Provost, "Confidence
bands for ROC curves", 2004, pointwise vertical averaging).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from .sweep import threshold_sweep

CURVE_POINTS = 400  # a stored curve keeps a point at every 1/400 of each axis' range (:func:`thin`)
GRID = np.linspace(0.0, 1.0, 201)  # the x values bands are computed at
BAND_BUDGET = 2e7  # scores x resamples of an exact band; above it the scores are counted in bins first
BINS = 1000  # bins of the positive scores and of the negative scores for a band of many scores


def thin_indices(x, y, *, log_x=False, resolution=2000):
    """Indices of the points of a curve worth drawing: the first and last of every run of points
    that fall in the same cell of a ``resolution`` x ``resolution`` grid over the data's range.

    A curve of millions of points (a sweep over every pair) draws the same at screen size from a
    few thousand, and the steps stay where they are. ``log_x`` spaces the grid on a log x axis.

    Returns
    -------
    ndarray of int
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) <= 2 * resolution:
        return np.arange(len(x))
    if log_x:
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.log10(x)

    def cell(v):
        ok = np.isfinite(v)
        if not ok.any():
            return np.zeros(len(v), dtype=np.int64)
        lo, hi = v[ok].min(), v[ok].max()
        q = np.floor((v - lo) / ((hi - lo) or 1.0) * resolution)
        return np.where(ok, q, -1).astype(np.int64)

    key = cell(x) * (resolution + 2) + cell(y)
    change = np.r_[True, key[1:] != key[:-1]]
    return np.nonzero(change | np.r_[change[1:], True])[0]


def thin(x, y, n=CURVE_POINTS):
    """The points of the curve ``(x, y)`` worth keeping at a resolution of ``n`` steps on each axis.

    Every step of size 1/n of the data's range, on either axis, keeps a point (:func:`thin_indices`),
    so a steep part of a curve keeps its shape as well as a flat one: a precision-recall curve of
    millions of scores falls from 1 as it does, not in one jump. At most about ``4 * n`` points.

    Returns
    -------
    x, y : ndarray of float64
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = thin_indices(x, y, resolution=n)
    return x[keep], y[keep]


def one_hot(y, n_classes):
    """ndarray of bool, shape (n_samples, n_classes): ``True`` at each sample's class."""
    y = np.asarray(y)
    out = np.zeros((len(y), n_classes), dtype=bool)
    out[np.arange(len(y)), y] = True
    return out


def macro_roc(y, probs, grid=GRID):
    """Macro-average one-vs-rest ROC: per-class TPR interpolated on a common FPR grid, averaged.

    Classes without images, or with only images, have no ROC and are left out of the average.

    Returns
    -------
    fpr, tpr : ndarray of shape (len(grid),)
    """
    tprs = []
    for k in range(probs.shape[1]):
        pos = y == k
        if pos.any() and not pos.all():
            fpr, tpr, _ = threshold_sweep(pos, probs[:, k]).roc()
            tprs.append(np.interp(grid, fpr, tpr))
    return np.asarray(grid, dtype=np.float64), (np.mean(tprs, axis=0) if tprs else np.full(len(grid), np.nan))


@dataclass(frozen=True)
class Band:
    """A pointwise bootstrap band: ``lower[i] <= y <= upper[i]`` at ``x[i]`` in 95% of resamples.

    Attributes
    ----------
    x, lower, upper : ndarray of shape (n_grid,)
    n_boot : int
        Resamples it was computed from (0: no band, see ``reason``).
    reason : str
        Why there is no band, or why it has fewer resamples than asked for; empty otherwise.
    """

    x: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n_boot: int
    reason: str = ""

    def to_dict(self):
        return {"x": self.x, "lower": self.lower, "upper": self.upper, "n_boot": self.n_boot, "reason": self.reason}

    @classmethod
    def from_dict(cls, d):
        return d if isinstance(d, cls) else cls(np.asarray(d["x"]), np.asarray(d["lower"]), np.asarray(d["upper"]),
                                                int(d["n_boot"]), str(d.get("reason", "")))


def _resample_weights(rng, strata, n_boot):
    """``(n_boot, n)`` counts: each stratum resampled to its own size, so none is ever missing."""
    n = len(strata)
    picks = []
    for s in np.unique(strata):
        g = np.nonzero(strata == s)[0]
        drawn = g[rng.integers(0, len(g), size=(n_boot, len(g)))]
        picks.append((drawn + n * np.arange(n_boot)[:, None]).ravel())
    return np.bincount(np.concatenate(picks), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def _rates_at(tp, fp, grid, kinds):
    """y values on ``grid`` of one curve given its counts at descending thresholds: TPR at FPR (``roc``,
    linear between operating points: vertical averaging) or precision at the first threshold whose
    recall reaches the grid value (``pr``, a step curve)."""
    p, n = tp[-1], fp[-1]
    out = {}
    if "roc" in kinds:
        out["roc"] = np.interp(grid, np.r_[0.0, fp / n if n else fp], np.r_[0.0, tp / p if p else tp])
    if "pr" in kinds:
        recall = tp / p if p else np.zeros_like(tp)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
        out["pr"] = precision[np.minimum(np.searchsorted(recall, grid, side="left"), len(recall) - 1)]
    return out


def _exact_values(positive, score, sample_of, weights, grid, kinds):
    """Each resample's curve from every score: one sort, then weighted counts per resample."""
    order = np.argsort(-score, kind="mergesort")
    s, pos, who = score[order], positive[order], sample_of[order]
    last = np.r_[s[1:] != s[:-1], True]  # the last element of each group of tied scores
    out = {k: np.empty((len(weights), len(grid))) for k in kinds}
    for r, w in enumerate(weights):
        ws = w[who]
        for k, v in _rates_at(np.cumsum(ws * pos)[last], np.cumsum(ws * ~pos)[last], grid, kinds).items():
            out[k][r] = v
    return out


def _binned_values(positive, score, sample_of, n_units, weights, grid, kinds):
    """As :func:`_exact_values`, on counts per unit and score bin.

    The bin edges are quantiles of the positive scores and of the negative scores (``BINS`` each), so
    that the curve keeps its resolution where the few positives lie. Each resample's positive counts per
    bin are a weighted count of the positives; its negative counts, the unit weights times the units'
    counts per bin (a sparse product: the cost is the number of scores times the resamples).
    """
    edges = np.unique(np.concatenate([np.quantile(score[positive], np.linspace(0, 1, BINS + 1)),
                                      np.quantile(score[~positive], np.linspace(0, 1, BINS + 1))]))
    nb = max(len(edges) - 1, 1)
    b = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, nb - 1)
    pos_unit, pos_bin = sample_of[positive], b[positive]
    pos_counts = np.stack([np.bincount(pos_bin, weights=w[pos_unit], minlength=nb) for w in weights])
    neg = ~positive  # each unit's negatives per bin, a sparse matrix: the resamples reweight its rows
    per_unit = sparse.csr_matrix((np.ones(int(neg.sum())), (sample_of[neg], b[neg])), shape=(n_units, nb))
    neg_counts = np.asarray((per_unit.T @ weights.T).T)
    out = {k: np.empty((len(weights), len(grid))) for k in kinds}
    for r in range(len(weights)):  # from the highest bin down: accept when the score reaches the bin
        for k, v in _rates_at(np.cumsum(pos_counts[r][::-1]), np.cumsum(neg_counts[r][::-1]), grid, kinds).items():
            out[k][r] = v
    return out


def curve_bands(positive, score, *, kinds=("roc", "pr"), strata=None, groups=None, n_boot=200, seed=0,
                confidence=0.95, grid=GRID, budget=BAND_BUDGET):
    """Pointwise bootstrap bands of a one-vs-rest ROC and precision-recall curve, from the same resamples.

    Parameters
    ----------
    positive : array-like of bool, shape (n_scores,)
    score : array-like of float, shape (n_scores,)
    kinds : tuple of {"roc", "pr"}
    strata : array-like of shape (n_units,), optional
        The class of each resampled unit (image); resampling keeps each stratum's size, so a rare
        class is in every resample.
    groups : array-like of int, shape (n_scores,), optional
        Which unit each score belongs to (a micro average has ``n_classes`` scores per image);
        default: each score is its own unit.
    n_boot : int, default 200
        Resamples. When ``n_scores * n_boot`` exceeds ``budget`` the scores are counted once in
        ``2 * BINS`` bins (quantiles of the positive and of the negative scores) and the resamples
        reweight those counts; the band's ``reason`` says so.
    seed : int, default 0
    confidence : float, default 0.95

    Returns
    -------
    dict of {kind: Band}
    """
    bad = [k for k in kinds if k not in ("roc", "pr")]
    if bad or not kinds:
        raise ValueError(f"kinds: expected roc and/or pr; got {list(kinds)!r}")
    positive = np.asarray(positive, dtype=bool).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if positive.shape != score.shape:
        raise ValueError(f"score: expected one score per label ({positive.shape[0]}); got {score.shape[0]}")
    sample_of = np.arange(len(score)) if groups is None else np.asarray(groups).ravel()
    n_units = int(sample_of.max()) + 1 if len(sample_of) else 0
    strata = np.zeros(n_units, dtype=int) if strata is None else np.asarray(strata)
    if len(strata) != n_units:
        raise ValueError(f"strata: expected one stratum per resampled unit ({n_units}); got {len(strata)}")
    grid = np.asarray(grid, dtype=np.float64)
    if not positive.any() or positive.all():
        nan = np.full(len(grid), np.nan)
        return {k: Band(grid, nan, nan, 0, "no band: the curve needs both positives and negatives") for k in kinds}
    weights = _resample_weights(np.random.default_rng(seed), strata, n_boot)
    reason = ""
    if len(score) * n_boot <= budget:
        values = _exact_values(positive, score, sample_of, weights, grid, kinds)
    else:  # too many scores to sort through every resample: count them once in bins, resample the counts
        values = _binned_values(positive, score, sample_of, n_units, weights, grid, kinds)
        reason = (f"The band counts the {len(score):,} scores in {2 * BINS:,} bins first, so each resample has at "
                  f"most {2 * BINS:,} operating points.")
    a = (1 - confidence) / 2 * 100
    out = {}
    for k in kinds:
        lower, upper = np.nanpercentile(values[k], [a, 100 - a], axis=0)
        out[k] = Band(grid, lower, upper, n_boot, reason)
    return out


def curve_band(positive, score, *, kind="roc", **kwargs):
    """Pointwise bootstrap band of a one-vs-rest ROC (``kind="roc"``) or precision-recall curve
    (``"pr"``): :func:`curve_bands` for one kind. Returns a :class:`Band`."""
    return curve_bands(positive, score, kinds=(kind,), **kwargs)[kind]


def class_curves(y, probs, *, per_class=True, bands=True, class_bands=False, n_boot=200, seed=0):
    """Every ROC and precision-recall curve the report draws for a classifier.

    Parameters
    ----------
    y : ndarray of int, shape (n_samples,)
    probs : ndarray of shape (n_samples, n_classes)
    per_class : bool
        Each class's own curve too (the report draws them up to 10 classes).
    bands : bool
        Bootstrap bands on the micro average (the report shades that one).
    class_bands : bool
        Bands on each class's own curve too (each costs a resampling of all the images).

    Returns
    -------
    dict
        ``roc_micro`` ``{fpr, tpr, area}``, ``pr_micro`` ``{precision, recall, area}``,
        ``roc_macro`` ``{fpr, tpr}``; with ``bands``: ``roc_micro_band`` and ``pr_micro_band``
        (:meth:`Band.to_dict`); with ``per_class``: ``classes``, a list with, per class, ``roc``
        ``{fpr, tpr}``, ``pr`` ``{precision, recall}``, ``auc``, ``average_precision`` and the bands
        (None for a class with no image).
    """
    y = np.asarray(y)
    probs = np.asarray(probs, dtype=np.float64)
    n, c = probs.shape
    onehot = one_hot(y, c)
    micro = threshold_sweep(onehot.ravel(), probs.ravel())
    fpr, tpr, _ = micro.roc()
    precision, recall, _ = micro.pr()
    grid, mtpr = macro_roc(y, probs)
    out = {"roc_micro": dict(zip(("fpr", "tpr"), thin(fpr, tpr)), area=micro.auc()),
           "pr_micro": dict(zip(("precision", "recall"), thin(precision, recall)), area=micro.average_precision()),
           "roc_macro": {"fpr": grid, "tpr": mtpr}}
    if bands:
        micro_bands = curve_bands(onehot.ravel(), probs.ravel(), strata=y, groups=np.repeat(np.arange(n), c),
                                  n_boot=n_boot, seed=seed)
        for kind, band in micro_bands.items():
            out[f"{kind}_micro_band"] = band.to_dict()
    if per_class:
        per = []
        for k in range(c):
            pos = y == k
            if not pos.any() or pos.all():
                per.append(None)
                continue
            sw = threshold_sweep(pos, probs[:, k])
            entry = {"roc": dict(zip(("fpr", "tpr"), thin(*sw.roc()[:2]))),
                     "pr": dict(zip(("precision", "recall"), thin(*sw.pr()[:2]))), "auc": sw.auc(),
                     "average_precision": sw.average_precision()}
            if class_bands:
                for kind, band in curve_bands(pos, probs[:, k], strata=y, n_boot=n_boot, seed=seed).items():
                    entry[f"{kind}_band"] = band.to_dict()
            per.append(entry)
        out["classes"] = per
    return out
