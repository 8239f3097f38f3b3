"""Where a model fails: metrics by slice with intervals and false discovery control, weak slices found
without metadata and confirmed on held-out images, and verification error rates by group.

Three entry points, arrays in and frozen dataclasses out:

- :func:`metrics_by_slice`: every slice of every slicing column and every two-way intersection, with its n,
  accuracy (Wilson interval), top-k accuracy (Wilson), macro-F1 (a bootstrap within the slice), the gap to
  the rest of the data (Newcombe's interval, Fisher's exact test), and Benjamini–Hochberg over all slices
  tested. The layout follows Fairlearn's ``MetricFrame`` (overall value, value by group, difference), with
  two changes its issue tracker asks for: the bootstrap resamples within each slice, so a rare slice never
  vanishes from a resample (fairlearn#1441), and slices with the same images are reported once
  (Giskard-AI/giskard-oss#1845), with false discovery control on by default (giskard-oss#1162).
- :func:`discover_weak_slices`: candidate slices (clusters of embeddings, or metadata and binned image
  properties) are chosen on one half of the images and confirmed on the other (Eyuboglu et al., "Domino",
  ICLR 2022; Johnson et al., HCOMP 2023).
- :func:`verification_by_group`: per-group false non-match and false match rates at one global threshold,
  within and between groups, as NIST reports them (Grother et al., NISTIR 8280, 2019).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import EvallibError
from .classification import to_probabilities, topk_hit
from .stats import benjamini_hochberg, wilson_interval

_CHUNK = 4_000_000  # resamples x cells (or pairs) processed at once
_NAN2 = (float("nan"), float("nan"))


# --- small pieces ------------------------------------------------------------------------------------

def _pair(lo, hi):
    return float(lo), float(hi)


def _percentile_interval(reps, confidence):
    v = np.asarray(reps, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return _NAN2
    a = (1 - confidence) / 2 * 100
    return float(np.percentile(v, a)), float(np.percentile(v, 100 - a))


def newcombe_interval(k1, n1, k2, n2, *, confidence=0.95):
    """Interval for the difference of two independent proportions ``k1/n1 - k2/n2``.

    Newcombe's hybrid score interval (Statistics in Medicine 1998, method 10), built from the two Wilson
    intervals of :func:`evallib.metrics.stats.wilson_interval`.

    Parameters
    ----------
    k1, n1, k2, n2 : int or array-like of int

    Returns
    -------
    lo, hi : ndarray of float64 (0-d for scalar input); NaN where ``n1`` or ``n2`` is 0
    """
    k1, n1, k2, n2 = (np.asarray(v, dtype=np.float64) for v in (k1, n1, k2, n2))
    l1, u1 = wilson_interval(k1, n1, confidence=confidence)
    l2, u2 = wilson_interval(k2, n2, confidence=confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = k1 / n1, k2 / n2
        d = p1 - p2
        lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
        hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return lo, hi


def _fisher(k1, n1, k2, n2, alternative):
    """Fisher's exact test of ``k1/n1`` against ``k2/n2`` (successes in the first row)."""
    from scipy.stats import fisher_exact

    if n1 == 0 or n2 == 0:
        return float("nan")
    return float(fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative=alternative).pvalue)


def _two_proportion(k1, n1, k2, n2, alternative):
    """Pooled two-proportion z test (vectorised over arrays)."""
    from scipy.stats import norm

    k1, n1, k2, n2 = (np.asarray(v, dtype=np.float64) for v in (k1, n1, k2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (k1 + k2) / (n1 + n2)
        se = np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
        z = (k1 / n1 - k2 / n2) / se
        z = np.where(se > 0, z, 0.0)
    if alternative == "less":
        return norm.cdf(z)
    return np.minimum(1.0, 2 * norm.sf(np.abs(z)))


def _test_proportions(k1, n1, k2, n2, *, test, alternative):
    k1, n1, k2, n2 = (np.asarray(v, dtype=np.int64) for v in (k1, n1, k2, n2))
    if test == "two_proportion":
        return np.where((n1 > 0) & (n2 > 0), _two_proportion(k1, n1, k2, n2, alternative), np.nan)
    return np.array([_fisher(int(a), int(b), int(c), int(d), alternative)
                     for a, b, c, d in zip(k1, n1, k2, n2)], dtype=np.float64)


def _check_common(y, scores, scores_are, top_k):
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise EvallibError(f"y: expected a non-empty 1-d array of class indices; got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y: expected integer class indices; got dtype {y.dtype}")
    s = np.asarray(scores)
    if s.ndim == 1:
        if not np.issubdtype(s.dtype, np.integer):
            raise TypeError(f"scores: a 1-d scores array must hold predicted class indices (integers); "
                            f"got dtype {s.dtype}")
        if len(s) != len(y):
            raise EvallibError(f"scores: expected {len(y)} predictions, one per label; got {len(s)}")
        return y.astype(np.int64), s.astype(np.int64), None
    if s.ndim != 2 or s.shape[0] != len(y):
        raise EvallibError(f"scores: expected shape ({len(y)}, n_classes) or ({len(y)},); got {s.shape}")
    if scores_are not in ("logits", "probabilities"):
        raise ValueError(f"scores_are: expected 'logits' or 'probabilities'; got {scores_are!r}")
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise EvallibError("scores: expected finite values; got NaN or infinite")
    if y.min() < 0 or y.max() >= s.shape[1]:
        raise EvallibError(f"y: expected class indices in [0, {s.shape[1] - 1}]; got values from {y.min()} to {y.max()}")
    probs = to_probabilities(s, scores_are)
    pred = probs.argmax(axis=1)
    top = topk_hit(probs, y, top_k) if top_k and 1 < top_k < s.shape[1] else None
    return y.astype(np.int64), pred.astype(np.int64), top


def _check_slices(slices, n):
    if not hasattr(slices, "items"):
        raise TypeError(f"slices: expected a mapping of column name to labels (one per image); "
                        f"got {type(slices).__name__}")
    if not slices:
        raise ValueError("slices: expected at least one slicing column; got an empty mapping")
    cols = {}
    for name, labels in slices.items():
        arr = np.asarray(labels, dtype=object)
        if arr.ndim != 1 or len(arr) != n:
            raise EvallibError(f"slices[{name!r}]: expected {n} labels, one per image; got shape {arr.shape}")
        values, codes = np.unique(arr.astype(str), return_inverse=True)
        cols[str(name)] = (values, codes.astype(np.int64))
    return cols


# --- macro-F1 and its bootstrap within a slice ---------------------------------------------------------

def _macro_f1_from_cells(cells_y, cells_p, counts):
    """Macro-F1 (labels present in y or the prediction, as scikit-learn's default) for rows of cell counts.

    ``counts`` has shape (..., n_cells): how many samples fall in each (true, predicted) cell.
    """
    from scipy.sparse import csr_matrix

    labels, yi = np.unique(np.r_[cells_y, cells_p], return_inverse=True)
    yi, pi = yi[: len(cells_y)], yi[len(cells_y):]
    L = len(labels)
    c = np.asarray(counts, dtype=np.float64)
    lead = c.shape[:-1]
    c2 = c.reshape(-1, c.shape[-1])
    cells = np.arange(len(cells_y))
    diag = (cells_y == cells_p).astype(np.float64)

    def per_label(label_of_cell, weight):
        m = csr_matrix((weight, (cells, label_of_cell)), shape=(len(cells), L))
        return np.asarray((m.T @ c2.T).T)

    true_n = per_label(yi, np.ones(len(cells)))
    pred_n = per_label(pi, np.ones(len(cells)))
    tp = per_label(yi, diag)
    den = true_n + pred_n
    present = den > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2 * tp / np.where(present, den, 1), 0.0)
        out = f1.sum(axis=1) / present.sum(axis=1)
    return out.reshape(lead)


def _confusion_cells(y, pred):
    """Distinct (true, predicted) pairs and how many samples each holds."""
    c = np.unique(np.stack([y, pred]), axis=1, return_counts=True)
    (cells, counts) = c
    return cells[0], cells[1], counts


def resample_within(y, pred, *, n_boot, rng):
    """Bootstrap resamples of one slice as counts per (true, predicted) cell.

    Drawing ``n`` samples with replacement from a slice of ``n`` is a multinomial draw over its confusion
    cells, so every resample holds exactly ``n`` samples of the slice: a slice of 3 images is in every
    resample (stratified by slice), unlike a bootstrap over the whole data set (fairlearn#1441).

    Returns
    -------
    cells_y, cells_pred : ndarray of shape (n_cells,)
    counts : ndarray of shape (n_boot, n_cells), int64; each row sums to ``len(y)``
    """
    cy, cp, k = _confusion_cells(np.asarray(y), np.asarray(pred))
    n = int(k.sum())
    return cy, cp, rng.multinomial(n, k / n, size=n_boot)


def _macro_f1_interval(y, pred, *, n_boot, rng, confidence):
    if n_boot <= 0:
        return _NAN2
    reps = []
    cy, cp, k = _confusion_cells(y, pred)
    n = int(k.sum())
    step = max(1, _CHUNK // max(len(k), 1))
    for start in range(0, n_boot, step):
        counts = rng.multinomial(n, k / n, size=min(step, n_boot - start))
        reps.append(_macro_f1_from_cells(cy, cp, counts))
    return _percentile_interval(np.concatenate(reps), confidence)


# --- metrics by slice ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SliceRow:
    """One slice (or two-way intersection) and how the model does on it.

    Attributes
    ----------
    name : str
        ``"camera=B"`` or ``"camera=B & site=north"``.
    columns, values : tuple of str
        The slicing columns and their values that define the slice.
    n : int
        Images in the slice.
    accuracy : float
    accuracy_interval : (float, float)
        Wilson score interval.
    top_k_accuracy : float
        NaN when not computed (predictions only, or ``top_k`` not below the number of classes).
    top_k_interval : (float, float)
        Wilson score interval.
    macro_f1 : float
        Over the labels present in the slice's truth or predictions (scikit-learn's default); NaN when the
        slice holds fewer than two true classes.
    macro_f1_interval : (float, float)
        Percentile bootstrap resampling within the slice.
    rest_n : int
        Images outside the slice.
    rest_accuracy : float
    gap : float
        ``accuracy - rest_accuracy``; negative when the slice is weaker.
    gap_interval : (float, float)
        Newcombe's hybrid score interval for the difference.
    p_value, q_value : float
        The test of the slice's accuracy against the rest and its Benjamini–Hochberg adjusted value over every
        slice tested; NaN when not tested.
    tested : bool
        False below ``min_slice_size`` (the slice or the rest), for a duplicate, or with no rest.
    significant : bool
        ``q_value < alpha`` (either direction).
    weak : bool
        Significant, and ``gap <= -min_slice_effect``: a weak slice the report lists.
    note : str
        Why a slice is not tested, or empty.
    same_as : tuple of str
        Other slices with exactly the same images, reported only here.
    """

    name: str
    columns: tuple
    values: tuple
    n: int
    accuracy: float
    accuracy_interval: tuple
    top_k_accuracy: float
    top_k_interval: tuple
    macro_f1: float
    macro_f1_interval: tuple
    rest_n: int
    rest_accuracy: float
    gap: float
    gap_interval: tuple
    p_value: float
    q_value: float
    tested: bool
    significant: bool
    weak: bool
    note: str
    same_as: tuple = ()


@dataclass(frozen=True)
class SliceResult:
    """Metrics for every slice, the overall values and the settings that decided what is reported.

    Attributes
    ----------
    rows : tuple of SliceRow
        Single-column slices first (column order, values sorted), then two-way intersections.
    n : int
    accuracy : float
    accuracy_interval : (float, float)
    macro_f1 : float
    top_k : int
    alpha, min_slice_size, min_slice_effect, confidence : float
    test : str
    n_tests : int
        Slices that entered Benjamini–Hochberg.
    n_boot, seed : int
    """

    rows: tuple
    n: int
    accuracy: float
    accuracy_interval: tuple
    macro_f1: float
    top_k: int
    alpha: float
    min_slice_size: int
    min_slice_effect: float
    confidence: float
    test: str
    n_tests: int
    n_boot: int
    seed: int

    @property
    def weak(self):
        """Weak slices (q below alpha, effect at least ``min_slice_effect``), weakest first."""
        return tuple(sorted((r for r in self.rows if r.weak), key=lambda r: (r.gap, r.q_value)))

    def weakest(self, k=10):
        """The ``k`` weakest confirmed slices, as the summary lists them."""
        return self.weak[:k]

    def row(self, name):
        """The row named ``name`` (or listed in a row's ``same_as``)."""
        for r in self.rows:
            if r.name == name or name in r.same_as:
                return r
        raise KeyError(f"name: no slice {name!r}")


def slice_mask(slices, row):
    """Boolean mask of the images in ``row`` (a :class:`SliceRow`), from the slicing columns it was built on.

    Returns
    -------
    ndarray of bool, shape (n_images,)
    """
    mask = None
    for c, v in zip(row.columns, row.values):
        m = np.asarray(slices[c], dtype=object).astype(str) == v
        mask = m if mask is None else mask & m
    return mask


def _slice_name(columns, values):
    return " & ".join(f"{c}={v}" for c, v in zip(columns, values))


def metrics_by_slice(y, scores, slices, *, scores_are="logits", top_k=5, intersections=True,
                     min_slice_size=30, min_slice_effect=0.0, alpha=0.05, fdr=True, test="fisher",
                     n_boot=1000, seed=0, confidence=0.95):
    """Accuracy, top-k accuracy and macro-F1 for every slice and two-way intersection, with n, intervals,
    the gap to the rest of the data and a test of it, Benjamini–Hochberg over every slice tested.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        True class indices.
    scores : ndarray of shape (n_samples, n_classes), or of shape (n_samples,)
        Class scores (logits or probabilities), or predicted class indices (then no top-k).
    slices : dict of str to array-like of shape (n_samples,)
        Slicing columns: one label per image (:mod:`evallib.slicing` builds them).
    scores_are : {"logits", "probabilities"}, default "logits"
    top_k : int, default 5
        Top-k accuracy per slice when there are more than ``top_k`` classes; 0 to skip.
    intersections : bool, default True
        Also every non-empty two-way intersection of values of different columns.
    min_slice_size : int, default 30
        Slices (or rests) with fewer images are reported with their metrics and intervals, but not tested,
        and do not enter the false discovery control.
    min_slice_effect : float, default 0.0
        A weak slice's accuracy is at least this much below the rest's.
    alpha : float, default 0.05
        False discovery rate (Benjamini–Hochberg, JRSS B 1995) over every slice tested.
    fdr : bool, default True
        False: compare the raw p-values with ``alpha`` (no multiple-testing control; not advised).
    test : {"fisher", "two_proportion"}, default "fisher"
        Fisher's exact test on the 2x2 table slice/rest x correct/wrong, or the pooled two-proportion z test
        (faster for many large slices). Two-sided.
    n_boot : int, default 1000
        Resamples for the macro-F1 intervals, drawn within each slice; 0 to skip them.
    seed : int, default 0
    confidence : float, default 0.95

    Returns
    -------
    SliceResult

    Notes
    -----
    A slice with the same images as an earlier one (an intersection equal to one of its parents, or two
    columns that split the images the same way) is reported once, on the earlier row, whose ``same_as``
    names the others; it is tested once.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.zeros(200, dtype=int); pred = np.r_[np.zeros(150, int), np.ones(50, int)]
    >>> camera = np.where(np.arange(200) < 100, "A", "B")
    >>> res = metrics_by_slice(y, pred, {"camera": camera}, n_boot=0)
    >>> [(r.name, r.n, r.accuracy) for r in res.rows]
    [('camera=A', 100, 1.0), ('camera=B', 100, 0.5)]
    >>> res.weakest()[0].name
    'camera=B'
    """
    y, pred, top = _check_common(y, scores, scores_are, top_k)
    n = len(y)
    cols = _check_slices(slices, n)
    if test not in ("fisher", "two_proportion"):
        raise ValueError(f"test: expected 'fisher' or 'two_proportion'; got {test!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number in (0, 1); got {alpha!r}")
    if min_slice_size < 1:
        raise ValueError(f"min_slice_size: expected an int >= 1; got {min_slice_size!r}")
    correct = (pred == y)
    rng = np.random.default_rng(seed)
    keys = rng.random((2, n))  # membership fingerprints: equal sets give equal sums, in the same order

    # every candidate slice: (columns, values, codes-of-membership) gathered per column or column pair
    defs = []  # (columns, values, member indices)
    names = list(cols)
    for c in names:
        values, codes = cols[c]
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(values) + 1))
        for v in range(len(values)):
            defs.append(((c,), (str(values[v]),), order[bounds[v]:bounds[v + 1]]))
    if intersections:
        for a, b in itertools.combinations(names, 2):
            va, ca = cols[a]
            vb, cb = cols[b]
            code = ca * len(vb) + cb
            order = np.argsort(code, kind="stable")
            uniq, starts = np.unique(code[order], return_index=True)
            ends = np.r_[starts[1:], n]
            for u, s0, s1 in zip(uniq, starts, ends):
                defs.append(((a, b), (str(va[u // len(vb)]), str(vb[u % len(vb)])), order[s0:s1]))

    # duplicates: same membership as an earlier slice
    first = {}
    dup_of = [None] * len(defs)
    for i, (_, _, idx) in enumerate(defs):
        fp = (len(idx), float(keys[0, idx].sum()), float(keys[1, idx].sum()))
        j = first.get(fp)
        if j is not None and np.array_equal(np.sort(defs[j][2]), np.sort(idx)):
            dup_of[i] = j
        else:
            first.setdefault(fp, i)

    keep = [i for i in range(len(defs)) if dup_of[i] is None]
    same_as = {i: [] for i in keep}
    for i, j in enumerate(dup_of):
        if j is not None:
            same_as[j].append(_slice_name(*defs[i][:2]))

    total_correct = int(correct.sum())
    ns = np.array([len(defs[i][2]) for i in keep], dtype=np.int64)
    ks = np.array([int(correct[defs[i][2]].sum()) for i in keep], dtype=np.int64)
    rest_n, rest_k = n - ns, total_correct - ks
    testable = (ns >= min_slice_size) & (rest_n >= min_slice_size)
    p = np.full(len(keep), np.nan)
    if testable.any():
        p[testable] = _test_proportions(ks[testable], ns[testable], rest_k[testable], rest_n[testable],
                                        test=test, alternative="two-sided")
    if fdr:
        reject, q = benjamini_hochberg(p, alpha=alpha)
    else:
        q = p.copy()
        reject = np.isfinite(p) & (p < alpha)
    acc_lo, acc_hi = wilson_interval(ks, ns, confidence=confidence)
    gap_lo, gap_hi = newcombe_interval(ks, ns, rest_k, rest_n, confidence=confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = ks / ns
        rest_acc = np.where(rest_n > 0, rest_k / np.maximum(rest_n, 1), np.nan)

    rows = []
    for r, i in enumerate(keep):
        columns, values, idx = defs[i]
        if top is not None:
            tk = int(top[idx].sum())
            t_lo, t_hi = wilson_interval(tk, len(idx), confidence=confidence)
            top_acc, top_int = tk / len(idx), _pair(t_lo, t_hi)
        else:
            top_acc, top_int = float("nan"), _NAN2
        ys, ps = y[idx], pred[idx]
        if len(np.unique(ys)) >= 2:
            cy, cp, cnt = _confusion_cells(ys, ps)
            f1 = float(_macro_f1_from_cells(cy, cp, cnt))
            f1_int = _macro_f1_interval(ys, ps, n_boot=n_boot, rng=rng, confidence=confidence)
        else:
            f1, f1_int = float("nan"), _NAN2
        if rest_n[r] == 0:
            note = "every image is in this slice: nothing to compare with"
        elif ns[r] < min_slice_size:
            note = f"n={ns[r]} is below min_slice_size={min_slice_size}: shown, not tested"
        elif rest_n[r] < min_slice_size:
            note = f"the rest has n={rest_n[r]}, below min_slice_size={min_slice_size}: shown, not tested"
        else:
            note = ""
        sig = bool(reject[r])
        rows.append(SliceRow(
            name=_slice_name(columns, values), columns=tuple(columns), values=tuple(values), n=int(ns[r]),
            accuracy=float(acc[r]), accuracy_interval=_pair(acc_lo[r], acc_hi[r]),
            top_k_accuracy=top_acc, top_k_interval=top_int, macro_f1=f1, macro_f1_interval=f1_int,
            rest_n=int(rest_n[r]), rest_accuracy=float(rest_acc[r]), gap=float(acc[r] - rest_acc[r]),
            gap_interval=_pair(gap_lo[r], gap_hi[r]), p_value=float(p[r]), q_value=float(q[r]),
            tested=bool(testable[r]), significant=sig,
            weak=sig and bool(acc[r] - rest_acc[r] <= -min_slice_effect) and bool(acc[r] < rest_acc[r]),
            note=note, same_as=tuple(same_as[i])))

    lo, hi = wilson_interval(total_correct, n, confidence=confidence)
    if len(np.unique(y)) >= 2:
        cy, cp, cnt = _confusion_cells(y, pred)
        overall_f1 = float(_macro_f1_from_cells(cy, cp, cnt))
    else:
        overall_f1 = float("nan")
    return SliceResult(rows=tuple(rows), n=n, accuracy=total_correct / n, accuracy_interval=_pair(lo, hi),
                       macro_f1=overall_f1, top_k=int(top_k) if top is not None else 0, alpha=float(alpha),
                       min_slice_size=int(min_slice_size), min_slice_effect=float(min_slice_effect),
                       confidence=float(confidence), test=test, n_tests=int(testable.sum()),
                       n_boot=int(n_boot), seed=int(seed))
