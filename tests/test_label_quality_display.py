"""The label-quality and duplicate views built from arrays: their numbers are the metrics' numbers."""

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
