"""Per-group DET curves, one threshold per group (the what-if), and the strips of a weak slice's mistakes, as
displays built from arrays and checked against brute-force counts."""

import numpy as np
import pytest

from conftest import check_display
from evallib.metrics.slices import group_det_curves, verification_at_group_thresholds, verification_by_group
from evallib.report.slices import GroupDetDisplay, GroupThresholdDisplay, SliceMistakesDisplay


def _faces(seed=0, ids=60, per=4, groups=("east", "north", "west"), noisy="west"):
    """Unit embeddings of ``ids`` identities of ``per`` images; identities of group ``noisy`` are noisier."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(ids), per)
    grp = np.asarray(groups)[np.arange(ids) % len(groups)][y]
    c = rng.normal(size=(ids, 16))
    e = c[y] + rng.normal(scale=np.where(grp == noisy, 1.3, 0.7)[:, None], size=(len(y), 16))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    i, j = np.triu_indices(len(y), 1)
    return (e[i] * e[j]).sum(1), y[i] == y[j], grp[i], grp[j], y[i], y[j]


# ------------------------------------------------------------------------------------- DET by group
def test_group_det_curves_equal_brute_force_counts_within_each_group():
    s, same, ga, gb, _, _ = _faces(1, ids=30)
    ga, gb = ga.copy(), gb.copy()
    ga[:20] = "solo"  # a group of mixed pairs only: no curve
    r = group_det_curves(s, same, ga, gb)
    assert r.groups == ("east", "north", "solo", "west")
    for g, name in enumerate(r.groups):
        sel = (ga == name) & (gb == name)
        assert r.n_genuine[g] == (sel & same).sum() and r.n_impostor[g] == (sel & ~same).sum()
        if name == "solo":
            assert len(r.fmr[g]) == 0
            continue
        gen, imp = s[sel & same], s[sel & ~same]
        assert len(r.thresholds[g]) == len(np.unique(s[sel]))  # small: not thinned
        for t, fmr, fnmr in zip(r.thresholds[g], r.fmr[g], r.fnmr[g]):
            assert fmr == pytest.approx(np.mean(imp >= t)) and fnmr == pytest.approx(np.mean(gen < t))
    # the same points as scikit-learn's det_curve on the group's pairs
    from sklearn.metrics import det_curve

    g = r.groups.index("west")
    sel = (ga == "west") & (gb == "west")
    fpr, fnr, thr = det_curve(same[sel], s[sel])
    at = {float(t): (a, b) for t, a, b in zip(r.thresholds[g], r.fmr[g], r.fnmr[g])}
    for t, a, b in zip(thr, fpr, fnr):
        assert at[float(t)] == pytest.approx((a, b))


def test_group_det_display_draws_at_most_ten_curves_and_marks_the_global_threshold():
    s, same, ga, gb, _, _ = _faces(2, ids=90, per=2, groups=[f"g{k:02d}" for k in range(30)], noisy="g03")
    disp = GroupDetDisplay.from_predictions(s, same, ga, gb, threshold=0.5)
    ax, html = check_display(disp)
    assert len(ax.get_legend().get_texts()) == 10 and len(disp.drawn) == 10
    assert "10 of 30" in ax.get_title() and "groups with the most impostor pairs" in html
    few = GroupDetDisplay.from_predictions(*_faces(3)[:4], threshold=0.5)
    ax, _ = check_display(few)
    assert len(ax.get_legend().get_texts()) == 3
    assert len([ln for ln in ax.get_lines() if ln.get_marker() == "o"]) == 3  # one dot per group


# ------------------------------------------------------------------------ one threshold per group
def test_rates_at_given_group_thresholds_equal_brute_force_counts():
    s, same, ga, gb, ia, ib = _faces(4)
    thr = {"east": 0.4, "north": 0.55}
    r = verification_at_group_thresholds(s, same, ga, gb, thresholds=thr, far=0.01, n_boot=0)
    assert np.isfinite(r.far)  # west took the default
    for row in r.rows:
        sel = (ga == row.group) & (gb == row.group)
        gen, imp = s[sel & same], s[sel & ~same]
        t = thr.get(row.group, row.threshold)
        assert row.threshold == t
        assert row.fnmr == pytest.approx(np.mean(gen < t)) and row.fmr == pytest.approx(np.mean(imp >= t))
        assert row.global_fnmr == pytest.approx(np.mean(gen < r.global_threshold))
        assert row.global_fmr == pytest.approx(np.mean(imp >= r.global_threshold))
        lo, hi = row.fmr_interval
        assert lo <= row.fmr <= hi
    # the default threshold of a group: the lowest at which its own impostors match at FMR <= far
    west = next(x for x in r.rows if x.group == "west")
    sel = (ga == "west") & (gb == "west") & ~same
    imp = np.sort(s[sel])
    assert np.mean(imp >= west.threshold) <= 0.01
    assert np.mean(imp >= imp[imp < west.threshold][-1]) > 0.01
    # every group at the same target: the ratio of false match rates shrinks from the global threshold's
    d = verification_at_group_thresholds(s, same, ga, gb, far=0.01, n_boot=0)
    assert all(x.fmr <= 0.01 for x in d.rows) and d.fmr_ratio <= d.global_fmr_ratio
    g = verification_by_group(s, same, ga, gb, far=0.01, n_boot=0)
    assert d.global_threshold == g.threshold
    assert [x.global_fmr for x in d.rows] == [x.fmr for x in g.rows]
    assert d.thresholds == {x.group: x.threshold for x in d.rows}


def test_group_thresholds_reject_unknown_groups_and_one_sided_ids():
    s, same, ga, gb, ia, ib = _faces(5)
    with pytest.raises(ValueError, match=r"thresholds: expected groups among east, north, west; got south"):
        verification_at_group_thresholds(s, same, ga, gb, thresholds={"south": 0.3})
    with pytest.raises(ValueError, match=r"ids_a, ids_b: give both or neither"):
        verification_at_group_thresholds(s, same, ga, gb, ids_a=ia)
    with pytest.raises(ValueError, match=r"far: expected a number in \(0, 1\); got 2"):
        verification_at_group_thresholds(s, same, ga, gb, far=2)


def test_identity_bootstrap_intervals_cover_the_population_fnmr():
    """Identities differ in how often their genuine pairs are missed (a Beta-distributed miss rate): the
    identity-level bootstrap interval of a group's FNMR covers the population's mean miss rate about 95% of
    the time, where intervals over pairs (which treat an identity's pairs as independent) cover less."""
    seeds, ids, per_id = 120, 40, 6
    a, b = 1.0, 4.0  # mean miss rate 0.2, strongly varying between identities
    truth = a / (a + b)
    covered, covered_pairs = 0, 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        p = rng.beta(a, b, ids)
        miss = rng.random((ids, per_id)) < p[:, None]
        gen_id = np.repeat(np.arange(ids), per_id)
        gen_s = np.where(miss.ravel(), 0.0, 1.0)
        ii, jj = np.triu_indices(ids, 1)
        imp_s = rng.random(len(ii)) * 0.4
        s = np.r_[gen_s, imp_s]
        same = np.r_[np.ones(len(gen_s), bool), np.zeros(len(imp_s), bool)]
        ida, idb = np.r_[gen_id, ii], np.r_[gen_id, jj]
        g = np.full(len(s), "g")
        r = verification_at_group_thresholds(s, same, g, g, thresholds={"g": 0.5}, ids_a=ida, ids_b=idb,
                                             n_boot=300, seed=seed)
        lo, hi = r.rows[0].fnmr_interval
        covered += lo <= truth <= hi
        lo, hi = verification_at_group_thresholds(s, same, g, g, thresholds={"g": 0.5}, n_boot=0).rows[0].fnmr_interval
        covered_pairs += lo <= truth <= hi
    rate = covered / seeds
    print(f"identity bootstrap coverage {rate:.3f}, intervals over pairs {covered_pairs / seeds:.3f}")
    assert 0.88 <= rate <= 0.99, rate
    assert covered_pairs < covered


def test_group_threshold_display_from_arrays():
    s, same, ga, gb, ia, ib = _faces(6)
    disp = GroupThresholdDisplay.from_predictions(s, same, ga, gb, far=0.01, ids_a=ia, ids_b=ib, n_boot=100)
    ax, html = check_display(disp)
    assert [t.get_text().split(" (")[0] for t in ax[0].get_yticklabels()] == \
        [disp.result.rows[i].group for i in disp.order]
    fnmr = [disp.result.rows[i].fnmr for i in disp.order]
    assert fnmr == sorted(fnmr, reverse=True)
    assert "own threshold" in html and "FMR at global" in html and "identities" in html
    again = GroupThresholdDisplay.from_result(disp.result)
    assert again.result is disp.result


# ------------------------------------------------------------------------- strips of a slice's mistakes
def test_slice_mistakes_strip_and_heat_map_strip():
    rng = np.random.default_rng(7)
    n = 60
    y = rng.integers(0, 3, n)
    scores = rng.random((n, 3))
    pred, conf = scores.argmax(1), scores.max(1)
    images = rng.random((n, 8, 8, 3))
    cam_calls = []

    def cam(idx, targets):
        cam_calls.append((list(idx), list(targets)))
        return [np.zeros((8, 8, 3)) for _ in idx]

    a = np.arange(n) < 30
    b = np.arange(n) < 15  # inside a: its mistakes were shown already
    c = np.arange(n) >= 45
    disp = SliceMistakesDisplay.from_predictions(y, scores, {"camera=A": a, "camera=A & site=x": b, "site=z": c},
                                                 images=images, cam=cam, classes=["cat", "dog", "owl"], per_slice=4)
    wrong = pred != y

    def expect(mask):  # the most confident mistake of each true class, then the second of each...
        by = {}
        for i in sorted(np.flatnonzero(mask & wrong), key=lambda i: (-conf[i], i)):
            by.setdefault(y[i], []).append(i)
        out, r = [], 0
        while any(r < len(v) for v in by.values()):
            out += sorted((v[r] for v in by.values() if r < len(v)), key=lambda i: (-conf[i], i))
            r += 1
        return np.array(out[:4])

    want_a, want_c = expect(a), expect(c)
    assert len(set(y[want_a])) == min(3, len(set(y[a & wrong])))
    assert disp.slices == ["camera=A", "site=z"]
    assert disp.row_labels == ["camera=A", "heat maps", "site=z", "heat maps"]
    assert cam_calls == [(want_a.tolist(), pred[want_a].tolist()), (want_c.tolist(), pred[want_c].tolist())]
    names = np.array(["cat", "dog", "owl"])
    assert [cap for _, cap in disp.tiles[0]] == [f"{names[y[i]]} → {names[pred[i]]}" for i in want_a]
    assert np.array_equal(disp.tiles[0][0][0], images[want_a[0]])
    ax, html = check_display(disp)
    assert "heat map" in html
    # no route: the images alone, and the reason
    plain = SliceMistakesDisplay.from_predictions(y, scores, {"camera=A": a}, images=images,
                                                  cam_reason="no convolution layer to hook")
    assert len(plain.tiles) == 1 and ["no heat maps", "no convolution layer to hook"] in plain.facts
    assert "no convolution layer to hook" in plain._repr_html_()
    with pytest.raises(ValueError, match=r"masks\['x'\]: expected 60 booleans, one per image; got shape \(3,\)"):
        SliceMistakesDisplay.from_predictions(y, scores, {"x": [True] * 3}, images=images)
