"""The version-comparison displays built from arrays, against the metrics and brute force; the display
contract on each."""

import json

import numpy as np
import pytest

from conftest import check_display
from evallib.metrics.flips import cross_model_compatibility, pair_flips, version_regression
from evallib.report.flips import (
    CompatibilityDisplay,
    FlipGalleryDisplay,
    FlipTransitionsDisplay,
    PairFlipsDisplay,
    RegressionTableDisplay,
)


def _pair(seed, n=500, n_classes=4, regress=None, noise=0.8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    old = rng.normal(size=(n, n_classes))
    old[np.arange(n), y] += 1.5
    new = old + noise * rng.normal(size=(n, n_classes))
    if regress is not None:
        new[y == regress, regress] -= 2.0
    return y, old, new


@pytest.mark.parametrize("n_classes", [4, 40])
def test_regression_table_shows_the_result_rows_worst_first(n_classes):
    y, old, new = _pair(0, n=60 * n_classes, n_classes=n_classes, regress=1, noise=0.3)
    names = [f"c{k}" for k in range(n_classes)]
    groups = np.where(np.arange(len(y)) % 2, "day", "night")
    disp = RegressionTableDisplay.from_predictions(y, old, new, classes=names, groups=groups, n_boot=100,
                                                   old_name="v1", new_name="v2")
    ref = version_regression(y, old, new, classes=names, groups=groups, n_boot=100)
    assert json.dumps(disp.result.to_dict(), sort_keys=True) == json.dumps(ref.to_dict(), sort_keys=True)
    rows = disp.rows
    assert rows[0].kind == "overall" and len(rows) == 1 + len(ref.classes) + len(ref.groups)
    flagged = [r for r in rows[1:] if r.flagged]
    assert "c1" in [r.name for r in flagged]  # the planted regression is among the rows shown first
    assert [r.flagged for r in rows[1:]] == [True] * len(flagged) + [False] * (len(rows) - 1 - len(flagged))
    p = [r.p_adjusted for r in flagged]
    assert p == sorted(p)
    html = check_display(disp)[1]
    assert "class: c1" in html and "regression" in html and "v1" in html
    assert ("All " in html and "rows: click a column header" in html) == (len(rows) > 25)
    assert f"{ref.overall.negative_flips:,} negative" in html


def test_transition_heat_map_counts_equal_brute_force():
    y, old, new = _pair(1, n_classes=6)
    disp = FlipTransitionsDisplay.from_predictions(y, old, new, classes=list("abcdef"))
    po, pn = old.argmax(1), new.argmax(1)
    t = np.zeros((6, 6), int)
    for i in range(len(y)):
        if po[i] == y[i] and pn[i] != y[i]:
            t[po[i], pn[i]] += 1
    np.testing.assert_array_equal(disp.transitions, t)
    top = disp.top(3)
    assert top[0]["count"] == t.max() and top[0]["share"] == pytest.approx(t.max() / t.sum())
    html = check_display(disp)[1]
    assert "Largest transitions" in html


def test_transition_heat_map_with_many_classes_and_without_flips():
    y, old, new = _pair(2, n=2000, n_classes=60)
    disp = FlipTransitionsDisplay.from_predictions(y, old, new)
    assert 2 <= len(disp.shown) <= 25
    check_display(disp)
    none = FlipTransitionsDisplay.from_predictions(y, old, old)
    assert "No negative flips" in check_display(none)[1]


def test_gallery_holds_exactly_the_flipped_images_in_order():
    y, old, new = _pair(3, n=300)
    n = len(y)
    images = np.repeat((np.arange(n) / n)[:, None, None], 4, axis=1).repeat(4, axis=2)  # image i is i/n
    r = version_regression(y, old, new, n_boot=0)
    disp = FlipGalleryDisplay.from_result(r, y, images=images, max_flips=None, per_row=5)
    shown = [int(round(img[0, 0] * n)) for row in disp.tiles for img, _ in row]
    brute = [i for i in range(n) if old[i].argmax() == y[i] and new[i].argmax() != y[i]]
    assert sorted(shown) == brute and shown == r.negative_flips.tolist()
    assert all(len(row) <= 5 for row in disp.tiles)
    # the filter by class, and the default cap
    only = FlipGalleryDisplay.from_result(r, y, images=images, only_classes=[2], max_flips=None)
    got = [int(round(img[0, 0] * n)) for row in only.tiles for img, _ in row]
    assert got == [i for i in r.negative_flips.tolist() if y[i] == 2]
    capped = FlipGalleryDisplay.from_predictions(y, old, new, images=images, max_flips=7)
    assert sum(len(row) for row in capped.tiles) == 7
    html = check_display(capped)[1]
    assert "the 7 most striking of" in html
    with pytest.raises(ValueError, match="only_classes"):
        FlipGalleryDisplay.from_result(r, y, images=images, only_classes=["nope"])




def test_gallery_with_heat_maps_puts_old_beside_new():
    y, old, new = _pair(4, n=200)
    calls = {}

    def cam(model):
        def draw(indices, targets):
            calls[model] = (list(indices), list(targets))
            return [np.full((3, 3, 3), 0.5) for _ in indices]
        return draw

    r = version_regression(y, old, new, n_boot=0)
    disp = FlipGalleryDisplay.from_result(r, y, images=None, cam_old=cam("old"), cam_new=cam("new"), max_flips=4,
                                          per_row=2, classes=list("abcd"))
    first = r.negative_flips[:4].tolist()
    assert calls["old"] == (first, [int(y[i]) for i in first])  # old: heat map for the true class
    assert calls["new"] == (first, [int(r.pred_new[i]) for i in first])  # new: for its wrong prediction
    caps = [c for row in disp.tiles for _, c in row]
    assert len(caps) == 8 and caps[0].startswith("#1 old: ") and caps[1].startswith("new: ")
    check_display(disp)


def test_compatibility_display_shows_the_result():
    rng = np.random.default_rng(5)
    ids = np.repeat(np.arange(15), 4)
    old = rng.normal(size=(15, 12))[ids] + 0.6 * rng.normal(size=(60, 12))
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    disp = CompatibilityDisplay.from_embeddings(old, old @ q, ids, far=0.01)
    ref = cross_model_compatibility(old, old @ q, ids, far=0.01)
    assert disp.result.tar_at_far == ref.tar_at_far and not disp.result.compatible["tar_at_far"]
    html = check_display(disp)[1]
    assert "new/old" in html and "not compatible" in disp.ax_.get_title()


def test_pair_gallery_shows_the_flipped_pairs_in_order():
    rng = np.random.default_rng(6)
    n_pairs, n_images = 400, 800
    pairs = np.column_stack([np.arange(0, n_images, 2), np.arange(1, n_images, 2)])
    images = np.repeat((np.arange(n_images) / n_images)[:, None, None], 3, axis=1).repeat(3, axis=2)
    same = rng.random(n_pairs) < 0.4
    old = rng.normal(size=n_pairs) + 2.5 * same
    new = 0.6 * old + 0.8 * rng.normal(size=n_pairs) + 0.8 * same
    disp = PairFlipsDisplay.from_predictions(same, old, new, pairs=pairs, images=images, far=0.05, max_pairs=3)
    ref = pair_flips(same, old, new, far=0.05)
    first = [int(round(img[0, 0] * n_images)) for img, _ in disp.tiles[0]]
    assert first == pairs[ref.genuine_lost[:3]].ravel().tolist()
    if len(ref.impostor_gained):
        second = [int(round(img[0, 0] * n_images)) for img, _ in disp.tiles[1]]
        assert second == pairs[ref.impostor_gained[:3]].ravel().tolist()
    html = check_display(disp)[1]
    assert "genuine pairs lost" in html and f"<td>{len(ref.genuine_lost)}</td>" in html
    with pytest.raises(ValueError, match="pairs: expected an int array"):
        PairFlipsDisplay.from_predictions(same, old, new, pairs=pairs[:5], images=images)


def test_noise_floor_display_from_four_models_scores():
    from evallib.metrics.flips import nfr_against_floor
    from evallib.report.flips import NoiseFloorDisplay

    y, old, new = _pair(8, n=600, regress=2, noise=0.5)  # the candidate: a regression in class 2
    _, a, b = _pair(8, n=600, noise=0.5)  # two runs of one recipe
    rng = np.random.default_rng(9)
    b = a + 0.5 * rng.normal(size=a.shape)
    disp = NoiseFloorDisplay.from_predictions(y, old, new, a, b, n_boot=100, seed=1, candidate="v1 → v2",
                                              floor="seed 0 → seed 1")
    flips = (old.argmax(1) == y) & (new.argmax(1) != y)
    floor = (a.argmax(1) == y) & (b.argmax(1) != y)
    ref = nfr_against_floor(flips, floor, strata=y, n_boot=100, seed=1)
    assert disp.result.to_dict() == ref.to_dict()
    assert ref.above_floor and ref.ratio > 1  # the planted regression is above what retraining flips
    ax, html = check_display(disp)
    assert "the noise floor" in ax.get_title() and f"{ref.ratio:.1f}x" in ax.get_title()
    assert "v1 → v2 flips more images than retraining does" in html and "seed 0 → seed 1" in html
    assert f"<td>{ref.counts['candidate_only']}</td>" in html
    # the intervals of each NFR can come from its own regression table
    shown = NoiseFloorDisplay.from_result(ref, nfr_interval=(0.1, 0.2), floor_interval=(0.01, 0.02))
    assert shown.intervals["nfr"] == (0.1, 0.2) and shown.intervals["difference"] == ref.intervals["difference"]
    assert "[0.1000, 0.2000]" in shown._repr_html_()


def test_pair_flips_display_without_images_shows_the_table():
    rng = np.random.default_rng(2)
    same = rng.random(300) < 0.4
    old = rng.normal(size=300) + 2.5 * same
    new = 0.6 * old + 0.8 * rng.normal(size=300) + 0.8 * same
    r = pair_flips(same, old, new, far=0.05)
    disp = PairFlipsDisplay.from_result(r, old, new, pairs=np.arange(600).reshape(300, 2), images=None,
                                        title="Pairs at FAR 0.05", operating_point="both at FAR 0.05")
    assert disp.tiles == [] and disp.title == "Pairs at FAR 0.05"
    html = check_display(disp)[1]
    assert "both at FAR 0.05" in html and "No pair gallery: the images could not be loaded." in html
    assert f"<td>{len(r.genuine_lost)}</td>" in html
    same_scores = PairFlipsDisplay.from_result(pair_flips(same, old, old, far=0.05), old, old,
                                               pairs=np.arange(600).reshape(300, 2), images=None)
    assert "No pair changed its decision." in same_scores._repr_html_()
