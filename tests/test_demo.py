"""The embedded demo end to end: digits written as files, three models trained and exported, evaluated."""

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
from evallib.demo import _tensors, build_demo, build_model, split_digits, train_model
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


@pytest.fixture(scope="module")
def local_outputs(demo):
    """The demo's three models run here, reports included: ``demo/outputs``."""
    cwd = os.getcwd()
    os.chdir(demo)
    try:
        assert main(["run", "params", "--out", "outputs", "--quiet"]) == 0
    finally:
        os.chdir(cwd)
    return demo / "outputs"


def test_demo_params_evaluate_end_to_end(demo, local_outputs):
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


def test_cluster_batch_run_with_a_worker_killed_equals_the_local_run(demo, local_outputs, monkeypatch):
    """The demo's three models as tasks on a real LocalCluster (2 worker processes); the worker that is
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
        results = run_on_cluster(sorted(Path("params").glob("*.yaml")), out, client, progress=False)
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
