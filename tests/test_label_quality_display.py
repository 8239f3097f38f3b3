"""The label-quality and duplicate views built from arrays: their numbers are the metrics' numbers."""

import html

import numpy as np
import pytest

from conftest import check_display
from evallib.metrics.duplicates import exact_duplicates, near_duplicates
from evallib.metrics.label_quality import label_issues, ranking_sensitivity
from evallib.report.label_quality import DuplicatesDisplay, LabelIssuesDisplay


def _scores(seed, n=400, c=5, m=3, flip=0.1):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, c, n)
    given = true.copy()
    flipped = rng.choice(n, int(flip * n), replace=False)
    given[flipped] = (true[flipped] + 1) % c
    base = 4.5 * np.eye(c)[true] + rng.standard_normal((n, c))
    return given, {f"m{k}": 2.25 * (base + rng.standard_normal((n, c))) for k in range(m)}




def test_label_issues_display_shows_the_metrics():
    y, scores = _scores(0)
    classes = ["ant", "bee", "cat", "dog", "eel"]
    names = [f"img{i:03d}.png" for i in range(len(y))]
    disp = LabelIssuesDisplay.from_predictions(y, scores, classes=classes, names=names)
    ref = label_issues(y, list(scores.values()), model_names=list(scores))
    np.testing.assert_array_equal(disp.issues.flagged, ref.flagged)
    sens = ranking_sensitivity(ref)
    np.testing.assert_allclose(disp.sensitivity.accuracy_corrected, sens.accuracy_corrected)
    assert disp.sensitivity.leave_one_out
    html = check_display(disp)[1]
    assert f"{ref.n_flagged:,} of 400 images" in html and "circular" not in html
    first = ref.review_order()[0]
    assert names[first] in html and f"All {ref.n_flagged} flagged images" in html  # more than 25: folded
    # the drawn points are the two accuracies of each model, best first by the given labels
    lines = [ln for ln in disp.ax_.lines if len(ln.get_xdata()) == 2]
    order = sens.ranking_given
    for line, m in zip(lines, order):
        np.testing.assert_allclose(line.get_xdata(), [sens.accuracy[m], sens.accuracy_corrected[m]])
    ticks = sorted(zip(disp.ax_.get_yticks(), [t.get_text() for t in disp.ax_.get_yticklabels()]), reverse=True)
    assert [t for _, t in ticks] == [list(scores)[m] for m in order]  # best at the top


def test_one_model_says_it_is_circular_and_from_result_checks_inputs():
    y, scores = _scores(1, m=1)
    issues = label_issues(y, scores["m0"])
    disp = LabelIssuesDisplay.from_result(issues)
    html = check_display(disp)[1]
    assert disp.sensitivity.circular and "circular" in html
    with pytest.raises(TypeError, match="issues: expected a LabelIssues"):
        LabelIssuesDisplay.from_result({"flagged": []})
    with pytest.raises(ValueError, match="names: expected 400 image names; got 2"):
        LabelIssuesDisplay.from_result(issues, names=["a", "b"])
    with pytest.raises(ValueError, match="classes: expected a name for each class"):
        LabelIssuesDisplay.from_result(issues, classes=["a"])


def test_duplicates_display_lists_conflicts_first():
    e = np.array([[1.0, 0, 0], [1.0, 0.01, 0], [0, 1.0, 0], [0, 1.0, 0.01], [0, 0, 1.0]])
    labels = ["a", "a", "b", "c", "d"]
    disp = DuplicatesDisplay.from_embeddings(e, threshold=0.99, labels=labels, names=list("VWXYZ"))
    np.testing.assert_array_equal(disp.result.pairs, near_duplicates(e, threshold=0.99, labels=labels).pairs)
    html = disp._repr_html_()
    assert html.index("X (b)") < html.index("V (a)") and "1 with conflicting labels" in html
    assert disp.title == "Near duplicates in the evaluation set" and not disp._has_figure()
    leak = DuplicatesDisplay.from_hashes(["h1", "h2", "h3"], reference=["h3", "h9"], names=["p", "q", "r"],
                                         reference_names=["t0", "t1"])
    assert leak.result.pairs.tolist() == exact_duplicates(["h1", "h2", "h3"], reference=["h3", "h9"]).pairs.tolist()
    assert "training data" in leak.title and "r</td><td>t0" in leak._repr_html_()
    none = DuplicatesDisplay.from_hashes(["h1", "h2"])
    assert "No duplicates" in none._repr_html_()
    with pytest.raises(TypeError, match="result: expected a DuplicatePairs"):
        DuplicatesDisplay.from_result([])
    with pytest.raises(ValueError, match="names: expected a value for every image up to index 3; got 3"):
        DuplicatesDisplay.from_embeddings(e, threshold=0.99, names=["a", "b", "c"])


def test_label_review_display_from_arrays_with_images_and_heat_maps():
    import re

    from evallib.report.label_quality import LabelReviewDisplay

    y, scores = _scores(1)
    classes = ["ant", "bee", "cat", "dog", "eel"]
    names = [f"img{i:03d}.png" for i in range(len(y))]
    rng = np.random.default_rng(0)
    images = rng.random((len(y), 12, 10))
    asked = []

    def cam(idx, targets):
        asked.append((list(idx), list(targets)))
        return [np.stack([images[i]] * 3, axis=-1) for i in idx]

    disp = LabelReviewDisplay.from_predictions(y, scores, images=images, cam=cam, classes=classes, names=names,
                                               cards=7, csv_name="suspected_labels.csv")
    ref = label_issues(y, list(scores.values()), model_names=list(scores))
    order = ref.review_order()
    assert len(order) > 7
    assert asked == [(order[:7].tolist(), ref.suggested_labels[order[:7]].tolist())]  # only the cards' heat maps
    ax, page = check_display(disp)
    assert len(disp.tiles) == 2 and len(disp.tiles[0]) == 6  # 7 cards drawn 6 per row
    np.testing.assert_array_equal(disp.tiles[0][0][0], images[order[0]])
    assert disp.tiles[0][0][1] == f"#1 {classes[y[order[0]]]} → {classes[ref.suggested_labels[order[0]]]}"
    cards = re.findall(r'data-given="([^"]*)" data-suggested="([^"]*)">\s*<div class="lr-imgs">', page)
    assert cards == [(classes[y[i]], classes[ref.suggested_labels[i]]) for i in order[:7]]
    listed = (re.findall(r'#\d+ (img\d+\.png)</div>', page)
              + re.findall(r'<tr class="lr-item[^>]*>\s*<td>(img\d+\.png)<', page))
    assert listed == [names[i] for i in order]
    assert page.count("<figcaption>Grad-CAM</figcaption>") == page.count("<figcaption>image</figcaption>") == 7
    assert 'class="evallib-filter-box lr-filter" data-sides="given suggested"' in page
    assert page.count("if (window.evallibClassFilter)") == 1 and '<a href="suspected_labels.csv">' in page
    for c in classes:  # each class offered with how many flagged images name it, given or suggested
        k = int(((y[order] == classes.index(c)) | (ref.suggested_labels[order] == classes.index(c))).sum())
        if k:
            assert f'<option value="{c}">{c} ({k})</option>' in page
    bare = LabelReviewDisplay.from_result(ref, cards=3)  # no images: the cards show the names, plot is blank
    _, html = check_display(bare)
    assert "<img" not in html.split("</style>", 1)[1] and bare.tiles == []
    with pytest.raises(ValueError, match="cards: expected an integer >= 0; got -1"):
        LabelReviewDisplay.from_result(ref, cards=-1)
    with pytest.raises(TypeError, match="issues: expected a LabelIssues"):
        LabelReviewDisplay.from_result(y)


def test_image_issues_display_lists_value_and_rule():
    from evallib.metrics.data_quality import image_issues
    from evallib.report.label_quality import ImageIssuesDisplay

    rng = np.random.default_rng(0)
    n = 60
    props = {"brightness": np.r_[rng.uniform(0.3, 0.5, n - 2), 0.01, 0.99], "contrast": np.full(n, 0.3),
             "blur": np.r_[rng.uniform(900, 1100, n - 1), 5.0], "entropy": np.full(n, 4.0),
             "pixels": np.full(n, 1024), "aspect_ratio": np.ones(n)}
    names = [f"f{i}.png" for i in range(n)]
    images = rng.random((n, 8, 8))
    disp = ImageIssuesDisplay.from_properties(props, names=names, images=images)
    res = image_issues(props)
    assert disp.result.counts() == res.counts() == {"dark": 1, "bright": 1, "low_information": 0, "blurry": 1,
                                                    "odd_size": 0, "odd_aspect": 0}
    ax, page = check_display(disp)
    assert [b.get_width() for b in ax.patches] == list(res.counts().values())
    assert "2 of 60 images have a quality issue (1 nearly black; 1 nearly white; 1 blurry)" in page  # 59: two
    for r in res.rows(names=names):
        assert f"<td>{r['image']}</td><td>{r['issue']}</td>" in page and html.escape(r["rule"]) in page
    assert page.count('<figure><img src="data:image/png;base64,') == 2
    clean = ImageIssuesDisplay.from_properties({k: v[:n - 2] for k, v in props.items()})
    assert "No image is flagged" in clean._repr_html_()


def test_duplicates_display_shows_perceptual_pairs_with_distance():
    from PIL import Image

    from evallib.report.label_quality import DuplicatesDisplay

    rng = np.random.default_rng(3)  # smooth images: random 4 x 4 grids enlarged
    base = [np.asarray(Image.fromarray((rng.random((4, 4)) * 255).astype(np.uint8)).resize((20, 20), Image.BICUBIC))
            for _ in range(6)]
    images = base + [np.asarray(Image.fromarray(base[2]).resize((40, 40), Image.BILINEAR))]
    disp = DuplicatesDisplay.from_images(images, labels=list("aabbccd"), names=[f"i{k}" for k in range(7)])
    assert disp.result.pairs.tolist() == [[2, 6]] and disp.title == \
        "Near duplicates in the evaluation set (perceptual hash)"
    html = disp._repr_html_()
    assert "perceptual hashes at most 3 bits (of 64) apart" in html and "hash distance (bits)" in html
    assert "<td>i2 (b)</td><td>i6 (d)</td>" in html and "1 with conflicting labels" in html
