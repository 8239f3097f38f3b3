"""Verification metrics: all pairs block by block, against scikit-learn on the explicit pair list."""

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.metrics.pairwise import cosine_similarity

from conftest import make_embeddings
from evallib.errors import EvallibError
from evallib.metrics import DegenerateWarning, VerificationMetrics, evaluate_verification, lfw_accuracy


def _all_pairs(e, labels):
    s = cosine_similarity(e.astype(np.float32)).astype(np.float32)
    iu = np.triu_indices(len(e), 1)
    return (labels[:, None] == labels[None, :])[iu], s[iu].astype(np.float64)


@pytest.mark.parametrize("block", [7, 64, 4096])
def test_all_pairs_exact_matches_sklearn(rng, block):
    e, lab = make_embeddings(rng, n=300, ids=15)
    r = evaluate_verification(e, lab, block_size=block)
    y, s = _all_pairs(e, lab)
    assert r.exact and r.n_genuine == y.sum() and r.n_impostor == (~y).sum()
    assert r.auc == pytest.approx(skm.roc_auc_score(y, s), abs=1e-6)
    for far, v in r.tar_at_far.items():
        if far * (~y).sum() >= 1:
            neg = np.sort(s[~y])[::-1]
            k = int(np.floor(far * len(neg)))
            assert v["tar"] == pytest.approx(np.mean(s[y] > neg[k]), abs=1e-6)
        else:
            assert np.isnan(v["tar"]) and not v["supported"]
    for t, tp, fp in zip(r.table["threshold"], r.table["tp"], r.table["fp"]):
        assert abs(tp - np.sum(s[y] >= t)) <= 1 and abs(fp - np.sum(s[~y] >= t)) <= 1  # float32 rounding


def test_binned_path_equals_exact_path(rng):
    e, lab = make_embeddings(rng, n=500, ids=25, spread=0.6)
    exact = evaluate_verification(e, lab)
    binned = evaluate_verification(e, lab, exact_limit=10, block_size=100)
    assert exact.exact and not binned.exact
    assert abs(binned.auc - exact.auc) <= binned.auc_bound + 1e-12
    assert binned.auc_bound < 1e-6
    for far in exact.tar_at_far:
        a, b = exact.tar_at_far[far], binned.tar_at_far[far]
        assert a["supported"] == b["supported"]
        if a["supported"]:
            assert a["tar"] == b["tar"], far  # exact on both paths, not read off the bins
    for col in ("tp", "fp"):
        np.testing.assert_array_equal(exact.table[col], binned.table[col])
    assert exact.eer == pytest.approx(binned.eer, abs=1e-3)


@pytest.mark.parametrize("seed", range(4))
def test_streaming_equals_one_shot(seed):
    rng = np.random.default_rng(seed)
    e, lab = make_embeddings(rng, n=250, ids=12)
    whole = evaluate_verification(e, lab, block_size=32)
    cuts = np.sort(rng.choice(np.arange(1, 250), size=rng.integers(1, 6), replace=False))
    m = VerificationMetrics(block_size=32, exact_limit=10 if seed % 2 else 10**9)
    for part in np.split(np.arange(250), cuts):
        m.update(e[part], lab[part])
    r = m.compute()
    assert (r.n_genuine, r.n_impostor) == (whole.n_genuine, whole.n_impostor)
    assert r.auc == pytest.approx(whole.auc, abs=max(r.auc_bound, 1e-6))
    for far in whole.tar_at_far:
        assert r.tar_at_far[far]["tar"] == pytest.approx(whole.tar_at_far[far]["tar"], abs=1e-9, nan_ok=True)


def test_pair_list_and_lfw_protocol(rng):
    e, lab = make_embeddings(rng, n=200, ids=10, spread=0.5)
    i, j = rng.integers(0, 200, 600), rng.integers(0, 200, 600)
    same = lab[i] == lab[j]
    fold = np.arange(600) * 10 // 600
    r = evaluate_verification(e, lab, pairs=(i, j, same, fold))
    q = np.round(e / np.linalg.norm(e, axis=1, keepdims=True) * 2.0**24) / 2.0**24  # components on the 2**-24 grid
    s = np.sum(q[i] * q[j], 1)  # exact in float64, as in the all-pairs pass
    assert r.protocol == "pair list" and r.n_genuine == same.sum()
    assert r.auc == pytest.approx(skm.roc_auc_score(same, s), abs=1e-6)
    # LFW: each fold's threshold maximizes accuracy on the other nine folds
    accs = []
    for f in range(10):
        tr = fold != f
        cands = np.unique(s[tr])[::-1]  # ties go to the highest threshold
        best = cands[np.argmax([np.mean((s[tr] >= t) == same[tr]) for t in cands])]
        accs.append(np.mean((s[fold == f] >= best) == same[fold == f]))
    assert r.lfw["mean"] == pytest.approx(np.mean(accs), abs=1e-9)
    assert r.lfw["std"] == pytest.approx(np.std(accs), abs=1e-9)
    assert lfw_accuracy(s, same, fold)["accuracies"] == pytest.approx(accs)


def test_policies_are_consistent_with_the_table(rng):
    e, lab = make_embeddings(rng, n=200, ids=10)
    r = evaluate_verification(e, lab)
    y, s = _all_pairs(e, lab)
    for name, c in r.policies.items():
        pred = s >= c.threshold
        assert abs(c.tp - np.sum(pred & y)) <= 1 and abs(c.fp - np.sum(pred & ~y)) <= 1, name
    assert r.policies["far"].far <= 1e-3


@pytest.mark.parametrize("labels, what", [(np.zeros(20, int), "impostor"), (np.arange(20), "genuine")])
def test_no_genuine_or_no_impostor_pairs(rng, labels, what):
    e = rng.normal(size=(20, 8))
    with pytest.warns(DegenerateWarning, match=f"no {what} pairs"):
        r = evaluate_verification(e, labels)
    assert np.isnan(r.auc) and np.isnan(r.eer)


def test_bootstrap_intervals_contain_the_estimate(rng):
    e, lab = make_embeddings(rng, n=300, ids=30, spread=0.4)
    r = evaluate_verification(e, lab, n_bootstrap=200)
    lo, hi = r.intervals["auc"]
    assert lo < r.auc < hi and hi - lo < 0.2
    assert "30 identities" in r.intervals["method"]
    again = evaluate_verification(e, lab, n_bootstrap=200)
    assert again.intervals == r.intervals  # fixed seed


@pytest.mark.parametrize("kwargs, match", [
    (dict(embeddings=np.zeros((3, 4)), labels=[0, 1, 1]), r"embeddings: expected non-zero vectors; got 3 all-zero"
                                                          r" rows"),
    (dict(embeddings=np.ones((3, 4)), labels=[0, 1]), r"labels: expected shape \(3,\), one per embedding; got shape"
                                                      r" \(2,\)"),
    (dict(embeddings=np.ones(4), labels=[0]), r"embeddings: expected a 2-d array .*got shape \(4,\)"),
    (dict(embeddings=[[1.0, np.nan]], labels=[0]), r"embeddings: expected finite values"),
    (dict(embeddings=np.ones((3, 4)), labels=[0, 1, 1], pairs=([0], [5], [True])), r"pairs j: expected indices 0..2"
                                                                                   r" into embeddings; got 5"),
    (dict(embeddings=np.ones((3, 4)), labels=[0, 1, 1], backend="tpu"), r"backend: expected one of auto, numpy, cupy;"
                                                                        r" got 'tpu'"),
])
def test_errors(kwargs, match):
    with pytest.raises(EvallibError, match=match):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateWarning)
            evaluate_verification(**kwargs)


def test_second_pass_when_the_presample_misses(rng):
    e, lab = make_embeddings(rng, n=400, ids=20, spread=0.6)
    exact = evaluate_verification(e, lab)
    m = VerificationMetrics(exact_limit=10, block_size=64, presample=0)  # the first pass keeps the table's bins only
    m.update(e, lab)
    r = m.compute()
    assert m.passes == 2
    for far, v in exact.tar_at_far.items():
        assert r.tar_at_far[far]["tar"] == pytest.approx(v["tar"], nan_ok=True)
