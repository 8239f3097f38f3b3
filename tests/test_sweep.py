"""The threshold sweep against scikit-learn and brute force."""

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from evallib.errors import EvallibError
from evallib.metrics import DegenerateWarning, threshold_sweep
from evallib.metrics.classification import confusion_from_counts
from evallib.metrics.sweep import sweep_from_histograms


def _inputs(rng, kind, n=300):
    y = rng.integers(0, 2, n)
    if kind == "random":
        s = rng.normal(size=n) + y
    elif kind == "ties":
        s = np.round(rng.normal(size=n) + y, 0)
    elif kind == "constant":
        s = np.full(n, 0.3)
    elif kind == "perfect":
        s = y + rng.random(n) * 0.5
    elif kind == "inverted":
        s = -(y + rng.random(n) * 0.5)
    elif kind == "tiny":
        y, s = np.array([0, 1]), np.array([0.5, 0.5])
    return y, s


KINDS = ["random", "ties", "constant", "perfect", "inverted", "tiny"]


@pytest.mark.parametrize("kind", KINDS)
def test_roc_auc_and_ap_match_sklearn(rng, kind):
    y, s = _inputs(rng, kind)
    sw = threshold_sweep(y, s)
    assert sw.auc() == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert sw.average_precision() == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    ofpr, otpr, othr = sw.roc()
    np.testing.assert_allclose(ofpr, fpr, atol=1e-12)
    np.testing.assert_allclose(otpr, tpr, atol=1e-12)
    np.testing.assert_array_equal(othr[1:], thr[1:])


@pytest.mark.parametrize("kind", KINDS)
def test_counts_table_and_policies_match_brute_force(rng, kind):
    y, s = _inputs(rng, kind)
    sw = threshold_sweep(y, s)
    probe = np.r_[np.unique(s), -np.inf, np.inf, np.linspace(s.min() - 1, s.max() + 1, 7)]
    tab = sw.table(probe)
    for t, tp, fp, acc, f1 in zip(probe, tab["tp"], tab["fp"], tab["accuracy"], tab["f1"]):
        pred = s >= t
        assert tp == np.sum(pred & (y == 1)) and fp == np.sum(pred & (y == 0))
        assert acc == pytest.approx(skm.accuracy_score(y, pred))
        assert f1 == pytest.approx(skm.f1_score(y, pred, zero_division=np.nan), nan_ok=True)
    # each policy's choice is the brute-force optimum over the distinct scores
    cands = np.unique(s)
    accs = [skm.accuracy_score(y, s >= t) for t in cands]
    assert sw.choose("max_accuracy").accuracy == pytest.approx(max(accs))
    f1s = [skm.f1_score(y, s >= t, zero_division=0) for t in cands]
    assert sw.choose("max_f1").f1 == pytest.approx(max(f1s))
    j = [skm.recall_score(y, s >= t) - np.mean(s[y == 0] >= t) for t in cands]
    c = sw.choose("youden")
    assert c.recall - c.far == pytest.approx(max(j))


def test_tar_at_far_is_exact(rng):
    y = np.r_[np.ones(200, int), np.zeros(5000, int)]
    s = np.r_[rng.normal(2, 1, 200), rng.normal(0, 1, 5000)]
    sw = threshold_sweep(y, s)
    neg = np.sort(s[y == 0])[::-1]
    for far in (1e-1, 1e-2, 1e-3):
        tar, thr = sw.tar_at_far(far)
        k = int(np.floor(far * 5000))
        v = neg[k]  # the (k+1)-th highest impostor score
        assert tar == np.mean(s[y == 1] > v)
        assert np.mean(neg >= thr) <= far
    # 1e-4 * 5000 < 1: the data cannot support it
    assert np.isnan(sw.tar_at_far(1e-4)[0])


def test_eer_matches_brute_force(rng):
    y, s = _inputs(rng, "random", 2000)
    eer, thr = threshold_sweep(y, s).eer()
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    fnr = 1 - tpr
    k = np.argmax(fnr <= fpr)
    x = (fnr[k - 1] - fpr[k - 1]) / ((fnr[k - 1] - fpr[k - 1]) - (fnr[k] - fpr[k]))
    assert eer == pytest.approx(fpr[k - 1] + x * (fpr[k] - fpr[k - 1]))
    assert min(fpr[k], fnr[k]) - 1e-12 <= eer <= max(fpr[k - 1], fnr[k - 1]) + 1e-12


@pytest.mark.parametrize("missing", [0, 1])
def test_one_class_only_gives_nan_with_warning(missing):
    y = np.full(10, 1 - missing)
    sw = threshold_sweep(y, np.linspace(0, 1, 10))
    with pytest.warns(DegenerateWarning, match="no (positive|negative) samples"):
        assert np.isnan(sw.auc())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWarning)
        assert np.isnan(sw.eer()[0])


def test_batch_f1_worked_example():
    batches = [(50, 10, 10, 30), (90, 9, 0, 1), (70, 0, 0, 30)]
    total = np.sum(batches, axis=0)
    assert tuple(total) == (210, 19, 10, 61)
    assert confusion_from_counts(total)["f1"] == pytest.approx(0.807947, abs=1e-6)
    assert np.mean([confusion_from_counts(b)["f1"] for b in batches]) == pytest.approx(0.643939, abs=1e-6)
    # the same through the sweep: labels and hard predictions batch by batch, counts summed
    ys, ps = [], []
    for tn, fn, fp, tp in batches:
        ys += [0] * tn + [1] * fn + [0] * fp + [1] * tp
        ps += [0] * tn + [0] * fn + [1] * fp + [1] * tp
    assert threshold_sweep(ys, ps).table([1])["f1"][0] == pytest.approx(0.807947, abs=1e-6)


def test_binned_auc_within_its_bound(rng):
    y, s = _inputs(rng, "random", 5000)
    exact = threshold_sweep(y, s).auc()
    for bins in (8, 64, 1024):
        edges = np.linspace(s.min(), s.max() + 1e-9, bins + 1)
        pos, _ = np.histogram(s[y == 1], edges)
        neg, _ = np.histogram(s[y == 0], edges)
        sw = sweep_from_histograms(pos, neg, edges[:-1])
        assert abs(sw.auc() - exact) <= sw.auc_bound + 1e-12
        assert sw.auc_bound > 0


@pytest.mark.parametrize("y, s, match", [
    ([0, 1], [0.1, np.nan], r"scores: expected finite values; got 1 NaN or infinite \(first: NaN at index 1\)"),
    ([0, 1], [0.1, np.inf], r"scores: expected finite values.*infinite at index 1"),
    ([0, 1, 1], [0.1, 0.2], r"y_binary: expected 2 labels, one per score; got 3"),
    ([0, 2], [0.1, 0.2], r"y_binary: expected binary labels \(0/1 or bool\); got values \[0, 2\]"),
    ([[0, 1]], [[0.1, 0.2]], r"scores: expected a 1-d array of shape \(n_samples,\); got shape \(1, 2\)"),
    ([], [], r"scores: expected at least one score"),
])
def test_errors_name_the_argument(y, s, match):
    with pytest.raises(EvallibError, match=match):
        threshold_sweep(y, s)


def test_unknown_policy():
    with pytest.raises(EvallibError, match="policy: expected one of max_f1, max_accuracy, youden, eer, far; got"
                                           " 'best'"):
        threshold_sweep([0, 1], [0.1, 0.9]).choose("best")
