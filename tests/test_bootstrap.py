"""Bootstrap intervals and paired comparison against plain per-resample loops."""

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn import metrics as skm

from conftest import make_classification
from evallib.metrics import bootstrap_classification, mcnemar, paired_comparison
from evallib.metrics.bootstrap import _replicates, _weights, bootstrap_verification, mcnemar_p
from evallib.metrics.classification import to_probabilities


def test_vectorized_replicates_equal_a_loop_over_resamples(rng):
    y, logits = make_classification(rng, n=300, c=5, ties=True)
    p = to_probabilities(logits, "logits")
    pred = p.argmax(1)
    w = _weights(np.random.default_rng(0), len(y), 20)
    reps = _replicates(y, p, pred, w, ks=(3,))
    for b in range(20):
        idx = np.repeat(np.arange(len(y)), w[b])
        assert reps["accuracy"][b] == pytest.approx(skm.accuracy_score(y[idx], pred[idx]))
        assert reps["top_3"][b] == pytest.approx(skm.top_k_accuracy_score(y[idx], p[idx], k=3, labels=np.arange(5)))
        assert reps["macro_f1"][b] == pytest.approx(
            skm.f1_score(y[idx], pred[idx], average="macro", labels=np.arange(5), zero_division=0))
        assert reps["roc_auc_macro"][b] == pytest.approx(skm.roc_auc_score(y[idx], p[idx], multi_class="ovr"))


def test_intervals_fixed_seed_and_cover(rng):
    y, logits = make_classification(rng, n=2000, c=10)
    a = bootstrap_classification(y, logits, n_boot=300, seed=3)
    b = bootstrap_classification(y, logits, n_boot=300, seed=3)
    assert a == b
    acc = np.mean(logits.argmax(1) == y)
    assert a["accuracy"][0] < acc < a["accuracy"][1]
    # the standard error of a proportion: the interval is about +-1.96 of it
    se = np.sqrt(acc * (1 - acc) / len(y))
    assert (a["accuracy"][1] - a["accuracy"][0]) == pytest.approx(2 * 1.96 * se, rel=0.2)


def test_mcnemar_matches_scipy():
    a = np.array([1] * 30 + [0] * 10 + [1] * 5 + [0] * 55, bool)
    b = np.array([1] * 30 + [1] * 10 + [0] * 5 + [0] * 55, bool)
    r = mcnemar(a, b)
    assert (r["only_a_correct"], r["only_b_correct"]) == (5, 10)
    assert r["p_value"] == pytest.approx(binomtest(5, 15, 0.5).pvalue)
    assert mcnemar(a, a)["p_value"] == 1.0


def test_paired_comparison(rng):
    y, la = make_classification(rng, n=1000, c=4, signal=2.0)
    lb = la + rng.normal(scale=2.0, size=la.shape)
    r = paired_comparison(y, la, lb, n_boot=300)
    d = r["accuracy"]
    assert d["difference"] == pytest.approx(np.mean(la.argmax(1) == y) - np.mean(lb.argmax(1) == y))
    assert d["interval"][0] < d["difference"] < d["interval"][1]
    assert d["interval"][0] > 0  # a is clearly better
    assert r["mcnemar"]["p_value"] < 1e-3
    same = paired_comparison(y, la, la, n_boot=50)
    assert same["accuracy"]["interval"] == [0.0, 0.0]


def test_verification_intervals_with_too_few_impostors_for_any_far_target():
    # no FAR target is supported by 40 impostor pairs: the AUC interval alone, and a note naming the targets
    rng = np.random.default_rng(0)
    imp = np.c_[rng.normal(size=40), rng.integers(0, 5, 40), rng.integers(0, 5, 40)]
    out = bootstrap_verification(rng.normal(1, 1, 30), rng.integers(0, 5, 30), imp, n_boot=50)
    assert set(out) == {"auc", "n_boot", "seed", "method", "note"}
    assert 0 <= out["auc"][0] <= out["auc"][1] <= 1
    assert out["note"] == "no interval for TAR at FAR 0.01, 0.001: too few impostor pairs"


def test_vectorised_mcnemar_p_equals_scipy_binomtest():
    only_a, only_b = np.meshgrid(np.arange(0, 40), np.arange(0, 40))
    ours = mcnemar_p(only_a, only_b)
    ref = [[binomtest(min(a, b), a + b, 0.5).pvalue if a + b else 1.0 for a, b in zip(ra, rb)]
           for ra, rb in zip(only_a, only_b)]
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)


def test_far_threshold_index_equals_the_running_sum_over_every_pair():
    from evallib.metrics.bootstrap import far_threshold_index

    rng = np.random.default_rng(7)
    n = 5000
    scores = np.round(rng.normal(size=n), 2)  # ties on purpose
    desc = np.argsort(-scores, kind="mergesort")
    # identity-bootstrap-like weights: many zeros, the highest impostors sharing a few identities
    ids = np.where(np.arange(n) % 3 == 0, rng.integers(0, 5, n), rng.integers(0, 400, n))
    m = rng.poisson(1.0, (300, 400)).astype(np.float64)
    w = m[:, ids] * m[:, rng.permutation(ids)]
    w[:3] = 0.0  # resamples without impostor weight
    total = w.sum(axis=1)
    fars = [1e-1, 1e-2, 1e-3]
    got = far_threshold_index(w, desc, total, fars)
    full = np.cumsum(w[:, desc], axis=1)
    for i, f in enumerate(fars):
        np.testing.assert_array_equal(got[i], np.argmax(full > f * total[:, None], axis=1))
