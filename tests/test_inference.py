"""Batched ONNX inference, test-time augmentation, model facts, cache and the run command."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import yaml

from conftest import export_tiny_model, write_image_tree
from evallib import run as run_mod
from evallib.cli import main
from evallib.data import list_images, load_views
from evallib.errors import ModelError
from evallib.inference import model_facts, open_session, predict, softmax, wait_for_cool_cpu
from evallib.run import load_predictions, run_many, run_model

PRE = {"resize": 18, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale", "layout": "auto", "tta": "none"}
OUTS = {"scores": "logits", "scores_are": "logits", "embedding": "embedding"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture
def data(tmp_path, rng):
    return write_image_tree(tmp_path / "data", rng, per_class=5)


def _files(root):
    d = list_images(root)
    return d, [d.file(i) for i in range(len(d))]


@pytest.mark.parametrize("tta", ["none", "flip", "tencrop"])
def test_batched_equals_one_by_one_and_tta_aggregation(model, data, tta):
    d, files = _files(data)
    sess = open_session(model, threads=1)
    pre = {**PRE, "tta": tta}
    batched = predict(sess, files, pre, OUTS, batch_size=7, progress=False)
    single = predict(sess, files, pre, OUTS, batch_size=1, progress=False)
    for k in ("scores", "embeddings", "scores_center"):
        a, b = getattr(batched, k), getattr(single, k)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, atol=1e-5)
    # reference: run each view alone, then aggregate by hand
    x = load_views(files[3], pre)[0]
    logits, emb = sess.run(["logits", "embedding"], {"input": x.astype(np.float32)})
    if tta == "none":
        np.testing.assert_allclose(batched.scores[3], logits[0], atol=1e-5)
        assert batched.scores_are == "logits" and batched.scores_center is None
    else:
        np.testing.assert_allclose(batched.scores[3], softmax(logits.astype(float)).mean(0), atol=1e-6)
        assert batched.scores_are == "probabilities"
        np.testing.assert_allclose(batched.scores_center[3], logits[4 if tta == "tencrop" else 0], atol=1e-5)
    e = emb.mean(0)
    np.testing.assert_allclose(batched.embeddings[3], e / np.linalg.norm(e), atol=1e-5)


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("tta", ["none", "tencrop"])
def test_graph_with_a_fixed_batch_size(model, data, tmp_path, batch, tta):
    # the dynamo exporter fixes the batch size (1 unless told otherwise); runs are cut and padded to it
    fixed = export_tiny_model(tmp_path / "fixed.onnx", batch=batch)
    assert onnx.load(str(fixed)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == batch
    d, files = _files(data)
    pre = {**PRE, "tta": tta}
    ref = predict(open_session(model, threads=1), files, pre, OUTS, batch_size=7, progress=False)
    got = predict(open_session(fixed, threads=1), files, pre, OUTS, batch_size=7, progress=False)
    assert len(got.kept) == len(files) == 15
    np.testing.assert_allclose(got.scores, ref.scores, atol=1e-5)
    np.testing.assert_allclose(got.embeddings, ref.embeddings, atol=1e-5)


def test_nhwc_model_is_fed_nhwc(tmp_path, data):
    m = export_tiny_model(tmp_path / "nhwc.onnx", nhwc=True)
    _, files = _files(data)
    a = predict(open_session(m), files, PRE, OUTS, progress=False)
    assert a.scores.shape == (15, 3)


def test_shape_and_output_errors(model, data, tmp_path):
    _, files = _files(data)
    sess = open_session(model)
    with pytest.raises(ModelError, match=r"model input has shape \['batch', 1, 16, 16\]; the preprocessing gives \(N,"
                                         r" 3, 16, 16\)"):
        predict(sess, files, {**PRE, "mode": "rgb"}, OUTS, progress=False)
    with pytest.raises(ModelError, match=r"model input has shape \['batch', 1, 16, 16\]; the preprocessing gives \(N,"
                                         r" 1, 12, 12\)"):
        predict(sess, files, {**PRE, "crop": 12}, OUTS, progress=False)
    with pytest.raises(ModelError, match=r"outputs\.scores: expected one of the model's outputs \['logits',"
                                         r" 'embedding'\]; got 'probs'"):
        predict(sess, files, PRE, {**OUTS, "scores": "probs"}, progress=False)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"model: .*bad\.onnx: expected an ONNX model; could not parse it"):
        model_facts(bad)


def test_model_facts(model, tmp_path):
    m = onnx.load(str(model))
    onnx.helper.set_model_props(m, {"signature": "team-x/v3"})
    f = tmp_path / "signed.onnx"
    onnx.save(m, str(f))
    facts = model_facts(f)
    import hashlib

    assert facts["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert facts["metadata"] == {"signature": "team-x/v3"}
    assert facts["opset"]["ai.onnx"] == 17 and facts["producer"].startswith("pytorch")
    assert facts["inputs"] == [{"name": "input", "shape": ["batch", 1, 16, 16], "type": "float"}]
    assert [o["name"] for o in facts["outputs"]] == ["logits", "embedding"]


def test_thermal_guard_waits_while_hot():
    temps = iter([90, 85, 70])
    slept = []
    waited = wait_for_cool_cpu(80, read=lambda: next(temps), sleep=slept.append, poll=1.0)
    assert waited == 2.0 and slept == [1.0, 1.0]
    assert wait_for_cool_cpu(None) == 0.0
    assert wait_for_cool_cpu(80, read=lambda: None, sleep=slept.append) == 0.0  # no sensor: no wait


def _params(tmp_path, model, data, name="tiny", **pre):
    doc = {"name": name, "model": str(model), "task": "both", "data": {"root": str(data)},
           "preprocess": {**{k: v for k, v in PRE.items() if k != "layout"}, **pre}, "outputs": OUTS}
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(doc))
    return f


def test_run_writes_predictions_and_run_json_and_caches(model, data, tmp_path, monkeypatch):
    (data / "a" / "corrupt.png").write_bytes(b"\x89PNG broken")
    p = _params(tmp_path, model, data)
    out = tmp_path / "out"
    first = run_model(p, out, progress=False)
    assert first["status"] == "ok" and not first["inference"]["cached"]
    skipped = first["dataset"]["skipped"]
    assert skipped == [{"path": "a/corrupt.png", "reason": skipped[0]["reason"]}]
    assert first["dataset"]["skipped"][0]["reason"].startswith("cannot decode")
    pred = load_predictions(out / "tiny")
    assert pred["scores"].shape == (15, 3) and pred["embeddings"].shape == (15, 16)
    assert "a/corrupt.png" not in pred["paths"] and pred["classes"] == ["a", "b", "c"]
    assert json.loads((out / "tiny" / "run.json").read_text())["model"]["sha256"] == first["model"]["sha256"]

    def no_inference(*a, **k):
        raise AssertionError("inference ran on a cache hit")

    monkeypatch.setattr(run_mod, "predict", no_inference)
    second = run_model(p, out, progress=False)
    assert second["inference"]["cached"] and second["dataset"]["skipped"] == first["dataset"]["skipped"]
    # a change of preprocessing, or of a file, misses the cache
    with pytest.raises(AssertionError, match="inference ran"):
        run_model(_params(tmp_path, model, data, tta="flip"), out, progress=False)
    (data / "b" / "b_0.png").write_bytes((data / "c" / "c_0.png").read_bytes())
    with pytest.raises(AssertionError, match="inference ran"):
        run_model(p, out, progress=False)


def test_failed_model_does_not_stop_the_others(model, data, tmp_path, capsys):
    good = _params(tmp_path, model, data, name="good")
    bad = _params(tmp_path, tmp_path / "missing.onnx", data, name="bad")
    out = tmp_path / "out"
    results = run_many([bad, good], out, jobs=2)
    assert [r["status"] for r in results] == ["failed", "ok"]
    failed = json.loads((out / "bad" / "run.json").read_text())
    assert "expected an ONNX file; got no file at" in failed["error"]
    assert main(["run", str(bad), str(good), "--out", str(out), "--quiet", "--no-report"]) == 1
    assert "FAILED  bad" in capsys.readouterr().err
    assert main(["run", str(good), "--out", str(out), "--quiet", "--no-report"]) == 0


def test_cli_reports_params_errors(tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text("name: x\nmodel: m.onnx\ndata: {root: d}\npreprocess: {tta: tencorp}\n")
    assert main(["run", str(f), "--out", str(tmp_path / "o"), "--no-report"]) == 1
    err = capsys.readouterr().err
    assert "preprocess.tta: expected one of none, flip, tencrop; got 'tencorp'" in err


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    from evallib._io import atomic_path, write_json

    f = tmp_path / "run.json"
    write_json(f, {"ok": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(f) as tmp:
            tmp.write_text("{half")
            raise RuntimeError("interrupted")
    assert json.loads(f.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_importing_evallib_does_not_import_torch():
    code = "import sys, evallib, evallib.metrics; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    # grad_cam is reached from the package root, and torch comes only when a map is drawn
    code = ("import sys, evallib; f = evallib.grad_cam; assert f.__module__ == 'evallib.explain.cam'; "
            "assert 'grad_cam' in evallib.__all__; sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
