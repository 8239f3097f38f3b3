"""The embedded demo end to end: digits written as files, three models trained and exported, evaluated."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from evallib.cli import main
from evallib.demo import build_demo, build_model, split_digits, train_model, _tensors
from evallib.metrics import evaluate_classification
from evallib.run import load_predictions

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # trains three models and renders their reports


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "params", root / "params")
    build_demo(root / "build" / "demo", log=lambda *a: None)
    return root


def test_data_layouts_and_split(demo):
    data = demo / "build" / "demo" / "data"
    train = list(data.glob("train/*/*.png"))
    evals = list(data.glob("eval/*/*.png"))
    flat = list(data.glob("eval_flat/*.png"))
    assert (len(train), len(evals), len(flat)) == (1257, 540, 540)
    assert not {p.name for p in train} & {p.name for p in evals}  # disjoint split
    assert {p.name.split("_")[0] for p in flat} == {str(d) for d in range(10)}
    lines = (data / "pairs.txt").read_text().splitlines()
    assert lines[0] == "10\t30" and len(lines) == 601


def test_models_have_two_outputs_and_metadata(demo):
    for name in ("linear", "cnn_small", "cnn_wide"):
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


def test_demo_params_evaluate_end_to_end(demo, monkeypatch):
    monkeypatch.chdir(demo)
    assert main(["run", "params", "--out", "outputs", "--quiet"]) == 0
    summary = json.loads((demo / "build" / "demo" / "summary.json").read_text())
    acc = {}
    for name in ("linear", "cnn_small", "cnn_wide"):
        run = json.loads((demo / "outputs" / name / "run.json").read_text())
        assert run["status"] == "ok" and run["dataset"]["images"] == 540 and run["dataset"]["skipped"] == []
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
    # the same 540 images, read from two layouts: one data set, one leaderboard and one paired table
    assert index.count("<h3>Evaluation data: ") == 2 and index.count("<h3>Evaluation data: eval, eval_flat</h3>") == 2
