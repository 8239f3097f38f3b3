"""The embedded demo end to end: its data and models (conftest's ``demo``) all evaluated once by ``evallib demo``
(conftest's ``local_outputs``); each report section is checked against what was planted."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from evallib.demo import WEAK_SCANNER
from evallib.metrics import evaluate_classification
from evallib.run import load_predictions

pytestmark = pytest.mark.slow  # renders the demo's reports

CLASSIFIERS = ("linear", "cnn_small", "cnn_small_v2", "cnn_wide")


def test_demo_params_evaluate_end_to_end(demo, local_outputs):
    summary = json.loads((demo / "build" / "demo" / "summary.json").read_text())
    acc = {}
    for name in CLASSIFIERS:
        run = json.loads((demo / "outputs" / name / "run.json").read_text())
        assert run["status"] == "ok" and run["dataset"]["images"] == 541 and run["dataset"]["skipped"] == []
        p = load_predictions(demo / "outputs" / name)
        classes = p["classes"]
        center = p.get("scores_center", p["scores"])
        r = evaluate_classification(np.array(classes)[p["labels"]], center, classes=classes)
        # ONNX through evallib's preprocessing equals the torch model on the same split
        assert r.accuracy == pytest.approx(summary[name]["eval_accuracy_center_crop"], abs=1e-9)
        acc[name] = r.accuracy
    assert acc["cnn_wide"] > acc["linear"] > acc["cnn_small"] + 0.05  # clearly different quality
    for name in ("linear", "cnn_small", "cnn_wide"):
        html = (demo / "outputs" / name / "report.html").read_text()
        assert len(html) < 5_000_000
        metrics = json.loads((demo / "outputs" / name / "metrics.json").read_text())
        assert metrics["tsne"]["trustworthiness"] >= 0.95  # the digits embeddings map faithfully
        if name == "linear":
            assert "no layer of the model outputs a spatial map" in html  # the section says why it is missing
        else:
            assert f"ONNX file {name}.onnx converted with onnx2torch" in html
            assert "the model finds least similar (false rejects)" in html
    index = (demo / "outputs" / "index.html").read_text()
    assert all(f'href="{n}/report.html"' in index for n in acc)
    # the same 541 files, read from two layouts: one data set, one leaderboard, one paired table and one
    # models-by-slice table; and the glyphs (a leaderboard only: no paired classifiers, no slices)
    assert index.count("<h3>Evaluation data: ") == 4 and index.count("<h3>Evaluation data: eval, eval_flat</h3>") == 3
    assert index.count("<h3>Evaluation data: glyphs</h3>") == 1


def _read_meta(path):
    return dict(list(csv.reader(Path(path).open()))[1:])


def test_where_it_fails_reports_the_planted_scanner(demo, local_outputs):
    """Every classifier's slices find the dark, blurred scanner weak (q < 0.05), the weakest metadata slice; its
    accuracy and n equal a count from the predictions and the metadata file."""
    data = demo / "build" / "demo" / "data"
    for name in CLASSIFIERS:
        p = load_predictions(local_outputs / name)
        meta = _read_meta(data / ("eval_flat_meta.csv" if name.startswith("cnn_small") else "eval_meta.csv"))
        scanner = np.array([meta[path] for path in p["paths"]])
        right = np.asarray(p["scores"]).argmax(1) == np.asarray(p["labels"])
        weak = scanner == WEAK_SCANNER
        slices = json.loads((local_outputs / name / "metrics.json").read_text())["slices"]
        assert slices["columns"]["scanner"] == "metadata"
        found = {w["name"]: w for w in slices["weakest"]}
        row = found[f"scanner={WEAK_SCANNER}"]
        assert row["n"] == weak.sum() and row["accuracy"] == pytest.approx(right[weak].mean(), abs=1e-12)
        assert row["rest_accuracy"] == pytest.approx(right[~weak].mean(), abs=1e-12)
        assert row["q"] < 0.05 and row["gap"] < -0.05 and row["gap_interval"][1] < 0
        other_scanners = [w for w in slices["weakest"] if w["name"].startswith("scanner=") and "&" not in w["name"]]
        assert [w["name"] for w in other_scanners] == [f"scanner={WEAK_SCANNER}"], name  # no clean scanner is weak
        html = (local_outputs / name / "report.html").read_text()
        assert "Where it fails" in html and f"Rows, from the top: scanner={WEAK_SCANNER}" in html  # its mistakes


def test_version_comparison_has_flips(demo, local_outputs):
    """cnn_small_v2 names cnn_small as its baseline: its report, the comparison page and the index show the flips,
    whose counts equal an image-by-image count from the two prediction files."""
    old, new = load_predictions(local_outputs / "cnn_small"), load_predictions(local_outputs / "cnn_small_v2")
    assert old["paths"] == new["paths"] and np.array_equal(old["labels"], new["labels"])  # one data folder
    right_old = np.asarray(old["scores"]).argmax(1) == np.asarray(old["labels"])
    right_new = np.asarray(new["scores"]).argmax(1) == np.asarray(new["labels"])
    negative, positive = int((right_old & ~right_new).sum()), int((~right_old & right_new).sum())
    assert negative > 0 and positive > negative  # the new version is better, and still breaks some images
    folder = local_outputs / "compare" / "cnn_small__cnn_small_v2"
    cmp = json.loads((folder / "compare.json").read_text())
    overall = cmp["regression"]["overall"]
    assert (overall["counts"]["negative_flips"], overall["counts"]["positive_flips"]) == (negative, positive)
    assert overall["nfr"] == pytest.approx(negative / len(right_old))
    flips = list(csv.DictReader((folder / "flips.csv").open()))
    assert sum(r["flip"] == "negative" for r in flips) == negative
    assert {r["file"] for r in flips if r["flip"] == "negative"} == \
        {old["paths"][i] for i in np.flatnonzero(right_old & ~right_new)}
    report = (local_outputs / "cnn_small_v2" / "report.html").read_text()
    assert "What changed since the baseline" in report and "This model against its baseline cnn_small" in report
    assert "No comparison with the baseline" not in report
    assert 'href="../compare/cnn_small__cnn_small_v2/compare.html"' in report  # written before the reports
    index = (local_outputs / "index.html").read_text()
    assert "Version comparisons" in index and "compare/cnn_small__cnn_small_v2/compare.html" in index
    assert "cnn_small_v2/report.html#sec-changes" in index


def test_labels_page_flags_the_planted_problems(demo, local_outputs):
    """The label review of the digits flags every planted mislabelled image, suggests its true digit, and lists the
    planted duplicate first among the duplicates, as one with conflicting labels."""
    planted = json.loads((demo / "build" / "demo" / "data" / "planted.json").read_text())
    [folder] = list((local_outputs / "labels").iterdir())
    summary = json.loads((folder / "labels.json").read_text())
    assert sorted(summary["models"]) == sorted(CLASSIFIERS) and summary["images"] == 541
    rows = list(csv.DictReader((folder / "suspected_labels.csv").open()))
    flagged = {r["image"]: r for r in rows}
    found = 0
    page = (folder / "labels.html").read_text()
    for w in planted["mislabelled"]:  # a flag needs 3 of the 4 models to disagree confidently (per-class thresholds)
        r = flagged.get(w["eval"]) or flagged.get(w["eval_flat"])
        if r is not None:
            found += 1
            assert (r["given_label"], r["suggested_label"]) == (str(w["given_label"]), str(w["true_label"]))
            assert r["image"] in page  # its card
    assert found >= 6, f"{found} of the 8 planted label errors flagged"
    planted_files = {w[k] for w in planted["mislabelled"] for k in ("eval", "eval_flat")}
    planted_files |= {c[k] for c in planted["duplicate"]["copies"] for k in ("eval", "eval_flat")}
    others = [f for f in flagged if f not in planted_files]
    assert len(others) <= 2  # the planted errors are nearly all of the flags
    assert summary["duplicates"]["exact_pairs"] == 1 and summary["duplicates"]["exact_conflicting"] == 1
    assert all(Path(c["eval"]).name in page for c in planted["duplicate"]["copies"])


def test_identification_section_of_the_glyph_identities(demo, local_outputs):
    """glyph_ids searches its probes against the gallery: rank-1 equals a brute-force search over the stored
    embeddings, the open-set figures are there, and the report shows the CMC, FNIR at FPIR and the hardest misses."""
    p = load_predictions(local_outputs / "glyph_ids")
    roles = {r["path"]: r["role"] for r in csv.DictReader((demo / "build" / "demo" / "data" / "glyphs.csv").open())}
    role = np.array([roles[path] for path in p["paths"]])
    ids = np.asarray(p["labels"])
    e = np.asarray(p["embeddings"], dtype=np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    gal, pro = np.flatnonzero(role == "gallery"), np.flatnonzero(role == "probe")
    mated = [i for i in pro if ids[i] in set(ids[gal])]
    hits = 0
    for i in mated:  # one gallery image per identity: rank 1 when no other identity scores as high as the mate
        s = e[gal] @ e[i]
        mate = s[ids[gal] == ids[i]].max()
        hits += bool((s[ids[gal] != ids[i]] < mate).all())
    m = json.loads((local_outputs / "glyph_ids" / "metrics.json").read_text())["identification"]["images"]
    assert (m["n_probes"], m["n_mated"], m["n_gallery"]) == (len(pro), len(mated), len(gal))
    assert m["n_nonmated"] == len(pro) - len(mated) >= 100
    assert m["rank_accuracy"]["1"] == pytest.approx(hits / len(mated), abs=1e-12)
    assert 0.2 < m["rank_accuracy"]["1"] < m["rank_accuracy"]["10"] < 1  # a real search, with misses to show
    assert np.isfinite(m["fnir_at_fpir"]["0.1"]["fnir"]) and np.isfinite(m["fnir_at_fpir"]["0.01"]["fnir"])
    html = (local_outputs / "glyph_ids" / "report.html").read_text()
    for text in ("Identification (1:N)", "rank-1 accuracy", "FNIR at FPIR", "Identification threshold",
                 "mate, with its rank"):
        assert text in html, text
