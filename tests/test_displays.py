"""Every display built from plain arrays, against scikit-learn and brute-force references; the
display contract (``plot(ax) is disp``, ``ax_``, ``figure_``, HTML) on each."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import norm
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_fscore_support, roc_curve

from conftest import check_display
from evallib.metrics.curves import curve_band
from evallib.metrics.sweep import threshold_sweep
from evallib.metrics.verification import evaluate_verification
from evallib.report import (
    ConfusionDisplay,
    GalleryDisplay,
    HeadlineDisplay,
    LeaderboardDisplay,
    PairedComparisonDisplay,
    PerClassDisplay,
    PrecisionRecallDisplay,
    ReliabilityDisplay,
    RocDisplay,
    ScoreHistogramDisplay,
    ThresholdSliderDisplay,
    TrainingCurvesDisplay,
    TSNEMapDisplay,
    VerificationDisplay,
)


def _scores(rng, n, c, signal=1.5):
    y = rng.integers(0, c, n)
    s = rng.normal(size=(n, c))
    s[np.arange(n), y] += signal
    return y, s


@pytest.fixture(params=[4, 40], ids=["4 classes", "40 classes"])
def classified(request):
    rng = np.random.default_rng(request.param)
    y, s = _scores(rng, 600, request.param)
    return y, s, [f"c{k:02d}" for k in range(request.param)]




def test_confusion_equals_sklearn(classified):
    y, s, names = classified
    pred = s.argmax(1)
    disp = ConfusionDisplay.from_predictions(np.array(names)[y], np.array(names)[pred], classes=names)
    np.testing.assert_array_equal(disp.confusion, confusion_matrix(y, pred, labels=range(len(names))))
    html = check_display(disp)[1]
    assert disp.n_axes == (1 if len(names) <= 30 else 2)
    off = disp.confusion - np.diag(np.diag(disp.confusion))
    top = disp.pairs[0]
    assert top["count"] == off.max() and "Most confused pairs" in html


def test_confusion_labels_inferred_and_errors():
    disp = ConfusionDisplay.from_predictions(["b", "a", "b"], ["b", "b", "a"])
    assert disp.classes == ["a", "b"] and disp.confusion.tolist() == [[0, 1], [1, 1]]
    with pytest.raises(ValueError, match="y_pred: expected labels among classes; got z"):
        ConfusionDisplay.from_predictions(["a"], ["z"], classes=["a", "b"])
    with pytest.raises(TypeError, match="ax: expected two Axes"):
        ConfusionDisplay(np.eye(40, dtype=int), list(range(40))).plot(ax=Figure().add_subplot())


def _on_curve(curve, fpr, tpr):
    ref = np.c_[fpr, tpr]
    drawn = np.c_[curve.x, curve.y]
    assert len(drawn) <= min(len(ref), 4 * 400 + 2)
    assert max(np.abs(ref - p).sum(1).min() for p in drawn) < 1e-12
    assert drawn[0].tolist() == [0.0, 0.0] and drawn[-1].tolist() == [1.0, 1.0]


def test_roc_points_equal_sklearn_and_bands_bracket_the_curve(classified):
    y, s, names = classified
    disp = RocDisplay.from_predictions(y, s, classes=names, n_boot=100, bands="all")
    probs = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    # the micro average is every (image, class) score as one binary problem
    fpr, tpr, _ = roc_curve(np.eye(len(names), dtype=bool)[y].ravel(), probs.ravel(), drop_intermediate=False)
    micro = disp.curves[0]
    _on_curve(micro, fpr, tpr)  # every drawn point is one of scikit-learn's (at most 400 of them are kept)
    band = micro.band
    assert band.n_boot == 100 and np.all(band.lower <= band.upper)
    at = np.interp(band.x, fpr, tpr)
    inside = (band.lower - 1e-9 <= at) & (at <= band.upper + 1e-9)
    assert inside.mean() > 0.9  # the curve of the data itself lies inside its band almost everywhere
    per_class = [c for c in disp.curves if c.label.startswith("class ")]
    assert len(per_class) == (len(names) if len(names) <= 10 else 0)
    assert all(c.band is not None and c.band.n_boot == 100 for c in per_class)  # bands="all": every class's too
    assert RocDisplay.from_predictions(y, s, n_boot=20).curves[-1].band is None  # by default the micro average's only
    for k, c in enumerate(per_class):  # each class's own curve, point for point
        f, t, _ = roc_curve(y == k, probs[:, k], drop_intermediate=False)
        _on_curve(c, f, t)
    html = check_display(disp)[1]
    assert "pointwise 95% bootstrap band" in html


def test_precision_recall_average_precision_equals_sklearn(classified):
    y, s, names = classified
    disp = PrecisionRecallDisplay.from_predictions(y, s, classes=names, n_boot=50)
    probs = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    ap = average_precision_score(np.eye(len(names), dtype=bool)[y].ravel(), probs.ravel())
    assert disp.curves[0].label == f"micro average (AP {ap:.3f})"
    check_display(disp)


def test_stored_curves_keep_the_shape_of_a_steep_precision_recall_curve():
    """A million micro-average scores: the stored curve keeps a point at every 1/400 of either axis, so it
    reads the same precision as the full curve at every recall (thinning the point list evenly lost the
    curve's fall from precision 1, which happens within its first few thousand points)."""
    from evallib.metrics.curves import thin

    rng = np.random.default_rng(8)
    y, s = _scores(rng, 2000, 500, signal=2.5)
    probs = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    sw = threshold_sweep(np.eye(500, dtype=bool)[y].ravel(), probs.ravel())
    precision, recall, _ = sw.pr()
    r, p = thin(recall, precision)
    assert len(r) < 2000 < len(recall)
    grid = np.linspace(0.02, 0.98, 49)  # precision at the first point reaching each recall, thinned and full

    def at(rr, pp):
        return pp[np.minimum(np.searchsorted(rr, grid, side="left"), len(rr) - 1)]
    assert np.max(np.abs(at(r, p) - at(recall, precision))) < 0.01


def test_roc_from_sweeps_log_far():
    rng = np.random.default_rng(0)
    sw = threshold_sweep(rng.random(500) < 0.5, rng.random(500))
    disp = RocDisplay.from_sweeps({"m": sw}, log_x=True, marker=(0.1, 0.5))
    disp.plot()
    assert disp.ax_.get_xscale() == "log"


@pytest.mark.slow
def test_band_covers_the_population_curve_over_seeds():
    """Binormal scores (positives N(1, 1), negatives N(0, 1)): the true TPR at FPR f is
    1 - Phi(Phi^-1(1 - f) - 1); a 95% band should hold it in about 95% of samples."""
    f = np.array([0.1, 0.2, 0.5])
    truth = 1 - norm.cdf(norm.ppf(1 - f) - 1.0)
    pos = np.r_[np.ones(150, bool), np.zeros(150, bool)]
    hits = np.zeros(3)
    seeds = 120
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        score = np.where(pos, rng.normal(1, 1, 300), rng.normal(0, 1, 300))
        b = curve_band(pos, score, strata=pos.astype(int), n_boot=200, seed=seed, grid=f)
        hits += (b.lower <= truth) & (truth <= b.upper)
    coverage = hits / seeds
    assert np.all((coverage >= 0.88) & (coverage <= 0.995)), coverage


def test_band_is_stratified_and_degenerate_inputs_say_why():
    pos = np.r_[np.ones(3, bool), np.zeros(97, bool)]  # a rare class: 3 positives
    score = np.linspace(0, 1, 100)
    b = curve_band(pos, score, strata=pos.astype(int), n_boot=50)
    assert b.n_boot == 50 and np.isfinite(b.lower).all()  # every resample holds the 3 positives
    none = curve_band(np.zeros(10, bool), np.arange(10.0))
    assert none.n_boot == 0 and "both positives and negatives" in none.reason


def test_binned_band_of_many_scores_agrees_with_the_exact_band():
    """A micro-average band of n x C scores counts the scores in bins once and resamples the counts; on data small
    enough for both, the two bands agree to about the resolution of the bins."""
    rng = np.random.default_rng(7)
    y, s = _scores(rng, 800, 50, signal=2.5)
    probs = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    pos, unit = np.eye(50, dtype=bool)[y].ravel(), np.repeat(np.arange(800), 50)
    for kind in ("roc", "pr"):
        kw = dict(kind=kind, strata=y, groups=unit, n_boot=100, seed=3)
        exact = curve_band(pos, probs.ravel(), **kw)
        binned = curve_band(pos, probs.ravel(), budget=0, **kw)
        assert exact.reason == "" and "scores in 2,000 bins first" in binned.reason
        inner = slice(5, -5)  # away from the ends, where one step changes everything
        assert np.max(np.abs(binned.lower - exact.lower)[inner]) < 0.03, kind
        assert np.max(np.abs(binned.upper - exact.upper)[inner]) < 0.03, kind


def test_reliability_and_per_class_equal_sklearn(classified):
    y, s, names = classified
    rel = ReliabilityDisplay.from_predictions(y, s, classes=names)
    probs = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    conf, hit = probs.max(1), probs.argmax(1) == y
    edges = np.asarray(rel.reliability["bin_edges"])
    b = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, len(edges) - 2)
    ece = sum(abs(hit[b == k].mean() - conf[b == k].mean()) * (b == k).sum() for k in range(len(edges) - 1)
              if (b == k).any()) / len(y)
    assert rel.ece == pytest.approx(ece, abs=1e-12)
    check_display(rel)
    per = PerClassDisplay.from_predictions(y, s, classes=names)
    p, r, f1, sup = precision_recall_fscore_support(y, s.argmax(1), labels=range(len(names)), zero_division=0)
    np.testing.assert_allclose(per.f1, f1)
    np.testing.assert_allclose(per.precision, p)
    np.testing.assert_array_equal(per.support, sup)
    html = check_display(per)[1]
    assert ("click a column header" in html) == (len(names) > 25)


def test_headline_intervals_hold_the_value():
    rng = np.random.default_rng(1)
    y, s = _scores(rng, 400, 5)
    disp = HeadlineDisplay.from_predictions(y, s, n_boot=200, top_k=2)
    for name, value, iv in disp.rows:
        if iv is not None:
            assert iv[0] <= value <= iv[1], name
    assert disp.rows[0][1] == pytest.approx(np.mean(s.argmax(1) == y))
    check_display(disp)


def test_verification_displays_from_embeddings():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(20), 5)
    emb = rng.normal(size=(20, 16))[labels] + 0.6 * rng.normal(size=(100, 16))
    disp = VerificationDisplay.from_embeddings(emb, labels, n_bootstrap=50)
    html = check_display(disp)[1]
    assert "TAR at FAR" in html and "Thresholds chosen by each policy" in html
    # the histogram counts every pair once: brute force over the pairs
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = e @ e.T
    iu = np.triu_indices(100, 1)
    same = (labels[:, None] == labels[None, :])[iu]
    hist = ScoreHistogramDisplay.from_result(disp.result)
    assert sum(hist.histogram["genuine"]) == same.sum() and sum(hist.histogram["impostor"]) == (~same).sum()
    check_display(hist)
    arrays = ScoreHistogramDisplay.from_predictions(sim[iu][same], sim[iu][~same], threshold=0.5)
    assert sum(arrays.histogram["genuine"]) == same.sum()
    ref = evaluate_verification(emb, labels)
    assert disp.result.auc == pytest.approx(ref.auc)


def test_threshold_slider_from_arrays_matches_counts():
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.4
    s = rng.random(300) + 0.3 * y
    disp = ThresholdSliderDisplay.from_predictions(y, s, threshold=0.6)
    c = disp.sweep().table([0.6])
    assert int(c["tp"][0]) == int(np.sum(y & (s >= 0.6))) and int(c["fp"][0]) == int(np.sum(~y & (s >= 0.6)))
    html = check_display(disp)[1]
    assert "evallib-slider" in html
    many = ThresholdSliderDisplay.from_classes(*_scores(rng, 400, 80), classes=[f"k{i}" for i in range(80)])
    assert len(many.sweeps) == 50 and "lowest F1 of 80" in many.title


def test_training_curves_draw_two_panels():
    disp = TrainingCurvesDisplay.from_history({"epoch": [1, 2, 3], "loss": [1.0, 0.7, 0.5],
                                               "val_loss": [1.1, 0.8, 0.9], "val_accuracy": [0.5, 0.6, 0.7]})
    check_display(disp)
    loss_ax, metric_ax = disp.ax_
    assert {line.get_label() for line in loss_ax.get_lines()} == {"loss", "val_loss"}
    assert [line.get_label() for line in metric_ax.get_lines()] == ["val_accuracy"]
    assert loss_ax.get_title() != metric_ax.get_title()
    with pytest.raises(TypeError, match=r"ax: expected two Axes \(a sequence\) for TrainingCurvesDisplay"):
        disp.plot(ax=Figure().add_subplot())
    with pytest.raises(ValueError, match="history: expected 2 values"):
        TrainingCurvesDisplay.from_history({"epoch": [1, 2], "loss": [1.0]})


def test_tsne_map_from_embeddings():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(3), 30)
    emb = rng.normal(size=(3, 8))[labels] * 4 + rng.normal(size=(90, 8))
    disp = TSNEMapDisplay.from_embeddings(emb, labels, classes=["a", "b", "c"], predictions=labels)
    assert disp.tmap.coords.shape == (90, 2) and disp.tmap.trustworthiness > 0.8
    assert "trustworthiness" in check_display(disp)[1]


def test_gallery_from_arrays_picks_confident_and_wrong():
    rng = np.random.default_rng(5)
    y, s = _scores(rng, 60, 3)
    images = rng.random((60, 8, 8, 3))
    disp = GalleryDisplay.from_predictions(y, s, images=images, classes=["a", "b", "c"], size=4)
    assert len(disp.tiles) == 3
    pred = s.argmax(1)
    for k, row in enumerate(disp.tiles):
        correct = np.nonzero((y == k) & (pred == k))[0]
        best = correct[np.argmax(s[correct, k] - np.log(np.exp(s[correct]).sum(1)))]
        assert np.array_equal(row[0][0], images[best])  # the most confident correct image first
    check_display(disp)


def test_comparison_displays_from_arrays():
    board = LeaderboardDisplay.from_predictions({"a": 0.8, "b": 0.9, "c": float("nan")},
                                                intervals={"a": (0.75, 0.85), "b": (0.86, 0.94)})
    assert [r["model"] for r in board.groups[0][1]] == ["b", "a", "c"]
    check_display(board)
    rng = np.random.default_rng(6)
    y, s = _scores(rng, 300, 4, signal=2.0)
    worse = s + rng.normal(scale=2.0, size=s.shape)
    paired = PairedComparisonDisplay.from_predictions(y, {"good": s, "noisy": worse}, n_boot=100)
    heading, best, rows = paired.groups[0]
    assert best == "good" and rows[0]["difference"] == pytest.approx(np.mean(s.argmax(1) == y)
                                                                     - np.mean(worse.argmax(1) == y))
    check_display(paired)
