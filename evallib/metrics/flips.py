"""What a new model version breaks: negative flips, backward compatibility and churn, with statistics.

Two classifiers evaluated on the same images put each image in one of five cells:

=====================  ===================  ===================================
cell                   old model            new model
=====================  ===================  ===================================
both correct           right                right
negative flip          right                wrong
positive flip          wrong                right
both wrong, same       wrong                wrong, same top-1 prediction
both wrong, changed    wrong                wrong, another top-1 prediction
=====================  ===================  ===================================

Every figure here is a ratio of these counts:

- negative flip rate ``NFR = negative flips / n`` and positive flip rate ``PFR = positive flips / n``
  (Yan et al., "Positive-Congruent Training: Towards Regression-Free Model Updates", CVPR 2021);
  net gain ``PFR - NFR`` is the change in accuracy.
- relative NFR, as PCT defines it: the NFR divided by the NFR two models with these error rates
  would have if their errors were independent, ``NFR / ((1 - ER_old) * ER_new)``. It is 1 for
  independent errors and below 1 when the new model tends to err where the old one did.
- backward trust compatibility ``BTC = both correct / old correct`` and backward error compatibility
  ``BEC = both wrong / new wrong`` (Srivastava, Nushi, Kamar, Shah and Horvitz, "An Empirical
  Analysis of Backward Compatibility in Machine Learning Systems", KDD 2020).
- churn: the share of images whose top-1 prediction changed, right or wrong.

The negative and positive flips are McNemar's discordant pairs, so the exact McNemar test
(:func:`evallib.metrics.mcnemar`) is the test of NFR against PFR.

Intervals come from a bootstrap that resamples within each class (and each class-by-group cell
when groups are given), so a rare class is in every resample. A resample inside a cell of ``m``
images with cell shares ``p`` has cell counts distributed ``Multinomial(m, p)``; drawing those
counts directly is the same bootstrap as drawing images, in a few array operations.

Two runs of one training recipe with different seeds already flip images (Srivastava et al., KDD
2020): :func:`nfr_against_floor` reads a candidate's NFR against that noise floor, image by image.

For embedding models, :func:`cross_model_compatibility` runs the test of backward-compatible
training (Shen, Xiong, Xia and Soatto, "Towards Backward-Compatible Representation Learning",
CVPR 2020): new-model probes against old-model gallery embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EvallibError
from .bootstrap import mcnemar
from .classification import to_probabilities
from .stats import benjamini_hochberg, wilson_interval
from .sweep import check_labels, check_scores

CELLS = ("both_correct", "negative_flips", "positive_flips", "both_wrong_same", "both_wrong_changed")
METRICS = ("nfr", "pfr", "net_gain", "relative_nfr", "btc", "bec", "churn", "accuracy_old", "accuracy_new")
_WILSON = {"nfr": ((1,), (0, 1, 2, 3, 4)), "pfr": ((2,), (0, 1, 2, 3, 4)), "churn": ((1, 2, 4), (0, 1, 2, 3, 4)),
           "btc": ((0,), (0, 1)), "bec": ((3, 4), (1, 3, 4))}  # numerator and denominator cells
_CHUNK_ELEMENTS = 5_000_000  # resamples x cells x 5 drawn at once
_MAX_PAIRS = 10_000_000
_MAX_BOOT_PAIRS = 200_000


def rates_from_cells(counts):
    """Every figure of the regression table from the five cell counts.

    Parameters
    ----------
    counts : array-like of shape (..., 5)
        Counts in the order of :data:`CELLS`: both correct, negative flips, positive flips,
        both wrong with the same prediction, both wrong with changed predictions.

    Returns
    -------
    dict of ndarray of shape (...)
        ``nfr, pfr, net_gain, relative_nfr, btc, bec, churn, accuracy_old, accuracy_new``; NaN where a
        denominator is 0 (no images, no old-correct image for BTC, no new error for BEC, and for
        relative NFR an old model never right or a new model never wrong).

    Examples
    --------
    >>> r = rates_from_cells([6, 2, 1, 0, 1])
    >>> float(r["nfr"]), float(r["btc"]), float(r["churn"])
    (0.2, 0.75, 0.4)
    """
    c = np.asarray(counts, dtype=np.float64)
    both, nf, pf, same, changed = (c[..., k] for k in range(5))
    n = c.sum(axis=-1)
    old_right, new_wrong = both + nf, nf + same + changed

    def ratio(a, b):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)

    nfr, pfr = ratio(nf, n), ratio(pf, n)
    acc_old, err_new = ratio(old_right, n), ratio(new_wrong, n)
    return {"nfr": nfr, "pfr": pfr, "net_gain": pfr - nfr, "relative_nfr": ratio(nfr, acc_old * err_new),
            "btc": ratio(both, old_right), "bec": ratio(same + changed, new_wrong),
            "churn": ratio(nf + pf + changed, n), "accuracy_old": acc_old, "accuracy_new": ratio(both + pf, n)}


@dataclass(frozen=True)
class RegressionRow:
    """One row of the regression table: all images, one class, or one group.

    Attributes
    ----------
    kind : {"overall", "class", "group"}
    key : int, label or None
        The class index, the group label, or None for the overall row.
    name : str
    n : int
        Images in the row.
    counts : dict
        The five cells of :data:`CELLS`, as ints.
    nfr, pfr, net_gain, relative_nfr, btc, bec, churn, accuracy_old, accuracy_new : float
        See :func:`rates_from_cells`.
    intervals : dict
        ``{metric: (low, high)}`` percentile-bootstrap interval of every metric (NaN without resamples).
    wilson : dict
        ``{metric: (low, high)}`` Wilson interval of each proportion with a count denominator
        (``nfr, pfr, churn, btc, bec``); the one to read when a row holds only a few flips, where the
        bootstrap cannot see beyond the flips it has.
    p_value : float
        Exact McNemar test on this row's discordant pairs (one-sided, NFR > PFR, unless the
        comparison was asked two-sided); NaN when the row has no flips either way.
    p_adjusted : float
        Benjamini–Hochberg adjusted p-value within the row's family (the class rows, or the group
        rows); for the overall row, its own p-value.
    flagged : bool
        The test rejects (after Benjamini–Hochberg in a family) at ``alpha`` and NFR > PFR: a
        regression.
    """

    kind: str
    key: object
    name: str
    n: int
    counts: dict
    nfr: float
    pfr: float
    net_gain: float
    relative_nfr: float
    btc: float
    bec: float
    churn: float
    accuracy_old: float
    accuracy_new: float
    intervals: dict
    wilson: dict
    p_value: float
    p_adjusted: float
    flagged: bool

    @property
    def negative_flips(self):
        return self.counts["negative_flips"]

    @property
    def positive_flips(self):
        return self.counts["positive_flips"]

    def nfr_upper(self):
        """The more cautious of the bootstrap and Wilson upper bounds of NFR (what a budget is held to)."""
        his = [self.intervals["nfr"][1], self.wilson["nfr"][1]]
        his = [h for h in his if np.isfinite(h)]
        return max(his) if his else float("nan")

    def to_dict(self):
        key = self.key.item() if isinstance(self.key, np.generic) else self.key
        out = {"kind": self.kind, "key": key, "name": self.name, "n": self.n, "counts": dict(self.counts)}
        out.update({m: getattr(self, m) for m in METRICS})
        out.update({"intervals": {k: list(v) for k, v in self.intervals.items()},
                    "wilson": {k: list(v) for k, v in self.wilson.items()}, "p_value": self.p_value,
                    "p_adjusted": self.p_adjusted, "flagged": self.flagged, "nfr_upper": self.nfr_upper()})
        return out


@dataclass(frozen=True)
class VersionRegression:
    """What a new model version breaks, from :func:`version_regression`.

    Attributes
    ----------
    overall : RegressionRow
    classes : tuple of RegressionRow
        One row per class present in ``y``, in class order.
    groups : tuple of RegressionRow
        One row per group label (sorted), empty without ``groups``.
    mcnemar : dict
        :func:`evallib.metrics.mcnemar` over all images, old model as ``a``: ``only_a_correct`` is the
        number of negative flips, ``only_b_correct`` of positive flips, two-sided exact p.
    pred_old, pred_new : ndarray of shape (n_samples,)
        Top-1 predictions.
    negative_flips : ndarray of int, shape (n_negative_flips,)
        Indices of the negative flips, the most striking first: ranked by the old model's probability
        of the true class times the new model's probability of its (wrong) prediction, ties by index.
    negative_flip_score : ndarray of shape (n_negative_flips,)
        That product, in the same order.
    negative_flip_confidence : ndarray of shape (n_negative_flips, 2)
        Its two factors: the old model's probability of the true class, the new model's probability
        of its prediction (for captions and ``flips.csv``).
    positive_flips, positive_flip_score, positive_flip_confidence : ndarray
        The same for positive flips: the new model's probability of the true class times the old
        model's probability of its wrong prediction (confidence columns in that order).
    transitions : ndarray of int, shape (n_classes, n_classes)
        Over the negative flips: ``transitions[i, j]`` counts images the old model called ``i``
        (rightly) and the new model calls ``j``. The heat map of what the new model confuses.
    positive_transitions : ndarray of int, shape (n_classes, n_classes)
        The same over the positive flips (old prediction, wrong, to new prediction, right).
    alternative, alpha, confidence, n_boot, seed, method : settings and the method in words.
    notes : list of str
    """

    overall: RegressionRow
    classes: tuple
    groups: tuple
    mcnemar: dict
    pred_old: np.ndarray
    pred_new: np.ndarray
    negative_flips: np.ndarray
    negative_flip_score: np.ndarray
    negative_flip_confidence: np.ndarray
    positive_flips: np.ndarray
    positive_flip_score: np.ndarray
    positive_flip_confidence: np.ndarray
    transitions: np.ndarray
    positive_transitions: np.ndarray
    alternative: str
    alpha: float
    confidence: float
    n_boot: int
    seed: int
    method: str
    notes: list = field(default_factory=list)

    @property
    def rows(self):
        """All rows: overall, then classes, then groups."""
        return (self.overall, *self.classes, *self.groups)

    def flagged(self):
        """The rows where the new model is significantly worse (overall, classes, groups)."""
        return [r for r in self.rows if r.flagged]

    def flip_table(self, *, files=None, classes=None, kind="both"):
        """One record per flipped image, for triage (the rows of ``flips.csv``), in gallery order.

        Parameters
        ----------
        files : sequence of str, optional
            The file of each image (indexed like ``y``).
        classes : sequence of str, optional
            Class names.
        kind : {"both", "negative", "positive"}, default "both"
            Negative flips, positive flips, or the negative then the positive ones.

        Returns
        -------
        list of dict
            ``flip, rank, index, file, true_class, old_prediction, old_probability, new_prediction,
            new_probability, score``: each model's probability of its own prediction, and the gallery score.
        """
        if kind not in ("both", "negative", "positive"):
            raise EvallibError(f"kind: expected 'both', 'negative' or 'positive'; got {kind!r}")
        n = len(self.pred_old)
        if files is not None and len(files) != n:
            raise EvallibError(f"files: expected {n} file names, one per image; got {len(files)}")
        n_classes = self.transitions.shape[0]
        if classes is not None and len(classes) != n_classes:
            raise EvallibError(f"classes: expected {n_classes} names; got {len(classes)}")
        name = (lambda k: str(classes[k])) if classes is not None else int
        out = []
        # negative flips: old right (confidence column 0 is its probability of the true class)
        # positive flips: new right (column 0 is the new model's probability of the true class)
        parts = {"negative": (self.negative_flips, self.negative_flip_confidence, self.negative_flip_score, 0),
                 "positive": (self.positive_flips, self.positive_flip_confidence, self.positive_flip_score, 1)}
        for flip in (("negative", "positive") if kind == "both" else (kind,)):
            idx, conf, score, new_right = parts[flip]
            for rank, (i, c, sc) in enumerate(zip(idx.tolist(), conf.tolist(), score.tolist()), start=1):
                true = self.pred_new[i] if new_right else self.pred_old[i]
                out.append({"flip": flip, "rank": rank, "index": i, "file": None if files is None else str(files[i]),
                            "true_class": name(true), "old_prediction": name(self.pred_old[i]),
                            "old_probability": c[1] if new_right else c[0],
                            "new_prediction": name(self.pred_new[i]),
                            "new_probability": c[0] if new_right else c[1], "score": sc})
        return out

    def over_budget(self, max_nfr):
        """The rows that break an NFR budget: what a CI gate fails on.

        The overall row, and every class or group row flagged by Benjamini–Hochberg, whose NFR upper
        bound (:meth:`RegressionRow.nfr_upper`) is above ``max_nfr``. Unflagged rows are left out: with
        hundreds of small rows, some upper bound is always above a tight budget by chance.
        """
        if not 0 <= max_nfr <= 1:
            raise EvallibError(f"max_nfr: expected a rate in [0, 1]; got {max_nfr!r}")
        rows = [self.overall, *(r for r in (*self.classes, *self.groups) if r.flagged)]
        return [r for r in rows if r.nfr_upper() > max_nfr]

    def to_dict(self, *, max_flips=None):
        """A JSON-ready dict; ``max_flips`` keeps only the first flips of each gallery."""
        k = slice(None) if max_flips is None else slice(0, max_flips)
        return {
            "overall": self.overall.to_dict(), "classes": [r.to_dict() for r in self.classes],
            "groups": [r.to_dict() for r in self.groups], "mcnemar": dict(self.mcnemar),
            "negative_flips": self.negative_flips[k].tolist(),
            "negative_flip_score": self.negative_flip_score[k].tolist(),
            "negative_flip_confidence": self.negative_flip_confidence[k].tolist(),
            "positive_flips": self.positive_flips[k].tolist(),
            "positive_flip_score": self.positive_flip_score[k].tolist(),
            "positive_flip_confidence": self.positive_flip_confidence[k].tolist(),
            "transitions": self.transitions.tolist(), "positive_transitions": self.positive_transitions.tolist(),
            "alternative": self.alternative, "alpha": self.alpha, "confidence": self.confidence,
            "n_boot": self.n_boot, "seed": self.seed, "method": self.method, "notes": list(self.notes),
        }


def _cells(y, pred_old, pred_new):
    """Cell index (0-4, order of :data:`CELLS`) of every image."""
    old_ok, new_ok = pred_old == y, pred_new == y
    cell = np.full(len(y), 3, dtype=np.int64)
    cell[old_ok & new_ok] = 0
    cell[old_ok & ~new_ok] = 1
    cell[~old_ok & new_ok] = 2
    cell[~old_ok & ~new_ok & (pred_old != pred_new)] = 4
    return cell


def _flip_tests(nf, pf, alternative):
    """Exact McNemar p of each row from its discordant counts: binomial on ``nf`` of ``nf + pf`` at 1/2.

    The same test as :func:`evallib.metrics.mcnemar` (scipy's ``binomtest``), vectorized: at 1/2 the
    binomial is symmetric, so the two-sided p is twice the smaller tail, capped at 1. NaN where a
    row has no flips either way.
    """
    from scipy.stats import binom

    from .bootstrap import mcnemar_p

    nf, pf = np.asarray(nf, dtype=np.int64), np.asarray(pf, dtype=np.int64)
    d = nf + pf
    p = binom.sf(nf - 1, d, 0.5) if alternative == "greater" else mcnemar_p(nf, pf)
    return np.where(d > 0, p, np.nan)


def _gallery(mask, y, pred_wrong, scores_right, scores_wrong, right_are, wrong_are):
    """Flipped images ordered for the gallery, their scores, and the two probabilities behind each score.

    The score is the probability the model that was right gave the true class times the probability
    the model that was wrong gave its prediction; highest first, ties by index.
    """
    idx = np.nonzero(mask)[0]
    p_right = to_probabilities(scores_right[idx], right_are)[np.arange(len(idx)), y[idx]]
    p_wrong = to_probabilities(scores_wrong[idx], wrong_are)[np.arange(len(idx)), pred_wrong[idx]]
    score = p_right * p_wrong
    order = np.lexsort((idx, -score))
    return idx[order], score[order], np.column_stack([p_right, p_wrong])[order]


def _check_scores_pair(y, scores_old, scores_new, scores_are, scores_are_new):
    for name, kind in (("scores_are", scores_are), ("scores_are_new", scores_are_new)):
        if kind not in ("logits", "probabilities"):
            raise EvallibError(f"{name}: expected 'logits' or 'probabilities'; got {kind!r}")
    so = check_scores("scores_old", scores_old, ndim=2)
    sn = check_scores("scores_new", scores_new, ndim=2)
    if so.shape != sn.shape:
        raise EvallibError(f"scores_new: expected shape {so.shape} like scores_old; got {sn.shape}")
    if so.shape[0] == 0:
        raise EvallibError("scores_old: expected at least one image; got 0 rows")
    y = check_labels("y", y, len(so))
    if not np.issubdtype(y.dtype, np.integer):
        raise EvallibError(f"y: expected integer class indices; got dtype {y.dtype}")
    y = y.astype(np.int64)
    c = so.shape[1]
    if y.min() < 0 or y.max() >= c:
        raise EvallibError(f"y: expected class indices in [0, {c}) for scores of {c} classes; "
                           f"got values from {int(y.min())} to {int(y.max())}")
    return y, so, sn


def _check_test_options(alpha, confidence, n_boot):
    """The options every flip test shares: a level and a confidence in (0, 1), a whole resample count."""
    if not 0 < alpha < 1:
        raise EvallibError(f"alpha: expected a number in (0, 1); got {alpha!r}")
    if not 0 < confidence < 1:
        raise EvallibError(f"confidence: expected a number in (0, 1); got {confidence!r}")
    if int(n_boot) != n_boot or n_boot < 0:
        raise EvallibError(f"n_boot: expected a whole number >= 0; got {n_boot!r}")


def version_regression(y, scores_old, scores_new, *, scores_are="logits", scores_are_new=None, groups=None,
                       classes=None, alternative="greater", alpha=0.05, n_boot=1000, seed=0, confidence=0.95):
    """Negative flips, backward compatibility and churn between an old and a new model, with statistics.

    Parameters
    ----------
    y : ndarray of int, shape (n_samples,)
        True class indices.
    scores_old, scores_new : ndarray of shape (n_samples, n_classes)
        Class scores of the old and the new model on the same images, in the same order.
    scores_are : {"logits", "probabilities"}, default "logits"
        What ``scores_old`` holds (and ``scores_new`` unless ``scores_are_new`` says otherwise).
    scores_are_new : {"logits", "probabilities"}, optional
    groups : array-like of shape (n_samples,), optional
        A label per image (a slice: camera, site, source); adds one row per label.
    classes : sequence of str, optional
        Class names for the row names.
    alternative : {"greater", "two-sided"}, default "greater"
        The exact McNemar test of each row: "greater" tests whether the new model flips more images
        to wrong than to right (NFR > PFR, a regression); "two-sided" whether the two rates differ.
        Either way a row is flagged only when NFR > PFR.
    alpha : float, default 0.05
        The false discovery rate held by Benjamini–Hochberg over the class rows, and separately over
        the group rows (classes and slices are different questions, and a thousand class rows would
        bury a handful of slice rows); the overall row is one test at ``alpha``.
    n_boot : int, default 1000
        Bootstrap resamples; 0 skips the bootstrap (intervals are NaN; Wilson intervals remain).
    seed : int, default 0
    confidence : float, default 0.95

    Returns
    -------
    VersionRegression

    Notes
    -----
    Rows with no flips either way have no test (p-value NaN) and are left out of
    Benjamini–Hochberg: conditional on its discordant count, such a row could not reject.

    Examples
    --------
    >>> y = np.array([0, 0, 1, 1])
    >>> old = np.eye(2)[[0, 0, 1, 0]]                 # right, right, right, wrong
    >>> new = np.eye(2)[[0, 1, 1, 1]]                 # right, wrong, right, right
    >>> r = version_regression(y, old, new, scores_are="probabilities", n_boot=0)
    >>> r.overall.nfr, r.overall.pfr, r.negative_flips.tolist()
    (0.25, 0.25, [1])
    """
    if alternative not in ("greater", "two-sided"):
        raise EvallibError(f"alternative: expected 'greater' or 'two-sided'; got {alternative!r}")
    _check_test_options(alpha, confidence, n_boot)
    n_boot = int(n_boot)
    scores_are_new = scores_are_new or scores_are
    y, s_old, s_new = _check_scores_pair(y, scores_old, scores_new, scores_are, scores_are_new)
    n, n_classes = s_old.shape
    if classes is not None and len(classes) != n_classes:
        raise EvallibError(f"classes: expected {n_classes} names, one per score column; got {len(classes)}")
    names = [str(c) for c in classes] if classes is not None else [str(k) for k in range(n_classes)]
    if groups is not None:
        g = check_labels("groups", groups, n, per="image")
        try:
            group_labels, g_code = np.unique(g, return_inverse=True)
        except TypeError:
            raise EvallibError(f"groups: expected labels of one sortable type (all strings or all numbers); got "
                               f"{sorted({type(v).__name__ for v in g.tolist()})}") from None
    else:
        group_labels, g_code = np.zeros(0), np.zeros(n, dtype=np.int64)

    # softmax keeps the order of the logits: the top-1 is read off the scores, and probabilities are
    # computed only for the flipped images the gallery ranks
    pred_old, pred_new = s_old.argmax(axis=1), s_new.argmax(axis=1)
    cell = _cells(y, pred_old, pred_new)

    # strata: class x group cells present in the data, with their five cell counts
    n_groups = max(len(group_labels), 1)
    stratum = y * n_groups + g_code
    strata, s_idx = np.unique(stratum, return_inverse=True)
    s_counts = np.zeros((len(strata), 5), dtype=np.int64)
    np.add.at(s_counts, (s_idx, cell), 1)
    s_class, s_group = strata // n_groups, strata % n_groups

    present = np.unique(y)
    class_counts = np.zeros((len(present), 5), dtype=np.int64)
    np.add.at(class_counts, np.searchsorted(present, s_class), s_counts)
    group_counts = np.zeros((len(group_labels), 5), dtype=np.int64)
    if len(group_labels):
        np.add.at(group_counts, s_group, s_counts)
    all_counts = np.vstack([s_counts.sum(axis=0, keepdims=True), class_counts, group_counts])

    reps = _bootstrap_counts(s_counts, np.searchsorted(present, s_class), len(present), s_group,
                             len(group_labels), n_boot=n_boot, seed=seed)
    point = rates_from_cells(all_counts)
    boot = rates_from_cells(reps) if reps is not None else None

    p_vals = _flip_tests(all_counts[:, 1], all_counts[:, 2], alternative)
    p_adj = p_vals.copy()
    reject = np.zeros(len(all_counts), dtype=bool)
    reject[0] = bool(np.isfinite(p_vals[0]) and p_vals[0] <= alpha)
    fam_class = slice(1, 1 + len(present))
    fam_group = slice(1 + len(present), len(all_counts))
    for fam in (fam_class, fam_group):
        if fam.stop > fam.start:
            reject[fam], p_adj[fam] = benjamini_hochberg(p_vals[fam], alpha=alpha)
    flagged = reject & (all_counts[:, 1] > all_counts[:, 2])

    wil = {}
    for m, (num, den) in _WILSON.items():
        lo, hi = wilson_interval(all_counts[:, list(num)].sum(axis=1), all_counts[:, list(den)].sum(axis=1),
                                 confidence=confidence)
        wil[m] = (np.atleast_1d(lo), np.atleast_1d(hi))

    bounds = {m: _percentile_intervals(boot[m], confidence) if boot is not None
              else np.full((2, len(all_counts)), np.nan) for m in METRICS}

    def row(i, kind, key, name):
        c = all_counts[i]
        iv = {m: (float(bounds[m][0, i]), float(bounds[m][1, i])) for m in METRICS}
        return RegressionRow(
            kind=kind, key=key, name=name, n=int(c.sum()), counts={k: int(v) for k, v in zip(CELLS, c)},
            **{m: float(point[m][i]) for m in METRICS}, intervals=iv,
            wilson={m: (float(lo[i]), float(hi[i])) for m, (lo, hi) in wil.items()},
            p_value=float(p_vals[i]), p_adjusted=float(p_adj[i]), flagged=bool(flagged[i]))

    overall = row(0, "overall", None, "all")
    class_rows = tuple(row(1 + k, "class", int(c), names[c]) for k, c in enumerate(present))
    group_rows = tuple(row(1 + len(present) + k, "group", lab, str(lab)) for k, lab in enumerate(group_labels))

    nf_idx, nf_score, nf_conf = _gallery(cell == 1, y, pred_new, s_old, s_new, scores_are, scores_are_new)
    pf_idx, pf_score, pf_conf = _gallery(cell == 2, y, pred_old, s_new, s_old, scores_are_new, scores_are)
    trans = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(trans, (pred_old[nf_idx], pred_new[nf_idx]), 1)
    ptrans = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(ptrans, (pred_old[pf_idx], pred_new[pf_idx]), 1)

    notes = []
    if len(present) < n_classes:
        notes.append(f"{n_classes - len(present)} of {n_classes} classes have no images: no row for them")
    untestable = int(np.sum(~np.isfinite(p_vals[1:])))
    if untestable:
        notes.append(f"{untestable} rows have no flips either way: no test, left out of Benjamini-Hochberg")
    strat = "class-by-group cell" if len(group_labels) else "class"
    test = "one-sided (NFR > PFR)" if alternative == "greater" else "two-sided"
    method = (f"exact McNemar test on the flips, {test}; Benjamini-Hochberg at {alpha:g} over class rows and "
              f"over group rows; percentile bootstrap, {n_boot} resamples within each {strat}")
    return VersionRegression(
        overall=overall, classes=class_rows, groups=group_rows, mcnemar=mcnemar(pred_old == y, pred_new == y),
        pred_old=pred_old, pred_new=pred_new, negative_flips=nf_idx, negative_flip_score=nf_score,
        negative_flip_confidence=nf_conf, positive_flips=pf_idx, positive_flip_score=pf_score,
        positive_flip_confidence=pf_conf, transitions=trans, positive_transitions=ptrans,
        alternative=alternative, alpha=float(alpha), confidence=float(confidence), n_boot=n_boot, seed=seed,
        method=method, notes=notes)


def _percentile_intervals(replicates, confidence):
    """Percentile intervals of each column, NaN replicates left out: ``(2, n_columns)``.

    Column by column this is :func:`evallib.metrics.bootstrap._interval` (numpy's linear percentile
    over the finite replicates), done for all rows with one sort.
    """
    r = np.sort(np.asarray(replicates, dtype=np.float64), axis=0)  # NaN sort last
    k = np.isfinite(r).sum(axis=0)
    cols = np.arange(r.shape[1])
    a = (1 - confidence) / 2
    out = np.full((2, r.shape[1]), np.nan)
    for row, q in enumerate((a, 1 - a)):
        pos = np.maximum(k - 1, 0) * q
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(k - 1, 0))
        v_lo, v_hi = r[lo, cols], r[hi, cols]
        val = v_lo + (pos - lo) * (v_hi - v_lo)
        out[row] = np.where(k > 0, np.where(v_hi == v_lo, v_lo, val), np.nan)
    return out


def _bootstrap_counts(s_counts, s_row_class, n_class_rows, s_group, n_group_rows, *, n_boot, seed):
    """Resampled cell counts of every row, ``(n_boot, 1 + n_class_rows + n_group_rows, 5)``; None if no resamples.

    Each stratum of ``m`` images is resampled on its own: its five counts are one
    ``Multinomial(m, counts / m)`` draw, which is what drawing ``m`` of its images with replacement gives.
    """
    if n_boot == 0:
        return None
    rng = np.random.default_rng(seed)
    m = s_counts.sum(axis=1)
    p = s_counts / m[:, None]
    n_rows = 1 + n_class_rows + n_group_rows
    out = np.empty((n_boot, n_rows, 5), dtype=np.int64)
    by_class = np.argsort(s_row_class, kind="mergesort")
    class_starts = np.r_[0, np.nonzero(np.diff(s_row_class[by_class]))[0] + 1]
    by_group = np.argsort(s_group, kind="mergesort")
    group_starts = np.r_[0, np.nonzero(np.diff(s_group[by_group]))[0] + 1]
    step = max(1, _CHUNK_ELEMENTS // (5 * len(m)))
    for b0 in range(0, n_boot, step):
        b1 = min(n_boot, b0 + step)
        draws = rng.multinomial(m, p, size=(b1 - b0, len(m)))
        out[b0:b1, 0] = draws.sum(axis=1)
        out[b0:b1, 1:1 + n_class_rows] = np.add.reduceat(draws[:, by_class], class_starts, axis=1)
        if n_group_rows:
            out[b0:b1, 1 + n_class_rows:] = np.add.reduceat(draws[:, by_group], group_starts, axis=1)
    return out


FLOOR_CELLS = ("both", "candidate_only", "floor_only", "neither")


@dataclass(frozen=True)
class NoiseFloor:
    """A candidate update's negative flip rate read against a noise floor, from :func:`nfr_against_floor`.

    The floor is the NFR between two runs of one training recipe (another seed): Srivastava et al.
    (KDD 2020) show that such runs already flip images, so an update's NFR means little until it is
    held against it. Both comparisons judge the same images, so the figures are paired: each image is
    a negative flip of the candidate pair, of the floor pair, of both or of neither.

    Attributes
    ----------
    n : int
        Images both comparisons judged.
    counts : dict
        The four cells of :data:`FLOOR_CELLS`: a negative flip in both comparisons, in the candidate's
        only, in the floor's only, in neither.
    nfr, floor_nfr : float
        The candidate's and the floor's negative flip rates on these images.
    difference : float
        ``nfr - floor_nfr``: the NFR the update adds above what retraining alone gives.
    ratio : float
        ``nfr / floor_nfr`` (inf when the floor has no flip and the candidate has some, NaN when neither has).
    intervals : dict
        ``{"nfr", "floor_nfr", "difference", "ratio"}`` -> ``(low, high)``: percentile bootstrap, both
        comparisons on the same resamples of images (within each stratum); NaN without resamples. A
        resample whose floor has no flip is left out of the ratio's interval.
    wilson : dict
        ``{"nfr", "floor_nfr"}`` -> Wilson interval of each rate.
    p_value : float
        Exact McNemar test on the discordant images (one-sided: the candidate flips more images than the
        floor), binomial on ``candidate_only`` of ``candidate_only + floor_only`` at 1/2; NaN when no image
        is discordant.
    above_floor : bool
        The test rejects at ``alpha`` and ``nfr > floor_nfr``: the update flips more than retraining does.
    alpha, confidence : float
    n_boot, seed : int
    method : str
    """

    n: int
    counts: dict
    nfr: float
    floor_nfr: float
    difference: float
    ratio: float
    intervals: dict
    wilson: dict
    p_value: float
    above_floor: bool
    alpha: float
    confidence: float
    n_boot: int
    seed: int
    method: str

    def over_margin(self, margin):
        """Whether the upper bound of the difference's interval is above ``margin`` (a gate on the excess NFR).

        NaN bounds (no resamples) count as above: a gate cannot pass on a figure it does not have.
        """
        if not 0 <= margin <= 1:
            raise EvallibError(f"margin: expected a rate in [0, 1]; got {margin!r}")
        hi = self.intervals["difference"][1]
        return not (np.isfinite(hi) and hi <= margin)

    def to_dict(self):
        out = {k: getattr(self, k) for k in ("n", "nfr", "floor_nfr", "difference", "ratio", "p_value",
                                             "above_floor", "alpha", "confidence", "n_boot", "seed", "method")}
        out.update(counts=dict(self.counts), intervals={k: list(v) for k, v in self.intervals.items()},
                   wilson={k: list(v) for k, v in self.wilson.items()})
        return out


def _floor_figures(c):
    """``nfr, floor_nfr, difference, ratio`` from cell counts of shape (..., 4) in :data:`FLOOR_CELLS` order."""
    c = np.asarray(c, dtype=np.float64)
    n = c.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        nfr = np.where(n > 0, (c[..., 0] + c[..., 1]) / np.where(n > 0, n, 1), np.nan)
        floor = np.where(n > 0, (c[..., 0] + c[..., 2]) / np.where(n > 0, n, 1), np.nan)
        ratio = (c[..., 0] + c[..., 1]) / (c[..., 0] + c[..., 2])  # from the counts: exact for whole ratios
    return {"nfr": nfr, "floor_nfr": floor, "difference": nfr - floor, "ratio": ratio}


def nfr_against_floor(negative_flips, floor_negative_flips, *, strata=None, alpha=0.05, n_boot=1000, seed=0,
                      confidence=0.95):
    """A candidate's negative flip rate against the noise floor of two runs of one recipe, on the same images.

    Parameters
    ----------
    negative_flips : array-like of bool, shape (n_samples,)
        Whether each image is a negative flip of the candidate update (old right, new wrong).
    floor_negative_flips : array-like of bool, shape (n_samples,)
        Whether each image is a negative flip between the two runs of one recipe (the floor), on the
        same images in the same order.
    strata : array-like of shape (n_samples,), optional
        A label per image (the true class) within which the bootstrap resamples, as
        :func:`version_regression` does.
    alpha : float, default 0.05
        Level of the one-sided exact McNemar test behind ``above_floor``.
    n_boot : int, default 1000
        Resamples; 0 skips them (intervals NaN, Wilson intervals remain).
    seed : int, default 0
    confidence : float, default 0.95

    Returns
    -------
    NoiseFloor

    Examples
    --------
    >>> cand = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    >>> floor = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    >>> f = nfr_against_floor(cand, floor, n_boot=0)
    >>> f.nfr, f.floor_nfr, f.ratio, f.counts["candidate_only"]
    (0.3, 0.1, 3.0, 2)
    """
    from .sweep import check_binary

    _check_test_options(alpha, confidence, n_boot)
    cand = check_binary("negative_flips", negative_flips, len(np.asarray(negative_flips)))
    if len(cand) == 0:
        raise EvallibError("negative_flips: expected at least one image; got 0")
    floor = check_binary("floor_negative_flips", floor_negative_flips, len(cand))
    if strata is None:
        code = np.zeros(len(cand), dtype=np.int64)
    else:
        s = check_labels("strata", strata, len(cand), per="image")
        code = np.unique(s.astype(str) if s.dtype == object else s, return_inverse=True)[1].ravel()
    cell = np.where(cand & floor, 0, np.where(cand, 1, np.where(floor, 2, 3)))
    s_counts = np.zeros((code.max() + 1, 4), dtype=np.int64)
    np.add.at(s_counts, (code, cell), 1)
    s_counts = s_counts[s_counts.sum(axis=1) > 0]
    counts = s_counts.sum(axis=0)
    point = _floor_figures(counts)
    n_boot = int(n_boot)
    if n_boot:
        rng = np.random.default_rng(seed)
        m = s_counts.sum(axis=1)
        p = s_counts / m[:, None]
        step = max(1, _CHUNK_ELEMENTS // (4 * len(m)))
        reps = np.concatenate([rng.multinomial(m, p, size=(min(step, n_boot - b0), len(m))).sum(axis=1)
                               for b0 in range(0, n_boot, step)])
        boot = _floor_figures(reps)
        boot["ratio"] = np.where(np.isfinite(boot["ratio"]), boot["ratio"], np.nan)
        intervals = {k: tuple(float(v) for v in _percentile_intervals(boot[k][:, None], confidence)[:, 0])
                     for k in boot}
    else:
        intervals = {k: (float("nan"), float("nan")) for k in point}
    n = int(counts.sum())
    wil = {}
    for k, num in (("nfr", counts[0] + counts[1]), ("floor_nfr", counts[0] + counts[2])):
        lo, hi = wilson_interval(int(num), n, confidence=confidence)
        wil[k] = (float(lo), float(hi))
    p_value = float(_flip_tests([counts[1]], [counts[2]], "greater")[0])
    above = bool(np.isfinite(p_value) and p_value <= alpha and counts[1] > counts[2])
    method = (f"exact McNemar test on the images flipped by one comparison only, one-sided (candidate > floor) at "
              f"{alpha:g}; percentile bootstrap, {n_boot} resamples of images"
              + (" within each stratum" if strata is not None else "") + ", both comparisons on the same resamples")
    return NoiseFloor(n=n, counts={k: int(v) for k, v in zip(FLOOR_CELLS, counts)},
                      **{k: float(v) for k, v in point.items()}, intervals=intervals, wilson=wil, p_value=p_value,
                      above_floor=above, alpha=float(alpha), confidence=float(confidence), n_boot=n_boot,
                      seed=int(seed), method=method)


@dataclass(frozen=True)
class CompatibilityResult:
    """Backward compatibility of embeddings in BCT's sense, from :func:`cross_model_compatibility`.

    Each metric is given for three ways to score a pair (probe, gallery): ``"old/old"`` (both
    embedded by the old model: today's system), ``"new/old"`` (new-model probe against the stored
    old-model gallery: the update without re-indexing) and ``"new/new"`` (after re-indexing).

    Attributes
    ----------
    far : float
        The FAR target of ``tar_at_far``.
    tar_at_far : dict
        ``{"old/old", "new/old", "new/new"}`` -> TAR at the lowest threshold with FAR <= ``far``
        (NaN when the impostor pairs cannot resolve ``far``).
    thresholds : dict
        The threshold of each TAR.
    rank1 : dict
        Rank-1 identification rate: the share of probes whose best genuine gallery score is strictly
        above every impostor gallery score (a tie counts as a miss), over probes with at least one
        genuine gallery item.
    compatible : dict
        ``{"tar_at_far", "rank1"}`` -> ``M(new/old) >= M(old/old)``: searching old embeddings with new
        probes is at least as good as today (an identical model is compatible).
    criterion : dict
        ``{"tar_at_far", "rank1"}`` -> BCT's empirical compatibility criterion, strict:
        ``M(new/old) > M(old/old)`` (an update worth making without re-indexing).
    update_gain : dict
        BCT's update gain ``(M(new/old) - M(old/old)) / (M(new/new) - M(old/old))``: the share of the
        re-indexing gain reached without re-indexing; NaN when the new model gains nothing.
    difference_interval : dict
        ``{"tar_at_far", "rank1"}`` -> percentile-bootstrap interval of ``M(new/old) - M(old/old)``,
        resampling identities (both scorings on the same resamples): an interval above 0 says the
        criterion holds beyond chance, one below 0 that the update breaks the old gallery.
    n_probes, n_gallery, n_genuine, n_impostor, n_rank1_probes : int
    protocol : str
    notes : list of str
    """

    far: float
    tar_at_far: dict
    thresholds: dict
    rank1: dict
    compatible: dict
    criterion: dict
    update_gain: dict
    difference_interval: dict
    n_probes: int
    n_gallery: int
    n_genuine: int
    n_impostor: int
    n_rank1_probes: int
    protocol: str
    notes: list = field(default_factory=list)

    def to_dict(self):
        out = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
               for k, v in self.__dict__.items()}
        out["difference_interval"] = {k: list(v) for k, v in self.difference_interval.items()}
        return out


MODEL_PAIRS = ("old/old", "new/old", "new/new")


def cross_model_compatibility(embeddings_old, embeddings_new, labels, *, probe=None, far=1e-3,
                              max_pairs=_MAX_PAIRS, n_boot=1000, seed=0, confidence=0.95,
                              max_boot_pairs=_MAX_BOOT_PAIRS):
    """BCT's cross-model test: new-model probes against old-model gallery embeddings, beside old/old and new/new.

    Shen, Xiong, Xia and Soatto, "Towards Backward-Compatible Representation Learning", CVPR 2020:
    a new embedding model is backward compatible with an old one when comparing new-model
    probes with old-model gallery embeddings does at least as well as the old model did with
    itself; their empirical criterion is ``M(new, old) > M(old, old)`` for a metric ``M`` (here
    TAR@FAR for verification and rank-1 for identification), and their update gain the share of
    the full re-indexing gain ``M(new, new) - M(old, old)`` that ``M(new, old)`` reaches.

    Parameters
    ----------
    embeddings_old, embeddings_new : ndarray of shape (n_samples, dim)
        The same images embedded by each model; both must have the same ``dim``. Scores are cosine
        similarities (rows are L2-normalized as :func:`evallib.metrics.verification.normalize_embeddings`
        does, so the scores are exact).
    labels : array-like of shape (n_samples,)
        Identity of each image.
    probe : array-like of bool of shape (n_samples,) or of int indices, optional
        The probe (query) images; the rest form the gallery and pairs are probe x gallery. Without
        it every image is a probe against all the others (ordered pairs, each image never
        against itself).
    far : float, default 1e-3
        FAR target for TAR@FAR.
    max_pairs : int, default 10,000,000
        Above this many pairs the computation refuses (pass a smaller ``probe`` set).
    n_boot : int, default 1000
        Resamples of identities for the intervals of ``M(new/old) - M(old/old)``; 0 skips them.
    seed : int, default 0
    confidence : float, default 0.95
    max_boot_pairs : int, default 200,000
        The bootstrap uses at most this many genuine and this many impostor pairs, drawn uniformly
        (the point figures use every pair).

    Returns
    -------
    CompatibilityResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ids = np.repeat(np.arange(20), 5)
    >>> old = rng.normal(size=(20, 8))[ids] + 0.3 * rng.normal(size=(100, 8))
    >>> cross_model_compatibility(old, old, ids, far=0.01).compatible["tar_at_far"]
    True
    """
    from .verification import normalize_embeddings, sweep_from_sorted_scores

    eo = normalize_embeddings(embeddings_old, "embeddings_old")
    en = normalize_embeddings(embeddings_new, "embeddings_new")
    if eo.shape != en.shape:
        raise EvallibError(f"embeddings_new: expected shape {eo.shape} like embeddings_old (the cross-model test "
                           f"needs the same images and embedding size); got {en.shape}")
    n = len(eo)
    lab = check_labels("labels", labels, n, per="embedding")
    if not 0 < far < 1:
        raise EvallibError(f"far: expected a number in (0, 1); got {far!r}")
    if probe is None:
        q, g = np.arange(n), np.arange(n)
        protocol = "every image against every other (ordered pairs)"
    else:
        pr = np.asarray(probe)
        if pr.dtype == bool:
            if pr.shape != (n,):
                raise EvallibError(f"probe: expected a boolean mask of shape ({n},); got shape {pr.shape}")
            q = np.nonzero(pr)[0]
        elif np.issubdtype(pr.dtype, np.integer) and pr.ndim == 1:
            if len(pr) and (pr.min() < 0 or pr.max() >= n):
                raise EvallibError(f"probe: expected indices in [0, {n}); got values from {pr.min()} to {pr.max()}")
            q = np.unique(pr)
        else:
            raise EvallibError(f"probe: expected a boolean mask or 1-d integer indices; got dtype {pr.dtype}, "
                               f"shape {pr.shape}")
        g = np.setdiff1d(np.arange(n), q)
        if len(q) == 0 or len(g) == 0:
            raise EvallibError(f"probe: expected probes and a gallery, both non-empty; got {len(q)} probes and "
                               f"{len(g)} gallery images")
        protocol = "probes against gallery"
    if len(q) * len(g) > max_pairs:
        raise EvallibError(f"probe: {len(q)} probes x {len(g)} gallery images is more than max_pairs={max_pairs}; "
                           f"pass a smaller probe set")

    lq, lg = lab[q], lab[g]
    same = lq[:, None] == lg[None, :]
    valid = q[:, None] != g[None, :]
    gen_mask, imp_mask = same & valid, ~same & valid
    has_gen = gen_mask.any(axis=1)
    models = {"old/old": (eo, eo), "new/old": (en, eo), "new/new": (en, en)}
    tar, thr, rank1, kept = {}, {}, {}, {}
    for name, (a, b) in models.items():
        s = a[q].astype(np.float64) @ b[g].astype(np.float64).T  # exact: see normalize_embeddings
        gen_s, imp_s = s[gen_mask], s[imp_mask]
        sweep = sweep_from_sorted_scores(np.sort(gen_s), np.sort(imp_s))
        t, th = sweep.tar_at_far(far) if sweep.n_pos and sweep.n_neg else (float("nan"), float("nan"))
        tar[name], thr[name] = float(t), float(th)
        best_gen = np.where(gen_mask, s, -np.inf).max(axis=1)
        best_imp = np.where(imp_mask, s, -np.inf).max(axis=1)
        hits = (best_gen > best_imp)[has_gen]
        rank1[name] = float(np.mean(hits)) if has_gen.any() else float("nan")
        kept[name] = (gen_s, imp_s, hits)
    if n_boot and int(imp_mask.sum()) * far >= 1 and gen_mask.any():
        rows, cols = np.nonzero(gen_mask)
        gen_ids = lq[rows]
        rows, cols = np.nonzero(imp_mask)
        imp_ids = np.column_stack([lq[rows], lg[cols]])
        intervals = _compatibility_intervals(kept["old/old"], kept["new/old"], gen_ids, imp_ids, lq[has_gen],
                                             far=far, n_boot=n_boot, seed=seed, confidence=confidence,
                                             max_pairs=max_boot_pairs)
    else:
        intervals = {"tar_at_far": (float("nan"), float("nan")), "rank1": (float("nan"), float("nan"))}

    def verdicts(m):
        old, cross, new = m["old/old"], m["new/old"], m["new/new"]
        ok = np.isfinite(old) and np.isfinite(cross)
        gain = (cross - old) / (new - old) if ok and np.isfinite(new) and new != old else float("nan")
        return (bool(ok and cross >= old), bool(ok and cross > old), float(gain))

    vt, vr = verdicts(tar), verdicts(rank1)
    notes = []
    n_imp = int(imp_mask.sum())
    if n_imp * far < 1:
        notes.append(f"no TAR at FAR {far:g}: only {n_imp} impostor pairs")
    if not has_gen.any():
        notes.append("no rank-1: no probe has a genuine gallery image")
    return CompatibilityResult(
        far=float(far), tar_at_far=tar, thresholds=thr, rank1=rank1,
        compatible={"tar_at_far": vt[0], "rank1": vr[0]}, criterion={"tar_at_far": vt[1], "rank1": vr[1]},
        update_gain={"tar_at_far": vt[2], "rank1": vr[2]}, difference_interval=intervals, n_probes=len(q),
        n_gallery=len(g),
        n_genuine=int(gen_mask.sum()), n_impostor=n_imp, n_rank1_probes=int(has_gen.sum()),
        protocol=protocol, notes=notes)


@dataclass(frozen=True)
class PairFlips:
    """Verification pairs whose decision changed between two models, from :func:`pair_flips`.

    A pair is accepted when its score is at or above the model's threshold.

    Attributes
    ----------
    operating_point : str
        ``"matched FAR"`` (each model at its own threshold for the same FAR target) or ``"given thresholds"``.
    far : float or None
        The FAR target for ``"matched FAR"``.
    threshold_old, threshold_new : float
    n_genuine, n_impostor : int
    genuine_lost : ndarray of int
        Genuine pairs the old model accepted and the new one rejects (the negative flips of
        verification), furthest below the new threshold first.
    impostor_gained : ndarray of int
        Impostor pairs the old model rejected and the new one accepts (newly let in), furthest above
        the new threshold first.
    genuine_gained, impostor_lost : ndarray of int
        The flips the other way (new accepts a genuine pair the old rejected; new rejects an impostor
        the old accepted), in the same orders.
    rates : dict
        ``genuine_lost`` and ``genuine_gained`` over genuine pairs, ``impostor_gained`` and
        ``impostor_lost`` over impostor pairs.
    wilson : dict
        Wilson interval of each rate.
    p_genuine, p_impostor : float
        Exact McNemar (two-sided) on the genuine pairs (accepted by old vs new) and on the impostor
        pairs (rejected by old vs new); NaN with no flips.
    notes : list of str
    """

    operating_point: str
    far: float | None
    threshold_old: float
    threshold_new: float
    n_genuine: int
    n_impostor: int
    genuine_lost: np.ndarray
    impostor_gained: np.ndarray
    genuine_gained: np.ndarray
    impostor_lost: np.ndarray
    rates: dict
    wilson: dict
    p_genuine: float
    p_impostor: float
    notes: list = field(default_factory=list)

    def to_dict(self):
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        out["wilson"] = {k: list(v) for k, v in self.wilson.items()}
        return out


def pair_flips(same, scores_old, scores_new, *, far=1e-3, thresholds=None, confidence=0.95):
    """Verification pairs whose accept/reject decision changed between an old and a new model.

    The verification counterpart of negative flips: genuine pairs the old model accepted that the new
    one rejects, and impostor pairs it newly accepts.

    Parameters
    ----------
    same : array-like of bool, shape (n_pairs,)
        True for genuine pairs (same identity).
    scores_old, scores_new : array-like of shape (n_pairs,)
        Similarity of each pair under the old and the new model; higher means more alike.
    far : float, default 1e-3
        Without ``thresholds``: each model is taken at the lowest threshold where its own FAR is at
        most ``far`` (the threshold of its TAR@FAR, see :meth:`ThresholdSweep.tar_at_far`), so both
        let in the same share of impostors and the flips are not a shift of operating point.
    thresholds : (float, float), optional
        ``(threshold_old, threshold_new)``: each model at its own deployed operating point instead.
    confidence : float, default 0.95

    Returns
    -------
    PairFlips
    """
    from .sweep import check_binary, threshold_sweep

    so = check_scores("scores_old", scores_old)
    sn = check_scores("scores_new", scores_new)
    if sn.shape != so.shape:
        raise EvallibError(f"scores_new: expected {len(so)} scores like scores_old; got {len(sn)}")
    gen = check_binary("same", same, len(so))
    notes = []
    if thresholds is None:
        if not 0 < far < 1:
            raise EvallibError(f"far: expected a number in (0, 1); got {far!r}")
        t_old = threshold_sweep(gen, so).tar_at_far(far)[1] if gen.any() and (~gen).any() else float("nan")
        t_new = threshold_sweep(gen, sn).tar_at_far(far)[1] if gen.any() and (~gen).any() else float("nan")
        point = "matched FAR"
        if np.isnan(t_old) or np.isnan(t_new):
            notes.append(f"no threshold at FAR {far:g}: {int((~gen).sum())} impostor pairs and "
                         f"{int(gen.sum())} genuine pairs cannot resolve it")
    else:
        try:
            t_old, t_new = (float(t) for t in thresholds)
        except (TypeError, ValueError):
            raise EvallibError(f"thresholds: expected two numbers (old, new); got {thresholds!r}") from None
        point, far = "given thresholds", None
    acc_old, acc_new = so >= t_old, sn >= t_new  # NaN thresholds accept nothing; flagged in notes

    def ranked(mask, key):
        idx = np.nonzero(mask)[0]
        return idx[np.lexsort((idx, -key[idx]))]

    below, above = t_new - sn, sn - t_new
    lost = ranked(gen & acc_old & ~acc_new, below)
    gained = ranked(gen & ~acc_old & acc_new, above)
    imp_gained = ranked(~gen & ~acc_old & acc_new, above)
    imp_lost = ranked(~gen & acc_old & ~acc_new, below)
    n_gen, n_imp = int(gen.sum()), int((~gen).sum())
    counts = {"genuine_lost": (len(lost), n_gen), "genuine_gained": (len(gained), n_gen),
              "impostor_gained": (len(imp_gained), n_imp), "impostor_lost": (len(imp_lost), n_imp)}
    rates = {k: (k_ / n if n else float("nan")) for k, (k_, n) in counts.items()}
    wil = {}
    for k, (k_, n) in counts.items():
        lo, hi = wilson_interval(k_, n, confidence=confidence)
        wil[k] = (float(lo), float(hi))
    p = _flip_tests([len(lost), len(imp_gained)], [len(gained), len(imp_lost)], "two-sided")
    return PairFlips(operating_point=point, far=far, threshold_old=float(t_old), threshold_new=float(t_new),
                     n_genuine=n_gen, n_impostor=n_imp, genuine_lost=lost, impostor_gained=imp_gained,
                     genuine_gained=gained, impostor_lost=imp_lost, rates=rates, wilson=wil,
                     p_genuine=float(p[0]), p_impostor=float(p[1]), notes=notes)


def weighted_tar_at_far(gen_scores, gen_weights, imp_scores, imp_weights, far):
    """TAR at FAR ``far`` with weighted pairs, one row of weights per resample.

    With integer weights this is the library's TAR@FAR (:meth:`ThresholdSweep.tar_at_far`) of the
    pairs each repeated as often as its weight: ``v`` is the highest impostor score with more than
    ``far`` of the impostor weight at or above it, and TAR the share of genuine weight above ``v``.

    Parameters
    ----------
    gen_scores : ndarray of shape (n_genuine,)
    gen_weights : ndarray of shape (n_resamples, n_genuine)
    imp_scores : ndarray of shape (n_impostor,)
    imp_weights : ndarray of shape (n_resamples, n_impostor)
    far : float

    Returns
    -------
    ndarray of shape (n_resamples,)
        NaN where a resample has no genuine or no impostor weight.
    """
    from .bootstrap import far_threshold_index

    order = np.argsort(-imp_scores, kind="mergesort")
    total = imp_weights.sum(axis=1, dtype=np.float64)
    v = imp_scores[order][far_threshold_index(imp_weights, order, total, [far])[0]]
    gw = gen_weights.astype(np.float64)
    above = np.sum(gw * (gen_scores[None, :] > v[:, None]), axis=1)
    g_total = gw.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((total > 0) & (g_total > 0), above / np.where(g_total > 0, g_total, 1), np.nan)


def _compatibility_intervals(old, cross, gen_ids, imp_ids, probe_ids, *, far, n_boot, seed, confidence, max_pairs):
    """Identity-bootstrap intervals of ``M(new/old) - M(old/old)`` for TAR@FAR and rank-1.

    A resample draws identities with replacement (counts ``m``); a genuine pair of identity ``a`` weighs
    ``m_a``, an impostor pair ``(a, b)`` weighs ``m_a * m_b`` (as :func:`bootstrap_verification`), a
    rank-1 probe of identity ``a`` weighs ``m_a``.
    """
    from .bootstrap import _weights

    rng = np.random.default_rng(seed)
    gen_o, imp_o, hits_o = old
    gen_c, imp_c, hits_c = cross
    gi = np.arange(len(gen_o)) if len(gen_o) <= max_pairs else np.sort(rng.choice(len(gen_o), max_pairs, False))
    ii = np.arange(len(imp_o)) if len(imp_o) <= max_pairs else np.sort(rng.choice(len(imp_o), max_pairs, False))
    ids, inv = np.unique(np.r_[gen_ids[gi], imp_ids[ii].ravel(), probe_ids], return_inverse=True)
    g_id, imp_flat, p_id = np.split(inv, [len(gi), len(gi) + 2 * len(ii)])
    a_id, b_id = imp_flat[0::2], imp_flat[1::2]
    hit_diff = hits_c.astype(np.float64) - hits_o
    d_tar, d_rank1 = [], []
    step = max(1, 20_000_000 // max(len(ii), len(gi), len(probe_ids), 1))
    for b0 in range(0, n_boot, step):
        m = _weights(rng, len(ids), min(step, n_boot - b0)).astype(np.float64)
        wg, wi = m[:, g_id], m[:, a_id] * m[:, b_id]
        d_tar.append(weighted_tar_at_far(gen_c[gi], wg, imp_c[ii], wi, far)
                     - weighted_tar_at_far(gen_o[gi], wg, imp_o[ii], wi, far))
        wp = m[:, p_id]
        with np.errstate(invalid="ignore", divide="ignore"):
            d_rank1.append(np.where(wp.sum(axis=1) > 0, wp @ hit_diff / wp.sum(axis=1), np.nan))
    return {"tar_at_far": tuple(float(v) for v in _percentile_intervals(np.concatenate(d_tar)[:, None],
                                                                           confidence)[:, 0]),
            "rank1": tuple(float(v) for v in _percentile_intervals(np.concatenate(d_rank1)[:, None],
                                                                      confidence)[:, 0])}
