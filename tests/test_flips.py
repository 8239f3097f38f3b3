import json

import numpy as np
import pytest
from scipy.stats import binomtest

from evallib.metrics import mcnemar
from evallib.metrics.flips import (
    CELLS,
    _bootstrap_counts,
    cross_model_compatibility,
    rates_from_cells,
    version_regression,
)


def _probs(pred, conf, n_classes):
    """Probability rows with ``conf`` on the predicted class and the rest shared evenly."""
    p = np.tile(((1 - np.asarray(conf, float)) / (n_classes - 1))[:, None], (1, n_classes))
    p[np.arange(len(pred)), pred] = conf
    return p


# hand-worked: ten images, three classes
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
OLD = np.array([0, 0, 1, 1, 1, 1, 1, 2, 2, 0])
NEW = np.array([0, 1, 0, 2, 1, 1, 0, 2, 2, 2])
#  cell:       B  N  P  C  B  B  N  S  B  P   (both right, negative, positive, wrong-same, wrong-changed)


def test_hand_worked_counts_rates_gallery_and_transitions():
    conf_old = np.full(10, 0.6)
    conf_new = np.full(10, 0.6)
    conf_old[1], conf_new[1] = 0.9, 0.6  # flip 1 scores 0.54
    conf_old[6], conf_new[6] = 0.7, 0.8  # flip 6 scores 0.56: shown first
    r = version_regression(Y, _probs(OLD, conf_old, 3), _probs(NEW, conf_new, 3), scores_are="probabilities",
                           n_boot=0)
    o = r.overall
    assert o.counts == {"both_correct": 4, "negative_flips": 2, "positive_flips": 2, "both_wrong_same": 1,
                        "both_wrong_changed": 1}
    assert (o.n, o.nfr, o.pfr, o.net_gain, o.churn) == (10, 0.2, 0.2, 0.0, 0.5)
    assert o.accuracy_old == pytest.approx(0.6) and o.accuracy_new == pytest.approx(0.6)
    # PCT relative NFR: 0.2 / (acc_old 0.6 * err_new 0.4) = 0.8333
    assert o.relative_nfr == pytest.approx(0.2 / (0.6 * 0.4))
    assert o.btc == pytest.approx(4 / 6) and o.bec == pytest.approx(2 / 4)
    c0 = r.classes[0]
    assert (c0.n, c0.nfr, c0.pfr, c0.churn, c0.btc, c0.bec) == (4, 0.25, 0.25, 0.75, 0.5, 0.5)
    assert r.negative_flips.tolist() == [6, 1]
    np.testing.assert_allclose(r.negative_flip_score, [0.56, 0.54])
    np.testing.assert_allclose(r.negative_flip_confidence, [[0.7, 0.8], [0.9, 0.6]])
    np.testing.assert_allclose(r.positive_flip_confidence.prod(axis=1), r.positive_flip_score)
    assert r.positive_flips.tolist() == [2, 9] or r.positive_flips.tolist() == [9, 2]
    assert sorted(r.positive_flips.tolist()) == [2, 9]
    t = np.zeros((3, 3), int)
    t[0, 1] = t[1, 0] = 1
    np.testing.assert_array_equal(r.transitions, t)
    pt = np.zeros((3, 3), int)
    pt[1, 0] = pt[0, 2] = 1
    np.testing.assert_array_equal(r.positive_transitions, pt)
    assert r.mcnemar["only_a_correct"] == 2 and r.mcnemar["only_b_correct"] == 2


def _random_case(seed, n=400, n_classes=5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    lo = rng.normal(size=(n, n_classes))
    lo[np.arange(n), y] += 1.5
    ln = lo + rng.normal(scale=1.0, size=(n, n_classes))
    groups = rng.choice(np.array(["day", "dusk", "night"]), n)
    return y, lo, ln, groups


def _brute_row(y, po, pn, mask):
    """The paper definitions, image by image."""
    n = nf = pf = both = old_ok = new_wrong = both_wrong = changed = 0
    for i in np.nonzero(mask)[0]:
        a, b = po[i] == y[i], pn[i] == y[i]
        n += 1
        nf += a and not b
        pf += b and not a
        both += a and b
        old_ok += a
        new_wrong += not b
        both_wrong += (not a) and (not b)
        changed += po[i] != pn[i]
    return {"n": n, "nfr": nf / n, "pfr": pf / n, "net_gain": (pf - nf) / n,
            "relative_nfr": (nf / n) / ((old_ok / n) * (new_wrong / n)) if old_ok and new_wrong else np.nan,
            "btc": both / old_ok if old_ok else np.nan, "bec": both_wrong / new_wrong if new_wrong else np.nan,
            "churn": changed / n, "nf": nf, "pf": pf}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_match_brute_force_and_mcnemar(seed):
    y, lo, ln, groups = _random_case(seed)
    r = version_regression(y, lo, ln, groups=groups, n_boot=0, alternative="two-sided")
    po, pn = lo.argmax(1), ln.argmax(1)
    assert [c.key for c in r.classes] == sorted(set(y.tolist()))
    assert [g.key for g in r.groups] == ["day", "dusk", "night"]
    masks = [np.ones(len(y), bool)] + [y == c.key for c in r.classes] + [groups == g.key for g in r.groups]
    for row, mask in zip(r.rows, masks):
        ref = _brute_row(y, po, pn, mask)
        assert row.n == ref["n"]
        for m in ("nfr", "pfr", "net_gain", "relative_nfr", "btc", "bec", "churn"):
            assert getattr(row, m) == pytest.approx(ref[m], rel=1e-12, nan_ok=True), m
        # the flips are McNemar's discordant pairs, and the two-sided p is McNemar's
        mc = mcnemar(po[mask] == y[mask], pn[mask] == y[mask])
        assert row.negative_flips == mc["only_a_correct"] == ref["nf"]
        assert row.positive_flips == mc["only_b_correct"] == ref["pf"]
        assert row.nfr == mc["only_a_correct"] / row.n and row.pfr == mc["only_b_correct"] / row.n
        if ref["nf"] + ref["pf"]:
            assert row.p_value == pytest.approx(mc["p_value"], rel=1e-12)
    assert r.overall.counts["negative_flips"] == r.mcnemar["only_a_correct"]
    # one-sided test is scipy's binomtest, "greater"
    g = version_regression(y, lo, ln, groups=groups, n_boot=0)
    for row in g.rows:
        d = row.negative_flips + row.positive_flips
        ref_p = binomtest(row.negative_flips, d, 0.5, alternative="greater").pvalue if d else np.nan
        assert row.p_value == pytest.approx(ref_p, rel=1e-12, nan_ok=True)


def test_gallery_order_and_transitions_match_brute_force():
    y, lo, ln, _ = _random_case(7, n=300, n_classes=6)
    r = version_regression(y, lo, ln, n_boot=0)
    po = np.exp(lo) / np.exp(lo).sum(1, keepdims=True)
    pn = np.exp(ln) / np.exp(ln).sum(1, keepdims=True)
    flips = [(po[i, y[i]] * pn[i, pn[i].argmax()], i) for i in range(len(y))
             if po[i].argmax() == y[i] and pn[i].argmax() != y[i]]
    flips.sort(key=lambda t: (-t[0], t[1]))
    assert r.negative_flips.tolist() == [i for _, i in flips]
    np.testing.assert_allclose(r.negative_flip_score, [s for s, _ in flips], rtol=1e-12)
    t = np.zeros((6, 6), int)
    for _, i in flips:
        t[po[i].argmax(), pn[i].argmax()] += 1
    np.testing.assert_array_equal(r.transitions, t)
    assert t.sum() == r.overall.negative_flips and np.trace(t) == 0


def test_row_intervals_are_the_percentile_intervals_of_the_replicates():
    from evallib.metrics.bootstrap import _interval
    from evallib.metrics.flips import _percentile_intervals

    rng = np.random.default_rng(0)
    reps = rng.normal(size=(500, 6))
    reps[rng.random(reps.shape) < 0.1] = np.nan
    reps[:, 3] = np.nan
    reps[:, 5] = np.nan
    reps[:, 4] = 0.25
    reps[:3, 5] = [0.1, 0.3, 0.2]
    got = _percentile_intervals(reps, 0.9)
    for k in range(6):
        np.testing.assert_allclose(got[:, k], _interval(reps[:, k], 0.9), equal_nan=True)


def test_flip_table_lists_exactly_the_flipped_files_with_both_predictions():
    y, lo, ln, _ = _random_case(8, n=200, n_classes=4)
    files = [f"img_{i:03d}.png" for i in range(200)]
    r = version_regression(y, lo, ln, n_boot=0)
    table = r.flip_table(files=files, classes=list("abcd"))
    po = np.exp(lo) / np.exp(lo).sum(1, keepdims=True)
    pn = np.exp(ln) / np.exp(ln).sum(1, keepdims=True)
    neg = {files[i] for i in range(200) if po[i].argmax() == y[i] and pn[i].argmax() != y[i]}
    pos = {files[i] for i in range(200) if po[i].argmax() != y[i] and pn[i].argmax() == y[i]}
    assert {t["file"] for t in table if t["flip"] == "negative"} == neg
    assert {t["file"] for t in table if t["flip"] == "positive"} == pos
    assert len(table) == len(neg) + len(pos)
    for t in table:
        i = t["index"]
        assert t["file"] == files[i] and t["true_class"] == "abcd"[y[i]]
        assert t["old_prediction"] == "abcd"[po[i].argmax()] and t["new_prediction"] == "abcd"[pn[i].argmax()]
        assert t["old_probability"] == pytest.approx(po[i].max()) and t["new_probability"] == pytest.approx(pn[i].max())
    assert [t["index"] for t in r.flip_table(kind="negative")] == r.negative_flips.tolist()
    with pytest.raises(ValueError, match="files: expected 200"):
        r.flip_table(files=files[:3])


def test_invariant_to_sample_order():
    y, lo, ln, groups = _random_case(3)
    a = version_regression(y, lo, ln, groups=groups, n_boot=200, seed=5)
    perm = np.random.default_rng(0).permutation(len(y))
    b = version_regression(y[perm], lo[perm], ln[perm], groups=groups[perm], n_boot=200, seed=5)
    for ra, rb in zip(a.rows, b.rows):
        assert json.dumps(ra.to_dict(), sort_keys=True) == json.dumps(rb.to_dict(), sort_keys=True)
    np.testing.assert_array_equal(perm[b.negative_flips], a.negative_flips)
    np.testing.assert_array_equal(b.transitions, a.transitions)


def test_stratified_bootstrap_keeps_every_class_and_matches_image_resampling():
    # strata: class 0 has 200 images, class 1 only 3: every resample keeps n per class
    counts = np.array([[150, 20, 10, 15, 5], [1, 1, 1, 0, 0]])
    reps = _bootstrap_counts(counts, np.array([0, 1]), 2, np.array([0, 0]), 0, n_boot=2000, seed=0)
    np.testing.assert_array_equal(reps[:, 1:].sum(axis=2), np.tile([200, 3], (2000, 1)))
    np.testing.assert_array_equal(reps[:, 0], reps[:, 1] + reps[:, 2])
    # the same bootstrap, drawing images: the spread of the overall NFR agrees
    rng = np.random.default_rng(1)
    cells = [np.repeat(np.arange(5), c) for c in counts]
    nfr = []
    for _ in range(2000):
        drawn = np.concatenate([rng.choice(c, len(c)) for c in cells])
        nfr.append(np.mean(drawn == 1))
    boot = rates_from_cells(reps[:, 0])["nfr"]
    assert boot.mean() == pytest.approx(np.mean(nfr), abs=0.002)
    assert boot.std() == pytest.approx(np.std(nfr), rel=0.08)


def _simulate(rng, n_classes=10, per_class=60, factor=None, planted=3):
    """Two models whose correctness depends on a shared image easiness; ``factor`` < 1 makes the new
    model worse on class ``planted``. Without it the two models are statistically identical."""
    y = np.repeat(np.arange(n_classes), per_class)
    e = rng.beta(4, 1, size=len(y))
    f = np.ones(len(y))
    if factor is not None:
        f[y == planted] = factor
    old_ok, new_ok = rng.random(len(y)) < e, rng.random(len(y)) < e * f

    def one_hot(ok):
        wrong = (y + rng.integers(1, n_classes, size=len(y))) % n_classes
        return np.eye(n_classes)[np.where(ok, y, wrong)]

    return y, one_hot(old_ok), one_hot(new_ok)


def test_planted_class_regression_is_found_in_most_seeds():
    found, others = [], []
    for seed in range(60):
        y, old, new = _simulate(np.random.default_rng(seed), factor=0.5)
        r = version_regression(y, old, new, scores_are="probabilities", n_boot=0)
        found.append(r.classes[3].flagged)
        others.append(sum(c.flagged for c in r.classes if c.key != 3))
    assert np.mean(found) >= 0.85  # measured 0.975 over 200 seeds
    assert np.mean(others) <= 0.2


def test_planted_slice_regression_is_found_by_the_group_rows():
    found, false = [], []
    for seed in range(40):
        rng = np.random.default_rng(500 + seed)
        y = np.repeat(np.arange(10), 60)
        groups = np.tile(np.array(["day", "dusk", "night", "rain"]), 150)
        e = rng.beta(4, 1, size=len(y))
        old_ok = rng.random(len(y)) < e
        new_ok = rng.random(len(y)) < e * np.where(groups == "night", 0.7, 1.0)
        wrong = (y + 1) % 10
        old, new = np.eye(10)[np.where(old_ok, y, wrong)], np.eye(10)[np.where(new_ok, y, wrong)]
        r = version_regression(y, old, new, groups=groups, scores_are="probabilities", n_boot=0)
        flagged = {g.key for g in r.groups if g.flagged}
        found.append("night" in flagged)
        false.append(len(flagged - {"night"}))
    assert np.mean(found) >= 0.8
    assert np.mean(false) <= 0.1


def test_over_budget_holds_overall_and_flagged_rows_to_the_upper_bound():
    y, old, new = _simulate(np.random.default_rng(3), factor=0.3)
    r = version_regression(y, old, new, scores_are="probabilities", n_boot=200)
    assert r.classes[3].flagged
    budget = (r.overall.nfr_upper() + r.classes[3].nfr_upper()) / 2  # between the two upper bounds
    assert r.overall.nfr_upper() < budget < r.classes[3].nfr_upper()
    over = r.over_budget(budget)
    expected = [row for row in r.rows if (row.kind == "overall" or row.flagged) and row.nfr_upper() > budget]
    assert over == expected and r.classes[3] in over and r.overall not in over
    assert all(row.flagged for row in r.over_budget(0.0) if row.kind != "overall")
    assert r.overall in r.over_budget(0.0)
    with pytest.raises(ValueError, match="max_nfr"):
        r.over_budget(2)


def test_identical_models_report_a_class_in_at_most_alpha_of_seeds():
    any_class, overall = [], []
    for seed in range(150):
        y, old, new = _simulate(np.random.default_rng(10_000 + seed))
        r = version_regression(y, old, new, scores_are="probabilities", n_boot=0, alpha=0.05)
        any_class.append(any(c.flagged for c in r.classes))
        overall.append(r.overall.flagged)
    assert np.mean(any_class) <= 0.07  # measured 0.013 over 300 seeds
    assert np.mean(overall) <= 0.1


def test_bootstrap_and_wilson_intervals_cover_the_true_nfr():
    # true cell shares per class; images drawn with fixed counts per class, as the bootstrap assumes
    shares = np.array([[0.70, 0.08, 0.12, 0.06, 0.04], [0.55, 0.15, 0.10, 0.12, 0.08],
                       [0.80, 0.05, 0.09, 0.03, 0.03], [0.60, 0.12, 0.08, 0.10, 0.10]])
    per_class = np.array([150, 80, 200, 70])
    true_nfr = float(per_class @ shares[:, 1] / per_class.sum())
    rng = np.random.default_rng(42)
    cover_boot, cover_wilson, cover_class = [], [], []
    for seed in range(200):
        y, po, pn = [], [], []
        for c, (m, s) in enumerate(zip(per_class, shares)):
            cell = rng.choice(5, size=m, p=s)
            other = (c + 1) % 4
            y.append(np.full(m, c))
            po.append(np.where((cell == 0) | (cell == 1), c, other))
            pn.append(np.select([cell == 0, cell == 2, cell == 4], [c, c, (c + 2) % 4], other))
        y, po, pn = map(np.concatenate, (y, po, pn))
        eye = np.eye(4)
        r = version_regression(y, eye[po], eye[pn], scores_are="probabilities", n_boot=300, seed=seed)
        lo, hi = r.overall.intervals["nfr"]
        cover_boot.append(lo <= true_nfr <= hi)
        lo, hi = r.overall.wilson["nfr"]
        cover_wilson.append(lo <= true_nfr <= hi)
        lo, hi = r.classes[1].intervals["nfr"]
        cover_class.append(lo <= shares[1, 1] <= hi)
    assert 0.9 <= np.mean(cover_boot) <= 0.99, np.mean(cover_boot)
    assert 0.9 <= np.mean(cover_wilson) <= 0.995, np.mean(cover_wilson)
    assert 0.88 <= np.mean(cover_class) <= 0.99, np.mean(cover_class)


def test_rates_from_cells_nan_for_empty_denominators_and_nfr_upper():
    r = rates_from_cells([[0, 0, 0, 0, 0], [5, 0, 0, 0, 0]])
    assert np.isnan(r["nfr"][0]) and np.isnan(r["btc"][0])
    assert np.isnan(r["bec"][1]) and np.isnan(r["relative_nfr"][1]) and r["btc"][1] == 1.0
    y = np.repeat([0, 1], 10)
    old = np.eye(2)[y]
    res = version_regression(y, old, old, scores_are="probabilities", n_boot=100)
    row = res.classes[0]
    assert row.nfr == 0 and row.intervals["nfr"] == (0.0, 0.0)
    assert row.wilson["nfr"][1] > 0.1 and row.nfr_upper() == row.wilson["nfr"][1]
    assert np.isnan(row.p_value) and not row.flagged
    assert "no flips either way" in " ".join(res.notes)


def test_errors_name_the_argument():
    y, lo, ln, groups = _random_case(0, n=20)
    with pytest.raises(ValueError, match=r"scores_new: expected shape \(20, 5\)"):
        version_regression(y, lo, ln[:, :4])
    with pytest.raises(ValueError, match="groups: expected 20 labels"):
        version_regression(y, lo, ln, groups=groups[:5])
    with pytest.raises(ValueError, match="groups: expected labels of one sortable type"):
        version_regression(y, lo, ln, groups=["a", None] * 10)
    with pytest.raises(ValueError, match=r"y: expected class indices in \[0, 5\)"):
        version_regression(y + 5, lo, ln)
    with pytest.raises(ValueError, match="alternative"):
        version_regression(y, lo, ln, alternative="less")
    with pytest.raises(ValueError, match="classes: expected 5 names"):
        version_regression(y, lo, ln, classes=["a"])
    with pytest.raises(ValueError, match="scores_are"):
        version_regression(y, lo, ln, scores_are="probs")
    with pytest.raises(ValueError, match="n_boot"):
        version_regression(y, lo, ln, n_boot=-1)


def test_to_dict_is_json_ready():
    y, lo, ln, groups = _random_case(1, n=60)
    r = version_regression(y, lo, ln, groups=groups, n_boot=50, classes=list("abcde"))
    d = json.loads(json.dumps(r.to_dict(max_flips=3)))
    assert d["overall"]["counts"]["negative_flips"] == r.overall.negative_flips
    assert len(d["negative_flips"]) == min(3, len(r.negative_flips))
    assert [c["name"] for c in d["classes"]] == [list("abcde")[k] for k in sorted(set(y.tolist()))]
    assert set(d["overall"]["counts"]) == set(CELLS)


# ---- BCT cross-model compatibility


def _identities(seed, n_ids=12, per_id=5, dim=16, noise=0.6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    ids = np.repeat(np.arange(n_ids), per_id)
    return ids, centres[ids] + noise * rng.normal(size=(len(ids), dim)), centres, rng


def _unit(e):
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _brute_tar_rank1(q_emb, g_emb, ids, probes, gallery, far):
    gen, imp, hits, n_probes = [], [], 0, 0
    for i in probes:
        best_gen, best_imp = -np.inf, -np.inf
        for j in gallery:
            if i == j:
                continue
            s = float(np.dot(q_emb[i], g_emb[j]))
            if ids[i] == ids[j]:
                gen.append(s)
                best_gen = max(best_gen, s)
            else:
                imp.append(s)
                best_imp = max(best_imp, s)
        if best_gen > -np.inf:
            n_probes += 1
            hits += best_gen > best_imp
    gen, imp = np.array(gen), np.array(imp)
    ok = [t for t in np.unique(np.r_[gen, imp]) if np.mean(imp >= t) <= far]
    tar = np.mean(gen >= min(ok)) if ok else 0.0
    return tar, hits / n_probes


@pytest.mark.parametrize("use_probe", [False, True])
def test_cross_model_matches_brute_force(use_probe):
    ids, old, centres, rng = _identities(0)
    new = old + 0.5 * rng.normal(size=old.shape)
    probe = (np.arange(len(ids)) % 5 == 0) if use_probe else None
    r = cross_model_compatibility(old, new, ids, probe=probe, far=0.05)
    o, nw = _unit(old), _unit(new)
    probes = np.nonzero(probe)[0] if use_probe else np.arange(len(ids))
    gallery = np.nonzero(~probe)[0] if use_probe else np.arange(len(ids))
    for name, (a, b) in {"old/old": (o, o), "new/old": (nw, o), "new/new": (nw, nw)}.items():
        tar, rank1 = _brute_tar_rank1(a, b, ids, probes, gallery, 0.05)
        assert r.tar_at_far[name] == pytest.approx(tar, abs=1e-12), name
        assert r.rank1[name] == pytest.approx(rank1, abs=1e-12), name
    assert r.n_probes == len(probes) and r.n_gallery == len(gallery)
    perm = rng.permutation(len(ids))
    p2 = None if probe is None else probe[perm]
    shuffled = cross_model_compatibility(old[perm], new[perm], ids[perm], probe=p2, far=0.05)
    assert json.dumps(shuffled.to_dict(), sort_keys=True) == json.dumps(r.to_dict(), sort_keys=True)  # NaN-safe


def test_bct_identical_passes_rotated_fails_improved_meets_the_criterion():
    ids, old, centres, rng = _identities(1, n_ids=20)
    same = cross_model_compatibility(old, old.copy(), ids, far=0.01)
    assert same.compatible == {"tar_at_far": True, "rank1": True}
    assert json.loads(json.dumps(same.to_dict()))["compatible"] == same.compatible
    assert same.criterion == {"tar_at_far": False, "rank1": False}  # equal, not better
    assert same.tar_at_far["new/old"] == same.tar_at_far["old/old"] == same.tar_at_far["new/new"]

    q, _ = np.linalg.qr(rng.normal(size=(old.shape[1],) * 2))
    rotated = cross_model_compatibility(old, old @ q, ids, far=0.01)
    assert not rotated.compatible["tar_at_far"] and not rotated.compatible["rank1"]
    assert rotated.tar_at_far["new/old"] < 0.5 * rotated.tar_at_far["old/old"]
    assert rotated.tar_at_far["new/new"] == pytest.approx(rotated.tar_at_far["old/old"], abs=0.02)

    # a better model in the same space: images pulled toward their identity's centre
    better = old + 1.0 * centres[ids]
    improved = cross_model_compatibility(old, better, ids, far=0.01)
    assert improved.criterion["tar_at_far"] and improved.compatible["tar_at_far"]
    assert improved.tar_at_far["new/new"] > improved.tar_at_far["old/old"]
    assert 0 < improved.update_gain["tar_at_far"] <= 1.5


def test_weighted_tar_at_far_is_tar_at_far_of_the_repeated_pairs():
    from evallib.metrics.flips import weighted_tar_at_far
    from evallib.metrics.sweep import threshold_sweep

    rng = np.random.default_rng(0)
    gen = np.round(rng.normal(1, 1, 80), 1)  # rounded: ties between and within the two sets
    imp = np.round(rng.normal(-1, 1, 300), 1)
    wg, wi = rng.integers(0, 4, (6, 80)), rng.integers(0, 4, (6, 300))
    got = weighted_tar_at_far(gen, wg, imp, wi, 0.05)
    for b in range(6):
        g, i = np.repeat(gen, wg[b]), np.repeat(imp, wi[b])
        ref = threshold_sweep(np.r_[np.ones(len(g)), np.zeros(len(i))], np.r_[g, i]).tar_at_far(0.05)[0]
        assert got[b] == pytest.approx(ref, abs=1e-12)


def test_bct_difference_intervals_say_which_way_the_update_goes():
    ids, old, centres, rng = _identities(3, n_ids=20)
    same = cross_model_compatibility(old, old, ids, far=0.02, n_boot=300)
    assert same.difference_interval == {"tar_at_far": (0.0, 0.0), "rank1": (0.0, 0.0)}
    q, _ = np.linalg.qr(rng.normal(size=(old.shape[1],) * 2))
    rotated = cross_model_compatibility(old, old @ q, ids, far=0.02, n_boot=300)
    assert rotated.difference_interval["tar_at_far"][1] < 0 and rotated.difference_interval["rank1"][1] < 0
    better = cross_model_compatibility(old, old + centres[ids], ids, far=0.005, n_boot=300)
    lo, hi = better.difference_interval["tar_at_far"]
    d = better.tar_at_far["new/old"] - better.tar_at_far["old/old"]
    assert 0 < lo <= d <= hi
    none = cross_model_compatibility(old, old, ids, far=0.02, n_boot=0)
    assert np.isnan(none.difference_interval["rank1"][0])


def test_bct_difference_intervals_cover_the_expected_difference():
    def sim(seed):
        rng = np.random.default_rng(seed)
        c = rng.normal(size=(20, 16))
        ids = np.repeat(np.arange(20), 4)
        old = c[ids] + 0.9 * rng.normal(size=(80, 16))
        return old, old + 0.5 * c[ids] + 0.5 * rng.normal(size=(80, 16)), ids

    def diff(r):
        return np.array([r.tar_at_far["new/old"] - r.tar_at_far["old/old"], r.rank1["new/old"] - r.rank1["old/old"]])

    truth = np.mean([diff(cross_model_compatibility(*sim(s), far=0.01, n_boot=0)) for s in range(150)], axis=0)
    cover = []
    for s in range(30):
        r = cross_model_compatibility(*sim(1000 + s), far=0.01, n_boot=200, seed=s)
        cover.append([r.difference_interval[m][0] <= t <= r.difference_interval[m][1]
                      for m, t in zip(("tar_at_far", "rank1"), truth)])
    # measured over 300 simulations of 25 identities: 99.7% (TAR@FAR) and 91.7% (rank-1)
    assert np.all(np.mean(cover, axis=0) >= 0.8), np.mean(cover, axis=0)


def test_cross_model_errors():
    ids, old, _, _ = _identities(2)
    with pytest.raises(ValueError, match="embeddings_new: expected shape"):
        cross_model_compatibility(old, old[:, :8], ids)
    with pytest.raises(ValueError, match="probe: expected probes and a gallery"):
        cross_model_compatibility(old, old, ids, probe=np.ones(len(ids), bool))
    with pytest.raises(ValueError, match="labels: expected 60 labels"):
        cross_model_compatibility(old, old, ids[:10])
    with pytest.raises(ValueError, match="max_pairs"):
        cross_model_compatibility(old, old, ids, max_pairs=100)


# ---- verification pairs at matched FAR


def _brute_threshold(same, s, far):
    imp = s[~same]
    ok = [t for t in np.unique(s) if np.mean(imp >= t) <= far]
    return min(ok) if ok else np.inf


@pytest.mark.parametrize("seed", [0, 1])
def test_pair_flips_at_matched_far_equal_brute_force(seed):
    from evallib.metrics.flips import pair_flips

    rng = np.random.default_rng(seed)
    same = rng.random(3000) < 0.3
    old = rng.normal(size=3000) + 2.0 * same
    new = 0.7 * old + 0.7 * rng.normal(size=3000) + 0.5 * same
    r = pair_flips(same, old, new, far=0.02)
    t_old, t_new = _brute_threshold(same, old, 0.02), _brute_threshold(same, new, 0.02)
    assert (r.threshold_old, r.threshold_new) == (t_old, t_new)
    assert np.mean(old[~same] >= t_old) <= 0.02 and np.mean(new[~same] >= t_new) <= 0.02
    lost = [i for i in range(3000) if same[i] and old[i] >= t_old and new[i] < t_new]
    let_in = [i for i in range(3000) if not same[i] and old[i] < t_old and new[i] >= t_new]
    assert sorted(r.genuine_lost.tolist()) == lost and sorted(r.impostor_gained.tolist()) == let_in
    assert r.genuine_lost.tolist() == sorted(lost, key=lambda i: (-(t_new - new[i]), i))
    assert r.impostor_gained.tolist() == sorted(let_in, key=lambda i: (-(new[i] - t_new), i))
    assert r.rates["genuine_lost"] == len(lost) / same.sum()
    mc = mcnemar(old[same] >= t_old, new[same] >= t_new)
    assert (mc["only_a_correct"], mc["only_b_correct"]) == (len(r.genuine_lost), len(r.genuine_gained))
    assert r.p_genuine == pytest.approx(mc["p_value"], rel=1e-12)
    mc_imp = mcnemar(old[~same] < t_old, new[~same] < t_new)
    assert mc_imp["only_b_correct"] == len(r.impostor_gained) and mc_imp["only_a_correct"] == len(r.impostor_lost)


def test_pair_flips_at_given_thresholds_hand_worked():
    from evallib.metrics.flips import pair_flips

    same = np.array([1, 1, 1, 0, 0, 0], bool)
    old = np.array([0.9, 0.6, 0.3, 0.2, 0.55, 0.1])
    new = np.array([0.8, 0.4, 0.7, 0.6, 0.3, 0.1])
    r = pair_flips(same, old, new, thresholds=(0.5, 0.5))
    # genuine 1: old accepts 0.6, new rejects 0.4; genuine 2 gained; impostor 3 newly let in; impostor 4 now out
    assert r.genuine_lost.tolist() == [1] and r.genuine_gained.tolist() == [2]
    assert r.impostor_gained.tolist() == [3] and r.impostor_lost.tolist() == [4]
    assert json.loads(json.dumps(r.to_dict()))["genuine_lost"] == [1]
    assert r.rates == {"genuine_lost": 1 / 3, "genuine_gained": 1 / 3, "impostor_gained": 1 / 3,
                       "impostor_lost": 1 / 3}
    with pytest.raises(ValueError, match="thresholds: expected two numbers"):
        pair_flips(same, old, new, thresholds=0.5)
    with pytest.raises(ValueError, match="scores_new: expected 6 scores"):
        pair_flips(same, old, new[:3])
    few = pair_flips(same, old, new, far=0.01)  # 3 impostors cannot resolve FAR 0.01
    assert np.isnan(few.threshold_old) and "cannot resolve" in few.notes[0] and len(few.genuine_lost) == 0


# ---------------------------------------------------------------------------------------------- noise floor
def test_noise_floor_counts_ratio_and_test_match_a_loop_and_mcnemar():
    from evallib.metrics.flips import nfr_against_floor

    rng = np.random.default_rng(7)
    cand = rng.random(300) < 0.12
    floor = (rng.random(300) < 0.05) | (cand & (rng.random(300) < 0.3))
    f = nfr_against_floor(cand, floor, strata=rng.integers(0, 4, 300), n_boot=0)
    want = {"both": 0, "candidate_only": 0, "floor_only": 0, "neither": 0}
    for a, b in zip(cand, floor):
        want["both" if a and b else "candidate_only" if a else "floor_only" if b else "neither"] += 1
    assert f.counts == want and f.n == 300
    assert f.nfr == cand.mean() and f.floor_nfr == floor.mean()
    assert f.ratio == pytest.approx(cand.sum() / floor.sum())
    assert f.difference == pytest.approx(cand.mean() - floor.mean())
    # the discordant images are McNemar's: candidate-only against floor-only, one-sided
    mc = mcnemar(~cand, ~floor)
    assert (mc["only_b_correct"], mc["only_a_correct"]) == (want["candidate_only"], want["floor_only"])
    d = want["candidate_only"] + want["floor_only"]
    assert f.p_value == pytest.approx(binomtest(want["candidate_only"], d, 0.5, alternative="greater").pvalue)
    assert f.above_floor == (f.p_value <= 0.05 and f.nfr > f.floor_nfr)
    assert all(np.isnan(v).all() for v in f.intervals.values())  # no resamples
    assert f.over_margin(1.0)  # without an interval the gate cannot pass
    lo, hi = f.wilson["nfr"]
    assert lo < f.nfr < hi
    assert json.loads(json.dumps(f.to_dict()))["counts"] == want


def test_noise_floor_hand_worked_and_degenerate():
    from evallib.metrics.flips import nfr_against_floor

    cand = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    f = nfr_against_floor(cand, np.zeros(10, bool), n_boot=50)
    assert (f.nfr, f.floor_nfr, f.ratio) == (0.3, 0.0, np.inf)
    assert f.p_value == 0.125  # three discordant images, all the candidate's: 1/2**3
    same = nfr_against_floor(cand, cand, n_boot=50)
    assert same.ratio == 1.0 and same.difference == 0.0 and np.isnan(same.p_value) and not same.above_floor
    assert same.intervals["difference"] == (0.0, 0.0)  # identical flips: every resample differs by 0
    assert not same.over_margin(0.0)
    none = nfr_against_floor(np.zeros(5, bool), np.zeros(5, bool), n_boot=10)
    assert np.isnan(none.ratio) and none.nfr == 0.0
    with pytest.raises(ValueError, match="floor_negative_flips: expected 10"):
        nfr_against_floor(cand, cand[:4])
    with pytest.raises(ValueError, match="negative_flips: expected binary labels"):
        nfr_against_floor(np.arange(10), cand)
    with pytest.raises(ValueError, match="margin: expected a rate in"):
        same.over_margin(1.5)


def test_noise_floor_intervals_are_invariant_to_image_order():
    from evallib.metrics.flips import nfr_against_floor

    rng = np.random.default_rng(3)
    cand, floor, y = rng.random(400) < 0.1, rng.random(400) < 0.06, rng.integers(0, 5, 400)
    a = nfr_against_floor(cand, floor, strata=y, n_boot=200, seed=1)
    perm = rng.permutation(400)
    b = nfr_against_floor(cand[perm], floor[perm], strata=y[perm], n_boot=200, seed=1)
    assert a.to_dict() == b.to_dict()
    for k in ("nfr", "floor_nfr", "difference"):
        lo, hi = a.intervals[k]
        assert lo <= getattr(a, k) <= hi


def _floor_sim(rng, p_cand, p_floor, per_class=(150, 100, 200, 150)):
    """Negative flips of a candidate and of a floor on images of four classes, each image flipped by the
    candidate with probability ``p_cand[class]`` and by the floor with ``p_floor[class]``; hard images
    (a shared easiness) are flipped by both more often."""
    y = np.repeat(np.arange(len(per_class)), per_class)
    hard = rng.random(len(y)) < 0.3
    boost = np.where(hard, 2.0, 4 / 7)  # mean 1 over images: 0.3 * 2 + 0.7 * 4/7
    cand = rng.random(len(y)) < np.asarray(p_cand)[y] * boost
    floor = rng.random(len(y)) < np.asarray(p_floor)[y] * boost
    return y, cand, floor


def test_noise_floor_finds_a_planted_excess_and_rarely_a_false_one():
    from evallib.metrics.flips import nfr_against_floor

    p_floor = [0.03, 0.05, 0.04, 0.06]
    found, false = [], []
    for seed in range(150):
        rng = np.random.default_rng(seed)
        y, cand, floor = _floor_sim(rng, [2.5 * p for p in p_floor], p_floor)
        found.append(nfr_against_floor(cand, floor, strata=y, n_boot=0).above_floor)
        y, cand, floor = _floor_sim(rng, p_floor, p_floor)
        false.append(nfr_against_floor(cand, floor, strata=y, n_boot=0).above_floor)
    assert np.mean(found) >= 0.85, np.mean(found)  # measured 0.997 over 600 seeds
    assert np.mean(false) <= 0.08, np.mean(false)  # measured 0.045 over 600 seeds (alpha 0.05)


def test_noise_floor_difference_interval_covers_the_true_excess():
    from evallib.metrics.flips import nfr_against_floor

    p_floor, p_cand = [0.03, 0.05, 0.04, 0.06], [0.06, 0.05, 0.09, 0.08]
    per_class = np.array([150, 100, 200, 150])
    true = float(per_class @ (np.array(p_cand) - p_floor) / per_class.sum())
    cover, cover_ratio = [], []
    true_ratio = float(per_class @ np.array(p_cand) / (per_class @ np.array(p_floor)))
    for seed in range(200):
        y, cand, floor = _floor_sim(np.random.default_rng(1000 + seed), p_cand, p_floor)
        f = nfr_against_floor(cand, floor, strata=y, n_boot=300, seed=seed)
        lo, hi = f.intervals["difference"]
        cover.append(lo <= true <= hi)
        lo, hi = f.intervals["ratio"]
        cover_ratio.append(lo <= true_ratio <= hi)
    assert 0.9 <= np.mean(cover) <= 0.99, np.mean(cover)  # measured 0.934 over 1,000 simulations
    assert 0.88 <= np.mean(cover_ratio) <= 0.99, np.mean(cover_ratio)  # measured 0.932
