import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


# The longest files, longest chain first. `make test` runs the files on pytest-xdist workers in collection order
# (--dist loadfile --no-loadscope-reorder), so none of these starts last and holds the end of the run; the demo's
# build comes first, since test_demo_reports.py and test_demo_cluster.py wait for it.
LONG_FILES = ("test_demo.py", "test_interrupts.py", "test_demo_reports.py", "test_jupyterlab.py",
              "test_demo_cluster.py", "test_report.py", "test_cam_exports.py", "test_packaging.py")


def pytest_collection_modifyitems(items):
    first = {name: k for k, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))  # stable: each file's order is kept


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def make_classification(rng, n=500, c=6, *, ties=False, missing_class=None, signal=1.5):
    y = rng.integers(0, c, n)
    if missing_class is not None:
        y[y == missing_class] = (missing_class + 1) % c
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += signal
    if ties:
        logits = np.round(logits, 0)  # many equal scores, within rows and across samples
    return y, logits


def make_embeddings(rng, n=400, ids=20, dim=16, spread=1.0):
    labels = rng.integers(0, ids, n)
    centers = rng.normal(size=(ids, dim))
    return centers[labels] * spread + rng.normal(size=(n, dim)), labels


def export_tiny_model(path, *, channels=1, size=16, n_classes=3, nhwc=False, seed=0, batch=None):
    """A small CNN exported to ONNX with outputs ``logits`` and ``embedding``.

    ``batch`` fixes the graph's batch size (as the dynamo exporter does); by default it is dynamic.
    """
    import warnings

    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                      nn.Flatten())
            self.fc = nn.Linear(16, n_classes)

        def forward(self, x):
            if nhwc:
                x = x.permute(0, 3, 1, 2)
            e = self.conv(x)
            return self.fc(e), e

    shape = (batch or 1, size, size, channels) if nhwc else (batch or 1, channels, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Tiny().eval(), (torch.zeros(shape),), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits", "embedding"], opset_version=17,
                          dynamic_axes=None if batch else {"input": {0: "batch"}, "logits": {0: "batch"},
                                                           "embedding": {0: "batch"}})
    return path


def write_image_tree(root, rng, *, classes=("a", "b", "c"), per_class=4, size=(20, 18), mode="L"):
    from PIL import Image

    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            arr = rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8)
            Image.fromarray(arr, "L").convert(mode).save(root / c / f"{c}_{k}.png")
    return root


def export_unconvertible_model(path, *, n_classes=3, size=16):
    """An ONNX model onnxruntime runs but onnx2torch cannot convert (it uses ThresholdedRelu)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.normal(size=(n_classes, 4)).astype(np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("ThresholdedRelu", ["c"], ["r"], alpha=0.1),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["embedding"]),
        helper.make_node("Gemm", ["embedding", "fc"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "unconvertible", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                     ["batch", 1, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes]),
                               helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 4])],
                              initializer=[w, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def evaluated():
    """``evaluated(params, out_root)``: the pipeline's predictions and metrics for one params file (no
    notebook), then ``evallib.load`` of its folder."""
    from pathlib import Path

    import evallib
    from evallib.run import run_many

    def run(params, out_root, **load_kw):
        [facts] = run_many([params], out_root, progress=False)
        assert facts["status"] == "ok", facts.get("error")
        check_output_folder(Path(out_root) / facts["name"])
        return evallib.load(Path(out_root) / facts["name"], **load_kw)

    return run


def output_schema(name):
    """The JSON Schema ``docs/schemas/<name>.schema.json`` (``run`` or ``metrics``), itself checked."""
    import json
    from pathlib import Path

    import jsonschema

    s = json.loads((Path(__file__).resolve().parent.parent / "docs" / "schemas" / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(s)
    return s


def check_output_folder(model_dir):
    """Validate a model folder's run.json, and its metrics.json when there is one, against their schemas."""
    import json
    from pathlib import Path

    import jsonschema

    run = json.loads((Path(model_dir) / "run.json").read_text())
    jsonschema.validate(run, output_schema("run"))
    if (Path(model_dir) / "metrics.json").exists():
        m = json.loads((Path(model_dir) / "metrics.json").read_text())
        jsonschema.validate(m, output_schema("metrics"))
        jsonschema.validate(m["run"], output_schema("run"))
    return run


def check_display(disp):
    """The display contract every view keeps: ``plot()`` and ``plot(ax=...)`` (one Axes, or ``disp.n_axes`` of
    them) return the display and record where they drew; the page's HTML is made once. Returns ``(ax, html)``."""
    from matplotlib.figure import Figure

    assert disp.plot() is disp and disp.figure_ is not None
    n = disp.n_axes
    ax = Figure().add_subplot() if n == 1 else Figure().subplots(1, n)
    assert disp.plot(ax=ax) is disp
    first = ax if n == 1 else np.ravel(ax)[0]
    assert (disp.ax_ is ax if n == 1 else list(np.ravel(disp.ax_)) == list(np.ravel(ax)))
    assert disp.figure_ is first.figure
    html = disp._repr_html_()
    assert html.startswith("<style>") and html is disp._repr_html_()
    return ax, html


# ---------------------------------------------------------------- one demo for the whole session

def shared_path(tmp_path_factory, name):
    """``name`` in a folder every pytest-xdist worker of this session sees (the session's base temporary folder,
    the parent of each worker's own); without xdist, in the session's base temporary folder."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name


@contextmanager
def exclusive(lock_file):
    """Hold an exclusive lock on ``lock_file`` (across processes): one worker builds, the others wait for it."""
    import fcntl

    with open(lock_file, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The embedded demo's layout, built once for the session and shared by the xdist workers:
    ``demo/params`` (the repository's) and ``demo/build/demo`` (data and models). Read only: a test that
    changes it works on a copy."""
    from evallib.demo import build_demo

    root = shared_path(tmp_path_factory, "demo")
    with exclusive(shared_path(tmp_path_factory, "demo.lock")):
        if not (root / "params").exists():
            shutil.copytree(REPO / "params", root / "params")
        build_demo(root / "build" / "demo", log=lambda *a: None)  # reused once built
    return root


@pytest.fixture(scope="session")
def local_outputs(tmp_path_factory, demo):
    """``evallib demo`` run once in ``demo`` (reports, the version comparison, the label review and the index
    included), shared by the xdist workers: ``demo/outputs``. Read only, as ``demo`` is."""
    from evallib.cli import main

    done = demo / "outputs.done"
    with exclusive(shared_path(tmp_path_factory, "demo-outputs.lock")):
        if not done.exists():
            cwd = os.getcwd()
            os.chdir(demo)
            try:  # the build is the demo fixture's, reused
                assert main(["demo", "--build", "build/demo", "--params", "params", "--out", "outputs",
                             "--quiet"]) == 0
            finally:
                os.chdir(cwd)
            done.touch()
    return demo / "outputs"
