"""Interrupted and concurrent runs: a real `evallib run` process killed (SIGKILL) or stopped (SIGINT)
during inference, metrics and rendering leaves each model's folder as a whole old or whole new set."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from conftest import export_tiny_model, write_image_tree

pytestmark = pytest.mark.slow

PRE = {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale", "tta": "none", "batch_size": 8}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A model, its data, and a finished run of it (predictions, metrics, report) to copy as the old set."""
    root = tmp_path_factory.mktemp("kill")
    model = export_tiny_model(root / "tiny.onnx")
    data = write_image_tree(root / "data", np.random.default_rng(0), per_class=60)
    params = write_params(root / "m.yaml", model, data)
    assert run_here(params, root / "template") == 0
    return root, model, data


def cli(params, out, *extra):
    return [sys.executable, "-m", "evallib.cli", "run", str(params), "--out", str(out), "--quiet", *extra]


def run_here(params, out, *extra):
    """``evallib run`` in this process: its exit status. The runs that are not killed or refused run here, which
    spares a Python start and its imports; the CLI's output shows with a failing test's captured output."""
    from evallib.cli import main

    return main(["run", str(params), "--out", str(out), "--quiet", *extra])


def write_params(path, model, data, *, tta="none", bootstrap=20):
    path.write_text(yaml.safe_dump({
        "name": "m", "model": str(model), "task": "classification", "data": {"root": str(data)},
        "preprocess": {**PRE, "tta": tta}, "outputs": {"scores": "logits", "scores_are": "logits", "embedding": None},
        "report": {"bootstrap": bootstrap, "gallery_size": 2, "tsne_thumbnails": 5},
        "runtime": {"threads": 1, "decode_workers": 1}}))
    return path


def _default_sigint():
    # a suite started as a background shell job ignores SIGINT, and a child inherits that: the
    # child must start with the default disposition, so that Python installs its KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(params, out, *extra):
    return subprocess.Popen(cli(params, out, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def snapshot(folder):
    """``{file name: (inode, size)}`` of a model folder."""
    return {f.name: (f.stat().st_ino, f.stat().st_size) for f in sorted(Path(folder).iterdir())}


def staging(out):
    return sorted(out.glob(".m.staging-*"))


def wait_for(condition, proc, what, timeout=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = condition()
        if got:
            return got
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.stderr.read()}")
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def consistent(folder):
    """The folder is one whole set: run.json, predictions, metrics and (when there) the report agree."""
    import evallib

    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "ok"
    rep = evallib.load(folder)  # refuses metrics that do not belong to run.json
    with np.load(folder / "predictions.npz") as z:
        assert str(z["cache_key"]) == run["predictions_key"]
    if (folder / "report.html").exists():
        html = (folder / "report.html").read_text()
        tag = re.search(r'<meta[^>]*name="evallib-metrics-key"[^>]*>', html).group(0)
        assert f'content="{run["metrics_key"]}"' in tag
        assert run["report_key"]
    else:
        assert "report_key" not in run
    assert not [f for f in folder.iterdir() if f.name.startswith(".")]  # no temporary files
    return rep


def stage_file_changed(out, name, old):
    """The staging folder's ``name`` is a new file (not the published one linked in)."""
    for s in staging(out):
        f = s / name
        if f.exists() and f.stat().st_ino != old[name][0]:
            return True
    return False


def published_unchanged(out, name, old):
    """The published folder's ``name`` is still the file it was."""
    try:
        return (out / "m" / name).stat().st_ino == old[name][0]
    except FileNotFoundError:  # between two renames of the publishing step
        return False


POINTS = {
    # during inference: staging made, its predictions still the published ones
    "inference": lambda out, old: bool(staging(out)) and not stage_file_changed(out, "predictions.npz", old),
    # during metrics: new predictions written in staging, metrics not yet, and nothing published yet (the
    # report's staging folder, made after the metrics are published, links the new predictions too)
    "metrics": lambda out, old: stage_file_changed(out, "predictions.npz", old)
    and not stage_file_changed(out, "metrics.json", old) and published_unchanged(out, "predictions.npz", old),
    # during rendering: the report's notebook kernel is running
    "rendering": None,
}


def kernels_of(proc):
    try:
        return [c for c in psutil.Process(proc.pid).children(recursive=True) if "ipykernel" in " ".join(c.cmdline())]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
@pytest.mark.parametrize("point", list(POINTS))
def test_a_killed_run_leaves_a_whole_set_and_a_rerun_finishes(setup, tmp_path, sig, point):
    root, model, data = setup
    out = tmp_path / "out"
    shutil.copytree(root / "template", out)
    old = snapshot(out / "m")
    old_run = json.loads((out / "m" / "run.json").read_text())
    # new predictions; metrics slow enough to be caught computing
    params = write_params(tmp_path / "m.yaml", model, data, tta="flip", bootstrap=3000 if point == "metrics" else 20)
    proc = start(params, out)
    if point == "rendering":  # the new predictions and metrics are published, the report's folder is staged
        def rendering():
            run = json.loads((out / "m" / "run.json").read_text())
            return run["inference"]["tta"] == "flip" and bool(staging(out)) and kernels_of(proc)

        kernels = wait_for(rendering, proc, "the report")
    else:
        wait_for(lambda: POINTS[point](out, old), proc, point)
        kernels = kernels_of(proc)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert err.strip().splitlines()[-1].startswith("evallib: interrupted")
        assert "Traceback" not in err
        assert not staging(out)  # an interrupted run tidies its staging folder itself
    else:
        assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)
    for k in kernels:  # no orphan kernel (a killed run's kernel stops when it sees its parent gone)
        try:
            k.wait(timeout=15)
        except psutil.NoSuchProcess:
            pass
        assert not k.is_running() or k.status() == psutil.STATUS_ZOMBIE
    folder = out / "m"
    now = snapshot(folder)
    if now == old:  # the whole old set
        assert json.loads((folder / "run.json").read_text()) == old_run
    else:  # the whole new set of predictions and metrics, its report not yet drawn
        assert point == "rendering"
        rep = consistent(folder)
        assert rep.run["inference"]["tta"] == "flip"
    # the next run tidies what the kill left, and finishes reusing what was complete
    assert run_here(params, out, *([] if point == "rendering" else ["--no-report"])) == 0
    assert not staging(out)
    rep = consistent(folder)
    assert rep.run["inference"]["tta"] == "flip"
    if point == "rendering":
        assert rep.run["inference"]["cached"] and rep.run["metrics_cached"] and (folder / "report.html").exists()


def test_a_second_run_on_the_same_folder_fails_naming_the_holder(setup, tmp_path):
    from evallib.outputs import model_lock

    root, model, data = setup
    out = tmp_path / "out"
    shutil.copytree(root / "template", out)
    old = snapshot(out / "m")
    params = write_params(tmp_path / "m.yaml", model, data, tta="flip")
    with model_lock(out, "m"):  # another evallib process (this one) is writing outputs/m
        second = subprocess.run(cli(params, out, "--no-report"), capture_output=True, text=True)
    assert second.returncode == 1
    assert re.search(rf"FAILED  m: OutputBusyError: {re.escape(str(out / 'm'))}: expected no other evallib run "
                     rf"writing this model's outputs; got one: pid {os.getpid()} on \S+, started [-\d: ]+, command: ",
                     second.stderr), second.stderr
    assert snapshot(out / "m") == old and not staging(out)  # untouched
    assert run_here(params, out, "--no-report") == 0
    assert consistent(out / "m").run["inference"]["tta"] == "flip"


@pytest.mark.parametrize("case", ["full disk", "read-only folder"])
def test_an_unwritable_output_folder_gives_one_line_and_keeps_the_old_outputs(setup, tmp_path, monkeypatch, capsys,
                                                                              case):
    import builtins
    import errno

    from evallib import _io
    from evallib.cli import main

    root, model, data = setup
    out = tmp_path / "out"
    shutil.copytree(root / "template", out)
    old = snapshot(out / "m")
    params = write_params(tmp_path / "m.yaml", model, data, tta="flip")
    if case == "full disk":  # the disk fills up as the new predictions are written
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", str(args[0].name))
        monkeypatch.setattr(_io.np, "savez", full)
        reason = "No space left on device"
    else:  # nothing under out/ can be opened for writing
        real_open = builtins.open

        def read_only(file, mode="r", *args, **kwargs):
            if str(file).startswith(str(out)) and any(c in mode for c in "wax+"):
                raise OSError(errno.EROFS, "Read-only file system", str(file))
            return real_open(file, mode, *args, **kwargs)
        monkeypatch.setattr(builtins, "open", read_only)
        reason = "Read-only file system"
    assert main(["run", str(params), "--out", str(out), "--quiet", "--no-report"]) == 1
    err = capsys.readouterr().err
    assert re.search(rf"^FAILED  m: cannot write \S+: {reason} \(the model's previous outputs are kept as they "
                     rf"were\)$", err, re.M), err
    assert "Traceback" not in err
    monkeypatch.undo()
    assert snapshot(out / "m") == old and not staging(out)  # the old set, intact; nothing half-written
    assert consistent(out / "m").run["inference"]["tta"] == "none"
