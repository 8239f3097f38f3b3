"""Packaging: the notebooks and the template ship in the wheel, and `evallib run` works from a wheel install."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from conftest import export_tiny_model, write_image_tree
from evallib.render import NOTEBOOKS, notebook_dir

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_packaged_notebooks_are_clean(name):
    nb = nbformat.read(notebook_dir() / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c for c in code if c.outputs or c.execution_count is not None] == []
    assert [c.metadata.get("tags") for c in code].count(["parameters"]) == 1
    assert code[0].metadata.get("tags") == ["parameters"]
    assert notebook_dir() == REPO / "notebooks"  # one copy, at the top of the repository; the wheel carries it


@pytest.mark.slow
def test_wheel_install_renders_a_report(tmp_path):
    # build from a copy of the sources, so the checkout gets no build/ or egg-info
    src = tmp_path / "src"
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / f, src / f)
    for d in ("evallib", "notebooks"):
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, cwd=tmp_path)
    wheel, = (tmp_path / "dist").glob("evallib-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True)
    shutil.rmtree(src)  # nothing can come from the copy of the sources

    write_image_tree(tmp_path / "work" / "eval_set", np.random.default_rng(0), per_class=4)
    export_tiny_model(tmp_path / "work" / "tiny.onnx")
    (tmp_path / "work" / "params").mkdir()
    (tmp_path / "work" / "params" / "tiny.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "model": "../tiny.onnx", "task": "classification", "data": {"root": "../eval_set"},
        "preprocess": {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale", "tta": "none"},
        "outputs": {"scores": "logits", "scores_are": "logits", "embedding": None},
        "report": {"bootstrap": 20, "gallery_size": 0, "tsne_thumbnails": 0}}))
    # the installed copy comes first on the path; the kernels papermill starts inherit it
    env = {**os.environ, "PYTHONPATH": str(site)}
    work = tmp_path / "work"
    where = subprocess.run([sys.executable, "-c", "import evallib; print(evallib.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site)

    run = subprocess.run([str(site / "bin" / "evallib"), "run", "params", "--out", "outputs"], cwd=work, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = work / "outputs"
    assert (out / "tiny" / "report.html").stat().st_size > 10_000 and (out / "index.html").exists()
    executed = json.loads((out / "tiny" / "report.ipynb").read_text())
    assert Path(executed["metadata"]["papermill"]["input_path"]).is_relative_to(site)  # the packaged notebook
    assert (site / "evallib" / "notebooks" / "report.ipynb").exists()
    # quiet: a progress bar, a summary table; no kernel or library warnings
    lines = run.stdout.splitlines()
    assert lines.pop(0).startswith("tiny: class order: sorted folder names")
    assert lines[0].split() == ["model", "data", "n", "accuracy", "macro_f1", "status"]
    assert lines[2].split()[:3] == ["tiny", "eval_set", "12"] and lines[2].endswith("ok")
    assert "TCP" not in run.stderr and "warning" not in run.stderr.lower(), run.stderr
    assert "tiny: 100%" in run.stderr


def test_the_report_notebook_and_the_contents_list_the_same_sections():
    """The summary's contents (report/summary.py SECTIONS), the notebook's anchors and the Report's views
    are one list: each anchor once, in the same order, each with a view."""
    import re

    from evallib.report import Report
    from evallib.report.summary import SECTIONS

    nb = nbformat.read(notebook_dir() / "report.ipynb", as_version=4)
    anchors = [a for c in nb.cells if c.cell_type == "markdown" for a in re.findall(r'<a id="(sec-[\w-]+)">', c.source)]
    assert anchors == [i for i, _, _ in SECTIONS]
    views, current = {}, None
    for c in nb.cells:  # the view each anchor's next code cell shows
        found = re.findall(r'<a id="(sec-[\w-]+)">', c.source) if c.cell_type == "markdown" else []
        if found:
            current = found[0]
        elif c.cell_type == "code" and current is not None and current not in views:
            views[current] = re.match(r"rep\.(\w+)", c.source).group(1)
    assert list(views) == anchors
    for view in views.values():
        assert isinstance(getattr(Report, view), property), view
