import numpy as np
import pytest
from scipy.stats import binomtest, fisher_exact
from sklearn.metrics import accuracy_score, f1_score, top_k_accuracy_score
from threadpoolctl import threadpool_limits

from conftest import check_display
from evallib.errors import EvallibError
from evallib.metrics import slices as slices_module
from evallib.metrics.bootstrap import _weights, mcnemar
from evallib.metrics.slices import (
    compare_by_slice,
    discover_weak_slices,
    fisher_exact_tests,
    mcnemar_tests,
    metrics_by_slice,
    newcombe_interval,
    paired_difference_interval,
    slice_mask,
    verification_by_group,
)


def _slice_data(seed, *, plant, n=2000, weak=0.6, strong=0.9, n_classes=3):
    """20 scanners (5% of the images each), 4 sites, 3 light levels; scanner S00 is weak when planted."""
    rng = np.random.default_rng(seed)
    scanner = np.array([f"S{i:02d}" for i in range(20)])[rng.permutation(np.arange(n) % 20)]
    site = rng.choice(list("abcd"), n)
    light = rng.choice(["dark", "mid", "bright"], n)
    p = np.where(plant & (scanner == "S00"), weak, strong)
    correct = rng.random(n) < p
    y = rng.integers(0, n_classes, n)
    pred = np.where(correct, y, (y + 1 + rng.integers(0, n_classes - 1, n)) % n_classes)
    return y, pred, {"scanner": scanner, "site": site, "light": light}


# --- values against references -------------------------------------------------------------------

def test_per_slice_metrics_equal_scikit_learn_on_the_subset():
    rng = np.random.default_rng(0)
    n, c = 600, 8
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[y] * rng.random((n, 1))
    slices = {"camera": rng.choice(["A", "B", "C"], n), "site": rng.choice(["north", "south"], n)}
    res = metrics_by_slice(y, logits, slices, min_slice_size=10)
    pred = logits.argmax(1)
    assert len(res.rows) == 3 + 2 + 6
    for r in res.rows:
        m = slice_mask(slices, r)
        assert r.n == m.sum() and r.rest_n == n - m.sum()
        assert r.accuracy == pytest.approx(accuracy_score(y[m], pred[m]), abs=1e-12)
        assert r.macro_f1 == pytest.approx(f1_score(y[m], pred[m], average="macro"), abs=1e-12)
        assert r.top_k_accuracy == pytest.approx(top_k_accuracy_score(y[m], logits[m], k=5, labels=range(c)))
        assert r.rest_accuracy == pytest.approx(accuracy_score(y[~m], pred[~m]))
        assert r.gap == pytest.approx(r.accuracy - r.rest_accuracy)
        ci = binomtest(int((y[m] == pred[m]).sum()), int(m.sum())).proportion_ci(method="wilson")
        assert r.accuracy_interval == pytest.approx((ci.low, ci.high), abs=1e-9)
        k_rest = int((y[~m] == pred[~m]).sum())
        ref_p = fisher_exact([[int((y[m] == pred[m]).sum()), int((y[m] != pred[m]).sum())],
                              [k_rest, int((~m).sum()) - k_rest]]).pvalue
        assert r.p_value == pytest.approx(ref_p, rel=1e-9)
    assert res.accuracy == pytest.approx(accuracy_score(y, pred))
    assert res.macro_f1 == pytest.approx(f1_score(y, pred, average="macro"))


def test_scores_may_be_predicted_labels_and_order_does_not_matter():
    y, pred, slices = _slice_data(1, plant=True, n=600)
    a = metrics_by_slice(y, pred, slices)
    perm = np.random.default_rng(2).permutation(len(y))
    b = metrics_by_slice(y[perm], pred[perm], {k: v[perm] for k, v in slices.items()})
    def key(res):
        return [(r.name, r.n, r.accuracy, np.nan_to_num(r.p_value, nan=-1.0)) for r in res.rows]
    assert key(a) == key(b)
    assert np.isnan(a.rows[0].top_k_accuracy)


def test_vectorised_fisher_matches_scipy_in_one_chunk_or_many(monkeypatch):
    rng = np.random.default_rng(3)
    n1, n2 = rng.integers(1, 200, 300), rng.integers(1, 2000, 300)
    k1, k2 = rng.binomial(n1, 0.8), rng.binomial(n2, 0.85)
    for alternative in ("two-sided", "less"):
        ref = [fisher_exact([[a, b - a], [c, d - c]], alternative=alternative).pvalue
               for a, b, c, d in zip(k1, n1, k2, n2)]
        np.testing.assert_allclose(fisher_exact_tests(k1, n1, k2, n2, alternative=alternative), ref, rtol=1e-9)
    assert np.isnan(fisher_exact_tests([0], [0], [3], [5])[0])
    whole = fisher_exact_tests(k1, n1, k2, n2)
    monkeypatch.setattr(slices_module, "_CHUNK", 100)  # a few tables per chunk, and tables larger than one
    np.testing.assert_array_equal(fisher_exact_tests(k1, n1, k2, n2), whole)


def test_two_proportion_test_equals_the_chi_square_test_without_correction():
    from scipy.stats import chi2_contingency

    y, pred, slices = _slice_data(17, plant=True, n=1000)
    res = metrics_by_slice(y, pred, slices, test="two_proportion", intersections=False)
    for r in res.rows:
        k, k_rest = round(r.accuracy * r.n), round(r.rest_accuracy * r.rest_n)
        table = [[k, r.n - k], [k_rest, r.rest_n - k_rest]]
        assert r.p_value == pytest.approx(chi2_contingency(table, correction=False).pvalue, rel=1e-8)


def test_newcombe_interval_reproduces_the_papers_example():
    # Newcombe (1998), Table II, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339
    lo, hi = newcombe_interval(56, 70, 48, 80)
    assert (round(float(lo), 4), round(float(hi), 4)) == (0.0524, 0.3339)


def test_macro_f1_interval_is_the_delta_method_and_agrees_with_a_brute_force_bootstrap():
    rng = np.random.default_rng(4)
    n = 1200
    y = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < 0.75, y, rng.integers(0, 3, n))
    slices = {"all_one": np.full(n, "x"), "half": np.where(np.arange(n) < 600, "a", "b")}
    res = metrics_by_slice(y, pred, slices, min_slice_size=10)
    row = res.row("half=a")
    ys, ps = y[:600], pred[:600]

    def macro_f1(t, p):  # the definition, over the labels present in either (checked against scikit-learn)
        labels = np.union1d(t, p)
        return np.mean([2 * np.sum((t == c) & (p == c)) / (np.sum(t == c) + np.sum(p == c)) for c in labels])

    assert macro_f1(ys, ps) == pytest.approx(f1_score(ys, ps, average="macro"))
    assert row.macro_f1 == pytest.approx(f1_score(ys, ps, average="macro"), abs=1e-12)

    # the delta method from its definition: the gradient of macro-F1 in the cell probabilities by central
    # differences, and the multinomial covariance (diag(p) - p p') / n
    p = np.bincount(ys * 3 + ps, minlength=9) / 600

    def f1_of(q):
        m = q.reshape(3, 3)
        return np.mean(2 * np.diag(m) / (m.sum(0) + m.sum(1)))

    eps = 1e-7
    grad = np.array([(f1_of(p + eps * e) - f1_of(p - eps * e)) / (2 * eps) for e in np.eye(9)])
    se = np.sqrt(grad @ (np.diag(p) - np.outer(p, p)) @ grad / 600)
    half = 1.959963984540054 * se
    np.testing.assert_allclose(row.macro_f1_interval, (row.macro_f1 - half, row.macro_f1 + half), atol=1e-6)
    # and a bootstrap of the slice's images, scored by scikit-learn, spreads as much
    idx = rng.integers(0, 600, (1000, 600))
    reps = np.array([macro_f1(ys[i], ps[i]) for i in idx])
    assert reps.std() == pytest.approx(se, rel=0.1)
    # the whole data set is one slice: its rest is empty, so it is shown and not tested
    whole = res.row("all_one=x")
    assert not whole.tested and "nothing to compare" in whole.note and np.isnan(whole.p_value)


def test_a_three_image_slice_has_its_own_interval_and_group_resamples_keep_it():
    rng = np.random.default_rng(5)
    counts = _weights(rng, 3, 2000)
    assert (counts.sum(axis=1) == 3).all()
    # a bootstrap over 1,000 images loses those 3 in about exp(-3) = 5% of resamples (fairlearn#1441)
    lost = np.mean([not np.isin(rng.integers(0, 1000, 1000), [0, 1, 2]).any() for _ in range(2000)])
    assert 0.03 < lost < 0.08
    n = 500
    yy = rng.integers(0, 2, n)
    yy[:3] = [0, 1, 1]
    pp = yy.copy()
    pp[:3] = [0, 1, 0]
    rare = np.where(np.arange(n) < 3, "rare", "common")
    row = metrics_by_slice(yy, pp, {"g": rare}, min_slice_size=3).row("g=rare")
    assert row.n == 3 and row.macro_f1 == pytest.approx(f1_score([0, 1, 1], [0, 1, 0], average="macro"))
    assert 0 <= row.macro_f1_interval[0] < row.macro_f1 < row.macro_f1_interval[1] <= 1


def test_slices_with_the_same_images_are_reported_once():
    rng = np.random.default_rng(6)
    n = 900
    camera = rng.choice(["A", "B", "C"], n)
    site = np.where(camera == "A", "north", rng.choice(["north", "south"], n))  # camera A is only at north
    lens = np.where(camera == "C", "wide", "normal")  # splits exactly like camera C / not C
    y, pred = rng.integers(0, 2, n), rng.integers(0, 2, n)
    res = metrics_by_slice(y, pred, {"camera": camera, "site": site, "lens": lens})
    names = [r.name for r in res.rows]
    assert "camera=A & site=north" not in names and "camera=A & site=north" in res.row("camera=A").same_as
    assert "lens=wide" not in names and "lens=wide" in res.row("camera=C").same_as
    assert "camera=C & lens=wide" in res.row("camera=C").same_as
    assert res.row("lens=wide").name == "camera=C"
    # brute force: no two reported rows hold the same images
    masks = {r.name: tuple(np.nonzero(slice_mask({"camera": camera, "site": site, "lens": lens}, r))[0])
             for r in res.rows}
    assert len(set(masks.values())) == len(masks)
    assert res.n_tests == sum(r.tested for r in res.rows)


def test_weak_intersections_that_say_what_their_weak_parent_says_are_folded_under_it():
    top_is_parent, alone = 0, 0
    for seed in range(20):
        res = metrics_by_slice(*_slice_data(seed, plant=True))
        top_is_parent += res.weak[0].name == "scanner=S00"
        alone += [r.name for r in res.weak] == ["scanner=S00"]
        for r in res.nested("scanner=S00"):
            assert r.weak and "scanner=S00" in r.name and r not in res.weak
    assert top_is_parent >= 18 and alone >= 15
    # an effect only in an intersection is not folded: its parents are not weak
    rng = np.random.default_rng(15)
    n = 4000
    camera, light = rng.choice(["A", "B", "C", "D"], n), rng.choice(["dark", "mid", "bright"], n)
    correct = rng.random(n) < np.where((camera == "A") & (light == "dark"), 0.55, 0.92)
    y = np.zeros(n, dtype=np.int64)
    res = metrics_by_slice(y, (~correct).astype(np.int64), {"camera": camera, "light": light})
    row = res.row("camera=A & light=dark")
    assert row.weak and row.explained_by == "" and row in res.weak


def test_resamples_drawn_in_chunks_have_multinomial_moments_and_the_loops_draws(monkeypatch):
    import evallib.metrics.bootstrap as bootstrap_module

    monkeypatch.setattr(bootstrap_module, "_CHUNK_ELEMENTS", 5_000)  # many chunks of 12 resamples
    n = 400
    counts = _weights(np.random.default_rng(16), n, 3000)
    assert (counts.sum(axis=1) == n).all()  # every resample holds exactly n draws
    np.testing.assert_allclose(counts.mean(0).mean(), 1.0, atol=0.01)
    np.testing.assert_allclose(counts.var(0).mean(), 1 - 1 / n, rtol=0.05)  # multinomial: n (1/n)(1 - 1/n)
    rng = np.random.default_rng(16)  # the same draws as one resample at a time
    loop = np.stack([np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(3000)])
    np.testing.assert_array_equal(counts, loop)


def test_small_slices_are_shown_and_not_tested():
    y, pred, slices = _slice_data(7, plant=True, n=2000)
    res = metrics_by_slice(y, pred, slices, min_slice_size=30)
    small = [r for r in res.rows if r.n < 30]
    assert small  # scanner x site cells hold about 25 images
    for r in small:
        assert not r.tested and not r.significant and np.isnan(r.p_value) and np.isnan(r.q_value)
        assert "min_slice_size=30" in r.note and np.isfinite(r.accuracy_interval).all()
    assert all(r.tested for r in res.rows if r.n >= 30 and r.rest_n >= 30)


def test_min_effect_and_fdr_switch():
    y, pred, slices = _slice_data(8, plant=True)
    assert "scanner=S00" in res_weak_names(metrics_by_slice(y, pred, slices))
    assert not metrics_by_slice(y, pred, slices, min_slice_effect=0.5).weak
    raw = metrics_by_slice(y, pred, slices, fdr=False)
    adjusted = metrics_by_slice(y, pred, slices)
    assert sum(r.significant for r in raw.rows) >= sum(r.significant for r in adjusted.rows)
    assert all(r.q_value >= r.p_value for r in adjusted.rows if r.tested)


def res_weak_names(res):
    return [r.name for r in res.weakest(10)]


def test_input_errors_name_the_argument():
    y, pred, slices = _slice_data(9, plant=False, n=100)
    with pytest.raises(EvallibError, match=r"slices\['site'\]: expected 100 labels"):
        metrics_by_slice(y, pred, {"site": slices["site"][:50]})
    with pytest.raises(TypeError, match="slices: expected a mapping"):
        metrics_by_slice(y, pred, [slices["site"]])
    with pytest.raises(ValueError, match="test: expected 'fisher' or 'two_proportion'; got 'g'"):
        metrics_by_slice(y, pred, slices, test="g")
    with pytest.raises(EvallibError, match=r"scores: expected shape \(100, n_classes\)"):
        metrics_by_slice(y, np.zeros((99, 3)), slices)


# --- statistical behaviour over seeds ---------------------------------------------------------------

def test_a_planted_weak_slice_of_five_percent_is_reported_in_at_least_18_of_20_seeds():
    found = sum(any(r.name == "scanner=S00" for r in metrics_by_slice(*_slice_data(s, plant=True)).weak)
                for s in range(20))
    assert found >= 18


def test_with_nothing_planted_some_slice_is_reported_in_about_alpha_of_seeds():
    # about 100 slices tested per seed; Benjamini-Hochberg keeps P(any report) near alpha = 0.05 under the null
    reported = [any(r.significant for r in metrics_by_slice(*_slice_data(1000 + s, plant=False)).rows)
                for s in range(60)]
    assert np.mean(reported) <= 0.08


def test_intervals_cover_the_truth_about_95_percent_on_a_simulated_population():
    rng = np.random.default_rng(10)
    k, size = 800, 40
    true_acc = rng.uniform(0.6, 0.97, k)
    group = np.repeat(np.arange(k), size)
    correct = rng.random(k * size) < true_acc[group]
    y = np.zeros(k * size, dtype=np.int64)
    pred = np.where(correct, 0, 1)
    res = metrics_by_slice(y, pred, {"g": group.astype(str)}, intersections=False,
                           test="two_proportion")
    truth = {str(g): a for g, a in enumerate(true_acc)}
    rest_truth = {str(g): (true_acc.sum() - a) / (k - 1) for g, a in enumerate(true_acc)}
    acc_cover = np.mean([r.accuracy_interval[0] <= truth[r.values[0]] <= r.accuracy_interval[1] for r in res.rows])
    gap_cover = np.mean([r.gap_interval[0] <= truth[r.values[0]] - rest_truth[r.values[0]] <= r.gap_interval[1]
                         for r in res.rows])
    assert 0.925 <= acc_cover <= 0.975
    assert 0.925 <= gap_cover <= 0.975


def test_macro_f1_bootstrap_interval_covers_the_population_value():
    rng = np.random.default_rng(11)
    P = np.array([[0.30, 0.04, 0.01], [0.03, 0.25, 0.05], [0.02, 0.05, 0.25]])  # P(true, predicted)
    truth = np.mean(2 * np.diag(P) / (P.sum(0) + P.sum(1)))
    k, size = 200, 200
    cells = rng.choice(9, size=k * size, p=P.ravel())
    y, pred = cells // 3, cells % 3
    group = np.repeat(np.arange(k), size).astype(str)
    res = metrics_by_slice(y, pred, {"g": group}, intersections=False, test="two_proportion")
    cover = np.mean([r.macro_f1_interval[0] <= truth <= r.macro_f1_interval[1] for r in res.rows])
    assert 0.90 <= cover <= 0.98


# --- weak slices without metadata -------------------------------------------------------------------

def _blobs(seed, *, plant, n=1200, d=16, k=8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (k, d))
    blob = rng.integers(0, k, n)
    emb = centres[blob] + rng.normal(0, 1, (n, d))
    correct = rng.random(n) < np.where(plant & (blob == 0), 0.6, 0.9)
    y = rng.integers(0, 5, n)
    return y, np.where(correct, y, (y + 1) % 5), emb, blob


def _found_planted(res, blob):
    return any(np.mean(blob[res.clusters == int(c.name.split()[1])] == 0) > 0.5 for c in res.confirmed)


def test_discovery_finds_a_planted_weak_cluster_and_rarely_reports_one_when_none_is_planted():
    with threadpool_limits(1):
        found = [_found_planted(discover_weak_slices(y, p, embeddings=e, seed=s), b)
                 for s in range(20) for y, p, e, b in [_blobs(s, plant=True)]]
        false = [bool(discover_weak_slices(y, p, embeddings=e, seed=s).confirmed)
                 for s in range(30) for y, p, e, b in [_blobs(500 + s, plant=False)]]
    assert np.mean(found) >= 0.8
    assert np.mean(false) <= 0.1


def test_discovery_confirms_on_the_held_out_half_only():
    y, p, e, blob = _blobs(3, plant=True)
    with threadpool_limits(1):
        res = discover_weak_slices(y, p, embeddings=e, seed=3)
    assert 0.45 < res.holdout.mean() < 0.55
    correct = y == p
    for c in res.candidates:
        m = (res.clusters == int(c.name.split()[1])) & res.holdout
        assert c.holdout_n == m.sum()
        assert c.holdout_accuracy == pytest.approx(correct[m].mean())
        assert c.holdout_rest_accuracy == pytest.approx(correct[res.holdout & ~m].mean())
        ref = fisher_exact([[correct[m].sum(), (~correct[m]).sum()],
                            [correct[res.holdout & ~m].sum(), (~correct[res.holdout & ~m]).sum()]],
                           alternative="less").pvalue
        assert c.holdout_p == pytest.approx(ref)
        dm = (res.clusters == int(c.name.split()[1])) & ~res.holdout
        assert c.discovery_n == dm.sum()
    assert res.confirmed and all(c.holdout_q < 0.05 for c in res.confirmed)


def test_discovery_over_binned_properties_finds_the_dark_blurred_images():
    rng = np.random.default_rng(12)
    n = 1500
    brightness = rng.uniform(0, 1, n)
    blur = rng.uniform(0, 100, n)
    weak = (brightness < 0.33) & (blur < 50)
    correct = rng.random(n) < np.where(weak, 0.6, 0.92)
    y = rng.integers(0, 4, n)
    pred = np.where(correct, y, (y + 1) % 4)
    from evallib.data.slicing import bin_properties
    slices = bin_properties({"brightness": brightness, "blur": blur}, bins=3)
    res = discover_weak_slices(y, pred, slices=slices, seed=0)
    top = res.confirmed[0]
    assert top.source == "slices" and top.name.startswith("brightness=< 0.3") and "blur=< 3" in top.name
    with pytest.raises(ValueError, match="embeddings, slices: expected at least one"):
        discover_weak_slices(y, pred)


# --- verification by group ---------------------------------------------------------------------------

def _pairs(seed, n=4000, n_ids=300):
    rng = np.random.default_rng(seed)
    group_of_id = np.where(np.arange(n_ids) < n_ids // 3, "east_asian", "caucasian")
    ids = rng.integers(0, n_ids, (n, 2))
    same = rng.random(n) < 0.3
    ids[same, 1] = ids[same, 0]
    same = ids[:, 0] == ids[:, 1]
    ga, gb = group_of_id[ids[:, 0]], group_of_id[ids[:, 1]]
    shift = 0.8 * ((ga == "east_asian") & (gb == "east_asian"))
    hard = rng.normal(0, 1, n_ids)  # some identities are harder to match than others: pairs are not independent
    s = np.where(same, rng.normal(2.5, 0.5, n) - hard[ids[:, 0]], rng.normal(0, 1, n) + shift)
    return s, same, ga, gb, ids


def test_group_rates_equal_a_brute_force_count():
    s, same, ga, gb, ids = _pairs(13)
    res = verification_by_group(s, same, ga, gb, far=1e-2)
    imp = ~same
    assert np.mean(s[imp] >= res.threshold) <= 1e-2
    assert np.mean(s[imp] >= np.nextafter(res.threshold, -np.inf)) > 1e-2 - 1 / imp.sum()
    for r in res.rows:
        gen = [i for i in range(len(s)) if same[i] and ga[i] == r.group and gb[i] == r.group]
        im = [i for i in range(len(s)) if not same[i] and ga[i] == r.group and gb[i] == r.group]
        assert r.n_genuine == len(gen) and r.n_impostor == len(im)
        assert r.fnmr == pytest.approx(sum(s[i] < res.threshold for i in gen) / len(gen))
        assert r.fmr == pytest.approx(sum(s[i] >= res.threshold for i in im) / len(im))
        assert r.tar == pytest.approx(1 - r.fnmr)
        ci = binomtest(sum(s[i] >= res.threshold for i in im), len(im)).proportion_ci(method="wilson")
        assert r.fmr_interval == pytest.approx((ci.low, ci.high))
        own = sorted(s[im], reverse=True)
        assert sum(v >= r.own_threshold for v in own) <= 1e-2 * len(own)
        assert r.tar_at_own_far == pytest.approx(np.mean([s[i] >= r.own_threshold for i in gen]))
        lo, hi = r.tar_at_own_far_interval
        assert lo <= r.tar_at_own_far <= hi and hi - lo < 0.5
    i, j = res.groups.index("caucasian"), res.groups.index("east_asian")
    cross = [k for k in range(len(s)) if not same[k] and {ga[k], gb[k]} == {"caucasian", "east_asian"}]
    assert res.between_n[i, j] == res.between_n[j, i] == len(cross)
    assert res.between_fmr[i, j] == pytest.approx(np.mean([s[k] >= res.threshold for k in cross]))
    fm = {r.group: r.fmr for r in res.rows}
    assert res.fmr_ratio == pytest.approx(max(fm.values()) / min(fm.values()))
    assert fm["east_asian"] > fm["caucasian"]  # the planted same-group impostor shift


def test_identity_bootstrap_is_wider_than_pairs_and_refuses_identities_in_two_groups():
    s, same, ga, gb, ids = _pairs(14)
    wilson = verification_by_group(s, same, ga, gb, far=1e-2)
    boot = verification_by_group(s, same, ga, gb, far=1e-2, ids_a=ids[:, 0], ids_b=ids[:, 1], n_boot=300)
    assert "identities" in boot.method and "Wilson" in wilson.method
    for a, b in zip(wilson.rows, boot.rows):
        assert a.fmr == b.fmr and b.fmr_interval[0] <= b.fmr <= b.fmr_interval[1]
        assert b.fnmr_interval[0] <= b.fnmr <= b.fnmr_interval[1]
        # identities in many pairs: the identity bootstrap is wider than intervals that treat pairs as independent
        assert np.diff(b.fnmr_interval)[0] > 1.2 * np.diff(a.fnmr_interval)[0]
        assert np.diff(b.fmr_interval)[0] > 1.2 * np.diff(a.fmr_interval)[0]
        assert np.diff(b.tar_at_own_far_interval)[0] > np.diff(a.tar_at_own_far_interval)[0]
    bad = ga.copy()
    bad[np.nonzero(ids[:, 0] == ids[0, 0])[0][0]] = "other"
    with pytest.raises(EvallibError, match=r"identities .* carry more than one group label"):
        verification_by_group(s, same, bad, gb, ids_a=ids[:, 0], ids_b=ids[:, 1])
    with pytest.raises(EvallibError, match="same: expected 4000 booleans"):
        verification_by_group(s, same[:10], ga, gb)


def test_identity_bootstrap_covers_the_group_fnmr_where_pair_intervals_do_not():
    from scipy.stats import norm

    truth = norm.cdf(2.0, 2.5, np.sqrt(0.25 + 1))  # genuine score 2.5 + N(0, 0.5) - N(0, 1) per identity
    boot_cover, pair_cover = [], []
    for seed in range(40):
        s, same, ga, gb, ids = _pairs(100 + seed, n=2000, n_ids=150)
        pairs = verification_by_group(s, same, ga, gb, threshold=2.0, n_boot=0)
        boot = verification_by_group(s, same, ga, gb, threshold=2.0, ids_a=ids[:, 0], ids_b=ids[:, 1],
                                     n_boot=200, seed=seed)
        for a, b in zip(pairs.rows, boot.rows):
            pair_cover.append(a.fnmr_interval[0] <= truth <= a.fnmr_interval[1])
            boot_cover.append(b.fnmr_interval[0] <= truth <= b.fnmr_interval[1])
    assert np.mean(boot_cover) >= 0.88
    assert np.mean(pair_cover) < np.mean(boot_cover) - 0.1  # pairs of one identity are not independent


def test_tar_at_own_far_in_a_resample_equals_the_count_on_the_expanded_pairs():
    rng = np.random.default_rng(18)
    s = np.round(rng.normal(size=300), 1)  # ties on purpose
    match = s >= 0.5
    gen_idx, imp_idx = np.arange(100), np.arange(100, 300)
    weights = [rng.integers(0, 3, (4, 100)), rng.integers(0, 3, (4, 200))]
    wg, wi = weights
    reps = slices_module._group_replicates(s, match, gen_idx, imp_idx, far=0.05, n_boot=4, rng=rng,
                                           weights=(wg, wi))
    for b in range(4):
        gen, imp = np.repeat(s[gen_idx], wg[b]), np.repeat(s[imp_idx], wi[b])
        thr = slices_module._threshold_at_far(imp, 0.05)
        assert np.mean(imp >= thr) <= 0.05 < np.mean(imp >= np.nextafter(thr, -np.inf))
        assert reps["tar_own"][b] == pytest.approx(np.mean(gen >= thr))
        assert reps["fnmr"][b] == pytest.approx(np.mean(gen < 0.5))
        assert reps["fmr"][b] == pytest.approx(np.mean(imp >= 0.5))


# --- two models on the same slices ------------------------------------------------------------------

def _two_models(seed, *, plant, n=2000):
    """Model b agrees with a on most images; on scanner S00 (5%) a is at 0.6 when planted, b at 0.9."""
    y, pred_b, slices = _slice_data(seed, plant=False, n=n)
    rng = np.random.default_rng(seed + 7)
    flip = (slices["scanner"] == "S00") & (rng.random(n) < (0.35 if plant else 0.0)) & (pred_b == y)
    pred_a = np.where(flip, (y + 1) % 3, pred_b)
    other = rng.random(n) < 0.2  # a redrawn at b's accuracy: disagreements in both directions, no difference
    pred_a = np.where(other, np.where(rng.random(n) < 0.9, y, (y + 1) % 3), pred_a)
    return y, pred_a, pred_b, slices


def test_compare_by_slice_against_brute_force_counts_and_mcnemar():
    y, pa, pb, slices = _two_models(20, plant=True)
    res = compare_by_slice(y, pa, pb, slices, names=("new", "old"))
    assert res.rows[0].name == "all" and res.rows[0].n == len(y) and res.names == ("new", "old")
    for r in res.rows:
        m = np.ones(len(y), bool) if r.name == "all" else slice_mask(slices, r)
        assert r.accuracy_a == pytest.approx(accuracy_score(y[m], pa[m]))
        assert r.accuracy_b == pytest.approx(accuracy_score(y[m], pb[m]))
        ref = mcnemar(pa[m] == y[m], pb[m] == y[m])
        assert (r.only_a_correct, r.only_b_correct) == (ref["only_a_correct"], ref["only_b_correct"])
        assert r.p_value == pytest.approx(ref["p_value"], rel=1e-9)
        assert r.difference_interval[0] <= r.difference <= r.difference_interval[1]
    assert res.row("scanner=S00").significant and res.row("scanner=S00").difference < -0.2


def test_mcnemar_and_the_paired_interval():
    rng = np.random.default_rng(21)
    b, c = rng.integers(0, 40, 50), rng.integers(0, 40, 50)
    ref = [mcnemar(np.r_[np.ones(x, bool), np.zeros(y_, bool)], np.r_[np.zeros(x, bool), np.ones(y_, bool)])["p_value"]
           for x, y_ in zip(b, c)]
    np.testing.assert_allclose(mcnemar_tests(b, c), ref, rtol=1e-9)
    lo, hi = paired_difference_interval(30, 9, 3, 8)
    lo2, hi2 = paired_difference_interval(30, 3, 9, 8)
    assert (lo, hi) == pytest.approx((-hi2, -lo2))  # swapping the models negates the interval
    # coverage on a simulated population: both models right 0.6, only a 0.2, only b 0.1, neither 0.1
    cells = rng.choice(4, size=(3000, 50), p=[0.6, 0.2, 0.1, 0.1])
    counts = [(cells == k).sum(1) for k in range(4)]
    lo, hi = paired_difference_interval(*counts)
    cover = np.mean((lo <= 0.1) & (0.1 <= hi))
    assert 0.94 <= cover <= 0.99


def test_compare_by_slice_finds_a_planted_difference_and_rarely_one_that_is_not_there():
    found = sum(compare_by_slice(*_two_models(s, plant=True)).row("scanner=S00").significant for s in range(20))
    false = [any(r.significant for r in compare_by_slice(*_two_models(100 + s, plant=False)).rows)
             for s in range(40)]
    assert found >= 16
    assert np.mean(false) <= 0.1


def test_degenerate_but_valid_inputs_give_nan_with_reasons_not_errors():
    y = np.zeros(60, dtype=np.int64)
    pred = np.r_[np.zeros(50, np.int64), np.ones(10, np.int64)]
    res = metrics_by_slice(y, pred, {"only": np.full(60, 1), "half": np.arange(60) % 2})
    whole = res.row("only=1")
    assert whole.n == 60 and not whole.tested and "nothing to compare" in whole.note
    assert "only=1 & half=0" in res.row("half=0").same_as  # the constant column adds nothing
    assert np.isnan(whole.macro_f1) and np.isnan(res.macro_f1)  # one true class: macro-F1 undefined
    disc = discover_weak_slices(y, pred, slices={"half": np.arange(60) % 2}, min_slice_size=10)
    assert disc.confirmed == () and disc.clusters is None
    s = np.linspace(0, 1, 40)
    same = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    ga = np.r_[["x"] * 20, ["x"] * 10, ["y"] * 10]
    gb = np.r_[["x"] * 20, ["y"] * 10, ["y"] * 10]
    res = verification_by_group(s, same, ga, gb, threshold=0.5, far=0.01, n_boot=50)
    y_row = [r for r in res.rows if r.group == "y"][0]
    assert y_row.n_genuine == 0 and np.isnan(y_row.fnmr) and "no genuine pairs" in y_row.note
    x_row = [r for r in res.rows if r.group == "x"][0]
    assert x_row.n_impostor == 0 and np.isnan(x_row.fmr) and "too few" in x_row.note
    assert np.isnan(res.far) and res.between_n[0, 1] == 10


# --- displays ----------------------------------------------------------------------------------------



def _dots(ax):
    """x of the filled dots _forest draws, top row first."""
    pts = [(line.get_ydata()[0], line.get_xdata()[0]) for line in ax.lines
           if line.get_marker() == "o" and len(line.get_xdata()) == 1]
    return [x for _, x in sorted(pts, key=lambda p: -p[0])]


def test_slice_display_draws_the_rows_it_lists_weak_first():
    from evallib.report.slices import SliceDisplay

    y, pred, slices = _slice_data(30, plant=True)
    disp = SliceDisplay.from_predictions(y, pred, slices)
    ax, html = check_display(disp)
    rows = [disp.result.rows[i] for i in disp.order[:25]]
    assert rows[0].name == "scanner=S00" and rows[0].weak
    np.testing.assert_allclose(_dots(ax), [r.accuracy for r in rows])
    assert "Weakest confirmed slices" in html and "scanner=S00" in html
    assert f"All {len(disp.result.rows)} slices" in html
    assert "below min_slice_size=30: shown, not tested" in html  # small intersections say why
    same = SliceDisplay.from_result(disp.result)
    assert same.result is disp.result
    quiet = SliceDisplay.from_predictions(*_slice_data(31, plant=False), intersections=False)
    assert "No slice is weaker than the rest" in quiet._repr_html_()


def test_discovery_comparison_and_group_displays_from_arrays():
    from evallib.report.slices import GroupVerificationDisplay, SliceComparisonDisplay, WeakSliceDiscoveryDisplay

    y, p, e, blob = _blobs(3, plant=True)
    with threadpool_limits(1):
        disc = WeakSliceDiscoveryDisplay.from_predictions(y, p, embeddings=e, seed=3)
    ax, html = check_display(disc)
    np.testing.assert_allclose(_dots(ax), [c.holdout_accuracy for c in disc.result.candidates[:25]])
    r = disc.result
    assert r.confirmed and f"{len(r.confirmed)} of {len(r.candidates)} candidate(s) confirmed" in html

    y, pa, pb, slices = _two_models(20, plant=True)
    cmp = SliceComparisonDisplay.from_predictions(y, pa, pb, slices, names=("new", "old"))
    ax, html = check_display(cmp)
    shown = [cmp.result.rows[i] for i in cmp.order[:25]]
    assert shown[0].name == "all" and shown[1].name == "scanner=S00"
    np.testing.assert_allclose(_dots(ax), [r.difference for r in shown])
    assert "only new right" in html

    s, same, ga, gb, ids = _pairs(13)
    grp = GroupVerificationDisplay.from_predictions(s, same, ga, gb, far=1e-2, n_boot=100)
    axes, html = check_display(grp)
    shown = [grp.result.rows[i] for i in grp.order]  # worst first: the highest false match rate
    assert [r.fmr for r in shown] == sorted((r.fmr for r in shown), reverse=True)
    np.testing.assert_allclose(_dots(axes[0]), [r.fnmr for r in shown])
    np.testing.assert_allclose(_dots(axes[1]), [r.fmr for r in shown])
    assert "False match rate between groups" in html and "TAR at own FAR" in html
    with pytest.raises(TypeError, match="expected two Axes"):
        grp.plot(ax=axes[0])
