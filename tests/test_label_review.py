"""The label review of an output folder: three tiny models on tiny images with planted wrong labels (a manifest),
an exact duplicate with a conflicting label, a near duplicate and images leaked from a training folder."""

import csv
import dataclasses
import html
import io
import re
import shutil

import numpy as np
import pytest
import yaml

import evallib
from evallib.errors import ParamsError
from evallib.outputs import LABELS, LABELS_HTML, SUSPECTED_LABELS, labels_dir, load_label_summary
from evallib.params import load_params
from evallib.report.compare import Comparison
from evallib.report.label_review import summary_line, write_label_reviews
from evallib.run import render_index, run_many

CENTERS = {"a": 0.2, "b": 0.5, "c": 0.8}  # each class's mean intensity
PER_CLASS = 8
WRONG = {"a_1.png": "b", "b_2.png": "c", "c_3.png": "a"}  # planted wrong labels (true class: the file's prefix)
COPY = ("b_5.png", "dup_of_b_5.png", "c")  # an exact copy of b_5.png given another label
NEAR = ("a_4.png", "near_of_a_4.png")  # a copy with two pixels changed, same label: not an exact duplicate
LEAKED = ("c_0.png", "a_6.png")  # also in the training folder


def _export_intensity_model(path, *, scale, shift, seed):
    """Logits ``2 s c_k m - s c_k^2`` of the mean intensity ``m`` (a 1x1 convolution, then average pooling):
    the classes' squared distances to ``CENTERS`` up to a shared term; the embedding is the centered pixels."""
    import warnings

    import torch
    from torch import nn

    torch.manual_seed(seed)
    c = torch.tensor([v + shift for v in CENTERS.values()])

    class Intensity(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 1)
            with torch.no_grad():
                self.conv.weight.copy_((2 * scale * c).view(3, 1, 1, 1))
                self.conv.bias.copy_(-scale * c ** 2)

        def forward(self, x):
            e = (x - x.mean(dim=(1, 2, 3), keepdim=True)).flatten(1)  # first: the convolution is the last map
            return self.conv(x).mean(dim=(2, 3)), e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Intensity().eval(), (torch.zeros(1, 1, 16, 16),), str(path), dynamo=False,
                          input_names=["input"], output_names=["logits", "embedding"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}})
    return path


def _image(rng, center):
    return np.clip(center + rng.normal(0, 0.05, (16, 16)), 0, 1)


def _save(arr, path):
    from PIL import Image

    Image.fromarray((arr * 255).round().astype(np.uint8), "L").save(path)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels")
    rng = np.random.default_rng(0)
    data, train = root / "digits", root / "train"
    data.mkdir()
    train.mkdir()
    rows = []
    for cls, center in CENTERS.items():
        for k in range(PER_CLASS):
            name = f"{cls}_{k}.png"
            _save(_image(rng, center), data / name)
            rows.append((name, WRONG.get(name, cls)))
    shutil.copy(data / COPY[0], data / COPY[1])
    rows.append((COPY[1], COPY[2]))
    near = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(data / NEAR[0]), dtype=np.float64) / 255
    near[0, :2] += 0.02
    _save(near, data / NEAR[1])
    rows.append((NEAR[1], "a"))
    for name in LEAKED:
        shutil.copy(data / name, train / f"train_{name}")
    for k in range(4):
        _save(_image(rng, 0.5), train / f"other_{k}.png")
    (root / "labels.csv").write_text("path,label\n" + "".join(f"{p},{c}\n" for p, c in rows))
    files = []
    for name, scale, shift in (("sharp", 80.0, 0.0), ("mid", 60.0, 0.01), ("soft", 40.0, -0.01)):
        model = _export_intensity_model(root / f"{name}.onnx", scale=scale, shift=shift, seed=0)
        f = root / f"{name}.yaml"
        f.write_text(yaml.safe_dump({
            "name": name, "model": str(model), "task": "classification",
            "data": {"root": str(data), "labels": "csv", "csv": str(root / "labels.csv"), "train_root": str(train)},
            "preprocess": {"mode": "grayscale", "mean": [0.0], "std": [1.0]},
            "outputs": {"scores": "logits", "scores_are": "logits", "embedding": None},  # no t-SNE: seconds
            "report": {"bootstrap": 20, "gallery_size": 0, "tsne_thumbnails": 0}}))
        files.append(f)
    out = root / "out"
    results = run_many(files, out, progress=False)
    assert [r["status"] for r in results] == ["ok"] * 3, [r.get("error") for r in results]
    summaries = write_label_reviews(out)
    return root, out, files, summaries


def _folder(out):
    cmp = Comparison.load(out)
    [g] = cmp.groups()
    return labels_dir(out, g.key, g.title), cmp


@pytest.mark.slow
def test_suspected_labels_csv_lists_the_planted_wrong_labels(reviewed):
    root, out, _, [summary] = reviewed
    folder, _ = _folder(out)
    with open(folder / SUSPECTED_LABELS, newline="") as fh:
        rows = list(csv.DictReader(fh))
    planted = {**WRONG, COPY[1]: COPY[2]}
    assert {r["image"] for r in rows} == set(planted)
    for r in rows:
        true = r["image"].split("_")[0] if r["image"] != COPY[1] else "b"
        assert r["given_label"] == planted[r["image"]]
        assert r["suggested_label"] == true
        assert int(r["votes"]) == 3
        for m in ("sharp", "mid", "soft"):
            assert r[f"{m} top-1"] == true
            assert 0.5 < float(r[f"{m} confidence"]) <= 1.0
    quality = [float(r["quality"]) for r in rows]
    assert quality == sorted(quality) and max(quality) < 0  # most suspect first; every model prefers another class
    assert summary["n_flagged"] == len(planted) and summary["images"] == 3 * PER_CLASS + 2
    assert summary["models"][0] in ("sharp", "mid", "soft") and summary["n_models"] == 3


@pytest.mark.slow
def test_review_page_shows_cards_ranking_and_duplicates(reviewed):
    root, out, _, [summary] = reviewed
    folder, _ = _folder(out)
    page = (folder / LABELS_HTML).read_text()
    cards = re.findall(r'<div class="lr-card lr-item evallib-filter-item" data-given="([^"]*)" '
                       r'data-suggested="([^"]*)">', page)
    assert sorted(cards) == sorted([("b", "a"), ("c", "b"), ("a", "c"), ("c", "b")])
    for name in (*WRONG, COPY[1]):
        assert html.escape(name) in page
    assert page.count('<img src="data:image/png;base64,') == 4 + 4 + 1  # images, heat maps, the ranking figure
    assert page.count("<figcaption>image</figcaption>") == 4
    assert page.count("<figcaption>Grad-CAM</figcaption>") == 4  # the tiny models convert to torch
    assert "for the suggested label" in page
    mentions = {k: sum((g == k) + (t == k and t != g) for g, t in cards) for k in CENTERS}
    assert '<select class="evallib-class-filter">' in page and page.count('class="evallib-filter-box') == 1
    for k, count in mentions.items():
        assert f'<option value="{k}">{k} ({count})</option>' in page
    assert "What the flags mean for the ranking" in page and "every flag is an error" in page
    assert "circular" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing is fetched
    # duplicates: the conflicting exact copy, the near copy (perceptual hash; the exact copy is not listed
    # again), the leaked files
    dup = page[page.index('id="duplicates"'):page.index('id="image-quality"')]
    assert f"{COPY[0]} (b)" in dup and f"{COPY[1]} (c)" in dup
    near = dup[dup.index("Near duplicates in the evaluation set (perceptual hash)"):]
    assert f"{NEAR[0]} (a)" in near and f"{NEAR[1]} (a)" in near and COPY[1] not in near.split("</table>")[0]
    for name in LEAKED:
        assert f"train_{name}" in dup
    assert "other_0.png" not in dup
    d = summary["duplicates"]
    assert (d["exact_pairs"], d["exact_conflicting"], d["leaked"], d["near_pairs"], d["near_conflicting"]) == \
        (1, 1, 2, 1, 0)
    assert d["near_evidence"] == "perceptual hash" and d["leaked_near"] == 0  # no model has an embedding


@pytest.mark.slow
def test_index_links_the_review_with_one_line(reviewed):
    root, out, _, [summary] = reviewed
    folder, cmp = _folder(out)
    board = cmp.leaderboard(links_from=out)._repr_html_()
    assert f'href="{LABELS}/{folder.name}/{LABELS_HTML}"' in board
    assert html.escape(summary_line(summary)) in board
    assert summary["line"].startswith(f"4 of {3 * PER_CLASS + 2} images (")
    assert "the ranking does not change if every flag is an error" in summary["line"]
    assert "1 exact and 1 near duplicate pair (1 with conflicting labels)" in summary["line"]
    assert "2 images also in the training data" in summary["line"]


@pytest.mark.slow  # the pipeline fixture, and a notebook kernel
def test_render_index_writes_the_review_and_links_it(reviewed):
    root, out, _, _ = reviewed
    folder, _ = _folder(out)
    (folder / LABELS_HTML).unlink()
    (folder / ".labels_key").unlink()
    index = render_index(out)
    assert (folder / LABELS_HTML).exists()
    assert f"{LABELS}/{folder.name}/{LABELS_HTML}" in index.read_text()


@pytest.mark.slow
def test_one_model_says_the_score_is_circular(reviewed, tmp_path):
    root, out, _, _ = reviewed
    shutil.copytree(out / "mid", tmp_path / "mid")
    [summary] = write_label_reviews(tmp_path, cam=False)
    assert summary["circular"] and summary["n_models"] == 1
    folder = labels_dir(tmp_path, summary["group"], summary["title"])
    page = (folder / LABELS_HTML).read_text()
    assert "circular" in page and page.count('class="lr-card lr-item') == summary["n_flagged"] > 0
    assert "(one model: circular)" in summary["line"]
    # a review of a group that is gone is removed; a folder the review does not own is kept
    (tmp_path / LABELS / "mine").mkdir()
    shutil.rmtree(tmp_path / "mid")
    assert write_label_reviews(tmp_path) == []
    assert not folder.exists() and (tmp_path / LABELS / "mine").exists()


@pytest.mark.slow
def test_missing_train_root_is_an_error_naming_the_key(reviewed, tmp_path):
    root, out, files, _ = reviewed
    bad = yaml.safe_load(files[0].read_text())
    bad["data"]["train_root"] = str(tmp_path / "no_such_folder")
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(bad))
    with pytest.raises(ParamsError, match=r"bad\.yaml: data\.train_root: expected a folder of training images; "
                                          r"got .*no_such_folder \(no such folder\)"):
        load_params(f)
    # a training folder gone after the run: the review says so and still lists the flags
    shutil.copytree(out / "mid", tmp_path / "out" / "mid")
    run = (tmp_path / "out" / "mid" / "run.json")
    run.write_text(run.read_text().replace(str(root / "train"), str(tmp_path / "gone")))
    [summary] = write_label_reviews(tmp_path / "out", cam=False)
    assert summary["duplicates"]["leaked"] is None
    assert any("data.train_root: expected a folder of training images" in n for n in summary["notes"])
    page = (labels_dir(tmp_path / "out", summary["group"], summary["title"]) / LABELS_HTML).read_text()
    assert "data.train_root: expected a folder of training images; got gone (no such folder)" in page


@pytest.mark.slow
def test_reviews_are_reused_when_nothing_changed(reviewed, monkeypatch):
    root, out, _, [summary] = reviewed
    import evallib.report.label_review as lr

    def fail(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(lr, "label_issues", fail)
    assert write_label_reviews(out) == [summary]
    assert load_label_summary(_folder(out)[0]) == summary
    assert evallib.load(out / "sharp").run["params"]["data"]["train_root"] == str(root / "train")


# ----------------------------------------------------------------------------------------- corrections

def _with_overrides(files, tmp_path, corrections, name="sharp"):
    """The params file of ``name`` from the fixture with ``data.label_overrides`` (None: without it)."""
    raw = yaml.safe_load(next(f for f in files if f.stem == name).read_text())
    if corrections is not None:
        raw["data"]["label_overrides"] = str(corrections)
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(raw))
    return f


@pytest.mark.slow  # the pipeline fixture's outputs, then the metrics step of one model three times
def test_label_overrides_through_the_cli(reviewed, tmp_path, capsys):
    import hashlib
    import json

    from conftest import check_output_folder
    from evallib.cli import main
    from evallib.outputs import load_predictions

    root, out, files, _ = reviewed
    work = tmp_path / "out"
    shutil.copytree(out, work)
    before = json.loads((work / "sharp" / "run.json").read_text())
    true = {p: (p.split("_")[0] if not p.startswith(("dup_of_", "near_of_")) else p.split("_")[2])
            for p in load_predictions(work / "sharp").paths}
    fixes = {**{p: true[p] for p in WRONG}, COPY[1]: "b", "a_0.png": "a"}  # four corrections, one confirmation
    corr = tmp_path / "corrections.csv"
    corr.write_text("path,label,note\n" + "".join(f"{p},{c},checked\n" for p, c in fixes.items()))
    params = _with_overrides(files, tmp_path, corr)

    def run():
        assert main(["run", str(params), "--out", str(work), "--no-report", "--quiet"]) == 0
        capsys.readouterr()
        check_output_folder(work / "sharp")
        return json.loads((work / "sharp" / "run.json").read_text()), load_predictions(work / "sharp")

    facts, pred = run()
    assert facts["inference"]["cached"] is True  # corrections never redo inference
    assert facts["label_overrides"] == {"file": str(corr), "sha256": hashlib.sha256(corr.read_bytes()).hexdigest(),
                                        "rows": 5, "changed": 4}
    assert [pred.classes[k] for k in pred.labels] == [true[p] for p in pred.paths]  # every label now right
    m = evallib.load(work / "sharp").metrics
    assert m["headline"]["accuracy"]["value"] == pytest.approx(np.mean(pred.scores.argmax(1) == pred.labels))
    assert facts["metrics_key"] != before["metrics_key"] and facts["data_fingerprint"] != before["data_fingerprint"]
    assert facts["dataset"]["counts"] == {"a": 9, "b": 9, "c": 8}
    # the review of the corrected data says so; with its labels right, no image is flagged
    reviews = {tuple(s["models"]): s for s in write_label_reviews(work, cam=False)}
    mine = reviews[("sharp",)]
    assert mine["n_flagged"] == 0 and mine["label_overrides"]["sharp"]["changed"] == 4
    assert mine["line"].endswith("; 4 labels overridden by the reviewer's corrections.")
    page = (labels_dir(work, mine["group"], mine["title"]) / LABELS_HTML).read_text()
    assert "<b>Labels:</b> 4 labels overridden by corrections.csv (5 rows, 1 confirming the given label" in page

    # another file: recomputed (one correction fewer); no file: the listed labels again, as before
    corr.write_text("path,label\n" + "".join(f"{p},{c}\n" for p, c in list(fixes.items())[1:]))
    facts, pred = run()
    assert (facts["label_overrides"]["rows"], facts["label_overrides"]["changed"]) == (4, 3)
    first = list(WRONG)[0]
    assert pred.classes[pred.labels[pred.paths.index(first)]] == WRONG[first]
    params = _with_overrides(files, tmp_path, None)
    facts, pred = run()
    assert "label_overrides" not in facts and pred.label_overrides is None
    assert facts["data_fingerprint"] == before["data_fingerprint"] and facts["metrics_key"] == before["metrics_key"]


@pytest.mark.slow  # the pipeline fixture's files
def test_bad_corrections_file_is_an_error_naming_its_rows(reviewed, tmp_path, capsys):
    from evallib.cli import main

    root, out, files, _ = reviewed
    corr = tmp_path / "corrections.csv"
    corr.write_text("path,label\nnope.png,a\na_1.png,z\na_1.png,a\nb_2.png,b\nb_2.png,c\nc_3.png,\n,a\n")
    params = _with_overrides(files, tmp_path, corr)
    assert main(["run", str(params), "--out", str(tmp_path / "out"), "--no-report", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evallib: error: {params}: data.label_overrides: {corr}: ")
    assert "row 2: path 'nope.png' is not one of the 26 listed images under data.root" in err
    assert "row 3: label 'z' is not one of the classes (a, b, c)" in err
    assert "row 6: path 'b_2.png' is listed already in row 5" in err
    assert "row 7: expected a path and a label; got no label" in err
    assert "row 8: expected a path and a label; got no path" in err
    assert "row 4" not in err  # a_1.png's first row had an unknown label: its second row is no duplicate
    assert not (tmp_path / "out").exists()  # before any model ran
    corr.write_text("file,class\na_1.png,a\n")
    assert main(["run", str(params), "--out", str(tmp_path / "out"), "--no-report", "--quiet"]) == 2
    assert ("row 1: expected a header naming a path column (path or image) and a label column (label or "
            "suggested_label); got 'file,class'") in capsys.readouterr().err
    corr.unlink()
    assert main(["run", str(params), "--out", str(tmp_path / "out"), "--no-report", "--quiet"]) == 2
    assert "expected a CSV file of path,label corrections; got no such file" in capsys.readouterr().err


def test_suspected_labels_csv_is_taken_back_as_corrections(rng, tmp_path):
    """The export, with the rows a reviewer rejects deleted, is a corrections file: image and suggested_label."""
    from evallib.data.overrides import read_label_overrides
    from evallib.metrics.label_quality import label_issues
    from evallib.report.label_review import suspected_labels_csv

    given, scores = _noisy(rng)
    classes = [f"k{j}" for j in range(5)]
    paths = [f"d/img_{i:03d}.png" for i in range(len(given))]
    issues = label_issues(given, scores)
    f = tmp_path / "suspected_labels.csv"
    f.write_text(suspected_labels_csv(issues, classes=classes, paths=paths))
    o = read_label_overrides(f, paths, given, classes)
    flagged = issues.review_order()
    assert o.rows.tolist() == flagged.tolist() and o.labels.tolist() == issues.suggested_labels[flagged].tolist()
    assert o.changed == o.count == issues.n_flagged
    fixed = o.apply(given)
    assert (fixed == issues.suggested_labels).all() and (given != fixed).sum() == o.changed


def test_overrides_text_and_summary_line():
    from evallib.report.summary import overrides_text, summary_html

    facts = {"file": "/x/corrections.csv", "sha256": "ab" * 32, "rows": 1, "changed": 1}
    assert overrides_text(facts) == ("1 label overridden by corrections.csv (1 row; sha256 abababababab); the metrics "
                                     "use the corrected labels.")
    assert overrides_text(None) == ""
    page = summary_html(name="m", lede="l", headline={}, primary="accuracy", decision="d", ranking=None,
                        warnings=[], toc=[], labels=overrides_text({**facts, "rows": 3, "changed": 2}))
    assert ("<b>Labels:</b> 2 labels overridden by corrections.csv (3 rows, 1 confirming the given label; sha256 "
            "abababababab); the metrics use the corrected labels.") in page


# ----------------------------------------------------------------------------------------- from arrays

def _noisy(rng, n=300, c=5, m=3, flip=0.1):
    y = rng.integers(0, c, n)
    given = y.copy()
    moved = rng.random(n) < flip
    given[moved] = (y[moved] + rng.integers(1, c, moved.sum())) % c
    scores = []
    for _ in range(m):
        s = rng.normal(size=(n, c))
        s[np.arange(n), y] += 3.0
        scores.append(s)
    return given, scores


def test_page_and_csv_list_every_flag_most_suspect_first(rng):
    from evallib.metrics.label_quality import label_issues, ranking_sensitivity
    from evallib.report.label_review import render_page, suspected_labels_csv

    given, scores = _noisy(rng)
    classes = [f"k{j}" for j in range(5)]
    paths = [f"img_{i:03d}.png" for i in range(len(given))]
    issues = label_issues(given, scores, model_names=["m0", "m1", "m2"])
    flagged = np.nonzero(issues.flagged)[0]
    assert len(flagged) > 10
    expected = sorted(flagged, key=lambda i: (issues.quality[i], -issues.votes[i], i))  # brute-force order
    rows = list(csv.DictReader(io.StringIO(suspected_labels_csv(issues, classes=classes, paths=paths))))
    assert [r["image"] for r in rows] == [paths[i] for i in expected]
    for r in rows:
        i = int(r["index"])
        assert r["given_label"] == classes[given[i]] and r["suggested_label"] == classes[issues.suggested_labels[i]]
        assert float(r["quality"]) == pytest.approx(np.mean([
            (p := np.exp(s[i]) / np.exp(s[i]).sum())[given[i]] - np.delete(p, given[i]).max() for s in scores]))
        assert r["m1 top-1"] == classes[scores[1][i].argmax()]
    page = render_page(issues, ranking_sensitivity(issues), classes=classes, paths=paths, title="t", cards=5)
    listed = (re.findall(r'#\d+ (img_\d+\.png)</div>', page)
              + re.findall(r'<tr class="lr-item evallib-filter-item"[^>]*>\s*<td>(img_\d+\.png)<', page))
    assert listed == [paths[i] for i in expected]  # five cards, then every other flag in the table
    assert f"The other {len(expected) - 5:,} flagged images" in page and "circular" not in page


def test_one_model_page_says_circular(rng):
    from evallib.metrics.label_quality import label_issues, ranking_sensitivity
    from evallib.report.label_review import render_page

    given, scores = _noisy(rng, m=1)
    issues = label_issues(given, scores[0])
    page = render_page(issues, ranking_sensitivity(issues), classes=list("abcde"), paths=None, title="t")
    assert "so it is circular" in page and "(circular)" in page
    assert page.count('class="lr-card lr-item') == issues.n_flagged > 0


def test_align_matches_images_by_content_and_reorders_classes(rng, tmp_path):
    from evallib.outputs import write_predictions
    from evallib.records import Predictions
    from evallib.report.label_review import _align, load_group

    n = 12
    hashes = [f"{i % 10:032x}" for i in range(n)]  # two pairs of identical files
    labels = rng.integers(0, 3, n)
    scores = rng.normal(size=(n, 3))
    a = Predictions(scores=scores, scores_are="logits", paths=[f"a/{i}.png" for i in range(n)], labels=labels,
                    classes=["x", "y", "z"], file_hashes=hashes, root=str(tmp_path))
    perm = rng.permutation(n)
    cols = [2, 0, 1]  # b's columns are z, x, y
    b = Predictions(scores=scores[perm][:, cols], scores_are="logits", paths=[f"b/{i}.png" for i in perm],
                    labels=np.array([[1, 2, 0][k] for k in labels[perm]]), classes=["z", "x", "y"],
                    file_hashes=[hashes[i] for i in perm], root=str(tmp_path))
    rows = _align(a, b)
    assert [b.file_hashes[j] for j in rows] == hashes and len(set(rows.tolist())) == n
    assert _align(a, dataclasses.replace(b, file_hashes=[f"{99:032x}"] + b.file_hashes[1:])) is None
    for name, p in (("a", a), ("b", b)):
        write_predictions(tmp_path / name, p)
    g = load_group(tmp_path, ["a", "b"])
    assert g.names == ("a", "b") and g.classes == ["x", "y", "z"]
    for i in range(n):  # b's row holding the same content, its columns put back in a's class order
        j = rows[i]
        np.testing.assert_array_equal(g.scores[1][i], scores[perm[j]])
    np.testing.assert_array_equal(g.scores[0], scores)


def test_summary_line_wording():
    base = {"images": 200, "n_flagged": 7, "circular": False, "min_votes": 2, "n_models": 3, "ranking_changed": True,
            "verdicts_changed": 1, "duplicates": {"exact_pairs": 2, "exact_conflicting": 1, "near_pairs": None,
                                                  "near_conflicting": None, "leaked": None}}
    assert summary_line(base) == ("7 of 200 images (3.5%) have suspected label errors (2 of 3 models disagree); the "
                                  "ranking changes if every flag is an error, and 1 McNemar verdict(s) change; 2 exact "
                                  "duplicate pairs (1 with conflicting labels).")
    clean = {**base, "duplicates": {**base["duplicates"], "exact_pairs": 1, "exact_conflicting": 0, "leaked": 1}}
    assert summary_line(clean).endswith("; 1 exact duplicate pair; 1 image also in the training data.")
    one = {**base, "circular": True, "n_models": 1, "min_votes": 1,
           "duplicates": {**base["duplicates"], "near_pairs": 3, "near_conflicting": 0, "leaked": 4}}
    assert summary_line(one) == ("7 of 200 images (3.5%) have suspected label errors (one model: circular); 2 exact "
                                 "and 3 near duplicate pairs (1 with conflicting labels); 4 images also in the "
                                 "training data.")
    assert summary_line({"error": "boom"}) == "Label review failed: boom"
    many = {**base, "duplicates": {**base["duplicates"], "near_pairs": 201, "near_conflicting": 0}}
    assert ("2 exact and 201 near duplicate pairs (1 with conflicting labels; more near pairs than images: lower "
            "report.near_duplicate_distance)") in summary_line(many)
    found = {**base, "image_issues": {"flagged": 3, "counts": {"dark": 1, "bright": 0, "blurry": 2}},
             "label_overrides": {"m": {"file": "c.csv", "sha256": "0" * 64, "rows": 5, "changed": 4}}}
    assert summary_line(found).endswith("; 3 images with quality issues (1 nearly black, 2 blurry); 4 labels "
                                        "overridden by the reviewer's corrections.")


def _smooth_images(rng, n, size=24):
    """Random smooth grey images (a few low-frequency blobs), no two alike to a perceptual hash."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        img = np.zeros((size, size))
        for _ in range(4):
            cx, cy, w = rng.random(), rng.random(), 0.1 + 0.2 * rng.random()
            img += rng.normal() * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * w ** 2))
        out.append((img - img.min()) / (img.max() - img.min()))
    return out


def test_review_group_finds_near_duplicates_by_perceptual_hash(rng, tmp_path):
    """The perceptual hash finds an enlarged copy and a copy with another label; embeddings alone do not make a
    pair, and image issues come from the properties measured while decoding."""
    from PIL import Image

    from evallib.data.image_properties import image_properties, properties_table
    from evallib.metrics.duplicates import hash_distance, perceptual_hash
    from evallib.outputs import write_predictions
    from evallib.records import Predictions
    from evallib.report.compare import DataGroup
    from evallib.report.label_review import review_group

    n = 80
    given, scores = _noisy(rng, n=n, m=2)
    pixels = [(im * 255).round().astype(np.uint8) for im in _smooth_images(rng, n)]
    pixels[7] = np.asarray(Image.fromarray(pixels[3]).resize((48, 48), Image.BILINEAR))  # an enlarged copy
    given[7] = given[3]
    pixels[20] = np.clip(pixels[11].astype(int) + 6, 0, 255).astype(np.uint8)  # brighter, another label
    given[20] = (given[11] + 1) % 5
    pixels[30] = np.zeros_like(pixels[30])  # a black image, and a white one: hashes one bit apart, no pair
    pixels[31] = np.full_like(pixels[31], 255)
    emb = rng.normal(size=(n, 16))
    emb[40] = emb[41] + 0.01 * rng.normal(size=16)  # close embeddings, different images: not a near duplicate
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    paths = [f"img_{i:02d}.png" for i in range(n)]
    for p, px in zip(paths, pixels):
        Image.fromarray(px, "L").save(tmp_path / p)
    hashes = [perceptual_hash(px) for px in pixels]
    dist = hash_distance(np.array(hashes)[:, None], np.array(hashes)[None, :])
    brute = [(i, j) for i in range(n) for j in range(i + 1, n) if dist[i, j] <= 3]
    assert brute == [(3, 7), (11, 20), (30, 31)] and dist[40, 41] > 6
    props = properties_table([image_properties(px) for px in pixels])
    classes = list("abcde")
    for k, name in enumerate(("m0", "m1")):
        write_predictions(tmp_path / name, Predictions(
            scores=scores[k], scores_are="logits", embeddings=emb if k == 1 else None, paths=paths, labels=given,
            classes=classes, file_hashes=[f"{i:032x}" for i in range(n)], root=str(tmp_path),
            image_properties=props))
    runs = {m: {"params": {"data": {"extensions": [".png"]}, "report": {"near_duplicate_threshold": 0.9}},
                "predictions_key": m} for m in ("m0", "m1")}
    s = review_group(tmp_path, DataGroup("f" * 64, ("data",), n, ("m0", "m1")), runs, cam=False)
    d = s["duplicates"]
    assert (d["near_pairs"], d["near_conflicting"], d["exact_pairs"], d["leaked"]) == (2, 1, 0, None)
    assert d["near_distance"] == 3 and d["near_threshold"] == 0.9
    assert d["near_evidence"] == "perceptual hash, confirmed by the embeddings of m1"
    page = (tmp_path / "labels" / "data-ffffffffff" / "labels.html").read_text()
    near = page[page.index("Near duplicates in the evaluation set (perceptual hash)"):]
    assert "perceptual hashes at most 3 bits (of 64) apart, or up to 5 bits apart with embeddings" in near
    assert near.index("img_11.png") < near.index("img_03.png")  # the conflicting pair first
    assert "img_40.png" not in near.split("</table>")[0]
    assert "2 near duplicate pairs (1 with conflicting labels)" in s["line"]
    q = s["image_issues"]
    assert q["counts"]["dark"] == q["counts"]["bright"] == 1 and q["counts"]["low_information"] == 2
    quality = page[page.index('id="image-quality"'):]
    assert "img_30.png" in quality and "mean brightness &lt;= 0.05" in quality


@pytest.mark.slow  # a browser
def test_class_filter_in_chromium(rng, tmp_path):
    """The filter shows the cards and table rows whose given, suggested, or either label is the class chosen."""
    from playwright.sync_api import sync_playwright

    from evallib.metrics.label_quality import label_issues, ranking_sensitivity
    from evallib.report.label_review import render_page

    given, scores = _noisy(rng)
    classes = [f"k{j}" for j in range(5)]
    issues = label_issues(given, scores)
    page_file = tmp_path / "labels.html"
    page_file.write_text(render_page(issues, ranking_sensitivity(issues), classes=classes,
                                     paths=[f"img_{i:03d}.png" for i in range(len(given))], title="t", cards=6))
    f = issues.flagged
    g, s = issues.given_labels, issues.suggested_labels
    errors = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        count, select = ".lr-filter .evallib-filter-count", ".lr-filter select.evallib-class-filter"
        assert page.inner_text(count) == f"showing {f.sum()} of {f.sum()}"
        for side, want in (("any", (g == 1) | (s == 1)), ("given", g == 1), ("suggested", s == 1)):
            page.check(f'input[name="lr-side"][value="{side}"]')
            page.select_option(select, "k1")
            n = int((f & want).sum())
            assert page.inner_text(count) == f"showing {n} of {f.sum()}"
            assert page.locator(".lr-item:visible").count() == n
        page.select_option(select, "")
        assert page.locator(".lr-item:visible").count() == f.sum()
        browser.close()
    assert errors == []


@pytest.mark.parametrize("value", [0, 1.5, "high"])
def test_near_duplicate_threshold_is_checked(tmp_path, value):
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"name": "p", "model": "m.onnx", "data": {"root": str(tmp_path)},
                                 "report": {"near_duplicate_threshold": value}}))
    with pytest.raises(ParamsError, match=r"p\.yaml: report\.near_duplicate_threshold: expected"):
        load_params(f)
