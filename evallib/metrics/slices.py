"""Where a model fails: metrics by slice with intervals and false discovery control, weak slices found
without metadata and confirmed on held-out images, and verification error rates by group.

Three entry points, arrays in and frozen dataclasses out:

- :func:`metrics_by_slice`: every slice of every slicing column and every two-way intersection, with its n,
  accuracy (Wilson interval), top-k accuracy (Wilson), macro-F1 (delta method within the slice), the gap
  to the rest of the data (Newcombe's interval, Fisher's exact test), and Benjamini–Hochberg over all slices
  tested. The layout follows Fairlearn's ``MetricFrame`` (overall value, value by group, difference), with
  two changes its issue tracker asks for: every interval is computed within its slice (resamples are drawn
  within each group), so a rare slice never vanishes from a resample (fairlearn#1441), and slices with the
  same images are reported once
  (Giskard-AI/giskard-oss#1845), with false discovery control on by default (giskard-oss#1162).
- :func:`discover_weak_slices`: candidate slices (clusters of embeddings, or metadata and binned image
  properties) are chosen on one half of the images and confirmed on the other (Eyuboglu et al., "Domino",
  ICLR 2022; Johnson et al., HCOMP 2023).
- :func:`verification_by_group`: per-group false non-match and false match rates at one global threshold,
  within and between groups, as NIST reports them (Grother et al., NISTIR 8280, 2019).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

from ..errors import EvallibError
from .classification import topk_hit
from .stats import benjamini_hochberg, wilson_interval

_CHUNK = 4_000_000  # resamples x cells (or pairs) processed at once
_NAN2 = (float("nan"), float("nan"))
_MAX_FIT = 10_000  # discovery images the error-aware k-means is fitted on, at most


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


def fisher_exact_tests(k1, n1, k2, n2, *, alternative="two-sided"):
    """Fisher's exact test of ``k1/n1`` against ``k2/n2``, vectorised over many 2x2 tables.

    The table is ``[[k1, n1 - k1], [k2, n2 - k2]]``; under the null ``k1`` is hypergeometric. Two-sided p
    sums the probabilities of the tables no more likely than the one observed (relative tolerance 1e-7,
    as ``scipy.stats.fisher_exact``); ``"less"`` is the lower tail (the first proportion smaller).

    Parameters
    ----------
    k1, n1, k2, n2 : array-like of int, shape (n_tables,)
    alternative : {"two-sided", "less"}

    Returns
    -------
    ndarray of float64, shape (n_tables,)
        NaN where ``n1`` or ``n2`` is 0.
    """
    from scipy.special import gammaln
    from scipy.stats import hypergeom

    k1, n1, k2, n2 = (np.atleast_1d(np.asarray(v, dtype=np.int64)) for v in (k1, n1, k2, n2))
    if alternative not in ("two-sided", "less"):
        raise ValueError(f"alternative: expected 'two-sided' or 'less'; got {alternative!r}")
    out = np.full(len(k1), np.nan)
    ok = (n1 > 0) & (n2 > 0)
    if not ok.any():
        return out
    k1, n1, k2, n2 = k1[ok], n1[ok], k2[ok], n2[ok]
    M, K = n1 + n2, k1 + k2
    if alternative == "less":
        out[ok] = np.minimum(1.0, hypergeom.cdf(k1, M, K, n1))
        return out
    lo, hi = np.maximum(0, n1 - (M - K)), np.minimum(n1, K)
    length = hi - lo + 1
    # log P(x) = const - lgamma(x+1) - lgamma(K-x+1) - lgamma(n1-x+1) - lgamma(M-K-n1+x+1), the hypergeometric
    const = gammaln(K + 1) + gammaln(M - K + 1) + gammaln(n1 + 1) + gammaln(M - n1 + 1) - gammaln(M + 1)

    def logpmf(x, t):
        return const[t] - gammaln(x + 1) - gammaln(K[t] - x + 1) - gammaln(n1[t] - x + 1) - gammaln(
            M[t] - K[t] - n1[t] + x + 1)

    obs = logpmf(k1, np.arange(len(k1)))
    p = np.empty(len(k1))
    ends = np.cumsum(length)
    start = 0
    while start < len(k1):  # tables in chunks of about _CHUNK support points
        stop = max(start + 1, int(np.searchsorted(ends, ends[start] - length[start] + _CHUNK, side="right")))
        ln = length[start:stop]
        table = np.repeat(np.arange(stop - start), ln)
        x = lo[start:stop][table] + np.arange(ln.sum()) - np.repeat(np.cumsum(ln) - ln, ln)
        logp = logpmf(x, table + start)
        keep = logp <= obs[table + start] + np.log1p(1e-7)
        p[start:stop] = np.bincount(table, weights=np.where(keep, np.exp(logp), 0.0), minlength=stop - start)
        start = stop
    out[ok] = np.minimum(1.0, p)
    return out


def _fisher(k1, n1, k2, n2, alternative):
    return float(fisher_exact_tests([k1], [n1], [k2], [n2], alternative=alternative)[0])


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
    return fisher_exact_tests(k1, n1, k2, n2, alternative=alternative)


def _check_common(y, scores, top_k):
    """Labels, predicted classes and top-k hits. The ranking of logits and of their softmax is the same, so
    scores are ranked as given (no float64 copy of a large score matrix)."""
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
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise EvallibError("scores: expected finite values; got NaN or infinite")
    if y.min() < 0 or y.max() >= s.shape[1]:
        raise EvallibError(f"y: expected class indices in [0, {s.shape[1] - 1}]; "
                           f"got values from {y.min()} to {y.max()}")
    pred = s.argmax(axis=1)
    top = topk_hit(s, y, top_k) if top_k and 1 < top_k < s.shape[1] else None
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


# --- macro-F1 and its interval within a slice ----------------------------------------------------------

def _macro_f1_by_row(row_of, y, pred, n_rows):
    """Macro-F1 of many slices at once, its delta-method standard error, and how many true classes each
    slice holds. ``row_of`` (sorted) gives each listed sample's slice.

    Macro-F1 is the mean over the labels present in the slice's y or prediction (scikit-learn's default) of
    ``F_c = 2 T_c / D_c``, with ``T_c`` the slice's correct predictions of class c and ``D_c`` its samples of
    true class c plus its predictions of c. The slice's confusion matrix is multinomial, and macro-F1 does not
    change when every count is scaled, so its delta-method variance (Takahashi et al., "Confidence interval
    for micro-averaged F1 and macro-averaged F1 scores", Applied Intelligence 52, 2022) is the sum over the
    slice's samples of ``h**2``, where a sample of true class i predicted j has
    ``h = (2 [i == j] / D_i - F_i / D_i - F_j / D_j) / K`` (K labels present): the gradient of macro-F1 with
    respect to that sample's cell count. The work is linear in the samples, whatever the number of slices.

    Returns
    -------
    f1, se : ndarray of shape (n_rows,), float64
    n_true : ndarray of shape (n_rows,), int64
    """
    C = int(max(y.max(initial=0), pred.max(initial=0))) + 1
    f1, se = np.empty(n_rows), np.empty(n_rows)
    n_true = np.empty(n_rows, dtype=np.int64)
    step = max(1, _CHUNK // C)
    starts = np.searchsorted(row_of, np.arange(0, n_rows + step, step))
    for c0, (s0, s1) in enumerate(zip(starts[:-1], starts[1:])):
        r0 = c0 * step
        m = min(step, n_rows - r0)
        if m <= 0:
            break
        rr = row_of[s0:s1] - r0
        yy, pp = y[s0:s1], pred[s0:s1]
        iy, ip = rr * C + yy, rr * C + pp
        hit = (yy == pp).astype(np.float64)
        true_n = np.bincount(iy, minlength=m * C)
        den = (true_n + np.bincount(ip, minlength=m * C)).astype(np.float64)
        tp = np.bincount(iy, weights=hit, minlength=m * C)
        inv = np.divide(1.0, den, out=np.zeros_like(den), where=den > 0)
        f = 2 * tp * inv
        k = (den > 0).reshape(m, C).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1[r0:r0 + m] = f.reshape(m, C).sum(1) / k
            h = (2 * hit * inv[iy] - f[iy] * inv[iy] - f[ip] * inv[ip]) / k[rr]
        se[r0:r0 + m] = np.sqrt(np.bincount(rr, weights=h * h, minlength=m))
        n_true[r0:r0 + m] = (true_n > 0).reshape(m, C).sum(1)
    return f1, se, n_true


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
        Delta method within the slice (:func:`_macro_f1_by_row`), clipped to [0, 1].
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
        False below ``min_slice_size`` (the slice or the rest), or with no rest.
    significant : bool
        ``q_value < alpha`` (either direction).
    weak : bool
        Significant, and ``gap <= -min_slice_effect``: a weak slice the report lists.
    note : str
        Why a slice is not tested, or empty.
    same_as : tuple of str
        Other slices with exactly the same images, reported only here.
    explained_by : str
        For a weak intersection: its weak parent, when the intersection is not found weaker than the rest of
        that parent (one-sided Fisher's exact test, Benjamini–Hochberg over these comparisons), so it says
        nothing the parent does not; empty otherwise.
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
    explained_by: str = ""


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

    @property
    def weak(self):
        """Weak slices (q below alpha, effect at least ``min_slice_effect``), weakest first, leaving out
        intersections that a weak parent explains (see :attr:`SliceRow.explained_by`)."""
        return tuple(sorted((r for r in self.rows if r.weak and not r.explained_by),
                            key=lambda r: (r.gap, r.q_value)))

    def nested(self, name):
        """Weak intersections folded under the weak slice ``name``."""
        return tuple(r for r in self.rows if r.explained_by == name)

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


def _slice_definitions(cols, n, *, intersections):
    """Every slice (each value of each column and, optionally, each non-empty two-way intersection), with
    slices of the same images merged into the first.

    Returns
    -------
    defs : list of (columns, values, member indices in ascending order)
    keep : list of int
        Indices into ``defs`` of the slices reported.
    same_as : dict of int to list of str
        For each kept slice, the names of the slices merged into it.
    """
    keys = np.random.default_rng(0).random((2, n))  # membership fingerprints
    defs = []
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

    # members are listed in ascending order, so equal sets give bit-identical fingerprint sums; a match is
    # confirmed by comparing the members
    sizes = np.array([len(d[2]) for d in defs], dtype=np.int64)
    all_members = np.concatenate([d[2] for d in defs])
    def_of = np.repeat(np.arange(len(defs)), sizes)
    fps = np.stack([np.bincount(def_of, weights=keys[j, all_members], minlength=len(defs)) for j in (0, 1)], 1)
    first = {}
    dup_of = [None] * len(defs)
    for i in range(len(defs)):
        fp = (int(sizes[i]), float(fps[i, 0]), float(fps[i, 1]))
        j = first.get(fp)
        if j is not None and np.array_equal(defs[j][2], defs[i][2]):
            dup_of[i] = j
        else:
            first.setdefault(fp, i)
    keep = [i for i in range(len(defs)) if dup_of[i] is None]
    same_as = {i: [] for i in keep}
    for i, j in enumerate(dup_of):
        if j is not None:
            same_as[j].append(_slice_name(*defs[i][:2]))
    return defs, keep, same_as


def _fold_nested(rows, alpha):
    """Mark weak intersections that are no weaker than the rest of a weak parent (Giskard-AI/giskard-oss#1845)."""
    by_name = {}
    for i, r in enumerate(rows):
        by_name[r.name] = i
        for other in r.same_as:
            by_name.setdefault(other, i)
    child, parent = [], []
    for i, r in enumerate(rows):
        if r.weak and len(r.columns) == 2:
            for c, v in zip(r.columns, r.values):
                j = by_name.get(f"{c}={v}")
                if j is not None and rows[j].weak and rows[j].n > r.n:
                    child.append(i)
                    parent.append(j)
    if not child:
        return rows
    k1 = np.array([round(rows[i].accuracy * rows[i].n) for i in child], dtype=np.int64)
    n1 = np.array([rows[i].n for i in child], dtype=np.int64)
    kp = np.array([round(rows[j].accuracy * rows[j].n) for j in parent], dtype=np.int64)
    npar = np.array([rows[j].n for j in parent], dtype=np.int64)
    distinct, _ = benjamini_hochberg(fisher_exact_tests(k1, n1, kp - k1, npar - n1, alternative="less"), alpha=alpha)
    out = list(rows)
    for i, j, d in zip(child, parent, distinct):
        if not d and not out[i].explained_by:
            out[i] = replace(out[i], explained_by=rows[j].name)
    return tuple(out)


def metrics_by_slice(y, scores, slices, *, top_k=5, intersections=True,
                     min_slice_size=30, min_slice_effect=0.0, alpha=0.05, fdr=True, test="fisher",
                     confidence=0.95):
    """Accuracy, top-k accuracy and macro-F1 for every slice and two-way intersection, with n, intervals,
    the gap to the rest of the data and a test of it, Benjamini–Hochberg over every slice tested.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        True class indices.
    scores : ndarray of shape (n_samples, n_classes), or of shape (n_samples,)
        Class scores (logits or probabilities: both rank the classes alike), or predicted class indices (then
        no top-k).
    slices : dict of str to array-like of shape (n_samples,)
        Slicing columns: one label per image (:mod:`evallib.data.slicing` builds them).
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
    confidence : float, default 0.95
        Of every interval: Wilson for accuracy and top-k accuracy, Newcombe for the gap, the delta method
        within the slice for macro-F1 (Takahashi et al., Applied Intelligence 2022).

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
    >>> res = metrics_by_slice(y, pred, {"camera": camera})
    >>> [(r.name, r.n, r.accuracy) for r in res.rows]
    [('camera=A', 100, 1.0), ('camera=B', 100, 0.5)]
    >>> res.weakest()[0].name
    'camera=B'
    """
    from scipy.stats import norm

    y, pred, top = _check_common(y, scores, top_k)
    n = len(y)
    cols = _check_slices(slices, n)
    if test not in ("fisher", "two_proportion"):
        raise ValueError(f"test: expected 'fisher' or 'two_proportion'; got {test!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number in (0, 1); got {alpha!r}")
    if min_slice_size < 1:
        raise ValueError(f"min_slice_size: expected an int >= 1; got {min_slice_size!r}")
    correct = (pred == y)
    defs, keep, same_as = _slice_definitions(cols, n, intersections=intersections)

    total_correct = int(correct.sum())
    R = len(keep)
    ns = np.array([len(defs[i][2]) for i in keep], dtype=np.int64)
    members = np.concatenate([defs[i][2] for i in keep])
    row_of = np.repeat(np.arange(R), ns)
    ks = np.bincount(row_of, weights=correct[members], minlength=R).astype(np.int64)
    tks = np.bincount(row_of, weights=top[members], minlength=R).astype(np.int64) if top is not None else None
    f1s, f1_se, n_true = _macro_f1_by_row(row_of, y[members], pred[members], R)
    z = float(norm.ppf(0.5 + confidence / 2))  # a Wald interval on the delta-method standard error
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

    if tks is not None:
        t_lo, t_hi = wilson_interval(tks, ns, confidence=confidence)
    rows = []
    for r, i in enumerate(keep):
        columns, values, idx = defs[i]
        if tks is not None:
            top_acc, top_int = tks[r] / ns[r], _pair(t_lo[r], t_hi[r])
        else:
            top_acc, top_int = float("nan"), _NAN2
        if n_true[r] >= 2:
            f1 = float(f1s[r])
            f1_int = (max(0.0, f1 - z * float(f1_se[r])), min(1.0, f1 + z * float(f1_se[r])))
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

    rows = _fold_nested(rows, alpha)
    lo, hi = wilson_interval(total_correct, n, confidence=confidence)
    if len(np.unique(y)) >= 2:
        overall_f1 = float(_macro_f1_by_row(np.zeros(n, dtype=np.int64), y, pred, 1)[0][0])
    else:
        overall_f1 = float("nan")
    return SliceResult(rows=tuple(rows), n=n, accuracy=total_correct / n, accuracy_interval=_pair(lo, hi),
                       macro_f1=overall_f1, top_k=int(top_k) if top is not None else 0, alpha=float(alpha),
                       min_slice_size=int(min_slice_size), min_slice_effect=float(min_slice_effect),
                       confidence=float(confidence), test=test, n_tests=int(testable.sum()))


# --- two models on the same slices ------------------------------------------------------------------

def paired_difference_interval(both, only_a, only_b, neither, *, confidence=0.95):
    """Interval for the difference of two paired proportions (accuracy of model a minus model b).

    Newcombe's method 10 for paired data (Statistics in Medicine 1998, 17:2635): the two Wilson intervals
    combined with the correlation of the pairs.

    Parameters
    ----------
    both, only_a, only_b, neither : int or array-like of int
        Samples both models get right, only a, only b, neither.

    Returns
    -------
    lo, hi : ndarray of float64 (0-d for scalar input)
    """
    a, b, c, d = (np.asarray(v, dtype=np.float64) for v in (both, only_a, only_b, neither))
    n = a + b + c + d
    l1, u1 = wilson_interval(a + b, n, confidence=confidence)
    l2, u2 = wilson_interval(a + c, n, confidence=confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = (a + b) / n, (a + c) / n
        den = np.sqrt((a + b) * (c + d) * (a + c) * (b + d))
        num = a * d - b * c
        num = np.where(num > 0, np.maximum(num - n / 2, 0), num)  # Newcombe's continuity-corrected phi
        phi = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        delta = np.sqrt(np.maximum((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0))
        eps = np.sqrt(np.maximum((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0))
    return p1 - p2 - delta, p1 - p2 + eps


def mcnemar_tests(only_a, only_b):
    """McNemar's exact test, vectorised: two-sided binomial p of ``min(only_a, only_b)`` among the discordant
    pairs at 1/2 (1 where there is no discordant pair), as :func:`evallib.metrics.bootstrap.mcnemar`."""
    from .bootstrap import mcnemar_p

    return mcnemar_p(only_a, only_b)


@dataclass(frozen=True)
class SliceComparisonRow:
    """Two models on one slice of the same images.

    Attributes
    ----------
    name : str
    columns, values : tuple of str
    n : int
    accuracy_a, accuracy_b : float
    interval_a, interval_b : (float, float)
        Wilson intervals.
    difference : float
        ``accuracy_a - accuracy_b``.
    difference_interval : (float, float)
        Newcombe's interval for paired proportions.
    only_a_correct, only_b_correct : int
        The discordant images McNemar's test uses.
    p_value, q_value : float
        McNemar's exact test and its Benjamini–Hochberg adjusted value over the slices tested; NaN below
        ``min_slice_size``.
    significant : bool
    same_as : tuple of str
    note : str
    """

    name: str
    columns: tuple
    values: tuple
    n: int
    accuracy_a: float
    interval_a: tuple
    accuracy_b: float
    interval_b: tuple
    difference: float
    difference_interval: tuple
    only_a_correct: int
    only_b_correct: int
    p_value: float
    q_value: float
    significant: bool
    same_as: tuple = ()
    note: str = ""


@dataclass(frozen=True)
class SliceComparison:
    """Two models compared slice by slice on the same images.

    Attributes
    ----------
    rows : tuple of SliceComparisonRow
        The whole data set first (``name == "all"``), then the slices.
    names : (str, str)
        The two models.
    alpha : float
    min_slice_size : int
    n_tests : int
    """

    rows: tuple
    names: tuple
    alpha: float
    min_slice_size: int
    n_tests: int

    def row(self, name):
        """The row named ``name`` (or listed in a row's ``same_as``)."""
        for r in self.rows:
            if r.name == name or name in r.same_as:
                return r
        raise KeyError(f"name: no slice {name!r}")


def compare_by_slice(y, scores_a, scores_b, slices, *, names=("a", "b"), intersections=False, min_slice_size=30,
                     alpha=0.05, confidence=0.95):
    """Accuracy of two models on each slice of the same images, with McNemar's test per slice and
    Benjamini–Hochberg over the slices (and the whole set) tested.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    scores_a, scores_b : ndarray of shape (n_samples, n_classes), or of shape (n_samples,)
        Class scores or predicted class indices of each model.
    slices : dict of str to array-like of shape (n_samples,)
    names : (str, str), default ("a", "b")
    intersections : bool, default False
    min_slice_size : int, default 30
    alpha : float, default 0.05
    confidence : float, default 0.95

    Returns
    -------
    SliceComparison
    """
    y, pred_a, _ = _check_common(y, scores_a, 0)
    y_b, pred_b, _ = _check_common(y, scores_b, 0)
    n = len(y)
    cols = _check_slices(slices, n)
    ca, cb = pred_a == y, pred_b == y
    defs, keep, same_as = _slice_definitions(cols, n, intersections=intersections)
    groups = [((), (), np.arange(n), ())] + [(*defs[i], tuple(same_as[i])) for i in keep]
    counts = np.array([[int((ca[idx] & cb[idx]).sum()), int((ca[idx] & ~cb[idx]).sum()),
                        int((~ca[idx] & cb[idx]).sum()), int((~ca[idx] & ~cb[idx]).sum())]
                       for _, _, idx, _ in groups], dtype=np.int64)
    both, oa, ob, neither = counts.T
    ns = counts.sum(1)
    tested = ns >= min_slice_size
    p = np.where(tested, mcnemar_tests(oa, ob), np.nan)
    reject, q = benjamini_hochberg(p, alpha=alpha)
    la, ha = wilson_interval(both + oa, ns, confidence=confidence)
    lb, hb = wilson_interval(both + ob, ns, confidence=confidence)
    ld, hd = paired_difference_interval(both, oa, ob, neither, confidence=confidence)
    rows = []
    for r, (columns, values, _idx, same) in enumerate(groups):
        rows.append(SliceComparisonRow(
            name=_slice_name(columns, values) or "all", columns=tuple(columns), values=tuple(values), n=int(ns[r]),
            accuracy_a=float((both[r] + oa[r]) / ns[r]), interval_a=_pair(la[r], ha[r]),
            accuracy_b=float((both[r] + ob[r]) / ns[r]), interval_b=_pair(lb[r], hb[r]),
            difference=float((oa[r] - ob[r]) / ns[r]), difference_interval=_pair(ld[r], hd[r]),
            only_a_correct=int(oa[r]), only_b_correct=int(ob[r]), p_value=float(p[r]), q_value=float(q[r]),
            significant=bool(reject[r]), same_as=same,
            note="" if tested[r] else f"n={ns[r]} is below min_slice_size={min_slice_size}: shown, not tested"))
    return SliceComparison(rows=tuple(rows), names=tuple(str(v) for v in names), alpha=float(alpha),
                           min_slice_size=int(min_slice_size), n_tests=int(tested.sum()))


@dataclass(frozen=True, eq=False)
class ModelsBySlice:
    """Several models on each slice of the same images: accuracy with its interval per slice and model, and
    each model against a reference model by McNemar's test per slice, Benjamini–Hochberg over every
    (slice, model) test.

    Attributes
    ----------
    models : tuple of str
        The reference first, then the others in the order given.
    reference : str
    slices : tuple of str
        ``"all"`` first, then the slices (:func:`compare_by_slice`'s order).
    n : ndarray of shape (n_slices,), int64
    accuracy, accuracy_low, accuracy_high : ndarray of shape (n_slices, n_models)
        Accuracy and its Wilson interval.
    difference, difference_low, difference_high : ndarray of shape (n_slices, n_models)
        Accuracy of the model minus the reference's on the slice's images, with Newcombe's paired interval;
        NaN in the reference's column.
    p_value, q_value : ndarray of shape (n_slices, n_models)
        McNemar's exact test against the reference and its Benjamini–Hochberg adjusted value over every test;
        NaN for the reference and below ``min_slice_size``.
    significant : ndarray of bool, shape (n_slices, n_models)
    alpha : float
    min_slice_size, n_tests : int
    """

    models: tuple
    reference: str
    slices: tuple
    n: np.ndarray
    accuracy: np.ndarray
    accuracy_low: np.ndarray
    accuracy_high: np.ndarray
    difference: np.ndarray
    difference_low: np.ndarray
    difference_high: np.ndarray
    p_value: np.ndarray
    q_value: np.ndarray
    significant: np.ndarray
    alpha: float
    min_slice_size: int
    n_tests: int


def models_by_slice(y, scores, slices, *, reference=None, intersections=False, min_slice_size=30, alpha=0.05,
                    confidence=0.95):
    """Each model's accuracy on each slice of the same images, and where a model differs from the reference.

    Every other model is compared with the reference on each slice by McNemar's exact test on the images
    only one of the two gets right (McNemar, Psychometrika 1947; :func:`compare_by_slice`), and
    Benjamini–Hochberg (JRSS B 1995) runs once over all those tests, so that more slices or more models do not
    bring more false findings.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        True class indices, the same images for every model.
    scores : dict of str to ndarray of shape (n_samples, n_classes) or (n_samples,)
        Each model's class scores (or predicted classes), rows in the order of ``y``.
    slices : dict of str to array-like of shape (n_samples,)
    reference : str, optional
        The model the others are compared with. Default: the most accurate over all images.
    intersections : bool, default False
    min_slice_size : int, default 30
    alpha : float, default 0.05
    confidence : float, default 0.95

    Returns
    -------
    ModelsBySlice
    """
    if not hasattr(scores, "items") or len(scores) < 2:
        raise ValueError(f"scores: expected a mapping of at least two model names to their scores; got "
                         f"{len(scores) if hasattr(scores, '__len__') else type(scores).__name__}")
    y = np.asarray(y)
    names = [str(k) for k in scores]
    preds = {str(k): _check_common(y, v, 0)[1] for k, v in scores.items()}
    if reference is None:
        reference = max(names, key=lambda k: (float(np.mean(preds[k] == y)), -names.index(k)))
    if str(reference) not in preds:
        raise ValueError(f"reference: expected one of {', '.join(names)}; got {reference!r}")
    reference = str(reference)
    models = [reference] + [k for k in names if k != reference]
    comps = [compare_by_slice(y, preds[m], preds[reference], slices, names=(m, reference),
                              intersections=intersections, min_slice_size=min_slice_size, alpha=alpha,
                              confidence=confidence) for m in models[1:]]
    first = comps[0].rows
    S, M = len(first), len(models)
    acc, lo, hi = (np.full((S, M), np.nan) for _ in range(3))
    diff, dlo, dhi, p = (np.full((S, M), np.nan) for _ in range(4))
    for r, row in enumerate(first):
        acc[r, 0], (lo[r, 0], hi[r, 0]) = row.accuracy_b, row.interval_b
    for m, c in enumerate(comps, 1):
        for r, row in enumerate(c.rows):
            acc[r, m], (lo[r, m], hi[r, m]) = row.accuracy_a, row.interval_a
            diff[r, m], (dlo[r, m], dhi[r, m]) = row.difference, row.difference_interval
            p[r, m] = row.p_value
    reject, q = benjamini_hochberg(p.ravel(), alpha=alpha)
    q = np.where(np.isfinite(p.ravel()), q, np.nan).reshape(S, M)
    return ModelsBySlice(models=tuple(models), reference=reference, slices=tuple(r.name for r in first),
                         n=np.array([r.n for r in first], dtype=np.int64), accuracy=acc, accuracy_low=lo,
                         accuracy_high=hi, difference=diff, difference_low=dlo, difference_high=dhi, p_value=p,
                         q_value=q, significant=reject.reshape(S, M), alpha=float(alpha),
                         min_slice_size=int(min_slice_size), n_tests=int(np.isfinite(p).sum()))


# --- weak slices without metadata: found on one half, confirmed on the other -------------------------

@dataclass(frozen=True)
class DiscoveredSlice:
    """A candidate weak slice: how it looked where it was found and what the held-out half says.

    Attributes
    ----------
    name : str
        ``"cluster 3"`` or a metadata slice name such as ``"blur=< 41.2"``.
    source : {"embeddings", "slices"}
    discovery_n : int
    discovery_accuracy, discovery_rest_accuracy, discovery_p : float
        On the discovery half (one-sided Fisher p, used only to choose candidates).
    holdout_n : int
        Held-out images in the slice.
    holdout_accuracy : float
    holdout_interval : (float, float)
        Wilson interval of the held-out accuracy.
    holdout_rest_accuracy : float
    holdout_gap : float
        ``holdout_accuracy - holdout_rest_accuracy``.
    holdout_gap_interval : (float, float)
        Newcombe's interval.
    holdout_p, holdout_q : float
        One-sided Fisher's exact test (slice less accurate than the rest) on the held-out half, and its
        Benjamini–Hochberg adjusted value over the candidates.
    confirmed : bool
        ``holdout_q < alpha`` and ``holdout_gap <= -min_slice_effect``.
    """

    name: str
    source: str
    discovery_n: int
    discovery_accuracy: float
    discovery_rest_accuracy: float
    discovery_p: float
    holdout_n: int
    holdout_accuracy: float
    holdout_interval: tuple
    holdout_rest_accuracy: float
    holdout_gap: float
    holdout_gap_interval: tuple
    holdout_p: float
    holdout_q: float
    confirmed: bool


@dataclass(frozen=True, eq=False)
class WeakSliceDiscovery:
    """Candidates chosen on the discovery half and their test on the held-out half.

    Attributes
    ----------
    candidates : tuple of DiscoveredSlice
        In the order they were chosen (weakest on the discovery half first).
    holdout : ndarray of bool, shape (n_samples,)
        Which images were held out (the rest found the candidates).
    clusters : ndarray of int, shape (n_samples,) or None
        Each image's cluster (nearest centroid in embedding space), when embeddings were given.
    n_clusters : int
    alpha, min_slice_size, min_slice_effect : float
    seed : int
    """

    candidates: tuple
    holdout: np.ndarray
    clusters: np.ndarray | None
    n_clusters: int
    alpha: float
    min_slice_size: int
    min_slice_effect: float
    seed: int

    @property
    def confirmed(self):
        """Candidates confirmed on the held-out half, weakest (held-out gap) first."""
        return tuple(sorted((c for c in self.candidates if c.confirmed), key=lambda c: c.holdout_gap))


def _clusters(embeddings, correct, fit_mask, *, n_clusters, error_weight, seed):
    """Error-aware k-means in the spirit of Domino: fit on the discovery half with the error as one more
    coordinate, then give every image the nearest centroid in embedding space alone (so held-out images are
    assigned without looking at their errors). The centroids are fitted on at most ``_MAX_FIT`` discovery
    images drawn at random; every image is then assigned."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    e = np.asarray(embeddings, dtype=np.float64)
    fit = np.flatnonzero(fit_mask)
    if len(fit) > _MAX_FIT:
        fit = np.sort(np.random.default_rng(seed).choice(fit, _MAX_FIT, replace=False))
    mu, sd = e[fit].mean(axis=0), e[fit].std(axis=0)
    z = (e - mu) / np.where(sd > 0, sd, 1.0)
    scale = error_weight * np.sqrt(z.shape[1])
    feats = np.c_[z[fit], scale * (~correct[fit]).astype(np.float64)]
    with threadpool_limits(limits=1):  # at <= _MAX_FIT points one thread is fast, and threads contend on a busy machine
        km = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit(feats)
    centres = km.cluster_centers_[:, :-1]
    d = (z * z).sum(1)[:, None] - 2 * z @ centres.T + (centres * centres).sum(1)[None, :]
    return d.argmin(axis=1)


def discover_weak_slices(y, scores, *, embeddings=None, slices=None, n_clusters=None,
                         error_weight=1.0, holdout_fraction=0.5, candidate_p=0.05, max_candidates=10,
                         min_slice_size=20, min_slice_effect=0.0, alpha=0.05, seed=0, confidence=0.95):
    """Find weak slices without metadata on one part of the images and confirm them on the rest.

    A slice that looks coherent is not thereby real: people read found slices wrongly (Johnson et al.,
    HCOMP 2023) and discovery methods recover only part of planted slices (Eyuboglu et al., "Domino", ICLR
    2022). So the images are split at random; candidates are chosen on the discovery part only, then each is
    tested on the held-out part, where nothing was chosen, with Benjamini–Hochberg over the candidates.

    Candidates come from either or both of:

    - ``embeddings``: error-aware k-means on the discovery part (the error is one more coordinate, weighted
      by ``error_weight``; fitted on at most 10,000 of its images); every image then belongs to the nearest
      centroid in embedding space alone;
    - ``slices``: every value and two-way intersection of the given columns (metadata, binned image
      properties), a level-2 search like SliceLine's (Sagadeeva and Boehm, SIGMOD 2021).

    On the discovery part a candidate must hold ``min_slice_size`` images and be less accurate than the rest
    with one-sided Fisher p below ``candidate_p``; an intersection of two column values is left out when one
    of its two slices is a candidate and the intersection is not less accurate than the rest of that slice
    (one-sided Fisher p not below ``candidate_p``), so one weak slice does not fill the list with its
    intersections; the ``max_candidates`` least accurate are kept.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    scores : ndarray of shape (n_samples, n_classes), or of shape (n_samples,)
        Class scores, or predicted class indices.
    embeddings : ndarray of shape (n_samples, n_features), optional
    slices : dict of str to array-like of shape (n_samples,), optional
    n_clusters : int, optional
        Default: discovery images / (3 * min_slice_size), between 2 and 30 (clusters of about three times
        the smallest slice worth reporting).
    error_weight : float, default 1.0
        0 clusters embeddings alone.
    holdout_fraction : float, default 0.5
    candidate_p : float, default 0.05
    max_candidates : int, default 10
    min_slice_size : int, default 20
        On each half.
    min_slice_effect : float, default 0.0
    alpha : float, default 0.05
        False discovery rate over the candidates, on the held-out part.
    seed : int, default 0
        The split and the clustering.
    confidence : float, default 0.95

    Returns
    -------
    WeakSliceDiscovery
    """
    y, pred, _ = _check_common(y, scores, 0)
    n = len(y)
    if embeddings is None and slices is None:
        raise ValueError("embeddings, slices: expected at least one source of candidate slices; got neither")
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction: expected a number in (0, 1); got {holdout_fraction!r}")
    correct = pred == y
    rng = np.random.default_rng(seed)
    holdout = np.zeros(n, dtype=bool)
    holdout[rng.permutation(n)[: int(round(n * holdout_fraction))]] = True
    disc = ~holdout

    # every candidate is one value of a labelling of the images: a clustering, a column or the cross of two
    labellings = []  # (labels of shape (n,), number of values)
    members = []  # (name, source, labelling, value)
    parents = {}  # index of a two-way intersection in members: indices of its two one-column slices
    clusters, k_used = None, 0
    if embeddings is not None:
        e = np.asarray(embeddings)
        if e.ndim != 2 or len(e) != n:
            raise EvallibError(f"embeddings: expected shape ({n}, n_features); got {e.shape}")
        k_used = int(n_clusters) if n_clusters is not None else int(np.clip(disc.sum() // (3 * min_slice_size), 2, 30))
        if not 2 <= k_used <= disc.sum():
            raise ValueError(f"n_clusters: expected between 2 and the {int(disc.sum())} discovery images; got {k_used}")
        clusters = _clusters(e, correct, disc, n_clusters=k_used, error_weight=error_weight, seed=seed)
        labellings.append((clusters, k_used))
        members += [(f"cluster {k}", "embeddings", 0, k) for k in range(k_used)]
    if slices is not None:
        cols = _check_slices(slices, n)
        first = {}
        for c, (values, codes) in cols.items():
            first[c] = len(members)
            labellings.append((codes, len(values)))
            members += [(f"{c}={v}", "slices", len(labellings) - 1, i) for i, v in enumerate(values)]
        for a, b in itertools.combinations(list(cols), 2):
            (va, ca), (vb, cb) = cols[a], cols[b]
            cross = ca * len(vb) + cb
            labellings.append((cross, len(va) * len(vb)))
            for u in np.unique(cross):
                i, j = divmod(int(u), len(vb))
                parents[len(members)] = (first[a] + i, first[b] + j)
                members.append((f"{a}={va[i]} & {b}={vb[j]}", "slices", len(labellings) - 1, int(u)))

    starts = np.cumsum([0] + [m for _, m in labellings])
    flat = np.array([starts[w] + v for _, _, w, v in members], dtype=np.int64)

    def stats(part):
        """``(n_members, 4)``: correct and images in each candidate and in the rest, within ``part``."""
        n_in = np.concatenate([np.bincount(lab[part], minlength=m) for lab, m in labellings])[flat]
        k_in = np.concatenate([np.bincount(lab[part & correct], minlength=m) for lab, m in labellings])[flat]
        k_all, n_all = int((part & correct).sum()), int(part.sum())
        return np.stack([k_in, n_in, k_all - k_in, n_all - n_in], axis=1).astype(np.int64)

    found = stats(disc)
    k1, n1, k2, n2 = found.T
    with np.errstate(invalid="ignore", divide="ignore"):
        eligible = (n1 >= min_slice_size) & (n2 >= min_slice_size) & (k1 / n1 < k2 / n2 - min_slice_effect)
    p_disc = np.full(len(members), np.nan)
    if eligible.any():
        p_disc[eligible] = fisher_exact_tests(k1[eligible], n1[eligible], k2[eligible], n2[eligible],
                                              alternative="less")
    candidate = eligible & (p_disc < candidate_p)
    # an intersection of a candidate slice that is not found weaker than the rest of that slice says
    # nothing the slice does not (Giskard-AI/giskard-oss#1845): it is not a candidate of its own
    nested = [(i, j) for i, pair in parents.items() if candidate[i] for j in pair if candidate[j]]
    if nested:
        ci, pj = np.array(nested).T
        p_nest = fisher_exact_tests(k1[ci], n1[ci], k1[pj] - k1[ci], n1[pj] - n1[ci], alternative="less")
        candidate[ci[~(p_nest < candidate_p)]] = False
    chosen = [(k1[i] / n1[i], p_disc[i], i, *members[i][:2], tuple(int(v) for v in found[i]))
              for i in np.nonzero(candidate)[0]]
    chosen.sort(key=lambda t: (t[0], t[1]))
    chosen = chosen[:max_candidates]

    held = [tuple(int(v) for v in h) for h in stats(holdout)[[t[2] for t in chosen]]] if chosen else []
    ok = np.array([n1 >= min_slice_size and n2 >= min_slice_size for _, n1, _, n2 in held], dtype=bool)
    p_hold = np.array([_fisher(*h, "less") if good else np.nan for h, good in zip(held, ok)], dtype=np.float64)
    reject, q = benjamini_hochberg(p_hold, alpha=alpha) if len(p_hold) else (np.zeros(0, bool), np.zeros(0))
    out = []
    for t, (k1, n1, k2, n2), pv, qv, rj in zip(chosen, held, p_hold, q, reject):
        acc_d, p_d, _, name, source, (dk1, dn1, dk2, dn2) = t
        with np.errstate(invalid="ignore", divide="ignore"):
            a1, a2 = k1 / n1 if n1 else np.nan, k2 / n2 if n2 else np.nan
        lo, hi = wilson_interval(k1, n1, confidence=confidence)
        glo, ghi = newcombe_interval(k1, n1, k2, n2, confidence=confidence)
        out.append(DiscoveredSlice(
            name=name, source=source, discovery_n=dn1, discovery_accuracy=float(acc_d),
            discovery_rest_accuracy=dk2 / dn2, discovery_p=float(p_d), holdout_n=n1, holdout_accuracy=float(a1),
            holdout_interval=_pair(lo, hi), holdout_rest_accuracy=float(a2), holdout_gap=float(a1 - a2),
            holdout_gap_interval=_pair(glo, ghi), holdout_p=float(pv), holdout_q=float(qv),
            confirmed=bool(rj) and float(a1 - a2) <= -min_slice_effect))
    return WeakSliceDiscovery(candidates=tuple(out), holdout=holdout, clusters=clusters, n_clusters=k_used,
                              alpha=float(alpha), min_slice_size=int(min_slice_size),
                              min_slice_effect=float(min_slice_effect), seed=int(seed))


# --- verification error rates by group ---------------------------------------------------------------

@dataclass(frozen=True)
class GroupVerificationRow:
    """Error rates of one group at the global threshold (and at its own).

    Attributes
    ----------
    group : str
    n_genuine : int
        Genuine pairs with both sides in the group.
    n_impostor : int
        Impostor pairs with both sides in the group (same-group impostors, the hard ones).
    fnmr, fnmr_interval : float, (float, float)
        False non-match rate of the genuine pairs at the global threshold.
    tar : float
        ``1 - fnmr``.
    tar_interval : (float, float)
    fmr, fmr_interval : float, (float, float)
        False match rate of the same-group impostor pairs at the global threshold.
    own_threshold : float
        Threshold at which the group's own impostors match at rate ``far``; NaN when the group has fewer than
        ``1 / far`` impostor pairs.
    tar_at_own_far : float
        TAR at ``own_threshold`` (TAR@FAR within the group's own impostors).
    tar_at_own_far_interval : (float, float)
        Percentile bootstrap (identities, or pairs without identities) with the threshold found again in
        every resample.
    note : str
    """

    group: str
    n_genuine: int
    n_impostor: int
    fnmr: float
    fnmr_interval: tuple
    tar: float
    tar_interval: tuple
    fmr: float
    fmr_interval: tuple
    own_threshold: float
    tar_at_own_far: float
    tar_at_own_far_interval: tuple = _NAN2
    note: str = ""


@dataclass(frozen=True, eq=False)
class GroupVerificationResult:
    """Per-group verification error rates at one global threshold, as NISTIR 8280 reports them.

    Attributes
    ----------
    rows : tuple of GroupVerificationRow
    threshold : float
        Pairs with ``score >= threshold`` are matches.
    far : float
        The false match rate the global threshold was set at over all impostor pairs (NaN when given).
    groups : tuple of str
        Order of ``between_fmr``'s rows and columns.
    between_fmr : ndarray of shape (n_groups, n_groups)
        False match rate of impostor pairs with one side in each group (symmetric; the diagonal is each
        group's own ``fmr``); NaN where no pair.
    between_n : ndarray of shape (n_groups, n_groups), int64
        Impostor pairs behind each entry.
    fmr_ratio : float
        Highest over lowest same-group FMR (inf when the lowest is 0 and the highest is not).
    n_mixed_genuine : int
        Genuine pairs whose two sides carry different group labels (counted in no row).
    method : str
        How the intervals were made.
    """

    rows: tuple
    threshold: float
    far: float
    groups: tuple
    between_fmr: np.ndarray
    between_n: np.ndarray
    fmr_ratio: float
    n_mixed_genuine: int
    method: str


def _threshold_at_far(impostor_scores, far):
    """Smallest threshold with ``mean(impostor >= t) <= far`` (ties kept below it)."""
    s = np.sort(np.asarray(impostor_scores, dtype=np.float64))[::-1]
    k = int(np.floor(far * len(s) + 1e-9))
    if k >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[k], np.inf))


def _check_group_pairs(scores, same, group_a, group_b, ids_a, ids_b):
    """Checked pair scores, genuine flags, the sorted group names, each side's group index and, with
    identities, ``(xa, xb, group_of)`` for the identity bootstrap (each side's identity index and each
    identity's group)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or len(s) == 0:
        raise EvallibError(f"scores: expected a non-empty 1-d array of pair scores; got shape {s.shape}")
    if not np.isfinite(s).all():
        raise EvallibError("scores: expected finite values; got NaN or infinite")
    n = len(s)
    same = np.asarray(same)
    if same.shape != (n,) or (same.dtype != bool and not np.isin(np.unique(same), [0, 1]).all()):
        raise EvallibError(f"same: expected {n} booleans, one per pair; got shape {same.shape}, dtype {same.dtype}")
    same = same.astype(bool)
    ga, gb = (np.asarray(g, dtype=object).astype(str) for g in (group_a, group_b))
    for name, g in (("group_a", ga), ("group_b", gb)):
        if g.shape != (n,):
            raise EvallibError(f"{name}: expected {n} group labels, one per pair; got shape {g.shape}")
    groups, codes = np.unique(np.r_[ga, gb], return_inverse=True)
    ia, ib = codes[:n], codes[n:]
    boot = None
    if ids_a is not None or ids_b is not None:
        if ids_a is None or ids_b is None:
            raise ValueError("ids_a, ids_b: give both or neither")
        id_a, id_b = (np.asarray(v, dtype=object).astype(str) for v in (ids_a, ids_b))
        if id_a.shape != (n,) or id_b.shape != (n,):
            raise EvallibError(f"ids_a, ids_b: expected {n} identities each; got {id_a.shape} and {id_b.shape}")
        uniq, inv = np.unique(np.r_[id_a, id_b], return_inverse=True)
        xa, xb = inv[:n], inv[n:]
        pairs = np.unique(np.stack([np.r_[xa, xb], np.r_[ia, ib]]), axis=1)
        clash = np.nonzero(np.bincount(pairs[0], minlength=len(uniq)) > 1)[0]
        if len(clash):
            bad = ", ".join(repr(str(v)) for v in uniq[clash[:5]])
            raise EvallibError(f"ids_a, ids_b: identities {bad} carry more than one group label; "
                               f"an identity belongs to one group")
        group_of = np.full(len(uniq), -1)
        group_of[pairs[0]] = pairs[1]
        boot = (xa, xb, group_of)
    return s, same, tuple(str(g) for g in groups), ia, ib, boot


def verification_by_group(scores, same, group_a, group_b, *, threshold=None, far=1e-3, ids_a=None, ids_b=None,
                          n_boot=1000, seed=0, confidence=0.95):
    """Per-group FNMR and FMR at one global threshold, within and between groups, with intervals.

    NIST's demographic study of face recognition (Grother, Ngan and Hanaoka, NISTIR 8280, 2019) reports, at
    one threshold set for all, the false non-match rate of each group's genuine pairs and the false match
    rate of impostor pairs within each group and between groups; false match rates differed 10 to 100
    times between groups.

    Parameters
    ----------
    scores : ndarray of shape (n_pairs,)
        Similarity of each pair (higher is more alike).
    same : ndarray of bool, shape (n_pairs,)
        True for genuine pairs (same identity).
    group_a, group_b : array-like of shape (n_pairs,)
        Group label of each side.
    threshold : float, optional
        ``score >= threshold`` is a match. Default: the threshold at which all impostor pairs match at rate
        ``far``.
    far : float, default 1e-3
        Target false match rate, for the global threshold (when not given) and each group's own threshold.
    ids_a, ids_b : array-like of shape (n_pairs,), optional
        Identity of each side. With them, intervals come from a bootstrap over identities drawn within each
        group (a genuine pair weighs the times its identity is drawn, an impostor pair the product); without
        them, Wilson intervals treat pairs as independent, which understates the width when identities
        appear in many pairs.
    n_boot : int, default 1000
    seed : int, default 0
    confidence : float, default 0.95

    Returns
    -------
    GroupVerificationResult
    """
    s, same, groups, ia, ib, boot = _check_group_pairs(scores, same, group_a, group_b, ids_a, ids_b)
    if not 0 < far < 1:
        raise ValueError(f"far: expected a number in (0, 1); got {far!r}")
    imp = ~same
    if threshold is None:
        if not imp.any():
            raise EvallibError("same: no impostor pairs, so no threshold can be set at a false match rate; "
                               "pass threshold")
        thr, far_used = _threshold_at_far(s[imp], far), float(far)
    else:
        thr, far_used = float(threshold), float("nan")
    match = s >= thr
    lo_g, hi_g = np.minimum(ia, ib), np.maximum(ia, ib)
    G = len(groups)
    cell = lo_g * G + hi_g
    between_n = np.bincount(cell[imp], minlength=G * G).reshape(G, G)
    between_k = np.bincount(cell[imp & match], minlength=G * G).reshape(G, G)
    between_n = np.triu(between_n) + np.triu(between_n, 1).T
    between_k = np.triu(between_k) + np.triu(between_k, 1).T
    with np.errstate(invalid="ignore", divide="ignore"):
        between_fmr = np.where(between_n > 0, between_k / np.maximum(between_n, 1), np.nan)
    within = ia == ib

    rng = np.random.default_rng(seed)
    rows = []
    for g in range(G):
        gen_idx = np.nonzero(same & within & (ia == g))[0]
        imp_idx = np.nonzero(imp & within & (ia == g))[0]
        ng, ni = len(gen_idx), len(imp_idx)
        k_fn, k_fm = int((~match[gen_idx]).sum()), int(match[imp_idx].sum())
        fnmr = k_fn / ng if ng else float("nan")
        fmr = k_fm / ni if ni else float("nan")
        notes = []
        if ni and far * ni >= 1:
            own = _threshold_at_far(s[imp_idx], far)
            tar_own = float(np.mean(s[gen_idx] >= own)) if ng else float("nan")
        else:
            own, tar_own = float("nan"), float("nan")
            notes.append(f"{ni} same-group impostor pairs: too few for a threshold at FAR {far:g}")
        if not ng:
            notes.append("no genuine pairs")
        reps = (_group_replicates(s, match, gen_idx, imp_idx, far=far, n_boot=n_boot, rng=rng,
                                  ids=None if boot is None else (*boot, g))
                if n_boot > 0 and ng and ni else None)
        if boot is not None and reps is not None:
            fn_int = _percentile_interval(reps["fnmr"], confidence)
            fm_int = _percentile_interval(reps["fmr"], confidence)
        else:
            fn_int = _pair(*wilson_interval(k_fn, ng, confidence=confidence))
            fm_int = _pair(*wilson_interval(k_fm, ni, confidence=confidence))
        own_int = (_percentile_interval(reps["tar_own"], confidence)
                   if reps is not None and np.isfinite(own) else _NAN2)
        rows.append(GroupVerificationRow(
            group=groups[g], n_genuine=ng, n_impostor=ni, fnmr=fnmr, fnmr_interval=fn_int, tar=1 - fnmr,
            tar_interval=(1 - fn_int[1], 1 - fn_int[0]), fmr=fmr, fmr_interval=fm_int, own_threshold=own,
            tar_at_own_far=tar_own, tar_at_own_far_interval=own_int, note="; ".join(notes)))
    fmrs = np.array([r.fmr for r in rows])
    fmrs = fmrs[np.isfinite(fmrs)]
    if len(fmrs) < 2 or fmrs.max() == 0:
        ratio = float("nan")
    else:
        ratio = float("inf") if fmrs.min() == 0 else float(fmrs.max() / fmrs.min())
    if boot is not None and n_boot > 0:
        method = f"percentile bootstrap over identities drawn within each group ({n_boot} resamples)"
    else:
        method = ("Wilson intervals over pairs for FNMR and FMR (pairs treated as independent; give ids_a, ids_b "
                  "for an identity bootstrap)")
        if n_boot > 0:
            method += f"; TAR at each group's own FAR: percentile bootstrap over pairs ({n_boot} resamples)"
    return GroupVerificationResult(
        rows=tuple(rows), threshold=thr, far=far_used, groups=groups, between_fmr=between_fmr,
        between_n=between_n.astype(np.int64), fmr_ratio=ratio,
        n_mixed_genuine=int((same & ~within).sum()), method=method)


def _group_replicates(s, match, gen_idx, imp_idx, *, far, n_boot, rng, ids=None, weights=None):
    """Bootstrap replicates of one group's FNMR, FMR and TAR at its own FAR threshold.

    With ``ids = (xa, xb, group_of, g)`` the group's identities are drawn with replacement (a genuine pair
    weighs the draws of its identity, an impostor pair the product of its two); otherwise the group's
    genuine pairs and impostor pairs are each drawn with replacement. The own threshold is found again in
    every resample (the weighted ``(k+1)``-th highest impostor score, ``k = floor(far * impostor weight)``).
    ``weights = (genuine, impostor)``, arrays of shape ``(n_boot, n_pairs)``, are resamples given instead of
    drawn (to check the rates against a count on the pairs each resample repeats).
    """
    from .bootstrap import _weights

    gen_s, imp_s = s[gen_idx], s[imp_idx]
    miss, hit = ~match[gen_idx], match[imp_idx]
    imp_order = np.argsort(-imp_s, kind="mergesort")
    imp_sorted = imp_s[imp_order]
    gen_order = np.argsort(gen_s, kind="mergesort")
    gen_sorted = gen_s[gen_order]
    if ids is not None:
        xa, xb, group_of, g = ids
        members = np.nonzero(group_of == g)[0]
        slot = np.full(len(group_of), -1)
        slot[members] = np.arange(len(members))
        ga_, ia_, ib_ = slot[xa[gen_idx]], slot[xa[imp_idx]], slot[xb[imp_idx]]
    out = {"fnmr": [], "fmr": [], "tar_own": []}
    step = max(1, _CHUNK // (len(gen_idx) + len(imp_idx)))
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        if weights is not None:
            wg, wi = (np.asarray(w[start:start + b], dtype=np.float64) for w in weights)
        elif ids is None:
            wg = _weights(rng, len(gen_idx), b).astype(np.float64)
            wi = _weights(rng, len(imp_idx), b).astype(np.float64)
        else:
            m = _weights(rng, len(members), b).astype(np.float64)
            wg, wi = m[:, ga_], m[:, ia_] * m[:, ib_]
        tg, ti = wg.sum(1), wi.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["fnmr"].append((wg * miss).sum(1) / tg)
            out["fmr"].append((wi * hit).sum(1) / ti)
            cum = np.cumsum(wi[:, imp_order], axis=1)
            first = np.argmax(cum > far * ti[:, None], axis=1)
            thr = np.nextafter(imp_sorted[first], np.inf)
            above = np.cumsum(wg[:, gen_order][:, ::-1], axis=1)[:, ::-1]  # genuine weight at index >= j
            pos = np.searchsorted(gen_sorted, thr, side="left")
            tar = np.where(pos < len(gen_sorted), above[np.arange(b), np.minimum(pos, len(gen_sorted) - 1)], 0.0) / tg
            out["tar_own"].append(np.where((ti > 0) & (far * ti >= 1), tar, np.nan))
    return {k: np.concatenate(v) for k, v in out.items()}


# --- per-group DET curves and one threshold per group -------------------------------------------------

@dataclass(frozen=True, eq=False)
class GroupDetCurves:
    """DET curves of each group within its own pairs (genuine pairs of the group against its same-group
    impostors), for one plot.

    Attributes
    ----------
    groups : tuple of str
    fmr, fnmr, thresholds : tuple of ndarray, one per group
        The curve's points in descending threshold order: false match rate of the group's impostor pairs and
        false non-match rate of its genuine pairs at ``score >= threshold``; thinned to the points worth
        drawing. Empty where the group has no genuine or no impostor pair.
    n_genuine, n_impostor : tuple of int
    """

    groups: tuple
    fmr: tuple
    fnmr: tuple
    thresholds: tuple
    n_genuine: tuple
    n_impostor: tuple


def group_det_curves(scores, same, group_a, group_b, *, resolution=2000):
    """Per-group DET curves: each group's false non-match rate against its false match rate, within its own
    pairs, as NISTIR 8280 draws them on one plot (Grother, Ngan and Hanaoka, 2019; Martin et al., "The DET
    curve in assessment of detection task performance", Eurospeech 1997).

    Parameters
    ----------
    scores : ndarray of shape (n_pairs,)
    same : ndarray of bool, shape (n_pairs,)
    group_a, group_b : array-like of shape (n_pairs,)
    resolution : int, default 2000
        Curves are thinned to the points that differ at this resolution on a log FMR axis
        (:func:`evallib.metrics.curves.thin_indices`).

    Returns
    -------
    GroupDetCurves
    """
    from .curves import thin_indices
    from .sweep import threshold_sweep

    s, same, groups, ia, ib, _ = _check_group_pairs(scores, same, group_a, group_b, None, None)
    fmr, fnmr, thr, n_gen, n_imp = [], [], [], [], []
    for g in range(len(groups)):
        sel = (ia == g) & (ib == g)
        ng, ni = int((sel & same).sum()), int((sel & ~same).sum())
        n_gen.append(ng)
        n_imp.append(ni)
        if not ng or not ni:
            fmr.append(np.zeros(0))
            fnmr.append(np.zeros(0))
            thr.append(np.zeros(0))
            continue
        sw = threshold_sweep(same[sel], s[sel])
        x, y, t = sw.det()
        keep = thin_indices(x, y, log_x=True, resolution=resolution)
        fmr.append(np.asarray(x[keep], dtype=np.float64))
        fnmr.append(np.asarray(y[keep], dtype=np.float64))
        thr.append(np.asarray(t[keep], dtype=np.float64))
    return GroupDetCurves(groups=groups, fmr=tuple(fmr), fnmr=tuple(fnmr), thresholds=tuple(thr),
                          n_genuine=tuple(n_gen), n_impostor=tuple(n_imp))


@dataclass(frozen=True)
class GroupThresholdRow:
    """One group's error rates at its own threshold, beside those at the one global threshold.

    Attributes
    ----------
    group : str
    threshold : float
        The group's threshold (``score >= threshold`` is a match).
    n_genuine, n_impostor : int
        The group's genuine pairs and same-group impostor pairs.
    fnmr, fnmr_interval, fmr, fmr_interval : float, (float, float)
        At the group's threshold, with 95% intervals.
    global_fnmr, global_fmr : float
        At the global threshold.
    note : str
    """

    group: str
    threshold: float
    n_genuine: int
    n_impostor: int
    fnmr: float
    fnmr_interval: tuple
    fmr: float
    fmr_interval: tuple
    global_fnmr: float
    global_fmr: float
    note: str = ""


@dataclass(frozen=True, eq=False)
class GroupThresholdResult:
    """What one threshold per group would do: each group's FNMR and FMR at its own threshold.

    Attributes
    ----------
    rows : tuple of GroupThresholdRow
    far : float
        The target false match rate the default thresholds were set at (NaN when every threshold was given).
    global_threshold : float
    fmr_ratio, global_fmr_ratio : float
        Highest over lowest same-group FMR at the groups' thresholds and at the global one.
    method : str
        How the intervals were made.
    """

    rows: tuple
    far: float
    global_threshold: float
    fmr_ratio: float
    global_fmr_ratio: float
    method: str

    @property
    def thresholds(self):
        """``{group: threshold}``: give it back, changed, to ask what another choice would do."""
        return {r.group: r.threshold for r in self.rows}


def _ratio(values):
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2 or v.max() == 0:
        return float("nan")
    return float("inf") if v.min() == 0 else float(v.max() / v.min())


def verification_at_group_thresholds(scores, same, group_a, group_b, *, thresholds=None, far=1e-3,
                                     global_threshold=None, ids_a=None, ids_b=None, n_boot=1000, seed=0,
                                     confidence=0.95):
    """A what-if of one threshold per group: each group's FNMR and FMR, within its own pairs, at its own
    threshold, with intervals, beside the rates at one global threshold.

    With one global threshold, false match rates can differ 10 to 100 times between demographic groups
    (Grother, Ngan and Hanaoka, NISTIR 8280, 2019); a threshold per group set at the same target FMR evens
    the false matches out, and the FNMR column shows what each group pays for it.

    Parameters
    ----------
    scores : ndarray of shape (n_pairs,)
    same : ndarray of bool, shape (n_pairs,)
    group_a, group_b : array-like of shape (n_pairs,)
    thresholds : dict of str to float, optional
        A threshold per group; a group not named gets the default: the threshold at which its own impostor
        pairs match at rate ``far``.
    far : float, default 1e-3
        Target false match rate of the default thresholds (and of the global threshold when not given).
    global_threshold : float, optional
        Default: the threshold at FMR ``far`` over every impostor pair.
    ids_a, ids_b : array-like of shape (n_pairs,), optional
        Identities: intervals from a bootstrap over each group's identities (a genuine pair weighs the draws
        of its identity, an impostor pair the product of its two); without them, Wilson intervals over pairs.
    n_boot : int, default 1000
    seed : int, default 0
    confidence : float, default 0.95

    Returns
    -------
    GroupThresholdResult
        Only pairs within one group count; a pair across two groups has no one group's threshold.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.array([0.9, 0.2, 0.8, 0.7, 0.1, 0.6])
    >>> same = np.array([1, 0, 1, 1, 0, 0], bool)
    >>> g = np.array(["a", "a", "a", "b", "b", "b"])
    >>> r = verification_at_group_thresholds(s, same, g, g, thresholds={"a": 0.5, "b": 0.65}, n_boot=0)
    >>> [(x.group, x.fnmr, x.fmr) for x in r.rows]
    [('a', 0.0, 0.0), ('b', 0.0, 0.0)]
    """
    s, same, groups, ia, ib, boot = _check_group_pairs(scores, same, group_a, group_b, ids_a, ids_b)
    if not 0 < far < 1:
        raise ValueError(f"far: expected a number in (0, 1); got {far!r}")
    given = dict(thresholds or {})
    if not hasattr(given, "items"):
        raise TypeError(f"thresholds: expected a mapping of group to threshold; got {type(thresholds).__name__}")
    unknown = sorted(set(map(str, given)) - set(groups))
    if unknown:
        raise ValueError(f"thresholds: expected groups among {', '.join(groups)}; got {', '.join(unknown)}")
    given = {str(k): float(v) for k, v in given.items()}
    imp = ~same
    if global_threshold is None:
        if not imp.any():
            raise EvallibError("same: no impostor pairs, so no threshold can be set at a false match rate")
        gthr = _threshold_at_far(s[imp], far)
    else:
        gthr = float(global_threshold)
    rng = np.random.default_rng(seed)
    rows = []
    for g, name in enumerate(groups):
        sel = (ia == g) & (ib == g)
        gen_idx, imp_idx = np.nonzero(sel & same)[0], np.nonzero(sel & imp)[0]
        ng, ni = len(gen_idx), len(imp_idx)
        notes = []
        if name in given:
            thr = given[name]
        elif ni:
            thr = _threshold_at_far(s[imp_idx], far)
            if far * ni < 1:
                notes.append(f"{ni} same-group impostor pairs are too few to set a threshold at FMR {far:g}: "
                             f"it is just above the highest impostor score")
        else:
            thr = gthr
            notes.append("no same-group impostor pairs: the global threshold")
        match = s >= thr
        k_fn, k_fm = int((~match[gen_idx]).sum()), int(match[imp_idx].sum())
        reps = (_group_replicates(s, match, gen_idx, imp_idx, far=far, n_boot=n_boot, rng=rng, ids=(*boot, g))
                if boot is not None and n_boot > 0 and ng and ni else None)
        if reps is not None:
            fn_int = _percentile_interval(reps["fnmr"], confidence)
            fm_int = _percentile_interval(reps["fmr"], confidence)
        else:
            fn_int = _pair(*wilson_interval(k_fn, ng, confidence=confidence))
            fm_int = _pair(*wilson_interval(k_fm, ni, confidence=confidence))
        with np.errstate(invalid="ignore", divide="ignore"):
            rows.append(GroupThresholdRow(
                group=name, threshold=float(thr), n_genuine=ng, n_impostor=ni,
                fnmr=k_fn / ng if ng else float("nan"), fnmr_interval=fn_int,
                fmr=k_fm / ni if ni else float("nan"), fmr_interval=fm_int,
                global_fnmr=float(np.mean(s[gen_idx] < gthr)) if ng else float("nan"),
                global_fmr=float(np.mean(s[imp_idx] >= gthr)) if ni else float("nan"), note="; ".join(notes)))
    if boot is not None and n_boot > 0:
        method = f"percentile bootstrap over identities drawn within each group ({n_boot} resamples)"
    else:
        method = ("Wilson intervals over pairs (pairs treated as independent; give ids_a, ids_b for an identity "
                  "bootstrap)")
    return GroupThresholdResult(rows=tuple(rows), far=float(far) if len(given) < len(groups) else float("nan"),
                                global_threshold=float(gthr), fmr_ratio=_ratio([r.fmr for r in rows]),
                                global_fmr_ratio=_ratio([r.global_fmr for r in rows]), method=method)
