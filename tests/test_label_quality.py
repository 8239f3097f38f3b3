import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import binomtest

from evallib.errors import EvallibError
from evallib.metrics.label_quality import LabelIssues, label_issues, ranking_sensitivity


def simulate(seed, *, n=1000, c=10, m=3, flip=0.05, signal=4.5, shared=1.0, own=1.0):
    """Logits of m calibrated models on n images; ``flip`` of the given labels moved to another class.

    Each model sees ``signal * onehot(true) + shared noise (same for every model) + its own noise``;
    scaling by ``signal / variance`` makes its softmax the Bayes posterior of the true class given its
    view, i.e. a calibrated model (about 93% accurate at the defaults).
    """
    rng = np.random.default_rng(seed)
    true = rng.integers(0, c, n)
    given = true.copy()
    flipped = rng.choice(n, int(round(flip * n)), replace=False)
    given[flipped] = (true[flipped] + rng.integers(1, c, len(flipped))) % c
    base = signal * np.eye(c)[true] + shared * rng.standard_normal((n, c))
    scale = signal / (shared ** 2 + own ** 2)
    scores = [scale * (base + own * rng.standard_normal((n, c))) for _ in range(m)]
    planted = np.zeros(n, bool)
    planted[flipped] = True
    return given, true, scores, planted


def brute_force(y, p):
    """The confident-learning definitions, one image and one class at a time."""
    n, c = p.shape
    sc = np.array([p[i, y[i]] for i in range(n)])
    margin = np.array([p[i, y[i]] - max(p[i, k] for k in range(c) if k != y[i]) for i in range(n)])
    t = np.array([np.mean([p[i, j] for i in range(n) if y[i] == j]) if (y == j).any() else np.inf
                  for j in range(c)])
    conf = []
    for i in range(n):
        above = [j for j in range(c) if p[i, j] >= t[j]]
        conf.append(max(above, key=lambda j: (p[i, j], -j)) if above else -1)
    return sc, margin, t, np.array(conf)


@pytest.mark.parametrize("seed", range(3))
def test_single_model_scores_equal_a_brute_force_loop(seed):
    rng = np.random.default_rng(seed)
    n, c = 60, 5
    logits = rng.standard_normal((n, c)) * 2
    y = rng.integers(0, c - 1, n)  # the last class is never given: no threshold, never confident
    p = softmax(logits, axis=1)
    res = label_issues(y, logits, scores_are="logits")
    sc, margin, t, conf = brute_force(y, p)
    np.testing.assert_allclose(res.self_confidence[0], sc, rtol=1e-12)
    np.testing.assert_allclose(res.normalized_margin[0], margin, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.thresholds[0], t, rtol=1e-12)
    np.testing.assert_array_equal(res.confident_class[0], conf)
    np.testing.assert_array_equal(res.disagrees[0], (conf >= 0) & (conf != y))
    np.testing.assert_array_equal(res.flagged, res.disagrees[0])  # one model: one vote is the majority
    assert res.circular and res.min_votes == 1
    np.testing.assert_array_equal(res.predictions[0], p.argmax(axis=1))
    np.testing.assert_allclose(res.top_probability[0], p.max(axis=1), rtol=1e-12)
    # probabilities give the same result; "auto" recognises them
    again = label_issues(y, p, scores_are="auto")
    np.testing.assert_allclose(again.normalized_margin, res.normalized_margin, atol=1e-12)
    np.testing.assert_array_equal(again.confident_class, res.confident_class)


def test_chunked_pass_equals_one_pass(monkeypatch):
    import evallib.metrics.label_quality as lq

    given, _, scores, _ = simulate(4, n=300)
    whole = label_issues(given, scores)
    monkeypatch.setattr(lq, "_CHUNK_ELEMENTS", 70)  # 7 rows at a time
    chunked = label_issues(given, scores)
    for name in ("self_confidence", "normalized_margin", "thresholds", "confident_class", "flagged",
                 "suggested_labels", "quality"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-12)


def test_consensus_finds_planted_flips_over_seeds():
    precision, recall, single_precision, at_k, single_at_k = [], [], [], [], []
    for seed in range(10):
        given, _, scores, planted = simulate(seed)
        res = label_issues(given, scores)  # m=3, k=2 by default
        k = planted.sum()
        at_k.append(planted[res.quality_order()[:k]].mean())  # precision at k = number planted
        assert res.min_votes == 2 and not res.circular
        hit = np.sum(res.flagged & planted)
        precision.append(hit / max(res.n_flagged, 1))
        recall.append(hit / planted.sum())
        one = label_issues(given, scores[0])
        single_precision.append(np.sum(one.flagged & planted) / max(one.n_flagged, 1))
        single_at_k.append(planted[one.quality_order()[:k]].mean())
        # flagged flips mostly get their true class back
        true = simulate(seed)[1]
        found = res.flagged & planted
        assert np.mean(res.suggested_labels[found] == true[found]) >= 0.9
    assert min(precision) >= 0.8 and min(recall) >= 0.6
    assert np.mean(precision) >= 0.9 and np.mean(recall) >= 0.8
    assert np.mean(precision) > np.mean(single_precision)  # agreement across models removes false flags
    assert min(at_k) >= 0.8 and np.mean(at_k) > np.mean(single_at_k)  # measured 0.96 and 0.84 on average


def test_review_order_puts_flips_first():
    given, _, scores, planted = simulate(1)
    res = label_issues(given, scores)
    order = res.review_order()
    assert set(order) == set(np.nonzero(res.flagged)[0])
    assert np.all(np.diff(res.quality[order]) >= 0)
    # precision among the first half of the review list is at least that of the whole list
    top = order[: len(order) // 2]
    assert planted[top].mean() >= planted[order].mean()


def test_clean_labels_and_calibrated_models_raise_few_flags():
    rates, single = [], []
    for seed in range(10):
        given, true, scores, planted = simulate(seed + 100, flip=0.0)
        assert not planted.any() and np.array_equal(given, true)
        rates.append(label_issues(given, scores).flagged.mean())
        single.append(label_issues(given, scores[0]).flagged.mean())
    assert max(rates) <= 0.01  # measured 0.18% on average, at most 0.4%
    assert np.mean(rates) < np.mean(single)


def test_images_are_never_dropped_and_inputs_never_written():
    given, _, scores, _ = simulate(2, flip=0.2, n=200)
    kept = [s.copy() for s in scores]
    probs = [softmax(s, axis=1) for s in scores]
    probs_kept = [p.copy() for p in probs]
    for res in (label_issues(given, scores), label_issues(given, probs, scores_are="probabilities")):
        for name in ("flagged", "suggested_labels", "votes", "quality", "given_labels"):
            assert getattr(res, name).shape == (200,)
        assert res.self_confidence.shape == (3, 200)
        np.testing.assert_array_equal(res.given_labels, given)
        assert np.array_equal(res.suggested_labels[~res.flagged], given[~res.flagged])
        assert np.all(res.suggested_labels[res.flagged] != given[res.flagged])
    for a, b in zip(scores + probs, kept + probs_kept):
        np.testing.assert_array_equal(a, b)


def test_image_order_does_not_matter():
    given, _, scores, _ = simulate(3, n=400)
    perm = np.random.default_rng(0).permutation(400)
    a = label_issues(given, scores)
    b = label_issues(given[perm], [s[perm] for s in scores])
    for name in ("flagged", "suggested_labels", "quality", "votes"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name)[perm], rtol=1e-12)


def _one_hot_probs(pred, c=3, high=0.9):
    p = np.full((len(pred), c), (1 - high) / (c - 1))
    p[np.arange(len(pred)), pred] = high
    return p


def test_suggested_label_ties_go_to_the_larger_summed_probability():
    # 4 models, k=2; image 0 (given 0): two models vote class 1 at 0.6, two vote class 2 at 0.8
    y = np.array([0, 0, 1, 1, 2, 2])
    rows = []
    for vote, conf in ((1, 0.6), (1, 0.6), (2, 0.8), (2, 0.8)):
        p = _one_hot_probs(np.array([vote, 0, 1, 1, 2, 2]), high=0.5)  # thresholds 0.5 or below
        p[0] = 0.0
        p[0, vote] = conf
        p[0, 0] = 1 - conf
        rows.append(p)
    res = label_issues(y, rows, min_votes=2)
    assert res.votes[0] == 4 and res.flagged[0]
    assert res.suggested_labels[0] == 2
    # one more vote outweighs any probability
    res3 = label_issues(y, rows[:3], min_votes=2)
    assert res3.suggested_labels[0] == 1


# A hand-worked case: near one-hot scores (0.9 on the prediction), so a model confidently disagrees
# exactly where it predicts another class than the given one.
Y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
PRED = np.array([[0, 0, 1, 1, 1, 1, 2, 2, 2, 2],    # A
                 [0, 0, 1, 1, 1, 2, 2, 2, 0, 2],    # B
                 [0, 1, 0, 1, 1, 1, 2, 2, 0, 2]])   # C


def test_hand_worked_flags_and_bounds():
    res = label_issues(Y, [_one_hot_probs(p) for p in PRED], model_names=["A", "B", "C"])
    # votes: image 1 (C), 2 (A, B -> 1), 5 (B), 8 (B, C -> 0), 9 (A, B, C -> 2)
    assert res.votes.tolist() == [0, 1, 2, 0, 0, 1, 0, 0, 2, 3]
    assert np.nonzero(res.flagged)[0].tolist() == [2, 8, 9]
    assert res.suggested_labels[[2, 8, 9]].tolist() == [1, 0, 2]
    rows = res.rows(classes=["cat", "dog", "fox"], names=[f"img{i}.png" for i in range(10)])
    # quality -0.85, then a tie at -0.28 (votes tie too: by index)
    assert [r["image"] for r in rows] == ["img9.png", "img2.png", "img8.png"]
    assert rows[0]["given_label"] == "cat" and rows[0]["suggested_label"] == "fox" and rows[0]["votes"] == 3
    assert rows[1]["A top-1"] == "dog" and rows[1]["C top-1"] == "cat" and rows[1]["B confidence"] == 0.9
    np.testing.assert_allclose(rows[0]["quality"], 0.05 - 0.9)

    # leave one model out (default): A is judged by B and C (2 of 2): flags 8 -> 0, 9 -> 2;
    # B by A and C: flag 9 -> 2; C by A and B: flags 2 -> 1, 9 -> 2
    s = ranking_sensitivity(res)
    assert s.leave_one_out and not s.circular
    np.testing.assert_allclose(s.accuracy, [8 / 10, 6 / 10, 7 / 10])
    np.testing.assert_array_equal(s.n_flagged, [2, 1, 2])
    np.testing.assert_allclose(s.accuracy_flagged, [1 / 2, 0 / 1, 1 / 2])
    # A: right on 8 (given 2) becomes wrong, wrong on 9 becomes right: 8/10; B: 9 becomes right: 7/10;
    # C: right on 2 becomes wrong, 9 becomes right: 7/10
    np.testing.assert_allclose(s.accuracy_corrected, [8 / 10, 7 / 10, 7 / 10])
    assert s.ranking_given.tolist() == [0, 2, 1] and s.ranking_corrected.tolist() == [0, 1, 2]
    assert s.swapped_pairs == ((1, 2),) and s.ranking_changed  # B below C becomes a tie
    assert s.pairs == ((0, 1), (0, 2), (1, 2))
    # McNemar discordant pairs, given labels: A-B 2:0, A-C 2:1, B-C 0:1
    ref = [binomtest(0, 2).pvalue, binomtest(1, 3).pvalue, binomtest(0, 1).pvalue]
    np.testing.assert_allclose(s.p_given, ref)
    assert s.verdict_given == ("no difference",) * 3 and not s.any_verdict_changed
    lo, hi = s.accuracy_interval.T
    d = s.to_dict()
    assert d["swapped_pairs"] == [[1, 2]] and d["accuracy_corrected"] == [0.8, 0.7, 0.7] and d["ranking_changed"]
    assert np.all(lo < s.accuracy) and np.all(s.accuracy < hi)

    # every model judged by the shared flags 2 -> 1, 8 -> 0, 9 -> 2
    shared = ranking_sensitivity(res, leave_one_out=False)
    assert shared.circular and not shared.leave_one_out
    np.testing.assert_array_equal(shared.n_flagged, [3, 3, 3])
    np.testing.assert_allclose(shared.accuracy_flagged, [1 / 3, 0 / 3, 1 / 3])
    np.testing.assert_allclose(shared.accuracy_corrected, [9 / 10, 9 / 10, 8 / 10])
    assert shared.swapped_pairs == ((0, 1), (1, 2))


def test_own_flags_inflate_a_model_and_leave_one_out_does_not():
    """cleanlab #1158: with clean labels, correcting by a model's own flags scores its own mistakes right."""
    own, others, shared = [], [], []
    for seed in range(8):
        given, _, scores, _ = simulate(seed + 200, flip=0.0, signal=4.0)
        res = label_issues(given, scores)
        lomo = ranking_sensitivity(res)
        one = ranking_sensitivity(label_issues(given, scores[0]))
        assert one.circular and one.pairs == () and one.ranking_changed is False
        own.append(one.accuracy_corrected[0] - one.accuracy[0])
        others.append(np.mean(lomo.accuracy_corrected - lomo.accuracy))
        shared.append(np.mean(ranking_sensitivity(res, leave_one_out=False).accuracy_corrected - lomo.accuracy))
    assert min(own) > 0 and np.mean(own) > 0.01  # measured +2.6 points on average
    assert abs(np.mean(others)) < 0.002
    assert np.mean(others) < np.mean(shared) < np.mean(own)


def test_a_model_that_fits_the_wrong_labels_loses_its_lead():
    """Model 0 is worse than the others on the clean images but predicts the flipped labels: it leads on the
    given labels, falls last once the flags are taken as errors; with clean labels no verdict changes."""
    changed, null_changed = 0, 0
    for seed in range(5):
        for flip in (0.08, 0.0):
            given, true, scores, planted = simulate(seed + 300, flip=flip, n=4000)
            rng = np.random.default_rng(seed)
            fitted = scores[0].copy()
            wrong = ~planted & (rng.uniform(size=len(given)) < 0.06)
            fitted[wrong, (true[wrong] + 1) % 10] = 20.0  # about 5% more mistakes on clean images
            fitted[planted] = 0.0
            fitted[planted, given[planted]] = 20.0  # and the wrong given label on every flipped one
            s = ranking_sensitivity(label_issues(given, [fitted] + scores[1:]))
            if flip:
                assert s.ranking_given[0] == 0 and s.ranking_corrected[-1] == 0
                assert s.verdict_given[:2] == ("a better", "a better")
                assert s.verdict_corrected[:2] == ("b better", "b better")
                changed += s.ranking_changed and s.any_verdict_changed
            else:
                null_changed += s.any_verdict_changed or s.ranking_changed
    assert changed == 5 and null_changed == 0


def test_errors_name_the_argument():
    y = np.array([0, 1, 1])
    p = _one_hot_probs(np.array([0, 1, 1]), c=2)
    with pytest.raises(EvallibError, match="min_votes: expected an integer from 1 to the number of models"):
        label_issues(y, [p, p], min_votes=3)
    with pytest.raises(EvallibError, match=r"scores\[1\]: expected shape \(3, 2\)"):
        label_issues(y, [p, p[:2]])
    with pytest.raises(EvallibError, match=r"y_true: expected class indices in \[0, 2\)"):
        label_issues(np.array([0, 1, 2]), p)
    with pytest.raises(EvallibError, match="y_true: expected integer class indices"):
        label_issues(np.array([0.0, 1.0, 1.0]), p)
    with pytest.raises(EvallibError, match="model_names: expected 2 names"):
        label_issues(y, [p, p], model_names=["a"])
    with pytest.raises(EvallibError, match="scores_are: expected one of"):
        label_issues(y, p, scores_are="softmax")
    with pytest.raises(EvallibError, match="scores: expected at least one"):
        label_issues(y, [])
    with pytest.raises(EvallibError, match="issues: expected a LabelIssues"):
        ranking_sensitivity({"flagged": []})
    res = label_issues(y, [p, p])
    assert isinstance(res, LabelIssues)
    with pytest.raises(EvallibError, match="exclude: expected to leave at least one"):
        res.flags_without([0, 1])
    with pytest.raises(ValueError, match="alpha"):
        ranking_sensitivity(res, alpha=2)
