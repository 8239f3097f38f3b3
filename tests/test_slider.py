"""The threshold slider's data and the live readout."""

import re

import numpy as np

from evallib.metrics import threshold_sweep
from evallib.slider import EXACT_LIMIT, counts_html, live_slider, static_slider_html, sweep_payload


def test_payload_is_exact_up_to_the_limit_and_thinned_beyond(rng):
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500)
    p = sweep_payload(threshold_sweep(y, s), name="x")
    assert len(p["thresholds"]) == 500 and p["how"] == "exact at every one of the 500 distinct thresholds"
    assert p["thresholds"] == sorted(p["thresholds"])
    for t, tp, fp in zip(p["thresholds"][::50], p["tp"][::50], p["fp"][::50]):
        assert tp == np.sum(s[y == 1] >= t) and fp == np.sum(s[y == 0] >= t)
    big = rng.normal(size=EXACT_LIMIT + 10)
    yb = rng.integers(0, 2, len(big))
    q = sweep_payload(threshold_sweep(yb, big), name="big")
    assert 1000 <= len(q["thresholds"]) < EXACT_LIMIT and q["how"].startswith("exact counts at 2,000 of")
    k = len(q["thresholds"]) // 3
    assert q["tp"][k] == np.sum(big[yb == 1] >= q["thresholds"][k])


def test_static_html_keeps_data_as_text():
    y, s = np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.4, 0.3])
    html = static_slider_html([sweep_payload(threshold_sweep(y, s), name="</script><b>x</b>")], title="<i>t</i>")
    assert "</script><b>x</b>" not in html and "<\\/script><b>x<\\/b>" in html  # JSON cannot close the script
    assert "&lt;i&gt;t&lt;/i&gt;" in html


def test_live_readout_and_widget(rng):
    y = rng.integers(0, 2, 300)
    s = rng.normal(size=300) + y
    sweep = threshold_sweep(y, s)
    html = counts_html(sweep, 0.4)
    got = {k: int(v) for k, v in re.findall(r'data-field="(\w+)">(\d+)<', html)}
    assert got == {"tp": np.sum(s[y == 1] >= 0.4), "fn": np.sum(s[y == 1] < 0.4),
                   "fp": np.sum(s[y == 0] >= 0.4), "tn": np.sum(s[y == 0] < 0.4)}
    box = live_slider({"a": sweep, "b": threshold_sweep(1 - y, s)}, initial=0.4)
    pick, slider = box.children[:2]
    slider.value = 0.9  # the callbacks run without a kernel
    pick.value = "b"
    assert slider.min == float(threshold_sweep(1 - y, s).thresholds.min())


def test_live_chooser_is_searchable_and_makes_sweeps_when_chosen(rng):
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    made = []

    def lazy(k):
        return lambda: made.append(k) or threshold_sweep(y, s + k)

    names = [f"class c{k:02d} vs rest" for k in range(12)]
    box = live_slider({n: lazy(k) for k, n in enumerate(names)}, initial=0.4, positive="class",
                      negative="other classes")
    search, pick, slider, out = box.children
    assert list(pick.options) == names and made == [0]  # only the shown curve was made
    search.value = "C07"
    assert list(pick.options) == ["class c07 vs rest"] and pick.value == "class c07 vs rest" and made == [0, 7]
    assert slider.max == float(threshold_sweep(y, s + 7).thresholds.max())
    search.value = ""
    assert len(pick.options) == 12 and pick.value == "class c07 vs rest"
    html = counts_html(threshold_sweep(y, s), 0.4, positive="class", negative="<other>")
    assert "<th>true class</th>" in html and "predicted &lt;other&gt;" in html and "recall (TAR)" in html
