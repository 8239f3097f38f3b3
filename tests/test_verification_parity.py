"""All-pairs verification gives the same numbers for every block size and thread count, and they are
the float64 numbers: against a brute-force float64 reference with scikit-learn, on embeddings built so
that many scores sit at or within float32 rounding of the thresholds."""


import numpy as np
import pytest
from sklearn.metrics import auc, roc_curve

from evallib.errors import EvallibError
from evallib.metrics import VerificationMetrics, evaluate_verification
from evallib.metrics import verification as ver


def _grid(e):
    """The documented normalization: L2 in float64, components rounded to multiples of 2**-24."""
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    return np.round(u * 2.0**24) / 2.0**24


def _at_cosine(rng, n, d, c):
    """``n`` pairs of unit vectors (rows 2k, 2k + 1) whose float64 cosine is ``c``."""
    u = rng.normal(size=(n, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w = rng.normal(size=(n, d))
    w -= np.sum(w * u, axis=1, keepdims=True) * u
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    return np.stack([u, c * u + np.sqrt(1 - c * c) * w], axis=1).reshape(2 * n, d)


def adversarial(seed=0, d=64):
    """About 700 embeddings with many scores exactly at, or within float32 rounding of, the thresholds.

    - clustered identities (the bulk);
    - exact duplicates, of the same and of other identities: genuine and impostor scores tied, and
      scores within float32 rounding of 1.0;
    - near duplicates (relative noise 1e-8): scores within float32 rounding of 1.0;
    - small-integer vectors: many pairs exactly orthogonal (score 0.0) and many ties;
    - axis vectors and (0.5, sqrt(0.75)) vectors: scores exactly 0.5 and 1.0;
    - pairs at cosine 0.1 and 0.7: scores within float32 rounding of those thresholds.
    """
    rng = np.random.default_rng(seed)
    ids = 30
    centers = rng.normal(size=(ids, d))
    lab = rng.integers(0, ids, 300)
    bulk = centers[lab] * 0.8 + rng.normal(size=(300, d))
    dup = bulk[:60].copy()
    dup_lab = np.r_[lab[:30], (lab[30:60] + 1) % ids]
    near = bulk[:60] * (1 + 1e-8 * rng.normal(size=(60, d)))
    ints = rng.integers(-1, 2, size=(120, d)).astype(float)
    ints[np.all(ints == 0, axis=1), 0] = 1.0
    axis = np.zeros((40, d))
    axis[:20, 0] = 1.0
    axis[20:, 0], axis[20:, 1] = 0.5, np.sqrt(0.75)
    tenth = _at_cosine(rng, 40, d, 0.1)
    seventh = _at_cosine(rng, 20, d, 0.7)
    e = np.concatenate([bulk, dup, near, ints, axis, tenth, seventh])
    pair = np.repeat(np.arange(40), 2)
    pair[1::2] += 40 * (np.arange(40) % 2)  # the 0.1 pairs: even ones genuine, odd ones impostor
    labels = np.concatenate([lab, dup_lab, lab[:60], rng.integers(0, ids, 120), 100 + rng.integers(0, 4, 40),
                             200 + pair, 300 + np.repeat(np.arange(20), 2)])
    return e, labels


def _numbers(r):
    """Everything reported but the AUC, for exact comparison (NaN equals NaN)."""
    return {"n": (r.n_genuine, r.n_impostor), "eer": (r.eer, r.eer_threshold), "tar_at_far": r.tar_at_far,
            "table": {k: np.asarray(v) for k, v in r.table.items()},
            "policies": {k: v.to_dict() for k, v in r.policies.items()},
            "sweep": (r.sweep.thresholds, r.sweep.tp, r.sweep.fp), "histogram": r.histogram}


def _reference(e, labels):
    """Scores and genuine flags of all pairs i < j, brute force in float64."""
    q = _grid(e)
    s = q @ q.T
    iu = np.triu_indices(len(e), 1)
    return s[iu], (labels[:, None] == labels[None, :])[iu]


@pytest.mark.parametrize("exact_limit", [10**9, 10], ids=["exact sweep", "binned sweep"])
def test_identical_for_every_block_size_and_thread_count(exact_limit):
    e, labels = adversarial()
    first = None
    for block in (33, 64, 1000, 4096, len(e)):  # 33: float32 GEMMs of odd shapes round differently
        for threads in (1, 2, 4):
            r = evaluate_verification(e, labels, block_size=block, threads=threads, exact_limit=exact_limit)
            if first is None:
                first = r
                continue
            np.testing.assert_equal(_numbers(r), _numbers(first), err_msg=f"block {block}, threads {threads}")
            assert abs(r.auc - first.auc) <= 1e-9
    assert first.exact == (exact_limit > 10)


def test_the_adversarial_set_puts_scores_at_the_thresholds():
    e, labels = adversarial()
    s, _ = _reference(e, labels)
    for t in (0.0, 0.5, 1.0):
        assert np.sum(s == t) >= 10, t  # exact ties with a threshold
    for t in (0.1, 0.7, 1.0):
        assert np.sum((np.abs(s - t) < 3e-8) & (s != t)) >= 10, t  # within float32 rounding of it


def test_float64_scores_are_the_exact_dot_products():
    from fractions import Fraction

    e, labels = adversarial(d=512)
    q = _grid(e)
    assert np.array_equal(q.astype(np.float32), ver.normalize_embeddings(e))
    rng = np.random.default_rng(5)
    i, j = rng.integers(0, len(e), (2, 200))
    ours = ver.pair_scores(e, i, j)
    brute = np.sum(q[i] * q[j], axis=1)
    for k in range(len(i)):  # rational arithmetic: no rounding at all
        exact = sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(q[i[k]], q[j[k]]))
        assert Fraction(float(ours[k])) == exact == Fraction(float(brute[k]))


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_path_equals_float64_brute_force_and_sklearn(seed):
    e, labels = adversarial(seed)
    r = evaluate_verification(e, labels, threads=2)
    s, y = _reference(e, labels)
    gen, imp = s[y], s[~y]
    assert r.exact and (r.n_genuine, r.n_impostor) == (len(gen), len(imp))
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    assert r.auc == pytest.approx(auc(fpr, tpr), abs=1e-12)
    # EER: the first threshold from the top where FRR <= FAR, interpolated with the one before
    fnr = 1 - tpr
    k = int(np.argmax(fnr <= fpr))
    d0, d1 = fnr[k - 1] - fpr[k - 1], fnr[k] - fpr[k]
    assert r.eer == pytest.approx(fpr[k - 1] + d0 / (d0 - d1) * (fpr[k] - fpr[k - 1]), abs=1e-12)
    assert r.eer_threshold == thr[k]  # the first threshold where FRR <= FAR
    _check_tar_and_table(r, gen, imp)
    # policies: brute force over every distinct score; ties go to the highest threshold
    cand = np.unique(s)[::-1]
    tp = len(gen) - np.searchsorted(np.sort(gen), cand, side="left")
    fp = len(imp) - np.searchsorted(np.sort(imp), cand, side="left")
    fn, tn = len(gen) - tp, len(imp) - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        objectives = {"max_accuracy": (tp + tn) / len(s), "max_f1": 2 * tp / (2 * tp + fp + fn),
                      "youden": tp / len(gen) - fp / len(imp)}
    for name, obj in objectives.items():
        best = int(np.nanargmax(obj))
        c = r.policies[name]
        assert (c.threshold, c.tp, c.fp) == (cand[best], tp[best], fp[best]), name
    best = int(np.nonzero(fp <= 1e-3 * len(imp))[0][-1])
    assert (r.policies["far"].threshold, r.policies["far"].tp) == (cand[best], tp[best])


def test_binned_path_equals_float64_brute_force():
    e, labels = adversarial(2)
    m = VerificationMetrics(exact_limit=10, block_size=100, threads=3, far_targets=(1e-1, 1e-2, 1e-3, 1e-4))
    m.update(e, labels)
    r = m.compute()
    s, y = _reference(e, labels)
    assert not r.exact
    fpr, tpr, _ = roc_curve(y, s)
    assert abs(r.auc - auc(fpr, tpr)) <= r.auc_bound + 1e-12
    _check_tar_and_table(r, s[y], s[~y])


def _check_tar_and_table(r, gen, imp):
    neg = np.sort(imp)[::-1]
    for far, v in r.tar_at_far.items():
        k = int(np.floor(far * len(imp)))
        if k < 1:
            assert not v["supported"] and np.isnan(v["tar"])
            continue
        assert v["tar"] == np.mean(gen > neg[k]), far  # neg[k]: the (k+1)-th highest impostor score
        assert np.sum(imp >= v["threshold"]) <= far * len(imp) < np.sum(imp >= neg[k])
    for t, tp, fp in zip(r.table["threshold"], r.table["tp"], r.table["fp"]):
        assert (tp, fp) == (np.sum(gen >= t), np.sum(imp >= t)), t


def test_float64_scores_decide_pairs_that_float32_gets_wrong():
    rng = np.random.default_rng(3)
    d = 16
    cand = _at_cosine(rng, 3000, d, 0.1)
    q = _grid(cand).reshape(-1, 2, d)
    exact = np.einsum("nd,nd->n", q[:, 0], q[:, 1])
    # float32 rounds scores in [0.1 - 2.2e-9, 0.1) up to float32(0.1) = 0.1000000015 >= 0.1
    pick = (exact < 0.1) & (exact > 0.1 - 2e-9)
    assert pick.sum() >= 20
    e = cand.reshape(-1, 2, d)[pick].reshape(-1, d)
    n = len(e) // 2
    labels = np.repeat(np.arange(n), 2)
    labels[1::2] += n * (np.arange(n) % 2)  # odd pairs are impostors, even pairs genuine
    s, y = _reference(e, labels)
    q32 = _grid(e).astype(np.float32)  # the same embeddings, scored in float32
    s32 = (q32 @ q32.T)[np.triu_indices(len(e), 1)]
    at = 0.1
    tp64, fp64 = np.sum(s[y] >= at), np.sum(s[~y] >= at)
    tp32, fp32 = np.sum(s32[y] >= at), np.sum(s32[~y] >= at)
    assert tp32 > tp64 and fp32 > fp64  # float32 accepts pairs whose score is below 0.1
    for threads in (1, 2):
        r = evaluate_verification(e, labels, threads=threads, table_thresholds=(0.0, at, 0.5))
        assert (r.table["tp"][1], r.table["fp"][1]) == (tp64, fp64)
        binned = evaluate_verification(e, labels, threads=threads, exact_limit=10, table_thresholds=(0.0, at, 0.5))
        assert (binned.table["tp"][1], binned.table["fp"][1]) == (tp64, fp64)


def test_pair_list_scores_are_the_all_pairs_scores():
    e, labels = adversarial(4)
    i, j = np.triu_indices(len(e), 1)
    listed = evaluate_verification(e, labels, pairs=(i, j, labels[i] == labels[j]))
    every = evaluate_verification(e, labels, block_size=100, threads=2)
    for name in ("thresholds", "tp", "fp"):
        np.testing.assert_array_equal(getattr(listed.sweep, name), getattr(every.sweep, name), err_msg=name)
    assert (listed.auc, listed.eer) == (every.auc, every.eer)


def test_threads_share_the_blocks_without_oversubscribing():
    e, labels = adversarial()
    one = VerificationMetrics(block_size=128, threads=1)
    one.update(e, labels)
    r1 = one.compute()
    assert one.last_pass["threads"] == 1
    two = VerificationMetrics(block_size=128, threads=2)
    two.update(e, labels)
    r2 = two.compute()
    n_blocks = sum(two.last_pass["blocks_per_thread"])
    assert n_blocks > 4 and two.last_pass["threads"] == 2  # both threads counted blocks
    assert two.last_pass["blas_threads"] == [1]  # each with a single-threaded BLAS: 2 threads, not 2 x cores
    np.testing.assert_equal(_numbers(r2), _numbers(r1))


def test_block_size_from_free_memory():
    gib = 2**30
    # (0.25 * free / workers - three 2**21-count histograms) / 40 bytes per pair, side rounded to 256
    assert ver._auto_block_size(16 * gib, workers=1) == 2048  # the NumPy cap
    assert ver._auto_block_size(1 * gib, workers=4) == 512  # sqrt(16,777,216 / 40) = 647.6
    assert ver._auto_block_size(64 * 2**20, workers=16) == 256  # the floor
    assert ver._auto_block_size(80 * gib, backend="cupy") == 4096
    e, labels = adversarial()
    m = VerificationMetrics(threads=4, memory_limit=gib)  # as if 1 GiB were free
    m.update(e, labels)
    r = m.compute()
    assert m.block == 512
    np.testing.assert_equal(_numbers(r), _numbers(evaluate_verification(e, labels, block_size=64, threads=1)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(threads=-1), r"threads: expected an integer >= 0 \(0 = one per core\); got -1"),
    (dict(threads=1.5), r"threads: expected an integer >= 0 .*got 1\.5"),
    (dict(threads=True), r"threads: expected an integer >= 0 .*got True"),
    (dict(block_size=0), r"block_size: expected None \(sized from free memory\) or an integer >= 1; got 0"),
    (dict(block_size=256.0), r"block_size: expected None .*got 256\.0"),
    (dict(threads=-2, pairs=([0], [1], [False])), r"threads: expected an integer >= 0"),
])
def test_option_errors(kwargs, match):
    with pytest.raises(EvallibError, match=match):
        evaluate_verification(np.eye(3), [0, 1, 1], **kwargs)


def test_numpy_without_cupy(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cupy", None)  # importing it fails, as where it is not installed
    assert ver.get_backend("auto")[1] == "numpy"
    with pytest.raises(EvallibError, match=r"backend: 'cupy' was asked for but CuPy or a GPU is not available"):
        ver.get_backend("cupy")
