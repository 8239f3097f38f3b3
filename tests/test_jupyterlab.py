"""What the notebooks show in JupyterLab: the live slider against the static one, the report links."""

import json
import re
from pathlib import Path


from evallib import compare, slider
from evallib.compare import Comparison, report_link
from evallib.metrics import threshold_sweep
from evallib.slider import live_slider, static_slider_html, sweep_payload

# class names out of alphabetical order, one capitalised: the choosers must list them Ant, cat, zebra
CLASSES = ["zebra", "Ant", "cat"]
SLIDER_DATA = r'<script[^>]*evallib-slider-data[^>]*>(.*?)</script>'  # a static slider's curves, as JSON


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
    shown = []
    monkeypatch.setattr(compare, "show", lambda *objs: shown.extend(o for o in objs if isinstance(o, str)))
    monkeypatch.chdir(tmp_path / "notebooks")
    cmp.leaderboard()
    assert 'href="../outputs/linear/report.html"' in "".join(shown)
    shown.clear()
    cmp.leaderboard(links_from=Path("../outputs"))
    assert 'href="linear/report.html"' in "".join(shown)
