"""Shared HTML stays safe: class names, folder names and model metadata that carry markup are shown as
text in every place they appear (tables, the static slider's JSON, hover titles, the index), never run."""

import re
import shutil

import numpy as np
import onnx
import pytest
import yaml

from conftest import export_tiny_model
from evallib.cli import main

pytestmark = pytest.mark.slow  # renders a report and the index, and opens them in Chromium

LABELS = ["</script><script>alert(1)</script>", "<img src=x onerror=alert(2)>", "q\"uo'te & <b>x</b>"]
META = {"note": "</script><img src=x onerror=alert(3)>", "author": "\"'><svg onload=alert(4)>"}
FOLDER = "d\"<img src=x onerror=alert(5)>"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("xss")
    model = export_tiny_model(root / "m.onnx")
    m = onnx.load(str(model))
    for k, v in META.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(model))
    data = root / FOLDER
    data.mkdir()
    rng = np.random.default_rng(0)
    rows = ["path,label"]
    for k, label in enumerate(LABELS):
        for j in range(6):
            f = f"{k}_{j}.png"
            Image.fromarray(rng.integers(0, 255, (18, 20), dtype=np.uint8), "L").save(data / f)
            rows.append(f"{f},\"{label.replace(chr(34), chr(34) * 2)}\"")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    params = root / "xss.yaml"
    params.write_text(yaml.safe_dump({
        "name": "xss", "model": str(model), "task": "both",
        "data": {"root": str(data), "labels": "csv", "csv": str(data / "labels.csv")},
        "preprocess": {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale", "tta": "none"},
        "outputs": {"scores": "logits", "scores_are": "logits", "embedding": "embedding"},
        "report": {"bootstrap": 20, "gallery_size": 2, "tsne_thumbnails": 4}}))
    assert main(["run", str(params), "--out", str(root / "out"), "--quiet"]) == 0
    return root / "out"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                               args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _open(browser, path):
    """The page in Chromium, offline (a context of its own): (its text, its hover titles, the static slider's
    choices, what ran)."""
    dialogs, errors = [], []
    ctx = browser.new_context(offline=True)
    page = ctx.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    found = page.evaluate("""() => ({
        text: document.body.innerText,
        titles: Array.from(document.querySelectorAll('svg title')).map(t => t.textContent),
        options: Array.from(document.querySelectorAll('.evallib-slider select option')).map(o => o.textContent),
        handlers: document.querySelectorAll('[onerror], [onload]').length,
        images_x: document.querySelectorAll('img[src="x"]').length,
        alerts: Array.from(document.scripts).filter(s => s.textContent.includes('alert(')
                                                     && !s.classList.contains('evallib-slider-data')).length,
    })""")
    ctx.close()
    return found, dialogs, errors


def test_report_shows_markup_as_text_everywhere(rendered, browser):
    html = (rendered / "xss" / "report.html").read_text()
    for bad in (LABELS[0], META["note"]):  # nothing can close a script block early
        assert bad not in html
    found, dialogs, errors = _open(browser, rendered / "xss" / "report.html")
    assert dialogs == [] and errors == []
    assert found["handlers"] == 0 and found["images_x"] == 0 and found["alerts"] == 0
    text = found["text"]
    for label in LABELS:  # the per-class table and the model-and-data tables
        assert label in text
    for v in META.values():  # the model's metadata
        assert v in text
    assert 'd"<img src=x onerror=alert(5)>/' in text  # the data folder, in the summary's first line
    assert {f"class {label} vs rest" for label in LABELS} <= set(found["options"])  # the slider's JSON
    assert any(t.startswith(LABELS[0]) for t in found["titles"])  # the t-SNE map's hover titles


def test_index_shows_markup_as_text(rendered, browser):
    html = (rendered / "index.html").read_text()
    assert FOLDER not in html and LABELS[1] not in html
    found, dialogs, errors = _open(browser, rendered / "index.html")
    assert dialogs == [] and errors == []
    assert found["handlers"] == 0 and found["images_x"] == 0 and found["alerts"] == 0
    assert re.search(r"Evaluation data: d\"<img src=x onerror=alert\(5\)>", found["text"])


def test_label_review_shows_markup_as_text(rendered, browser):
    [page] = (rendered / "labels").glob("*/labels.html")
    found, dialogs, errors = _open(browser, page)
    assert dialogs == [] and errors == []
    assert found["handlers"] == 0 and found["images_x"] == 0 and found["alerts"] == 0
    assert f"Label review of {FOLDER}" in found["text"]
    shown = re.findall(r'data-given="([^"]*)"', page.read_text())
    assert shown and all("<" not in s for s in shown)  # the class filter's attributes are escaped
