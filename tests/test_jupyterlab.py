"""The packaged notebooks in a real JupyterLab, driven in Chromium: Run All, the live widgets, the report links.

The browser tests look only at what any version of the notebooks shows: every code cell ran, no
error output, the live slider and Grad-CAM picker respond, the comparison's links open the reports.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import evallib
from conftest import export_tiny_model
from evallib import slider
from evallib.cli import main
from evallib.compare import Comparison, report_link
from evallib.metrics import threshold_sweep
from evallib.slider import live_slider, static_slider_html, sweep_payload

# class names out of alphabetical order, one capitalised: the choosers must list them Ant, cat, zebra
CLASSES = ["zebra", "Ant", "cat"]
SHOTS = Path("/tmp/jlab-shots")
SLIDER_DATA = r'<script[^>]*evallib-slider-data[^>]*>(.*?)</script>'  # a static slider's curves, as JSON


# ---------------------------------------------------------------- without a browser

def _sweeps(rng):
    y = rng.integers(0, 3, 90)
    p = rng.random((90, 3))
    return {f"class {CLASSES[k]} vs rest": threshold_sweep(y == k, p[:, k]) for k in (1, 2, 0)}


def test_live_and_static_sliders_list_the_same_curves_with_the_same_labels(rng, monkeypatch):
    sweeps = _sweeps(rng)
    readouts = []
    monkeypatch.setattr(slider, "counts_html", lambda s, t, **labels: readouts.append(labels) or "")
    box = live_slider(sweeps, initial=0.5, positive="class", negative="other classes")
    pick = box.children[0]
    payloads = [sweep_payload(s, name=n, positive="class", negative="other classes") for n, s in sweeps.items()]
    html = static_slider_html(payloads)
    static = json.loads(re.search(SLIDER_DATA, html).group(1))
    assert list(pick.options) == [d["name"] for d in static] == list(sweeps)  # the caller's order, in both
    # the live readout is drawn with the labels the static table gets, whichever curve is chosen
    pick.value = "class zebra vs rest"
    assert len(readouts) == 2
    assert all(r == {"positive": "class", "negative": "other classes"} for r in readouts)
    assert all((d["positive"], d["negative"]) == ("class", "other classes") for d in static)


def test_report_link_starts_from_the_folder_that_shows_it(tmp_path, monkeypatch):
    out = tmp_path / "outputs"
    assert report_link(out / "linear", out) == "linear/report.html"  # index.html, in out_root
    assert report_link(out / "linear", tmp_path / "notebooks") == "../outputs/linear/report.html"
    assert report_link(out / "a b#1", out) == "a%20b%231/report.html"
    # the leaderboard links from the working directory: a notebook's kernel runs in the notebook's folder
    (out / "linear").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    cmp = Comparison(Path("../outputs"), "accuracy", ok={"linear": {
        "headline": {"accuracy": {"value": 0.9, "interval": [0.8, 0.95]}},
        "run": {"inference": {"images_per_second": 10.0}, "model": {"size_bytes": 1000}}}},
        runs={"linear": {"data_fingerprint": "f" * 64, "dataset": {"root": "data", "images": 5}}})
    monkeypatch.chdir(tmp_path / "notebooks")
    assert 'href="../outputs/linear/report.html"' in cmp.leaderboard()._repr_html_()
    assert 'href="linear/report.html"' in cmp.leaderboard(links_from=Path("../outputs"))._repr_html_()


# ---------------------------------------------------------------- JupyterLab in Chromium

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_demo(root):
    """The demo's layout (data/, params/, outputs/, notebooks/) with two tiny models, reports rendered."""
    rng = np.random.default_rng(5)
    rows = ["path,label"]
    (root / "data" / "imgs").mkdir(parents=True)
    for k in range(30):
        c = k % 3
        arr = np.clip(rng.normal(60 + 70 * c, 40, size=(18, 18)), 0, 255).astype(np.uint8)
        Image.fromarray(arr, "L").save(root / "data" / "imgs" / f"img_{k:03d}.png")
        rows.append(f"imgs/img_{k:03d}.png,{CLASSES[c]}")
    (root / "data" / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "models").mkdir()
    (root / "params").mkdir()
    for seed, name in enumerate(("cnn_wide", "linear")):  # the report notebook opens cnn_wide by default
        export_tiny_model(root / "models" / f"{name}.onnx", n_classes=3, seed=seed)
        (root / "params" / f"{name}.yaml").write_text(yaml.safe_dump({
            "name": name, "model": f"../models/{name}.onnx", "task": "both",
            "data": {"root": "../data", "labels": "csv", "csv": "../data/labels.csv", "classes": CLASSES},
            "preprocess": {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale"},
            "outputs": {"scores": "logits", "scores_are": "logits", "embedding": "embedding"},
            "report": {"bootstrap": 20}}))
    assert main(["run", str(root / "params"), "--out", str(root / "outputs"), "--quiet", "--jobs", "2"]) == 0
    assert main(["notebooks", str(root / "notebooks")]) == 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A tiny demo and JupyterLab serving its folder (no token, no password); the server and its kernels
    are stopped at the end."""
    import psutil

    root = tmp_path_factory.mktemp("jlab")
    _tiny_demo(root)
    home = root / ".jupyter"
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
           # the kernels import the evallib under test
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(evallib.__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    port = _free_port()
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--PasswordIdentityProvider.hashed_password=",
         f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=5) as r:
                    json.load(r)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + (root / "jupyterlab.log").read_text()) from None
                time.sleep(0.3)
        yield {"root": root, "url": url}
    finally:
        kernels = psutil.Process(server.pid).children(recursive=True) if server.poll() is None else []
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        for k in kernels:
            if k.is_running():
                k.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                               args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


_ALL_RAN = """() => {
  const shown = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt';
  const ps = Array.from(document.querySelectorAll(shown));
  return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""  # every code cell of the open notebook has an execution count


def _run_all(browser, lab, path, shot):
    """Open ``path`` in its own JupyterLab workspace, Run All Cells and wait for every cell and the kernel."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(f"{lab['url']}/lab/workspaces/{Path(path).stem}/tree/{path}")
    kernel = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$"))
    kernel.wait_for(timeout=90_000)  # Run All before the kernel is ready would run nothing
    page.locator(".lm-MenuBar-item", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    page.wait_for_function(_ALL_RAN, timeout=150_000)
    kernel.wait_for()
    page.locator(".jp-Notebook-ExecutionIndicator[data-status=idle]").wait_for()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / shot))
    return page


def _error_outputs(page):
    """Error tracebacks and stderr text: JupyterLab renders both with the stderr MIME type."""
    return page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_text_contents()


@pytest.fixture(scope="module")
def report_page(browser, lab):
    page = _run_all(browser, lab, "notebooks/report.ipynb", "report.png")
    yield page
    page.close()


@pytest.fixture(scope="module")
def compare_page(browser, lab):
    page = _run_all(browser, lab, "notebooks/compare.ipynb", "compare.png")
    yield page
    page.close()


@pytest.mark.slow
def test_report_notebook_runs_all_cells_without_errors(report_page):
    assert _error_outputs(report_page) == []
    assert report_page.locator(".jp-OutputArea-output[data-mime-type='image/png']").count() >= 3
    assert report_page.locator(".jupyter-widgets.widget-hslider").count() >= 2  # the live sliders


def _class_slider(page):
    """The live slider with a curve chooser (the class slider)."""
    return page.locator(".widget-vbox").filter(has=page.locator(".widget-hslider")).filter(
        has=page.locator(".widget-dropdown select")).last


def _counts(box):
    return {f: int(box.locator(f".widget-output td[data-field={f}]").text_content()) for f in ("tp", "fp", "tn", "fn")}


@pytest.mark.slow
def test_live_slider_counts_follow_the_handle(report_page):
    box = _class_slider(report_page)
    before = _counts(box)
    handle = box.locator(".noUi-handle")
    handle.focus()
    handle.press("Home")  # the lowest threshold: every image accepted
    report_page.wait_for_function(
        "out => ['fn', 'tn'].every(f => out.querySelector(`td[data-field=${f}]`)?.textContent === '0')",
        arg=box.locator(".widget-output").element_handle())
    after = _counts(box)
    assert after != before and after["tp"] + after["fp"] == 30
    assert after["tp"] == before["tp"] + before["fn"]  # the same class's images, now all accepted
    box.scroll_into_view_if_needed()
    report_page.screenshot(path=str(SHOTS / "report-slider.png"))


@pytest.mark.slow
def test_live_class_chooser_and_labels_match_the_static_slider(report_page, lab):
    box = _class_slider(report_page)
    live = box.locator(".widget-dropdown select option").all_text_contents()
    page_html = (lab["root"] / "outputs" / "cnn_wide" / "report.html").read_text()
    static = [json.loads(m) for m in re.findall(SLIDER_DATA, page_html, re.S)]
    names = [d["name"] for d in static[0]]
    assert [n.replace("\xa0", " ") for n in live] == names
    assert names == [f"class {c} vs rest" for c in sorted(CLASSES, key=str.casefold)]
    heads = box.locator(".widget-output th").all_text_contents()
    pos, neg = static[0][0]["positive"], static[0][0]["negative"]
    assert {f"predicted {pos}", f"predicted {neg}", f"true {pos}", f"true {neg}"} <= set(heads)
    ver = [d for d in static if d[0]["positive"] != pos]  # the verification slider: genuine / impostor
    live_ver = report_page.locator(".widget-vbox").filter(has=report_page.locator(".widget-hslider")).filter(
        has_not=report_page.locator(".widget-dropdown select"))
    assert ver and f"true {ver[0][0]['positive']}" in live_ver.last.locator("th").all_text_contents()


@pytest.mark.slow
def test_grad_cam_picker_shows_the_chosen_image(report_page):
    # the widget with an image chooser and an image, and no slider
    explorer = report_page.locator(".widget-vbox").filter(has=report_page.locator(".widget-dropdown select")).filter(
        has=report_page.locator(".widget-output img")).filter(has_not=report_page.locator(".widget-hslider")).last
    picker = explorer.locator(".widget-dropdown select")
    image = explorer.locator(".widget-output img")
    before = image.get_attribute("src")
    assert picker.locator("option").count() >= 2
    picker.select_option(index=1)
    # the output is cleared and drawn again: look up the image each time
    report_page.wait_for_function(
        "([box, src]) => { const img = box.querySelector('.widget-output img'); return img && img.src !== src; }",
        arg=[explorer.element_handle(), before])
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    explorer.scroll_into_view_if_needed()
    report_page.screenshot(path=str(SHOTS / "report-cam.png"))


@pytest.mark.slow
def test_compare_notebook_runs_and_its_links_open_the_reports(compare_page):
    assert _error_outputs(compare_page) == []
    link = compare_page.locator(".jp-OutputArea-output a", has_text="linear report")
    assert link.count() == 1
    link.click()
    # JupyterLab resolves the link against the notebook's folder and opens the file in a new tab (its path
    # goes into the address)
    compare_page.wait_for_url("**/tree/outputs/linear/report.html")
    compare_page.locator(".lm-DockPanel .lm-TabBar-tab.lm-mod-current", has_text="report.html").wait_for()
    viewer = compare_page.frame_locator(".jp-HTMLViewer:not(.lm-mod-hidden) iframe")
    assert "linear" in viewer.locator("head title").text_content()
    assert compare_page.locator(".jp-Dialog").count() == 0  # no "could not open"
    compare_page.screenshot(path=str(SHOTS / "compare-link.png"))
