"""The embedded demo end to end: digits written as files, three models and a second version trained and exported,
the planted problems (a weak scanner, mislabelled images, a conflicting duplicate) and the synthetic identities,
all evaluated once by ``evallib demo``; each report section is checked against what was planted."""

import csv
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from evallib.cli import main
from evallib.demo import WEAK_SCANNER, _tensors, build_demo, build_model, plant_problems, split_digits, train_model
from evallib.metrics import evaluate_classification
from evallib.run import load_predictions

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # trains three models and a version, and renders their reports

CLASSIFIERS = ("linear", "cnn_small", "cnn_small_v2", "cnn_wide")
FIRST = ("linear", "cnn_small", "cnn_wide")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "params", root / "params")
    build_demo(root / "build" / "demo", log=lambda *a: None)
    return root


def _png(path):
    from PIL import Image

    return np.asarray(Image.open(path))


def test_data_layouts_and_split(demo):
    data = demo / "build" / "demo" / "data"
    train = list(data.glob("train/*/*.png"))
    evals = list(data.glob("eval/*/*.png"))
    flat = list(data.glob("eval_flat/*.png"))
    assert (len(train), len(evals), len(flat)) == (1257, 541, 541)  # 540 images, one of them in two folders
    assert not {p.name for p in train} & {p.name for p in evals}  # disjoint split
    assert {p.name.split("_")[0] for p in flat} == {str(d) for d in range(10)}
    lines = (data / "pairs.txt").read_text().splitlines()
    assert lines[0] == "10\t30" and len(lines) == 601
    # the training split is clean: every file is its digit, in its digit's folder
    images, labels, _, _ = split_digits()
    for p in train:
        i = int(p.stem.split("_")[1])
        assert int(p.parent.name) == labels[i] and np.array_equal(_png(p), images[i]), p


def test_planted_problems_are_where_planted_json_says(demo):
    data = demo / "build" / "demo" / "data"
    planted = json.loads((data / "planted.json").read_text())
    images, labels, _, test = split_digits()
    meta = dict(csv.reader((data / "eval_meta.csv").open()))
    flat_meta = dict(csv.reader((data / "eval_flat_meta.csv").open()))
    assert meta.pop("path") == flat_meta.pop("path") == "scanner" and len(meta) == len(flat_meta) == 541
    # a weak scanner of about 8% of the images, written darker than the digit itself; the others as they are
    weak = [p for p, s in meta.items() if s == WEAK_SCANNER]
    assert planted["weak_slice"]["value"] == WEAK_SCANNER and len(weak) == planted["weak_slice"]["images"]
    assert 0.05 <= len(weak) / 541 <= 0.10
    for rel, s in meta.items():
        i = int(Path(rel).stem.split("_")[1])
        if s == WEAK_SCANNER:
            assert _png(data / "eval" / rel).mean() < 0.75 * images[i].mean(), rel
        else:
            assert np.array_equal(_png(data / "eval" / rel), images[i]), rel
    # eval_flat holds the same files with the same scanners
    by_content = {_png(data / "eval" / rel).tobytes() + rel.split("/")[0].encode(): s for rel, s in meta.items()}
    for flat, s in flat_meta.items():
        assert by_content[_png(data / "eval_flat" / flat).tobytes() + flat.split("_")[0].encode()] == s
    # mislabelled: the digit of one class in another class's folder (and prefix), never of the weak scanner
    wrong = planted["mislabelled"]
    assert len(wrong) == 8 and len({w["index"] for w in wrong}) == 8
    for w in wrong:
        i = w["index"]
        assert i in set(test.tolist()) and labels[i] == w["true_label"] != w["given_label"]
        assert w["eval"].split("/")[0] == str(w["given_label"]) and w["eval_flat"].startswith(f"{w['given_label']}_")
        assert np.array_equal(_png(data / "eval" / w["eval"]), images[i]) and meta[w["eval"]] != WEAK_SCANNER
        assert np.array_equal(_png(data / "eval_flat" / w["eval_flat"]), images[i])
    # one image in two class folders, with the same bytes
    dup = planted["duplicate"]
    copies = [data / "eval" / c["eval"] for c in dup["copies"]]
    assert len(copies) == 2 and copies[0].read_bytes() == copies[1].read_bytes()
    assert {c["given_label"] for c in dup["copies"]} - {dup["true_label"]} and copies[0].parent != copies[1].parent
    # the plan is a function of the split alone
    again = plant_problems(images, labels, split_digits()[2], test)
    assert {int(k): v for k, v in again["mislabelled"].items()} == {w["index"]: w["given_label"] for w in wrong}


def test_glyph_identities(demo):
    data = demo / "build" / "demo" / "data"
    rows = list(csv.DictReader((data / "glyphs.csv").open()))
    ids = {r["label"] for r in rows}
    gallery = {r["label"] for r in rows if r["role"] == "gallery"}
    assert 100 <= len(ids) <= 200 and {r["role"] for r in rows} == {"gallery", "probe"}
    assert sum(r["role"] == "gallery" for r in rows) == len(gallery)  # one gallery image per enrolled identity
    assert len(ids - gallery) >= 20  # identities with probes only: open-set searches
    pics = {r["path"]: _png(data / "glyphs" / r["path"]) for r in rows}
    assert all(p.shape == (8, 8) for p in pics.values())
    same = [pics[a["path"]] for a in rows if a["label"] == "id000"]
    assert len(same) >= 2 and not np.array_equal(same[0], same[1])  # per-image jitter


def test_models_have_two_outputs_and_metadata(demo):
    for name in CLASSIFIERS:
        m = onnx.load(str(demo / "build" / "demo" / "models" / f"{name}.onnx"))
        assert [o.name for o in m.graph.output] == ["logits", "embedding"]
        props = {p.key: p.value for p in m.metadata_props}
        assert props["signature"].startswith(f"evallib-demo/{name}/")


def test_build_is_reused(demo):
    logged = []
    build_demo(demo / "build" / "demo", log=logged.append)
    assert logged == [f"demo: reusing {demo / 'build' / 'demo'}"]


def test_training_is_deterministic():
    images, labels, train, _ = split_digits()
    x = _tensors(images, train[:200])
    a = train_model("linear", x, labels[train[:200]])
    b = train_model("linear", x, labels[train[:200]])
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert np.array_equal(va.numpy(), vb.numpy()), k
    assert sum(p.numel() for p in build_model("cnn_wide").parameters()) > \
        sum(p.numel() for p in build_model("cnn_small").parameters())


@pytest.fixture(scope="module")
def local_outputs(demo):
    """``evallib demo`` here, reports, the version comparison and the index included: ``demo/outputs``."""
    cwd = os.getcwd()
    os.chdir(demo)
    try:  # the build is the demo fixture's, reused
        assert main(["demo", "--build", "build/demo", "--params", "params", "--out", "outputs", "--quiet"]) == 0
    finally:
        os.chdir(cwd)
    return demo / "outputs"


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


def test_cluster_batch_run_with_a_worker_killed_equals_the_local_run(demo, local_outputs, monkeypatch):
    """The demo's first three models as tasks on a real LocalCluster (2 worker processes); the worker that is
    writing a model's folder is killed; Dask runs its task again elsewhere and the outputs equal the local run's."""
    from dask.distributed import Client, LocalCluster

    from evallib.cluster import run_on_cluster

    monkeypatch.chdir(demo)
    out = demo / "cluster_out"
    killed = []

    def kill_a_writer():
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            for stage in out.glob(".*.staging-*"):
                pid = int(stage.name.rsplit("-", 1)[1])
                os.kill(pid, signal.SIGKILL)  # the worker process writing this model's folder
                killed.append((stage.name, pid))
                return
            time.sleep(0.01)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        before = set(client.run(os.getpid).values())
        killer = threading.Thread(target=kill_a_writer)
        killer.start()
        results = run_on_cluster(sorted(Path("params") / f"{n}.yaml" for n in FIRST), out, client, progress=False)
        killer.join()
        after = set(client.run(os.getpid).values())
    assert killed and killed[0][1] in before and killed[0][1] not in after  # killed mid-task, and replaced
    assert [r["status"] for r in results] == ["ok"] * 3
    assert not list(out.glob(".*.staging-*"))  # what the killed worker left was tidied by the rerun
    for name in ("linear", "cnn_small", "cnn_wide"):
        here, there = load_predictions(local_outputs / name), load_predictions(out / name)
        assert here["paths"] == there["paths"] and np.array_equal(here["labels"], there["labels"])
        np.testing.assert_allclose(there["scores"], here["scores"], rtol=1e-5, atol=1e-6)  # 1 thread vs 2
        m_here = json.loads((local_outputs / name / "metrics.json").read_text())
        m_there = json.loads((out / name / "metrics.json").read_text())
        assert m_there["headline"].keys() == m_here["headline"].keys()
        for k, h in m_here["headline"].items():
            got = m_there["headline"][k]
            assert got["value"] == pytest.approx(h["value"], rel=1e-9, nan_ok=True), (name, k)
            assert (got["interval"] is None) == (h["interval"] is None), (name, k)
            if h["interval"] is not None:
                assert got["interval"] == pytest.approx(h["interval"], rel=1e-9), (name, k)
        assert m_there["classification"]["confusion"] == m_here["classification"]["confusion"]
        assert m_there["verification"]["auc"] == pytest.approx(m_here["verification"]["auc"], abs=1e-12)


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
