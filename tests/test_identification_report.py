"""Identification displays built from arrays: the CMC and DET curves equal brute-force rates, the section
shows the tables and the slider, the misses gallery shows the right images; the display contract on each."""

import numpy as np
import pytest

from conftest import check_display
from evallib.metrics.identification import evaluate_identification
from evallib.report.identification import CmcDisplay, DetDisplay, IdentificationDisplay, IdentificationMissesDisplay


def searches(seed=0, n_ids=40, n_probes=400, noise=1.2):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_ids, 8))
    labels = rng.integers(0, n_ids, n_probes)
    probes = centers[labels] + noise * rng.normal(size=(n_probes, 8))
    labels = np.where(rng.random(n_probes) < 0.4, labels + 100, labels)  # 40% without a mate
    return probes, labels, centers, np.arange(n_ids)


def test_cmc_from_ranks_equals_brute_force():
    rng = np.random.default_rng(1)
    ranks = np.where(rng.random(500) < 0.2, 0, rng.geometric(0.4, 500))
    disp = CmcDisplay.from_ranks(ranks, max_rank=30)
    mated = ranks[ranks > 0]
    assert disp.n_mated == len(mated)
    np.testing.assert_allclose(disp.cmc, [np.mean(mated <= k) for k in range(1, len(disp.cmc) + 1)], atol=1e-15)
    check_display(disp)
    with pytest.raises(ValueError, match="ranks: expected at least one mated search"):
        CmcDisplay.from_ranks([0, 0])


def test_cmc_and_det_from_embeddings():
    probes, labels, gallery, gl = searches()
    res = evaluate_identification(probes, labels, gallery, gl, threads=1, n_bootstrap=50)
    cmc = CmcDisplay.from_embeddings(probes, labels, gallery, gl, threads=1)
    np.testing.assert_array_equal(cmc.cmc, res.cmc)
    check_display(cmc)
    det = DetDisplay.from_result(res)
    # brute force: FPIR and FNIR at each drawn threshold
    _, _, thr = res.det()
    top = res.candidate_scores[:, 0]
    mated = res.ranks > 0
    for t, a, b in list(zip(thr, det.fpir, det.fnir))[::7]:
        assert a == np.mean(top[~mated] >= t)
        assert b == pytest.approx(np.mean(~((res.ranks[mated] == 1) & (res.mate_scores[mated] >= t))), abs=1e-15)
    check_display(det)


def test_identification_section():
    probes, labels, gallery, gl = searches(2, n_probes=3000)
    disp = IdentificationDisplay.from_embeddings(probes, labels, gallery, gl, n_bootstrap=50, threads=1)
    html = check_display(disp)[1]
    assert "FNIR at FPIR (mate at rank &le; 1 and" in html and "rank-1 accuracy" in html and "evallib-slider" in html
    assert f"{disp.result.n_nonmated:,} non-mated" in html
    assert disp.slider.sweep() is disp.result.sweep
    closed = IdentificationDisplay.from_result(evaluate_identification(gallery + 0.01, gl, gallery, gl, threads=1))
    html = check_display(closed)[1]
    assert closed.slider is None and "closed set" in html and "evallib-slider" not in html


def test_misses_gallery_shows_probe_wrong_and_mate_images():
    probes, labels, gallery, gl = searches(3, noise=2.0)
    res = evaluate_identification(probes, labels, gallery, gl, threads=1)
    # each image is filled with its own row number, so a tile says which image it is
    probe_images = np.repeat(np.arange(len(probes), dtype=float)[:, None, None], 4, axis=1).repeat(4, axis=2)
    gallery_images = lambda idx: [np.full((4, 4), 1000.0 + i) for i in idx]  # noqa: E731
    disp = IdentificationMissesDisplay.from_result(res, probe_images=probe_images, gallery_images=gallery_images, k=5)
    misses = res.hardest_misses(5)
    assert len(disp.tiles) == 5
    for row, m in zip(disp.tiles, misses):
        assert row[0][0][0, 0] == m["probe"] and row[1][0][0, 0] == 1000 + m["wrong"]
        assert row[2][0][0, 0] == 1000 + m["mate"] and gl[m["mate"]] == labels[m["probe"]]
        assert f"rank {m['rank']}" in row[2][1] and str(m["wrong_label"]) in row[1][1]
    disp.plot()
    assert "<img" in disp._repr_html_()
    none = IdentificationMissesDisplay.from_result(
        evaluate_identification(gallery, gl, gallery, gl, threads=1), probe_images=probe_images,
        gallery_images=gallery_images)
    assert none.tiles == [] and "No mated search was missed" in none._repr_html_()


def test_template_pair_gallery_picks_the_hardest_pairs():
    from evallib.metrics.templates import pool_templates, template_pair_scores
    from evallib.report.identification import TemplatePairGalleryDisplay

    rng = np.random.default_rng(5)
    subj = np.repeat(np.arange(10), 3)  # 30 templates of 10 subjects, 2 images each
    centers = rng.normal(size=(10, 8))
    feats = centers[np.repeat(subj, 2)] + 1.5 * rng.normal(size=(60, 8))
    tids = np.repeat(np.arange(30) * 10 + 7, 2)
    tf = pool_templates(feats, tids)
    a, b = np.triu_indices(30, 1)
    t1, t2, same = tf.templates[a], tf.templates[b], subj[a] == subj[b]
    images = {t: [np.full((3, 3), t / 1000.0), np.full((3, 3), t / 1000.0 + 1e-4)] for t in tf.templates.tolist()}
    disp = TemplatePairGalleryDisplay.from_templates(tf, t1, t2, same, template_images=images.__getitem__, k=3)
    s = template_pair_scores(tf, t1, t2)
    low = np.argsort(np.where(same, s, np.inf), kind="stable")[:3]
    high = np.argsort(np.where(~same, -s, np.inf), kind="stable")[:3]
    assert len(disp.tiles) == 6
    for row, i in zip(disp.tiles, np.r_[low, high]):
        assert len(row) == 4 and row[0][0][0, 0] == t1[i] / 1000.0 and row[2][0][0, 0] == t2[i] / 1000.0
        assert f"{s[i]:.3f}" in row[0][1]
    assert disp.tiles[0][0][1].startswith("genuine ") and disp.tiles[3][0][1].startswith("impostor ")
    disp.plot()
    assert "<img" in disp._repr_html_()
