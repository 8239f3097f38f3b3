"""Reports: notebooks executed by papermill on tiny data, metrics.json against the engine, the HTML in Chromium."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from PIL import Image

from conftest import export_tiny_model, export_unconvertible_model
from evallib.cli import main
from evallib.metrics import evaluate_classification, evaluate_verification
from evallib.metrics.classification import to_probabilities
from evallib.metrics.verification import pair_scores
from evallib.run import load_predictions

pytestmark = pytest.mark.slow  # notebook kernels and Chromium

CLASSES = ["cat", "<b>x</b>", "dog & co"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Two tiny models (one failing) on images whose class names carry markup, rendered with the CLI."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(7)
    data = root / "data"
    rows = ["path,label"]
    for k in range(30):
        c = k % 3
        arr = np.clip(rng.normal(60 + 70 * c, 40, size=(18, 18)), 0, 255).astype(np.uint8)
        name = f"img_{k:03d}.png"
        (data / "imgs").mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr, "L").save(data / "imgs" / name)
        rows.append(f'imgs/{name},"{CLASSES[c]}"')
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    (data / "training.csv").write_text("epoch,loss,val_loss,accuracy,val_accuracy\n"
                                       "0,1.0,1.1,0.5,0.4\n1,0.6,0.8,0.7,0.6\n")
    model = export_tiny_model(root / "tiny.onnx", n_classes=3)
    params = root / "params"
    params.mkdir()
    base = {"model": str(model), "task": "both",
            "data": {"root": str(data), "labels": "csv", "csv": str(data / "labels.csv"), "classes": CLASSES},
            "preprocess": {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale", "tta": "flip"},
            "outputs": {"scores": "logits", "scores_are": "logits", "embedding": "embedding"},
            "report": {"bootstrap": 50, "threshold_policy": "max_f1", "training_log": str(data / "training.csv")}}
    (params / "tiny.yaml").write_text(yaml.safe_dump({"name": "tiny", **base}))
    (params / "broken.yaml").write_text(yaml.safe_dump({"name": "broken", **base, "model": str(root / "nope.onnx")}))
    odd = export_unconvertible_model(root / "odd.onnx", size=16)
    (params / "odd.yaml").write_text(yaml.safe_dump({"name": "odd", **base, "model": str(odd)}))
    # a torchvision architecture through the dynamo exporter (batch fixed at 1, opset 20 ops)
    from real_models import export

    torch.manual_seed(0)
    resnet = export(torchvision.models.resnet18(num_classes=3).eval(), root / "resnet18_dynamo.onnx", "dynamo",
                    (1, 3, 32, 32))
    (params / "resnet.yaml").write_text(yaml.safe_dump({
        **base, "name": "resnet", "model": str(resnet), "task": "classification",
        "preprocess": {"resize": 32, "crop": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "mode": "rgb"},
        "outputs": {"scores": "logits", "scores_are": "logits", "embedding": None}}))
    out = root / "outputs"
    code = main(["run", str(params), "--out", str(out), "--quiet"])
    return {"root": root, "out": out, "code": code, "params": params}


def test_run_renders_reports_and_index(rendered):
    out = rendered["out"]
    assert rendered["code"] == 1  # one model failed
    for f in ("report.html", "report.ipynb", "metrics.json", "run.json", "predictions.npz"):
        assert (out / "tiny" / f).exists(), f
    assert (out / "index.html").exists()
    assert json.loads((out / "broken" / "run.json").read_text())["status"] == "failed"
    index = (out / "index.html").read_text()
    assert 'href="tiny/report.html"' in index and "broken" in index and "expected an ONNX file" in index


def test_grad_cam_and_tsne_sections(rendered):
    html = (rendered["out"] / "tiny" / "report.html").read_text()
    assert "ONNX file tiny.onnx converted with onnx2torch (checked against onnxruntime" in html
    assert "Grad-CAM: where the model looks" in html
    m = json.loads((rendered["out"] / "tiny" / "metrics.json").read_text())
    assert 0 < m["tsne"]["trustworthiness"] <= 1 and m["tsne"]["points"] == 30
    # a model onnx2torch cannot convert: EigenCAM on onnxruntime draws the maps, and the section says why
    odd = (rendered["out"] / "odd" / "report.html").read_text()
    assert "onnxruntime (forward only)" in odd and "onnx2torch could not convert odd.onnx" in odd
    assert "gradcam needs gradients, which no route gave; eigencam needs none" in odd
    assert "Grad-CAM: where the model looks" in odd and "Threshold table" in odd and "t-SNE map" in odd
    assert json.loads((rendered["out"] / "odd" / "report.json").read_text())["cam"] == {
        "route": "onnxruntime (forward only)", "method": "eigencam", "layer": "ONNX tensor 'r'"}


def test_torchvision_dynamo_export_gets_a_real_grad_cam_gallery(rendered):
    out = rendered["out"] / "resnet"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "ok" and run["dataset"]["images"] == 30
    html = (out / "report.html").read_text()
    assert "ONNX file resnet18_dynamo.onnx converted with onnx2torch (opset 20 -&gt; 17" in html
    assert "Grad-CAM: where the model looks" in html
    cam = json.loads((out / "report.json").read_text())["cam"]
    assert cam["route"] == "onnx2torch" and cam["method"] == "gradcam" and "relu" in cam["layer"]


def test_gallery_without_heat_maps_states_the_reason_once(rendered, tmp_path, monkeypatch, evaluated):
    from real_models import flat_model

    p = yaml.safe_load((rendered["params"] / "tiny.yaml").read_text())
    p.update(name="flat", model=str(flat_model(tmp_path / "flat.onnx", size=16)))
    p["preprocess"]["tta"] = "none"
    (tmp_path / "flat.yaml").write_text(yaml.safe_dump(p))
    rep = evaluated(tmp_path / "flat.yaml", tmp_path / "out")
    html = rep.grad_cam_gallery._repr_html_()
    assert html.count("No heat maps:") == 1 and "EigenCAM on onnxruntime failed too" in html
    galleries = rep.grad_cam_gallery.displays
    assert [g.title for g in galleries] == ["Gallery (no heat maps)", "Verification: the hardest pairs"]
    gallery = galleries[0].tiles
    assert sum(len(row) for row in gallery) >= 3 and gallery[0][0][0].shape == (16, 16)  # the images, unblended
    assert "cam" not in rep.facts


def test_metrics_json_matches_the_engine(rendered):
    out = rendered["out"] / "tiny"
    m = json.loads((out / "metrics.json").read_text())
    p = load_predictions(out)
    ref = evaluate_classification(p["labels"], p["scores"], scores_are=p["scores_are"]).to_dict()
    assert m["classification"]["confusion"] == ref["confusion"]
    for key in ("accuracy", "macro_f1", "log_loss", "roc_auc_macro", "ece"):
        assert m["classification"][key] == pytest.approx(ref[key], abs=1e-12, nan_ok=True), key
    assert m["classification"]["classes"] == CLASSES
    center = evaluate_classification(p["labels"], p["scores_center"], scores_are="logits")
    assert m["classification"]["center_crop"]["accuracy"] == pytest.approx(center.accuracy)
    v = evaluate_verification(p["embeddings"], p["labels"])
    assert m["verification"]["auc"] == pytest.approx(v.auc, abs=1e-12)
    assert m["verification"]["tar_at_far"]["0.1"]["tar"] == pytest.approx(v.tar_at_far[0.1]["tar"], nan_ok=True)
    assert m["headline"]["macro_f1"]["value"] == pytest.approx(ref["macro_f1"])
    lo, hi = m["headline"]["accuracy"]["interval"]
    assert lo <= ref["accuracy"] <= hi


def test_html_is_self_contained_and_hides_code(rendered):
    html = (rendered["out"] / "tiny" / "report.html").read_text()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html)
    assert "cdnjs" not in html and "unpkg" not in html and "require.js" not in html
    assert html.count("data:image/png;base64") >= 5
    assert "classification_summary" not in html  # code cells hidden by default
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html.replace('"<b>x</b>"', "")
    assert len(html) < 5_000_000


def test_summary_first_with_contents_ranking_and_notes(rendered):
    out = rendered["out"]
    html = (out / "tiny" / "report.html").read_text()
    summary = html.index("headline metric")
    assert summary < html.index('id="sec-model"') < html.index('id="sec-classification"')
    m = json.loads((out / "tiny" / "metrics.json").read_text())
    f1 = m["headline"]["macro_f1"]
    assert f"<td>macro F1 (primary)</td><td>{f1['value']:.4f}</td>" in html
    assert f"[{f1['interval'][0]:.4f}, {f1['interval'][1]:.4f}]" in html
    policy = m["verification"]["policies"]["max_f1"]
    assert f"at least {policy['threshold']:.4f}, chosen by the policy max_f1" in html
    # the contents link to sections that exist; a link for every section this model has
    links = re.findall(r'<a href="#(sec-[\w-]+)">', html)
    assert links == ["sec-model", "sec-classification", "sec-confusion", "sec-curves", "sec-calibration",
                     "sec-classification-slider", "sec-verification", "sec-verification-slider", "sec-gallery",
                     "sec-tsne", "sec-slices", "sec-verification-groups", "sec-training", "sec-notes"]
    assert all(f'id="{a}"' in html for a in links)
    assert not {"sec-changes", "sec-identification", "sec-templates"} & set(links)  # not this model's sections
    # odd, resnet and tiny share their data (the broken run has no metrics): tiny is ranked among 3
    assert "How this model ranks:" in html and "of 3 models evaluated on the same data, by macro F1" in html
    ranked = re.findall(r"<td>(\d)</td><td>(\w+)(?: \(this model\))?</td>", html[summary:html.index("</nav>")])
    values = {n: json.loads((out / n / "metrics.json").read_text())["headline"]["macro_f1"]["value"]
              for n in ("tiny", "odd", "resnet")}
    assert [n for _, n in ranked] == sorted(values, key=lambda n: (-values[n], n))
    assert 'id="sec-notes"' in html and ("No warnings while this report was drawn." in html or "<li>" in html)
    # nothing a cell wrote to stderr (a library's warning, with its paths) reaches the page
    for name in ("tiny", "odd", "resnet"):
        nb = json.loads((out / name / "report.ipynb").read_text())
        streams = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "stream"]
        assert streams == [], name
        assert 'data-mime-type="application/vnd.jupyter.stderr"' not in (out / name / "report.html").read_text()


def test_no_machine_path_in_shared_html(rendered):
    home = str(Path.home())
    for name in ("tiny", "odd", "resnet"):
        html = (rendered["out"] / name / "report.html").read_text()
        for private in (str(rendered["root"]), str(rendered["root"].parent), str(rendered["out"]), home + "/"):
            assert private not in html, (name, private)
        run = json.loads((rendered["out"] / name / "run.json").read_text())
        assert f"<td>{Path(run['model']['path']).name}</td>" in html and run["model"]["sha256"] in html
        assert "<td>data folder</td><td>data</td>" in html


def test_show_code(rendered, tmp_path):
    out = tmp_path / "o"
    assert main(["run", str(rendered["params"] / "tiny.yaml"), "--out", str(out), "--quiet", "--show-code"]) == 0
    html = (out / "tiny" / "report.html").read_text()
    assert "classification_summary" in html


def test_report_in_chromium_offline_slider_matches_python(rendered):
    from playwright.sync_api import sync_playwright

    out = rendered["out"] / "tiny"
    p = load_predictions(out)
    requests, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        ctx = browser.new_context(offline=True)
        ctx.route(re.compile(r"^(?!file:|data:).*"), lambda route: (requests.append(route.request.url), route.abort()))
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "report.html").as_uri())
        # the contents: a side column on a wide page, a block under the summary on a narrow one; links jump
        toc = "getComputedStyle(document.querySelector('nav.evallib-toc')).position"
        page.set_viewport_size({"width": 1800, "height": 900})
        assert page.evaluate(toc) == "fixed"
        page.locator("nav.evallib-toc a[href='#sec-confusion']").click()
        assert abs(page.evaluate("document.getElementById('sec-confusion').getBoundingClientRect().top")) < 5
        page.set_viewport_size({"width": 1000, "height": 900})
        assert page.evaluate(toc) == "static"
        sliders = page.locator(".evallib-slider")
        assert sliders.count() == 2
        assert "<b>x</b>" in page.locator("body").inner_text()  # shown as literal text

        # verification slider: genuine vs impostor pairs
        ver = sliders.nth(1)
        rng_input = ver.locator("input[type=range]")
        iu = np.triu_indices(len(p["embeddings"]), 1)
        s = pair_scores(p["embeddings"], *iu)  # the scores as evallib defines them (docs/metrics.md)
        same = (p["labels"][:, None] == p["labels"][None, :])[iu]
        for pos in (0, 7, int(rng_input.get_attribute("max")) // 2, int(rng_input.get_attribute("max"))):
            rng_input.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", pos)
            t = float(ver.locator("[data-field=threshold]").get_attribute("data-threshold"))
            shown = {k: int(ver.locator(f"[data-field={k}]").inner_text()) for k in ("tp", "fp", "tn", "fn")}
            assert shown["tp"] == np.sum(s[same] >= t) and shown["fp"] == np.sum(s[~same] >= t)
            assert shown["fn"] == np.sum(s[same] < t) and shown["tn"] == np.sum(s[~same] < t)

        # classification slider: pick the class "<b>x</b>" and check one-vs-rest counts
        cls = sliders.nth(0)
        cls.locator("select").select_option(label="class <b>x</b> vs rest")
        probs = to_probabilities(p["scores"], p["scores_are"])[:, 1]
        pos_mask = p["labels"] == 1
        r = cls.locator("input[type=range]")
        r.evaluate("(el) => { el.value = 3; el.dispatchEvent(new Event('input')); }")
        t = float(cls.locator("[data-field=threshold]").get_attribute("data-threshold"))
        assert int(cls.locator("[data-field=tp]").inner_text()) == np.sum(probs[pos_mask] >= t)
        assert int(cls.locator("[data-field=fp]").inner_text()) == np.sum(probs[~pos_mask] >= t)
        page.screenshot(path=str(rendered["root"] / "report.png"), full_page=True)
        browser.close()
    assert requests == [] and errors == []


def test_second_run_reuses_predictions_and_reports(rendered):
    out = rendered["out"]
    before = (out / "tiny" / "report.html").stat().st_mtime_ns, (out / "index.html").stat().st_mtime_ns
    assert main(["run", str(rendered["params"] / "tiny.yaml"), "--out", str(out), "--quiet"]) == 0
    run = json.loads((out / "tiny" / "run.json").read_text())
    assert run["inference"]["cached"] and run["report_cached"]
    assert (out / "tiny" / "report.html").stat().st_mtime_ns == before[0]
    # the index is rebuilt only when what it shows changes: here it does not
    assert (out / "index.html").stat().st_mtime_ns == before[1]
