"""Reports at many classes: class orders for the confusion matrix, worst-first tables, legends, the
summary's checks and ranking, notes without paths, and the page's small scripts in Chromium."""

import json
import re
import shutil
import warnings

import numpy as np
import pytest
import yaml
from PIL import Image

import evallib
from conftest import export_tiny_model
from evallib._messages import skipped_warnings
from evallib.display import figure_with_hover, folded_table, short_message
from evallib.errors import EvallibError
from evallib.metrics import cluster_order, confusion_distance, most_confused_classes, threshold_sweep
from evallib.report import worst_first
from evallib.slider import static_slider_html, sweep_payload
from evallib.summary import data_key, rank_among, summary_html
from evallib.tsne import MAX_LEGEND, TSNEMap, class_colours, plot_tsne

PLANTED = [(3, 17, 6, 2), (5, 29, 5, 0), (11, 12, 4, 1), (30, 8, 3, 3)]  # (i, j, i->j, j->i)


def planted_confusion(rng, n=40, per_class=10):
    """Each class ``per_class`` images; the PLANTED pairs confused a lot, a few single confusions elsewhere."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.fill_diagonal(cm, per_class)
    for i, j, a, b in PLANTED:
        cm[i, i] -= a
        cm[i, j] += a
        cm[j, j] -= b
        cm[j, i] += b
    planted = {k for i, j, _, _ in PLANTED for k in (i, j)}
    for _ in range(12):  # noise: one image each, between classes outside the planted pairs
        i, j = rng.choice([k for k in range(n) if k not in planted], 2, replace=False)
        if cm[i, i] > 1:
            cm[i, i] -= 1
            cm[i, j] += 1
    return cm


def test_confusion_distance_against_brute_force(rng):
    cm = planted_confusion(rng)
    d = confusion_distance(cm)
    n = len(cm)
    mutual = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                mutual[i, j] = cm[i, j] / cm[i].sum() + cm[j, i] / cm[j].sum()
    want = 1 - mutual / mutual.max()
    np.fill_diagonal(want, 0)
    np.testing.assert_allclose(d, want)
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    assert d[3, 17] == 0  # the most confused pair


def test_cluster_order_is_a_permutation_that_puts_confused_classes_side_by_side(rng):
    cm = planted_confusion(rng)
    order = cluster_order(cm)
    assert sorted(order.tolist()) == list(range(len(cm)))
    pos = np.argsort(order)
    for i, j, _, _ in PLANTED:
        assert abs(pos[i] - pos[j]) == 1, (i, j)
    # a chain a<->b<->c: b sits between a and c
    chain = np.diag(np.full(12, 10))
    chain[0, 0], chain[0, 7] = 4, 6
    chain[7, 7], chain[7, 2] = 7, 3
    pos = np.argsort(cluster_order(chain))
    assert abs(pos[0] - pos[7]) == 1 and abs(pos[7] - pos[2]) == 1
    # invariance: relabelling the classes relabels the order's neighbours, not who sits next to whom
    perm = rng.permutation(len(cm))
    pos_p = np.argsort(cluster_order(cm[np.ix_(perm, perm)]))
    inv = np.argsort(perm)
    for i, j, _, _ in PLANTED:
        assert abs(pos_p[inv[i]] - pos_p[inv[j]]) == 1
    assert cluster_order(np.eye(2)).tolist() == [0, 1]


def test_most_confused_classes_takes_the_largest_cells_first(rng):
    cm = planted_confusion(rng)
    idx = most_confused_classes(cm, max_classes=4)
    assert sorted(idx.tolist()) == [3, 5, 17, 29]  # the two largest cells: 3->17 (6), 5->29 (5)
    pos = {k: p for p, k in enumerate(idx.tolist())}
    assert abs(pos[3] - pos[17]) == 1 and abs(pos[5] - pos[29]) == 1
    big = most_confused_classes(cm, max_classes=25)
    off = cm - np.diag(np.diag(cm))
    # brute force: every class of a cell at least as large as the smallest planted one is in
    must = {k for i, j in zip(*np.nonzero(off >= 3)) for k in (i, j)}
    assert must <= set(big.tolist()) and len(big) <= 25 and len(set(big.tolist())) == len(big)
    assert all(off[k].any() or off[:, k].any() for k in big)  # only classes that take part in a confusion
    assert len(most_confused_classes(np.diag([5, 5, 5]))) == 0
    with pytest.raises(EvallibError, match=r"confusion: expected a square ndarray.*got shape \(2, 3\)"):
        most_confused_classes(np.ones((2, 3)))
    with pytest.raises(EvallibError, match="max_classes: expected an integer >= 2; got 1"):
        most_confused_classes(cm, max_classes=1)


def test_worst_first_sorts_by_f1_then_images(rng):
    f1 = np.round(rng.random(60), 1)
    f1[[4, 9]] = np.nan
    support = rng.integers(0, 8, 60)
    want = sorted(range(60), key=lambda k: (np.inf if np.isnan(f1[k]) else f1[k], -support[k], k))
    assert worst_first(f1, support).tolist() == want
    with pytest.raises(ValueError, match=r"support: expected one count per class \(60\); got shape \(3,\)"):
        worst_first(f1, [1, 2, 3])


def _tsne_axes(n_classes, mistakes=True):
    rng = np.random.default_rng(0)
    labels = np.arange(3 * n_classes) % n_classes
    tmap = TSNEMap(rng.normal(size=(len(labels), 2)), 0.9, len(labels), "test", 0)
    wrong = (np.arange(len(labels)) % 7 == 0) if mistakes else None
    ax, _ = plot_tsne(tmap, labels, [f"c{k}" for k in range(n_classes)], mistakes=wrong)
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_tsne_legend_lists_at_most_twenty_classes():
    assert _tsne_axes(5) == ["c0", "c1", "c2", "c3", "c4", "misclassified (thumbnail: black frame)"]
    assert len(_tsne_axes(MAX_LEGEND)) == MAX_LEGEND + 1
    assert _tsne_axes(MAX_LEGEND + 1) == ["misclassified (thumbnail: black frame)"]
    assert _tsne_axes(300, mistakes=False) == []
    colours = class_colours(300)
    assert colours.shape == (300, 4) and len({tuple(c) for c in colours.round(6)}) == 300
    assert not np.allclose(colours[0], colours[1])  # neighbouring classes differ


def test_short_message_drops_machine_paths():
    assert short_message("cannot identify image file '/home/ana/data/cat/cat_1.png'") == \
        "cannot identify image file 'cat_1.png'"
    assert short_message("onnx2torch could not convert /tmp/x/y/odd.onnx: ThresholdedRelu\nTraceback ...") == \
        "onnx2torch could not convert odd.onnx: ThresholdedRelu"
    assert short_message(r"C:\Users\ana\m.onnx and ~/models/m2.onnx, 0/0 (never predicted)") == \
        "m.onnx and m2.onnx, 0/0 (never predicted)"
    assert len(short_message("x" * 1000)) == 240


def test_folded_table_shows_the_first_rows_and_folds_all():
    rows = [[f"c{k}", k / 10, k] for k in range(30)]
    html = folded_table(rows, ["class", "F1", "images"], shown=25, what="classes")
    first, folded = html.split("<details", 1)
    assert first.count("<tr>") == 26 and "c24" in first and "c25" not in first
    assert "All 30 classes" in folded and folded.count("<tr>") == 31 and 'data-v="2.9"' in folded
    assert "evallib-sortable" in folded and "<script>" in html
    small = folded_table(rows[:10], ["class", "F1", "images"], shown=25)
    assert "<details" not in small and small.count("<tr>") == 11
    assert "&lt;b&gt;" in folded_table([["<b>", 1.0]] * 30, ["a", "b"])


def test_skipped_files_warning():
    skipped = [{"path": f"imgs/{k}.png", "reason": "truncated"} for k in range(5)]
    assert skipped_warnings(skipped) == ["skipped files: 5 files not evaluated: imgs/0.png (truncated); imgs/1.png "
                                         "(truncated); imgs/2.png (truncated); and 2 more (see Model and data)"]
    assert skipped_warnings([]) == []


def _metrics(value, root="/data/a", interval=(0.1, 0.2)):
    return {"run": {"dataset": {"root": root, "images": 30, "classes": ["a", "b"]}},
            "headline": {"macro_f1": {"value": value, "interval": list(interval)}}}


def test_rank_among_models_of_the_same_data():
    peers = {"a": _metrics(0.7), "b": _metrics(0.9), "c": _metrics(0.8, root="/data/other"),
             "d": _metrics(float("nan")), "e": _metrics(0.75)}
    rows = rank_among("a", peers, "macro_f1")
    assert [(r["rank"], r["name"]) for r in rows] == [(1, "b"), (2, "e"), (3, "a")]  # c: other data; d: no value
    assert rank_among("c", peers, "macro_f1") is None  # alone on its data
    assert data_key(peers["a"]["run"]) != data_key(peers["c"]["run"])
    fp = {"run": {"data_fingerprint": "abc", "dataset": {"root": "/x"}}}
    assert data_key(fp["run"]) == data_key({"data_fingerprint": "abc", "dataset": {"root": "/y"}})
    html = summary_html(name="a", lede="a on <data>", headline=peers["a"]["headline"], primary="macro_f1",
                        decision="argmax.", ranking=rows, warnings=["<b>w</b>"], toc=[("sec-x", "X")])
    assert "3 of 3 models evaluated on the same data, by macro F1" in html
    assert "&lt;data&gt;" in html and "&lt;b&gt;w&lt;/b&gt;" in html and "<b>w</b>" not in html
    assert '<a href="#sec-x">X</a>' in html and "[0.1000, 0.2000]" in html


def _curves(n):
    rng = np.random.default_rng(1)
    out = []
    for k in range(n):
        y = rng.integers(0, 2, 40)
        out.append((f"class c{k:02d} vs rest", y, rng.random(40) + 0.3 * y))
    return out


@pytest.mark.slow
def test_page_scripts_in_chromium(tmp_path):
    """The folded table sorts on a click, the slider's search filters the chooser, hover titles sit on points."""
    from matplotlib.figure import Figure
    from playwright.sync_api import sync_playwright

    rows = [[f"c{k:02d}", float(v), int(s)] for k, (v, s) in
            enumerate(zip(np.r_[np.linspace(0, 1, 29), np.nan], np.arange(30) % 4))]
    table = folded_table(rows, ["class", "F1", "images"], shown=25, what="classes")
    curves = _curves(15)
    slider = static_slider_html([sweep_payload(threshold_sweep(y, s), name=n, positive="class",
                                               negative="other classes") for n, y, s in curves], initial=0.5)
    fig = Figure(figsize=(4, 3), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    xy = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0]])
    ax.scatter(xy[:, 0], xy[:, 1])
    fig.draw_without_rendering()
    hover = figure_with_hover(fig, ax.transData.transform(xy), ["first", "<second>", "third"], dpi=80)
    page_file = tmp_path / "page.html"
    page_file.write_text(f"<!doctype html><html><body>{table}{slider}{hover}</body></html>")
    errors = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        full = page.locator("table.evallib-sortable")
        assert not full.is_visible()
        page.locator("details.evallib-fold > summary").click()
        f1_header = full.locator("th").nth(1)
        f1_header.click()
        shown = [t or "n/a" for t in full.locator("tbody tr td:nth-child(2)").all_inner_texts()]
        want = sorted((r for r in rows if not np.isnan(r[1])), key=lambda r: r[1])
        assert shown == [f"{r[1]:.4f}" for r in want] + ["n/a"]
        f1_header.click()
        shown = full.locator("tbody tr td:nth-child(2)").all_inner_texts()
        assert shown[:2] == ["1.0000", f"{want[-2][1]:.4f}"] and shown[-1] == "n/a"
        full.locator("th").nth(0).click()
        assert full.locator("tbody tr td:nth-child(1)").all_inner_texts()[:2] == ["c00", "c01"]

        box = page.locator(".evallib-slider")
        search = box.locator("input[type=search]")
        assert search.is_visible()
        search.fill("c13")
        visible = box.locator("select option:not([hidden])").all_inner_texts()
        assert visible == ["class c13 vs rest"]
        assert box.locator("select").input_value() == "13"
        name, y, s = curves[13]
        rng_input = box.locator("input[type=range]")
        rng_input.evaluate("(el) => { el.value = 11; el.dispatchEvent(new Event('input')); }")
        t = float(box.locator("[data-field=threshold]").get_attribute("data-threshold"))
        assert int(box.locator("[data-field=tp]").inner_text()) == np.sum(s[y == 1] >= t)
        assert int(box.locator("[data-field=fp]").inner_text()) == np.sum(s[y == 0] >= t)
        search.fill("no such class")
        assert box.locator("[data-field=matches]").inner_text() == "no match"

        page.locator(".evallib-hover").scroll_into_view_if_needed()
        img = page.locator(".evallib-hover img").bounding_box()  # in the viewport's pixels
        scale = img["width"] / fig.bbox.width
        for (x, y_), title in zip(ax.transData.transform(xy), ["first", "<second>", "third"]):
            got = page.evaluate("([x, y]) => { var e = document.elementFromPoint(x, y); "
                                "return e && e.querySelector('title') ? e.querySelector('title').textContent : null; }",
                                [img["x"] + x * scale, img["y"] + (fig.bbox.height - y_) * scale])
            assert got == title
        browser.close()
    assert errors == []


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """A 40-class report loaded in-process (no notebook): a tiny model on 3 noisy images per class."""
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(3)
    names = [f"class_{k:02d}" for k in range(40)]
    for k, name in enumerate(names):
        (root / "data" / name).mkdir(parents=True)
        for j in range(3):
            arr = np.clip(rng.normal(40 + 4 * k, 30, size=(16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(arr, "L").save(root / "data" / name / f"{j}.png")
    model = export_tiny_model(root / "tiny40.onnx", n_classes=40)
    (root / "many.yaml").write_text(yaml.safe_dump({
        "name": "many", "model": str(model), "task": "classification",
        "data": {"root": str(root / "data"), "labels": "folder"},
        "preprocess": {"mean": [0.5], "std": [0.25], "mode": "grayscale"},
        "outputs": {"scores": "logits", "scores_are": "logits", "embedding": "embedding"},
        "report": {"bootstrap": 20, "gallery_size": 4, "tsne_thumbnails": 10}}))
    return root


def test_sections_at_forty_classes(many, evaluated):
    from evallib.report.classification import CONFUSED_CLASSES
    from evallib.report.gallery import GALLERY_CLASSES

    rep = evaluated(many / "many.yaml", many / "out")
    c = rep.classification

    html = rep.classification_summary._repr_html_()
    worst = worst_first(c.f1, c.support)
    assert "The 25 classes with the lowest F1 of 40" in html and "All 40 classes" in html
    first = html.split("<details", 1)[0].split("<h4>Per class</h4>", 1)[1]
    assert re.findall(r"<tr><td>(class_\d\d)</td>", first) == [c.classes[k] for k in worst[:25]]

    html = rep.confusion._repr_html_()
    idx = most_confused_classes(c.confusion, max_classes=CONFUSED_CLASSES)
    assert html.count("<img") == 2 and len(idx) >= 2 and rep.confusion.n_axes == 2
    assert f"The {len(idx)} classes involved in the largest off-diagonal counts, of 40" in html
    assert "one pixel per pair of classes" in html and "Most confused pairs" in html
    sub, full = rep.confusion.plot().ax_  # plot draws both panels the page shows
    assert sub.get_title().startswith(f"The {len(idx)} most confused classes of 40")
    assert full.get_title().startswith("All 40 classes, ordered by hierarchical clustering")

    gallery = rep.grad_cam_gallery.displays[0]
    assert 1 <= len(gallery.tiles) <= GALLERY_CLASSES
    assert "the 10 true classes with the lowest F1 (of 40)" in gallery.how_to_read

    html = rep.tsne_map._repr_html_()
    assert "Colours by class; 40 classes" in html
    assert html.count("<circle") == 120 and "<title>class_" in html and str(many) not in html

    html = rep.classification_slider._repr_html_()
    data = json.loads(re.search(r'class="evallib-slider-data">(.*?)</script>', html, re.S).group(1))
    names = [d["name"] for d in data]
    assert names == sorted(names) and len(names) == 40 and 'type="search"' in html


def test_warnings_go_to_notes_without_paths(many, monkeypatch, capsys, evaluated):
    from evallib import plots

    real = plots.plot_confusion_image

    def noisy(*args, **kwargs):
        warnings.warn(f"Glyph missing in {many}/fonts/x.ttf", UserWarning, stacklevel=1)
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(plots, "plot_confusion_image", noisy)
    rep = evaluated(many / "many.yaml", many / "out")
    capsys.readouterr()
    _ = rep.confusion
    _ = rep.confusion  # built once
    other = evallib.load(many / "out" / "many")  # a report of its own draws again, with its own notes
    _ = other.confusion
    assert other.render_notes == {"Confusion matrix: Glyph missing in x.ttf": 1}
    _ = rep.reliability
    assert capsys.readouterr().err == ""
    assert rep.render_notes == {"Confusion matrix: Glyph missing in x.ttf": 1}
    notes = rep.notes._repr_html_()
    assert "Confusion matrix: Glyph missing in x.ttf" in notes and str(many) not in notes


def test_large_confusion_goes_to_npz(many, monkeypatch, evaluated):
    from evallib import evaluation
    from evallib.outputs import load_metrics

    monkeypatch.setattr(evaluation, "BULKY_CELLS", 100)
    out = many / "out_npz"
    rep = evaluated(many / "many.yaml", out)
    raw = json.loads((out / "many" / "metrics.json").read_text())
    assert raw["classification"]["confusion"] == {"npz": "metrics.npz", "key": "confusion", "shape": [40, 40]}
    m = load_metrics(out / "many")
    assert m["classification"]["confusion"] == rep.classification.confusion.tolist()
    monkeypatch.setattr(evaluation, "BULKY_CELLS", 10_000)
    evaluation.write_evaluation(out / "many", rep.evaluation, metrics_key=rep.run["metrics_key"])
    assert json.loads((out / "many" / "metrics.json").read_text())["classification"]["confusion"] == \
        rep.classification.confusion.tolist()


def test_curves_of_millions_of_points_are_drawn_from_a_few_thousand(rng):
    from evallib.metrics.curves import thin_indices

    s = rng.normal(size=1_000_000)
    y = rng.random(len(s)) < 1 / (1 + np.exp(-2 * s))
    fpr, tpr, _ = threshold_sweep(y, s).roc()
    for log_x in (False, True):
        x = fpr if not log_x else np.maximum(fpr, 1e-7)
        keep = thin_indices(x, tpr, log_x=log_x, resolution=1000)
        assert keep[0] == 0 and keep[-1] == len(x) - 1 and len(keep) < 8000 < len(x)
        # every dropped point lies within a grid cell or two (in y) of the kept curve
        u = np.log10(x) if log_x else x
        between = np.interp(u, u[keep], tpr[keep])
        assert np.max(np.abs(between - tpr)) <= 2 / 1000


def test_auc_replicates_at_many_classes_match_scikit_learn(rng):
    """The bootstrap ranks only the samples that can outrank a positive; at many classes that is few."""
    from sklearn.metrics import roc_auc_score

    from conftest import make_classification
    from evallib.metrics.bootstrap import _replicates, _weights
    from evallib.metrics.classification import to_probabilities

    y, logits = make_classification(rng, n=600, c=40, signal=3.0)
    p = to_probabilities(logits, "logits")
    w = _weights(np.random.default_rng(0), len(y), 5)
    got = _replicates(y, p, p.argmax(1), w, ks=())["roc_auc_macro"]
    for b in range(5):
        idx = np.repeat(np.arange(len(y)), w[b])
        present = np.unique(y[idx])
        want = np.mean([roc_auc_score(y[idx] == k, p[idx, k]) for k in present])
        assert got[b] == pytest.approx(want)
