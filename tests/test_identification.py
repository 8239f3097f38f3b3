"""1:N identification equals a brute-force search over the full score matrix (ties included), for every
block size, thread count and on a Dask client; its identity-level intervals cover a known rank-1 accuracy."""

import numpy as np
import pytest

from evallib.errors import EvallibError
from evallib.metrics.identification import (
    FPIR_TARGETS,
    bootstrap_identification,
    evaluate_identification,
)
from evallib.metrics.verification import normalize_embeddings


# -- an independent brute force: the whole score matrix, argsort per probe
def brute(probes, probe_labels, gallery, gallery_labels, *, ties="pessimistic", fnir_rank=1, n_cand=5,
          fpir_targets=FPIR_TARGETS):
    p = normalize_embeddings(probes).astype(np.float64)
    g = normalize_embeddings(gallery).astype(np.float64)
    s = p @ g.T
    ids = np.unique(gallery_labels)
    ident = np.stack([s[:, gallery_labels == i].max(axis=1) for i in ids], axis=1)  # (n_probes, n_ids)
    rows = np.arange(len(probes))[:, None]
    # candidate lists: argsort of each row, highest first, lower identity first on ties
    order = np.lexsort((np.broadcast_to(np.arange(len(ids)), ident.shape), -ident))[:, :n_cand]
    cand, cand_s = ids[order], ident[rows, order]
    cand_row = np.stack([np.argmax((gallery_labels[None, :] == cand[:, c, None]) & (s == cand_s[:, c, None]), axis=1)
                         for c in range(order.shape[1])], axis=1)
    is_mate = np.asarray(probe_labels)[:, None] == ids[None, :]
    mated = is_mate.any(axis=1)
    # rank: position of the mate in the argsort; pessimistic puts it after equal scores, optimistic before
    tie_key = is_mate if ties == "pessimistic" else ~is_mate
    pos = np.lexsort((tie_key, -ident))
    ranks = np.where(mated, np.argmax(is_mate[rows, pos], axis=1) + 1, 0)
    mate_score = np.where(mated, np.where(is_mate, ident, -np.inf).max(axis=1), np.nan)
    top = ident.max(axis=1)
    thresholds = np.r_[np.unique(ident), np.inf]
    nm = np.sort(top[~mated])
    fpir = (len(nm) - np.searchsorted(nm, thresholds, side="left")) / len(nm) if len(nm) else None
    hits = np.sort(mate_score[mated & (ranks <= fnir_rank)])
    fnir = 1 - (len(hits) - np.searchsorted(hits, thresholds, side="left")) / max(1, mated.sum())
    table = {}
    for f in fpir_targets:
        if fpir is None or f * (~mated).sum() < 1 or not mated.any():
            table[f] = np.nan
            continue
        t = thresholds[fpir <= f].min()  # the lowest threshold with FPIR <= f
        table[f] = fnir[thresholds == t][0]
    return {"ranks": ranks, "mate_score": mate_score, "cand": cand, "cand_s": cand_s, "cand_row": cand_row,
            "fnir": table, "thresholds": thresholds, "fpir_curve": fpir, "fnir_curve": fnir}


def tied_data(seed, *, n_ids=12, dim=4, n_probes=120, multi=True, open_set=True):
    """Small integer embeddings: many exactly equal scores, several gallery samples per identity."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-1, 2, size=(n_ids, dim)).astype(float)
    base[np.all(base == 0, axis=1), 0] = 1.0
    gallery_labels = np.arange(n_ids)
    gallery = base.copy()
    if multi:
        extra = rng.integers(0, n_ids, n_ids)
        gallery = np.r_[gallery, rng.integers(-1, 2, size=(n_ids, dim)) + 0.0]
        gallery[np.all(gallery == 0, axis=1), 1] = 1.0
        gallery_labels = np.r_[gallery_labels, extra]
        perm = rng.permutation(len(gallery))
        gallery, gallery_labels = gallery[perm], gallery_labels[perm]
    labels = rng.integers(0, n_ids + (8 if open_set else 0), n_probes)
    probes = rng.integers(-1, 2, size=(n_probes, dim)).astype(float)
    own = rng.random(n_probes) < 0.5
    probes[own] = base[labels[own] % n_ids]  # exact copies of a gallery sample: exact ties
    probes[np.all(probes == 0, axis=1), 2] = 1.0
    return probes, labels, gallery, gallery_labels


def continuous_data(seed, *, n_ids=30, per=2, dim=8, n_probes=200, noise=1.0, open_frac=0.3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_ids, dim))
    gl = np.repeat(np.arange(n_ids), per)
    gallery = centers[gl] + 0.5 * rng.normal(size=(len(gl), dim))
    labels = rng.integers(0, n_ids, n_probes)
    probes = centers[labels] + noise * rng.normal(size=(n_probes, dim))
    labels = np.where(rng.random(n_probes) < open_frac, labels + 1000, labels)  # no mate in the gallery
    return probes, labels, gallery, gl


def assert_matches(res, ref, *, fpir_targets=FPIR_TARGETS):
    np.testing.assert_array_equal(res.ranks, ref["ranks"])
    np.testing.assert_array_equal(res.mate_scores, ref["mate_score"])
    np.testing.assert_array_equal(res.candidate_labels, ref["cand"])
    np.testing.assert_array_equal(res.candidate_scores, ref["cand_s"])
    np.testing.assert_array_equal(res.candidate_index, ref["cand_row"])
    mated = ref["ranks"] > 0
    for k in (1, 5, 10):
        assert res.rank_accuracy[k] == np.mean(ref["ranks"][mated] <= k)
    cmc = [np.mean(ref["ranks"][mated] <= k) for k in range(1, len(res.cmc) + 1)]
    np.testing.assert_allclose(res.cmc, cmc, rtol=0, atol=1e-15)
    for f in fpir_targets:
        np.testing.assert_allclose(res.fnir_at_fpir[f]["fnir"], ref["fnir"][f], rtol=0, atol=1e-15)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
@pytest.mark.parametrize("multi", [False, True])
def test_ties_match_brute_force(seed, ties, multi):
    probes, labels, gallery, gl = tied_data(seed, multi=multi)
    ref = brute(probes, labels, gallery, gl, ties=ties, fnir_rank=2, fpir_targets=(0.05, 0.2, 0.5))
    res = evaluate_identification(probes, labels, gallery, gl, ties=ties, fnir_rank=2, n_candidates=5,
                                  fpir_targets=(0.05, 0.2, 0.5), block_size=3, threads=1)
    assert_matches(res, ref, fpir_targets=(0.05, 0.2, 0.5))
    assert (ref["ranks"][ref["ranks"] > 0] > 1).any() and np.isfinite(list(ref["fnir"].values())).all()


def test_ties_make_the_two_conventions_differ():
    probes, labels, gallery, gl = tied_data(0, multi=False)
    pess = evaluate_identification(probes, labels, gallery, gl, threads=1)
    opt = evaluate_identification(probes, labels, gallery, gl, ties="optimistic", threads=1)
    assert (opt.ranks <= pess.ranks).all() and (opt.ranks < pess.ranks).any()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fnir_rank", [1, 5])
def test_continuous_scores_match_brute_force(seed, fnir_rank):
    probes, labels, gallery, gl = continuous_data(seed, n_probes=3000, open_frac=0.4)
    ref = brute(probes, labels, gallery, gl, fnir_rank=fnir_rank)
    res = evaluate_identification(probes, labels, gallery, gl, fnir_rank=fnir_rank, n_candidates=5, threads=2)
    assert_matches(res, ref)
    assert res.n_mated + res.n_nonmated == 3000 and res.n_gallery_identities == 30
    # 1e-3 is supported by about 1,200 non-mated searches, and FNIR at rank R, T = -inf is 1 - CMC(R)
    assert res.fnir_at_fpir[1e-3]["supported"]
    fpir, fnir = res.fnir_at([-np.inf])
    assert fpir[0] == 1.0 and fnir[0] == pytest.approx(1 - res.cmc[fnir_rank - 1], abs=1e-15)


def test_det_curve_matches_brute_force():
    probes, labels, gallery, gl = continuous_data(5, n_probes=400)
    ref = brute(probes, labels, gallery, gl)
    res = evaluate_identification(probes, labels, gallery, gl, threads=1)
    fpir, fnir, thr = res.det()
    assert np.all(np.diff(thr) < 0)
    for t, a, b in zip(thr, fpir, fnir):
        k = np.flatnonzero(ref["thresholds"] == t)
        assert len(k) == 1 and a == ref["fpir_curve"][k[0]] and b == pytest.approx(ref["fnir_curve"][k[0]], abs=1e-15)
    # every threshold where either rate changes is on the curve
    f_ref = np.c_[ref["fpir_curve"], ref["fnir_curve"]]
    changes = ref["thresholds"][np.r_[np.any(f_ref[1:] != f_ref[:-1], axis=1), False]]
    assert set(changes.tolist()) <= set(thr.tolist())


def result_arrays(res):
    return (res.ranks, res.mate_scores, res.mate_index, res.candidate_scores, res.candidate_labels, res.candidate_index,
            res.cmc, res.sweep.thresholds, res.sweep.tp, res.sweep.fp)


def test_block_sizes_and_threads_give_identical_results():
    probes, labels, gallery, gl = continuous_data(1, n_ids=60, per=3, dim=16, n_probes=200)
    ref = evaluate_identification(probes, labels, gallery, gl, block_size=4096, threads=1, n_bootstrap=50)
    for block, threads in [(3, 1), (7, 3), (64, 4), (None, 0)]:
        res = evaluate_identification(probes, labels, gallery, gl, block_size=block, threads=threads,
                                      n_bootstrap=50)
        for a, b in zip(result_arrays(ref), result_arrays(res)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_equal(res.fnir_at_fpir, ref.fnir_at_fpir)
        assert res.intervals == ref.intervals
    # probe order is irrelevant: the per-probe arrays follow the permutation
    perm = np.random.default_rng(0).permutation(len(probes))
    res = evaluate_identification(probes[perm], labels[perm], gallery, gl, block_size=32, threads=2)
    np.testing.assert_array_equal(res.ranks, ref.ranks[perm])
    np.testing.assert_array_equal(res.candidate_index, ref.candidate_index[perm])
    np.testing.assert_equal(res.fnir_at_fpir, ref.fnir_at_fpir)


def test_dask_client_gives_identical_results():
    distributed = pytest.importorskip("distributed")  # in the dev extra
    probes, labels, gallery, gl = continuous_data(2, n_ids=80, per=2, dim=16, n_probes=400)
    local = evaluate_identification(probes, labels, gallery, gl, block_size=16, threads=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        for block in (16, 50, 16):  # the same gallery scattered again as an earlier call releases its copy
            res = evaluate_identification(probes, labels, gallery, gl, block_size=block, client=client)
            for a, b in zip(result_arrays(local), result_arrays(res)):
                np.testing.assert_array_equal(a, b)
            np.testing.assert_equal(res.fnir_at_fpir, local.fnir_at_fpir)
            assert res.rank_accuracy == local.rank_accuracy
        with pytest.raises(EvallibError, match="backend: expected auto or numpy with a client"):
            evaluate_identification(probes, labels, gallery, gl, client=client, backend="cupy")


def test_closed_and_no_mate_sets_are_nan_with_notes():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(10, 4))
    closed = evaluate_identification(g + 0.01, np.arange(10), g, np.arange(10), threads=1)
    assert closed.rank_accuracy[1] == 1.0 and closed.n_nonmated == 0
    assert all(np.isnan(v["fnir"]) and not v["supported"] for v in closed.fnir_at_fpir.values())
    assert any("closed set" in n for n in closed.notes)
    none = evaluate_identification(g, np.arange(10) + 50, g, np.arange(10), threads=1)
    assert np.isnan(none.rank_accuracy[1]) and np.isnan(none.cmc).all() and none.n_mated == 0
    assert any("no probe has a mate" in n for n in none.notes)
    # FPIR 1e-3 needs 1,000 non-mated searches
    opened = evaluate_identification(g, np.r_[np.arange(5), np.arange(5) + 50], g, np.arange(10), threads=1)
    assert not opened.fnir_at_fpir[1e-3]["supported"] and opened.fnir_at_fpir[0.1]["supported"] is False
    assert any("not supported by 5 non-mated" in n for n in opened.notes)
    d = opened.to_dict()
    assert d["n_mated"] == 5 and d["rank_accuracy"]["1"] == 1.0 and set(d["fnir_at_fpir"]) == {"0.001", "0.01", "0.1"}


def test_string_labels_and_candidate_labels():
    rng = np.random.default_rng(3)
    g = rng.normal(size=(6, 5))
    names = np.array(["ann", "bob", "cy", "dee", "eve", "fay"])
    res = evaluate_identification(g[[2, 0]] + 0.01, ["cy", "zed"], g, names, n_candidates=3, threads=1)
    assert res.ranks.tolist() == [1, 0] and res.candidate_labels[0, 0] == "cy"
    assert res.candidate_labels[1, 0] == "ann" and res.candidate_index[1, 0] == 0
    assert res.candidate_scores.shape == (2, 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"ties": "random"}, "ties: expected one of pessimistic, optimistic; got 'random'"),
    ({"ranks": (0, 5)}, r"ranks: expected positive integers; got \(0, 5\)"),
    ({"fnir_rank": 0}, "fnir_rank: expected an integer >= 1; got 0"),
    ({"n_candidates": 2.5}, "n_candidates: expected an integer >= 1; got 2.5"),
    ({"fpir_targets": (0.0,)}, r"fpir_targets: expected values in \(0, 1\); got 0.0"),
    ({"block_size": 0}, "block_size: expected None"),
    ({"threads": -1}, "threads: expected an integer >= 0"),
    ({"backend": "tpu"}, "backend: expected one of auto, numpy, cupy; got 'tpu'"),
])
def test_bad_options(kwargs, match):
    g = np.eye(3)
    with pytest.raises(EvallibError, match=match):
        evaluate_identification(g, [0, 1, 2], g, [0, 1, 2], **kwargs)


def test_bad_inputs():
    g = np.eye(3)
    with pytest.raises(EvallibError, match="probes: expected dimension 3 like gallery; got 2"):
        evaluate_identification(np.ones((2, 2)), [0, 1], g, [0, 1, 2])
    with pytest.raises(EvallibError, match="gallery_labels: expected 3 labels, one per gallery sample; got 2"):
        evaluate_identification(g, [0, 1, 2], g, [0, 1])
    with pytest.raises(EvallibError, match="probe_labels: expected 3 labels, one per probe; got 4"):
        evaluate_identification(g, [0, 1, 2, 3], g, [0, 1, 2])
    with pytest.raises(EvallibError, match="gallery: expected non-zero vectors"):
        evaluate_identification(g, [0, 1, 2], np.zeros((3, 3)), [0, 1, 2])
    with pytest.raises(EvallibError, match="probes: expected at least one embedding; got none"):
        evaluate_identification(np.zeros((0, 3)), [], g, [0, 1, 2])
    with pytest.raises(EvallibError, match="gallery: expected at least one embedding; got none"):
        evaluate_identification(g, [0, 1, 2], np.zeros((0, 3)), [])
    with pytest.raises(TypeError, match="client: expected a dask.distributed.Client or None; got str"):
        evaluate_identification(g, [0, 1, 2], g, [0, 1, 2], client="localhost:8786")


# -- intervals
def known_rank1_model(rng, *, n_ids=40, per=10, a=0.5, b=1.5):
    """Gallery: one orthogonal vector per identity. Each identity misses rank 1 with its own probability
    q ~ Beta(a, b) (searches of one identity are correlated); a miss is a probe closer to another identity.
    The population rank-1 accuracy is 1 - a / (a + b)."""
    gallery = np.eye(n_ids)
    q = rng.beta(a, b, n_ids)
    labels = np.repeat(np.arange(n_ids), per)
    miss = rng.random(len(labels)) < q[labels]
    other = (labels + rng.integers(1, n_ids, len(labels))) % n_ids
    probes = 0.5 * gallery[labels] + 0.05 * rng.random((len(labels), n_ids))
    probes[miss] += gallery[other[miss]]
    return probes, labels, gallery, np.arange(n_ids)


def test_identity_bootstrap_covers_the_known_rank1():
    truth = 1 - 0.5 / 2.0
    covered, probe_level = [], []
    for seed in range(150):
        rng = np.random.default_rng(seed)
        probes, labels, gallery, gl = known_rank1_model(rng)
        res = evaluate_identification(probes, labels, gallery, gl, threads=1, n_bootstrap=200, seed=seed)
        lo, hi = res.intervals["rank_1"]
        covered.append(lo <= truth <= hi)
        # the same bootstrap with every probe its own identity ignores the within-identity correlation
        pl = bootstrap_identification(res.ranks, np.arange(len(res.ranks)), res.mate_scores,
                                      res.candidate_scores[:, 0], ks=(1,), n_boot=200, seed=seed)["rank_1"]
        probe_level.append(pl[0] <= truth <= pl[1])
    assert 0.89 <= np.mean(covered) <= 0.99
    assert np.mean(probe_level) < np.mean(covered) - 0.05


def test_bootstrap_fnir_interval_contains_estimate_and_resamples_identities():
    probes, labels, gallery, gl = continuous_data(4, n_ids=40, per=1, dim=8, n_probes=3000, noise=0.8,
                                                  open_frac=0.5)
    res = evaluate_identification(probes, labels, gallery, gl, threads=1, n_bootstrap=300, seed=1)
    for f in (1e-2, 1e-1):
        lo, hi = res.intervals[f"fnir_at_fpir_{f:g}"]
        assert lo <= res.fnir_at_fpir[f]["fnir"] <= hi and hi - lo > 0
    assert "fnir_at_fpir_0.001" not in res.intervals and "0.001" in res.intervals["note"]
    assert "40 with a gallery mate and 40 without" in res.intervals["method"]
    again = evaluate_identification(probes, labels, gallery, gl, threads=1, n_bootstrap=300, seed=1)
    assert again.intervals == res.intervals


def test_a_bootstrap_replicate_equals_the_metrics_of_the_resampled_searches():
    """A replicate (weights from drawn identities) equals evaluating the searches of the drawn identities,
    each repeated as often as drawn: rank-k accuracy and FNIR at FPIR at the replicate's own threshold."""
    probes, labels, gallery, gl = continuous_data(6, n_ids=20, per=1, dim=6, n_probes=600, noise=0.8,
                                                  open_frac=0.5)
    res = evaluate_identification(probes, labels, gallery, gl, threads=1)
    for seed in range(5):
        got = bootstrap_identification(res.ranks, labels, res.mate_scores, res.candidate_scores[:, 0],
                                       fpir_targets=(0.05, 0.2), n_boot=1, seed=seed)
        # the same draws: mated identities, then non-mated ones, each sorted
        rng = np.random.default_rng(seed)
        mated = res.ranks > 0
        m_ids, n_ids = np.unique(labels[mated]), np.unique(labels[~mated])
        drawn = np.r_[m_ids[rng.integers(0, len(m_ids), len(m_ids))], n_ids[rng.integers(0, len(n_ids), len(n_ids))]]
        idx = np.concatenate([np.flatnonzero(labels == i) for i in drawn])
        again = evaluate_identification(probes[idx], labels[idx], gallery, gl, threads=1, fpir_targets=(0.05, 0.2))
        for k in (1, 5):
            assert got[f"rank_{k}"] == pytest.approx([again.rank_accuracy[k]] * 2, abs=1e-12)
        for f in (0.05, 0.2):
            assert got[f"fnir_at_fpir_{f:g}"] == pytest.approx([again.fnir_at_fpir[f]["fnir"]] * 2, abs=1e-12)


def test_segment_maxima_without_reduceat_equal_reduceat():
    """The GPU path's identity maxima (``maximum.at``, as CuPy has no ``reduceat``) equal NumPy's, run on NumPy."""
    from evallib.metrics.identification import _segment_max, _segment_max_at

    rng = np.random.default_rng(0)
    s = rng.integers(-3, 4, size=(7, 20)).astype(float)
    starts = np.array([0, 1, 4, 5, 11, 19])
    np.testing.assert_array_equal(_segment_max_at(np, s, starts), _segment_max(np, s, starts))
    np.testing.assert_array_equal(_segment_max(np, s, starts)[:, 2], s[:, 4:5].max(axis=1))


def test_array_module_path_equals_numpy(monkeypatch):
    """The path taken for CuPy (blocks one after another, counts by ``sum``, maxima by ``maximum.at``) run with
    NumPy standing in for CuPy gives the NumPy backend's numbers."""
    import types

    from evallib.metrics import identification as ident

    fake = types.ModuleType("fake_cupy")
    fake.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    monkeypatch.setattr(ident, "get_backend", lambda backend="auto": (fake, "cupy"))
    probes, labels, gallery, gl = continuous_data(7, n_ids=40, per=3, dim=8, n_probes=300)
    got = evaluate_identification(probes, labels, gallery, gl, block_size=50, backend="cupy")
    monkeypatch.undo()
    ref = evaluate_identification(probes, labels, gallery, gl, block_size=4096, threads=1)
    assert got.backend == "cupy"
    for a, b in zip(result_arrays(ref), result_arrays(got)):
        np.testing.assert_array_equal(a, b)


def test_split_by_role():
    from evallib.metrics.identification import split_by_role

    probe, gallery = split_by_role(np.array(["gallery", "probe", "gallery", "probe", "probe"], dtype=object))
    assert probe.tolist() == [1, 3, 4] and gallery.tolist() == [0, 2]
    with pytest.raises(EvallibError,
                       match=r"role: expected one of gallery, probe; got .Probe. at row 1 \(1 such rows\)"):
        split_by_role(["gallery", "Probe"])
    with pytest.raises(EvallibError, match="role: expected at least one gallery sample; got none"):
        split_by_role(["probe", "probe"])


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_sparse_and_dense_block_reads_agree(monkeypatch, share):
    """Each block is read sparsely (one pass for the rank and the candidates) or densely; both equal the brute force."""
    from evallib.metrics import identification as ident

    monkeypatch.setattr(ident, "_SPARSE_SHARE", share)
    for seed, noise in ((8, 0.3), (9, 2.0)):
        probes, labels, gallery, gl = continuous_data(seed, n_ids=50, per=2, dim=8, n_probes=300, noise=noise)
        for ties in ("pessimistic", "optimistic"):
            ref = brute(probes, labels, gallery, gl, ties=ties)
            res = evaluate_identification(probes, labels, gallery, gl, ties=ties, n_candidates=5, block_size=16,
                                          threads=1)
            assert_matches(res, ref)


@pytest.mark.slow  # worker processes
def test_dask_worker_processes_give_identical_results(monkeypatch):
    distributed = pytest.importorskip("distributed")
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])  # the workers import this checkout's evallib
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    probes, labels, gallery, gl = continuous_data(3, n_ids=60, per=2, dim=16, n_probes=300)
    local = evaluate_identification(probes, labels, gallery, gl, block_size=32, threads=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as lc, distributed.Client(lc) as client:
        res = evaluate_identification(probes, labels, gallery, gl, block_size=32, client=client)
    for a, b in zip(result_arrays(local), result_arrays(res)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_equal(res.fnir_at_fpir, local.fnir_at_fpir)


def test_mate_index_and_hardest_misses_match_brute_force():
    probes, labels, gallery, gl = continuous_data(10, n_ids=30, per=3, dim=8, n_probes=200, noise=1.2)
    res = evaluate_identification(probes, labels, gallery, gl, threads=1, n_candidates=3)
    s = normalize_embeddings(probes).astype(np.float64) @ normalize_embeddings(gallery).astype(np.float64).T
    for i in range(len(labels)):
        if labels[i] in gl:
            mate_rows = np.flatnonzero(gl == labels[i])
            best = mate_rows[np.argmax(s[i, mate_rows])]  # argmax: the first of equal ones
            assert res.mate_index[i] == best and res.mate_scores[i] == s[i, best]
        else:
            assert res.mate_index[i] == -1
    misses = res.hardest_misses(k=5)
    margins = []
    for i in np.flatnonzero(res.ranks > 1):
        non_mate = gl != labels[i]
        wrong = np.flatnonzero(non_mate)[np.argmax(s[i, non_mate])]  # the best non-mate sample
        margins.append((s[i, wrong] - res.mate_scores[i], i, wrong))
    margins.sort(key=lambda t: (-t[0], t[1]))
    assert len(misses) == 5 and [m["probe"] for m in misses] == [t[1] for t in margins[:5]]
    assert [m["wrong"] for m in misses] == [t[2] for t in margins[:5]]
    assert all(m["wrong_score"] >= m["mate_score"] and gl[m["mate"]] == labels[m["probe"]] for m in misses)
