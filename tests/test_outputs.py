"""The output folder's layout, the data fingerprint, and the index page grouped by evaluation data."""

import hashlib
import json
import re
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import export_tiny_model, write_image_tree
from evallib import compare, outputs
from evallib.cli import main
from evallib.run import data_fingerprint, run_many, run_model

PRE = {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale", "tta": "none"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


def _params(folder, model, data, name, *, data_keys=None, **pre):
    f = folder / f"{name}.yaml"
    f.write_text(yaml.safe_dump({
        "name": name, "model": str(model), "task": "classification", "data": {"root": str(data), **(data_keys or {})},
        "preprocess": {**PRE, **pre}, "outputs": {"scores": "logits", "scores_are": "logits", "embedding": None},
        "report": {"bootstrap": 20, "gallery_size": 0}}))
    return f


def brute_fingerprint(root):
    """Every decodable image under ``root`` as (BLAKE2b-128 of its bytes, its folder's name), sorted, hashed."""
    rows = []
    for p in root.rglob("*.png"):
        try:
            Image.open(p).load()
        except OSError:
            continue
        rows.append([hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest(), p.parent.name])
    return hashlib.sha256(json.dumps(sorted(rows), ensure_ascii=False).encode()).hexdigest()


def test_data_fingerprint_is_the_evaluated_images_and_labels(model, tmp_path, rng):
    a = write_image_tree(tmp_path / "a", rng, per_class=3)
    out = tmp_path / "out"

    def fingerprint(data, **data_keys):
        return run_model(_params(tmp_path, model, data, "m", data_keys=data_keys), out, progress=False)[
            "data_fingerprint"]

    fp = fingerprint(a)
    assert re.fullmatch(r"[0-9a-f]{64}", fp) and fp == brute_fingerprint(a)
    assert fingerprint(a) == fp  # from the cached predictions
    assert json.loads((out / "m" / outputs.RUN).read_text())["data_fingerprint"] == fp
    # the same images elsewhere, in the flat label_xxx.png layout, classes in another order: the same data
    flat = tmp_path / "elsewhere" / "flat"
    flat.mkdir(parents=True)
    for f in a.rglob("*.png"):
        shutil.copy(f, flat / f"{f.parent.name}_{f.name}")
    assert fingerprint(flat, labels="filename_prefix") == fp
    assert fingerprint(a, classes=["c", "a", "b"]) == fp
    # a file that cannot be decoded is not evaluated: still the same data
    (a / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    assert fingerprint(a) == fp
    # an image relabelled, removed or added: other data
    shutil.move(a / "a" / "a_0.png", a / "b" / "a_0.png")
    relabelled = fingerprint(a)
    assert relabelled != fp and relabelled == brute_fingerprint(a)
    (a / "b" / "a_0.png").unlink()
    assert fingerprint(a) not in (fp, relabelled)
    shutil.copy(a / "c" / "c_0.png", a / "c" / "c_0_again.png")
    assert fingerprint(a) == brute_fingerprint(a)
    with pytest.raises(ValueError, match=r"label_names: expected one per file hash \(2\); got 1"):
        data_fingerprint(["x", "y"], ["a"])


def test_run_json_scan_and_cached_predictions(model, tmp_path, rng):
    data = write_image_tree(tmp_path / "data", rng, per_class=3)
    (data / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    facts = run_model(_params(tmp_path, model, data, "m1"), out, progress=False)
    assert outputs.load_run(out / "m1") == json.loads((out / "m1" / outputs.RUN).read_text())
    assert outputs.load_run(out / "m1")["data_fingerprint"] == facts["data_fingerprint"]
    pred = outputs.load_predictions(out / "m1")
    assert pred["scores"].shape == (9, 3) and pred["cache_key"] == facts["predictions_key"]
    cached = outputs.cached_predictions(out / "m1", facts["predictions_key"])
    assert cached == {"skipped": facts["dataset"]["skipped"], "data_fingerprint": facts["data_fingerprint"],
                      "checks": {"score_type": facts["score_type"], "class_order": facts["class_order_check"]},
                      "label_overrides": None}  # no corrections file
    assert cached["skipped"][0]["path"] == "a/broken.png"
    assert outputs.cached_predictions(out / "m1", "another key") is None
    assert outputs.cached_predictions(out / "none", facts["predictions_key"]) is None

    # a failed model is found too; a folder without run.json and a stray file are not models
    assert main(["run", str(_params(tmp_path, tmp_path / "missing.onnx", data, "m0")), "--out", str(out),
                 "--quiet", "--no-report"]) == 1
    (out / "scratch").mkdir()
    (out / "notes.txt").write_text("x")
    found = outputs.scan(out)
    assert [(m.name, m.status, m.path) for m in found] == [("m0", "failed", out / "m0"), ("m1", "ok", out / "m1")]
    assert found[1].run == outputs.load_run(out / "m1") and found[1].metrics() is None
    assert outputs.scan(tmp_path / "no such folder") == []


@pytest.fixture(scope="module")
def two_data_sets(model, tmp_path_factory):
    """Two models on data ``setA`` (one with flip TTA), one on ``setB``; metrics written."""
    root = tmp_path_factory.mktemp("groups")
    rng = np.random.default_rng(3)
    a = write_image_tree(root / "one" / "setA", rng, per_class=5)
    b = write_image_tree(root / "two" / "setB", rng, per_class=4)
    out = root / "out"
    for name, data, pre in (("alpha", a, {}), ("beta", a, {"tta": "flip"}), ("gamma", b, {})):
        p = _params(root, model, data, name, **pre)
        assert run_many([p], out, progress=False)[0]["status"] == "ok"  # predictions and metrics
    return root, out


def test_index_ranks_models_within_their_evaluation_data(two_data_sets):
    root, out = two_data_sets
    cmp = compare.Comparison.load(out, primary_metric="accuracy")
    groups = cmp.groups()
    assert [(g.title, set(g.models), g.images) for g in groups] == [("setA", {"alpha", "beta"}, 15),
                                                                   ("setB", {"gamma"}, 12)]
    acc = {n: m["headline"]["accuracy"]["value"] for n, m in cmp.ok.items()}
    assert list(groups[0].models) == sorted(["alpha", "beta"], key=lambda n: -acc[n])

    board = cmp.leaderboard(links_from=out)  # as on index.html, in the output folder
    page = board._repr_html_()
    tables = page.split("<h3>Evaluation data: ")[1:]
    assert len(tables) == 2 and [t.count("<table") for t in tables] == [1, 1]
    assert tables[0].startswith("setA</h3>") and tables[1].startswith("setB</h3>")
    assert "alpha report" in tables[0] and "beta report" in tables[0] and "gamma" not in tables[0]
    assert "gamma report" in tables[1] and "alpha" not in tables[1]
    assert groups[0].key[:12] in tables[0] and groups[1].key[:12] in tables[1]
    assert str(root) not in page  # the data folder's name only, never its path

    # the paired comparison stays within setA: gamma (on other data) is never compared
    page = cmp.paired(n_boot=20)._repr_html_()
    assert page.count("<table") == 1 and "setA" in page and "gamma" not in page
    other = next(n for n in groups[0].models[1:])
    assert f">{other}</td><td>accuracy</td>" in page


def test_index_with_one_data_set_has_one_table(two_data_sets, tmp_path):
    _, out = two_data_sets
    for name in ("alpha", "beta"):
        shutil.copytree(out / name, tmp_path / name)
    board = compare.Comparison.load(tmp_path).leaderboard()
    assert board._repr_html_().count("<table") == 1
    assert board.plot().ax_.get_yticklabels()[0].get_text() in ("alpha", "beta")  # the forest plot of the ranking
