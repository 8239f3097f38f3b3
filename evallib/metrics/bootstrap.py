"""Bootstrap confidence intervals and paired model comparison.

Resamples are drawn as integer weights (how often each sample, or identity, is drawn), so a
metric over a resample is a weighted metric over the original arrays and every resample is
a few vectorized operations. Intervals are the 2.5th and 97.5th percentiles of the
replicates (the percentile method), with a fixed seed.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse

from .classification import to_probabilities, topk_hit

_CHUNK_ELEMENTS = 20_000_000  # resamples x samples processed at once


def _weights(rng, n, n_boot):
    """``(n_boot, n)`` int32 counts: how often each of n items is drawn in each resample of n draws.

    Every resample holds exactly n draws: resampled within a group, a group of 3 is in every resample,
    unlike a bootstrap over the whole data set (fairlearn#1441). The draws come in chunks of resamples;
    the stream of random numbers is the one a resample-by-resample loop takes.
    """
    w = np.empty((n_boot, n), dtype=np.int32)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        w[start:start + b] = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)
    return w


def _interval(values, confidence=0.95):
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return [float("nan"), float("nan")]
    a = (1 - confidence) / 2 * 100
    return [float(np.percentile(v, a)), float(np.percentile(v, 100 - a))]


def _auc_layout(scores, pos):
    """Sort once: order, positive mask in that order, and the starts of tie groups."""
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    starts = np.r_[0, np.nonzero(np.diff(s))[0] + 1]
    return order, pos[order], starts


def _weighted_auc(w_sorted, pos_sorted, starts, neg_below=0.0):
    """AUC for each row of weights (already in ascending score order): ties count half.

    ``neg_below`` (one per row) is the weight of negatives left out because they score below
    every positive: each positive beats them all.

    One running sum of the negatives' weights: a positive in the tie group ``[a, b)`` beats the
    negatives before ``a`` and half of those in ``[a, b)``, that is half the running sum at ``a``
    plus half at ``b``.
    """
    w = np.asarray(w_sorted, dtype=np.float64)
    n = w.shape[-1]
    pos_idx = np.flatnonzero(pos_sorted)
    run = np.zeros((len(w), n + 1))
    np.cumsum(np.where(pos_sorted, 0.0, w), axis=1, out=run[:, 1:])  # run[:, k]: negatives' weight before k
    ends = np.r_[starts[1:], n]
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))[pos_idx]
    wp = w[:, pos_idx]
    neg_below = np.asarray(neg_below, dtype=np.float64)
    pos_total = wp.sum(axis=1)
    num = 0.5 * np.sum(wp * (run[:, starts[group]] + run[:, ends[group]]), axis=1) + pos_total * neg_below
    den = pos_total * (run[:, -1] + neg_below)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _replicates(y, probs, pred, w, *, ks=(5,), auc=True):
    """Metric values for each resample (rows of ``w``)."""
    n, c = probs.shape
    correct = (pred == y).astype(np.float64)
    out = {"accuracy": w @ correct / n}
    for k in ks:
        if k < c:
            out[f"top_{k}"] = w @ topk_hit(probs, y, k).astype(np.float64) / n
    # per-class counts of every resample at once: the weights times one-hot indicator matrices
    # (sparse, one entry per sample), exact since the weights are whole numbers
    rows = np.arange(n)
    one_hot = lambda cols, vals: sparse.csr_matrix((vals, (rows, cols)), shape=(n, c))  # noqa: E731
    wt = w.T.astype(np.float64)
    tp = (one_hot(y, correct).T @ wt).T
    den = (one_hot(pred, np.ones(n)).T @ wt).T + (one_hot(y, np.ones(n)).T @ wt).T
    out["macro_f1"] = np.mean(np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0), axis=1)
    if auc:
        per_class = np.full((len(w), c), np.nan)
        total = w.sum(axis=1, dtype=np.float64)
        for k in range(c):
            pos = y == k
            if not pos.any() or pos.all():
                continue
            # only samples scoring at or above the lowest positive can outrank one: the rest are
            # negatives every positive beats, summed as one weight per resample
            col = probs[:, k]
            high = np.nonzero(col >= col[pos].min())[0]
            order, pos_sorted, starts = _auc_layout(col[high], pos[high])
            w_high = w[:, high[order]]
            per_class[:, k] = _weighted_auc(w_high, pos_sorted, starts,
                                            neg_below=total - w_high.sum(axis=1, dtype=np.float64))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample may miss a class entirely
            out["roc_auc_macro"] = np.nanmean(per_class, axis=1)
    return out


def _prepare(y, scores, scores_are):
    probs = to_probabilities(np.asarray(scores, dtype=np.float64), scores_are)
    return np.asarray(y, dtype=np.int64), probs, probs.argmax(axis=1)


def _auc_affordable(n, c, n_boot, max_auc_work):
    return n * c * n_boot <= max_auc_work


def bootstrap_classification(y, scores, *, scores_are="logits", n_boot=1000, seed=0, ks=(5,),
                             confidence=0.95, max_auc_work=5e9):
    """95% percentile-bootstrap intervals for accuracy, top-k, macro-F1 and macro ROC AUC.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Class indices.
    scores : ndarray of shape (n_samples, n_classes)

    Returns
    -------
    dict
        ``{metric: [low, high]}``; ``roc_auc_macro`` is left out (with a ``note``) when
        ``n_samples * n_classes * n_boot`` exceeds ``max_auc_work``.
    """
    y, probs, pred = _prepare(y, scores, scores_are)
    if n_boot <= 0:
        return {}
    rng = np.random.default_rng(seed)
    n, c = probs.shape
    auc = _auc_affordable(n, c, n_boot, max_auc_work)
    reps = {}
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, step):
        w = _weights(rng, n, min(step, n_boot - start))
        for k, v in _replicates(y, probs, pred, w, ks=ks, auc=auc).items():
            reps.setdefault(k, []).append(v)
    out = {k: _interval(np.concatenate(v), confidence) for k, v in reps.items()}
    out["n_boot"], out["seed"], out["method"] = n_boot, seed, "percentile bootstrap over samples"
    if not auc:
        out["note"] = "no interval for macro ROC AUC: too many samples x classes x resamples"
    return out


def mcnemar_p(only_a, only_b):
    """Exact two-sided McNemar p-values for arrays of discordant counts (same shape).

    Under the null each discordant pair goes either way with probability 1/2; the binomial is then
    symmetric, so the two-sided p (scipy's ``binomtest``: every outcome no more likely than the one
    seen) is ``min(1, 2 * P(X <= min(only_a, only_b)))``, and 1 without discordant pairs.
    """
    from scipy.stats import binom

    a, b = np.asarray(only_a, dtype=np.int64), np.asarray(only_b, dtype=np.int64)
    return np.minimum(1.0, 2.0 * binom.cdf(np.minimum(a, b), a + b, 0.5))


def mcnemar(correct_a, correct_b):
    """McNemar's exact test on paired correctness: two-sided binomial p over the discordant pairs."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = float(mcnemar_p(only_a, only_b))
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": p, "test": "exact binomial"}


def paired_comparison(y, scores_a, scores_b, *, scores_are="logits", scores_are_b=None, n_boot=1000, seed=0,
                      confidence=0.95, max_auc_work=5e9):
    """Compare two models on the same samples: differences (a - b) with paired-bootstrap intervals.

    Both models are evaluated on the same resamples. Returns ``{metric: {"a", "b",
    "difference", "interval"}}`` for accuracy, macro-F1 and macro ROC AUC, plus ``mcnemar``.
    """
    from .classification import evaluate_classification

    y = np.asarray(y, dtype=np.int64)
    ya, pa, preda = _prepare(y, scores_a, scores_are)
    yb, pb, predb = _prepare(y, scores_b, scores_are_b or scores_are)
    if pa.shape != pb.shape:
        raise ValueError(f"scores_b: expected shape {pa.shape} like scores_a; got {pb.shape}")
    ra = evaluate_classification(y, pa, scores_are="probabilities", top_k=1)
    rb = evaluate_classification(y, pb, scores_are="probabilities", top_k=1)
    point = {"accuracy": (ra.accuracy, rb.accuracy), "macro_f1": (ra.macro_f1, rb.macro_f1),
             "roc_auc_macro": (ra.roc_auc_macro, rb.roc_auc_macro)}
    n, c = pa.shape
    auc = _auc_affordable(n, c, 2 * n_boot, max_auc_work)
    rng = np.random.default_rng(seed)
    diffs = {}
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, step):
        w = _weights(rng, n, min(step, n_boot - start))
        a = _replicates(y, pa, preda, w, ks=(), auc=auc)
        b = _replicates(y, pb, predb, w, ks=(), auc=auc)
        for k in a:
            diffs.setdefault(k, []).append(a[k] - b[k])
    out = {}
    for k, (va, vb) in point.items():
        out[k] = {"a": va, "b": vb, "difference": va - vb,
                  "interval": _interval(np.concatenate(diffs[k]), confidence) if k in diffs else [float("nan")] * 2}
    out["mcnemar"] = mcnemar(preda == y, predb == y)
    out["n_boot"], out["seed"] = n_boot, seed
    return out


def far_threshold_index(weights, desc, total, fars):
    """Per resample and FAR ``f``: the rank (from the highest score) of the first impostor at which the
    running sum of impostor weight exceeds ``f`` of the total; its score is the threshold at FAR ``f``.

    The thresholds lie among the highest impostors, so the running sum covers a prefix (twice the largest
    share ``f`` plus 64 pairs), and grows fourfold, for the resamples it does not hold, until it does. A
    prefix of a running sum is the start of the full one, value for value, so the ranks equal those from
    the sum over all pairs.

    Parameters
    ----------
    weights : ndarray of shape (n_resamples, n_impostor)
        Each resample's impostor weights, in the pairs' own order.
    desc : ndarray of shape (n_impostor,)
        The pairs from the highest score to the lowest (a stable sort).
    total : ndarray of shape (n_resamples,)
        Each resample's total impostor weight.
    fars : sequence of float

    Returns
    -------
    ndarray of shape (len(fars), n_resamples), int64
        0 where a resample has no impostor weight.
    """
    n, f_max = len(desc), max(fars, default=0.0)
    out = np.zeros((len(fars), len(weights)), dtype=np.int64)
    rows = np.arange(len(weights))
    top = min(n, 2 * int(np.ceil(f_max * n)) + 64)
    while len(rows):
        cum = np.cumsum(weights[np.ix_(rows, desc[:top])], axis=1, dtype=np.float64)
        done = (cum[:, -1] > f_max * total[rows]) | (top == n)
        for i, f in enumerate(fars):
            out[i, rows[done]] = np.argmax(cum[done] > f * total[rows[done], None], axis=1)
        rows, top = rows[~done], min(n, 4 * top)
    return out


def bootstrap_verification(gen_scores, gen_ids, impostors, *, n_boot=1000, seed=0, far_targets=(1e-2, 1e-3),
                           confidence=0.95, max_pairs=100_000):
    """Intervals for verification AUC and TAR@FAR, resampling identities (not pairs).

    A resample draws identities with replacement; a genuine pair of identity ``a`` weighs
    ``m_a`` (times drawn), an impostor pair ``(a, b)`` weighs ``m_a * m_b``.

    Parameters
    ----------
    gen_scores, gen_ids : ndarray of shape (n_genuine,)
    impostors : ndarray of shape (n_impostor, 3)
        Columns score, identity a, identity b (a uniform sample of impostor pairs will do).
    max_pairs : int
        Genuine and impostor pairs are each subsampled to at most this many.
    """
    rng = np.random.default_rng(seed)
    gen_scores, gen_ids = np.asarray(gen_scores, float), np.asarray(gen_ids, np.int64)
    imp = np.asarray(impostors, float).reshape(-1, 3)
    if len(gen_scores) > max_pairs:
        keep = rng.choice(len(gen_scores), max_pairs, replace=False)
        gen_scores, gen_ids = gen_scores[keep], gen_ids[keep]
    if len(imp) > max_pairs:
        imp = imp[rng.choice(len(imp), max_pairs, replace=False)]
    if n_boot <= 0 or len(gen_scores) == 0 or len(imp) == 0:
        return {}
    ia, ib = imp[:, 1].astype(np.int64), imp[:, 2].astype(np.int64)
    ids, inv = np.unique(np.r_[gen_ids, ia, ib], return_inverse=True)
    g_id, a_id, b_id = np.split(inv, [len(gen_ids), len(gen_ids) + len(ia)])
    scores = np.r_[gen_scores, imp[:, 0]]
    pos = np.r_[np.ones(len(gen_scores), bool), np.zeros(len(imp), bool)]
    order, pos_sorted, starts = _auc_layout(scores, pos)
    imp_desc = np.argsort(-imp[:, 0], kind="mergesort")
    imp_sorted = imp[imp_desc, 0]
    gen_order = np.argsort(gen_scores, kind="mergesort")
    gen_sorted = gen_scores[gen_order]
    supported = [f for f in far_targets if f * len(imp) >= 10]
    aucs, tars = [], {f: [] for f in supported}
    step = max(1, _CHUNK_ELEMENTS // len(scores))
    for start in range(0, n_boot, step):
        m = _weights(rng, len(ids), min(step, n_boot - start)).astype(np.float64)
        w = np.concatenate([m[:, g_id], m[:, a_id] * m[:, b_id]], axis=1)
        aucs.append(_weighted_auc(w[:, order], pos_sorted, starts))
        wi = w[:, len(gen_scores):]
        total_i = wi.sum(axis=1, keepdims=True)
        first = far_threshold_index(wi, imp_desc, total_i[:, 0], supported)  # the (k+1)-th highest impostors
        wg = w[:, :len(gen_scores)][:, gen_order]
        gcum = np.cumsum(wg, axis=1)  # weight of genuine pairs at index <= k
        total_g = gcum[:, -1]
        for i, f in enumerate(supported):
            v = imp_sorted[first[i]]
            k = np.searchsorted(gen_sorted, v, side="right")  # genuine pairs at index >= k score above v
            above = total_g - np.where(k > 0, gcum[np.arange(len(k)), np.maximum(k - 1, 0)], 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                tars[f].append(np.where(total_g > 0, above / total_g, np.nan))
    out = {"auc": _interval(np.concatenate(aucs), confidence)}
    for f in supported:
        out[f"tar_at_far_{f:g}"] = _interval(np.concatenate(tars[f]), confidence)
    unsupported = [f for f in far_targets if f not in supported]
    out["n_boot"], out["seed"] = n_boot, seed
    out["method"] = (f"percentile bootstrap over {len(ids)} identities; {len(gen_scores)} genuine and "
                     f"{len(imp)} impostor pairs")
    if unsupported:
        out["note"] = f"no interval for TAR at FAR {', '.join(f'{f:g}' for f in unsupported)}: too few impostor pairs"
    return out
