"""The command line: quiet by default, a summary table at the end, details with -v; notebook copies."""


import numpy as np
import pytest
import yaml

import evallib
from conftest import export_tiny_model, write_image_tree
from evallib.cli import format_table, main
from evallib.render import notebook_dir

PRE = {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale", "tta": "none"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_image_tree(root / "digits", np.random.default_rng(0), per_class=4)
    model = export_tiny_model(root / "tiny.onnx")

    def params(name, model=model, **pre):
        f = root / f"{name}.yaml"
        f.write_text(yaml.safe_dump({
            "name": name, "model": str(model), "task": "classification", "data": {"root": str(data)},
            "preprocess": {**PRE, **pre}, "outputs": {"scores": "logits", "scores_are": "logits", "embedding": None},
            "report": {"bootstrap": 20, "gallery_size": 0}}))
        return f

    return root, params


def _lines(text):
    return [line for line in text.replace("\r", "\n").splitlines() if line.strip()]


def _table(text):
    """The summary table's lines (the class order of each model is printed above it)."""
    lines = _lines(text)
    return lines[next(i for i, line in enumerate(lines) if line.startswith("model ")):]


def test_summary_table_at_default_verbosity(setup, capsys):
    root, params = setup
    good, bad = params("good"), params("bad", model=root / "missing.onnx")
    out = root / "out"
    assert main(["run", str(good), str(bad), "--out", str(out), "--no-report"]) == 1
    captured = capsys.readouterr()
    assert _lines(captured.out)[0] == "good: class order: sorted folder names (text): a, b, c"
    table = _table(captured.out)
    assert table[0].split() == ["model", "data", "n", "accuracy", "macro_f1", "status"]  # --no-report has metrics
    assert set(table[1]) <= {"-", " "}
    m = evallib.load(out / "good").metrics["headline"]
    assert table[2].split() == ["good", "digits", "12", f"{m['accuracy']['value']:.3f}",
                                *f"[{m['accuracy']['interval'][0]:.3f}, {m['accuracy']['interval'][1]:.3f}]".split(),
                                f"{m['macro_f1']['value']:.3f}",
                                *f"[{m['macro_f1']['interval'][0]:.3f}, {m['macro_f1']['interval'][1]:.3f}]".split(),
                                "ok"]
    assert table[3].split() == ["bad", "-", "-", "-", "-", "FAILED"]
    assert len(table) == 4
    err = _lines(captured.err)
    assert any(line.startswith("FAILED  bad: ModelError: model: expected an ONNX file") for line in err)
    assert "Traceback" not in captured.err and "Warning" not in captured.err and "WARNING" not in captured.err
    # one progress bar for the model that ran, ending at its image count
    assert any(line.startswith("good: 100%") and "12/12 images" in line for line in err)


def test_summary_shows_headline_metrics_with_intervals(setup, capsys):
    root, params = setup
    good = params("good")
    out = root / "out_metrics"
    assert main(["run", str(good), "--out", str(out), "--no-report", "--quiet"]) == 0
    rep = evallib.load(out / "good")  # --no-report wrote the metrics
    capsys.readouterr()
    assert main(["run", str(good), "--out", str(out), "--no-report", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no bars, and nothing failed
    head, rule, row = _table(captured.out)
    assert head.split() == ["model", "data", "n", "accuracy", "macro_f1", "status"]
    h = rep.metrics["headline"]
    cells = [f"{h[k]['value']:.3f} [{h[k]['interval'][0]:.3f}, {h[k]['interval'][1]:.3f}]"
             for k in ("accuracy", "macro_f1")]
    assert row == format_table(["model", "data", "n", "accuracy", "macro_f1", "status"],
                               [["good", "digits", "12", *cells, "ok (cached predictions)"]]).splitlines()[2]

    # other preprocessing: new predictions, and new metrics computed from them
    params("good", tta="flip")
    assert main(["run", str(good), "--out", str(out), "--no-report", "--quiet"]) == 0
    head, _, row = _table(capsys.readouterr().out)
    flipped = evallib.load(out / "good", params=good)
    assert flipped.run["inference"]["tta"] == "flip" and flipped.run["metrics_key"] != rep.run["metrics_key"]
    h = flipped.metrics["headline"]
    assert row.split()[3] == f"{h['accuracy']['value']:.3f}" and row.split()[-1] == "ok"


def test_verbose_gives_details_and_tracebacks(setup, capsys):
    root, params = setup
    good, bad = params("good"), params("bad", model=root / "missing.onnx")
    assert main(["run", str(good), str(bad), "--out", str(root / "out_v"), "--no-report", "--quiet", "-v"]) == 1
    captured = capsys.readouterr()
    assert _lines(captured.out)[0].startswith("ok      good: 12 images, ")
    assert "Traceback (most recent call last)" in captured.err and "ModelError" in captured.err


def test_format_table_pads_columns():
    assert format_table(["a", "bb"], [["xxx", "y"], ["z", "w"]]).splitlines() == [
        "a    bb", "---  --", "xxx  y", "z    w"]


def test_notebooks_command_copies_the_packaged_notebooks(tmp_path, capsys):
    dest = tmp_path / "nb"
    assert main(["notebooks", str(dest)]) == 0
    for name in ("report.ipynb", "compare.ipynb"):
        assert (dest / name).read_bytes() == (notebook_dir() / name).read_bytes()
    assert capsys.readouterr().out.split().count("written") == 2
    # an edited copy is kept unless --force
    (dest / "report.ipynb").write_text("{}")
    assert main(["notebooks", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "kept (edited)" in out and "up to date" in out and (dest / "report.ipynb").read_text() == "{}"
    assert main(["notebooks", str(dest), "--force"]) == 0
    assert (dest / "report.ipynb").read_bytes() == (notebook_dir() / "report.ipynb").read_bytes()
