"""The threshold slider: live (ipywidgets, with a kernel) and static (precomputed, in the HTML).

Both show, at the chosen threshold, the 2x2 confusion counts and accuracy, precision, recall,
F1, TAR and FAR of a :class:`~evallib.metrics.ThresholdSweep`. The static one embeds the sweep's
counts as JSON and needs no kernel and no network: it is exact at every distinct threshold
when there are at most ``EXACT_LIMIT`` of them, else at ``THINNED`` evenly spaced ones.
"""

from __future__ import annotations

import html
import json
import uuid

import numpy as np

EXACT_LIMIT = 100_000
THINNED = 2_000


def sweep_payload(sweep, *, name, positive="positive", negative="negative"):
    """JSON-ready counts of a sweep, ascending thresholds; thinned above ``EXACT_LIMIT``."""
    n = len(sweep.thresholds)
    idx = np.arange(n)[::-1]  # ascending thresholds
    exact = sweep.exact and n <= EXACT_LIMIT
    if n > EXACT_LIMIT:
        idx = idx[np.unique(np.linspace(0, n - 1, THINNED).round().astype(int))]
    how = (f"exact at every one of the {n:,} distinct thresholds" if exact else
           f"exact counts at {len(idx):,} of {n:,} thresholds" + ("" if sweep.exact else " (bin edges)"))
    return {"name": name, "positive": positive, "negative": negative, "thresholds": sweep.thresholds[idx].tolist(),
            "tp": sweep.tp[idx].astype(int).tolist(), "fp": sweep.fp[idx].astype(int).tolist(),
            "n_pos": int(sweep.n_pos), "n_neg": int(sweep.n_neg), "how": how}


_SCRIPT = r"""
(function () {
  var root = document.getElementById("%(id)s");
  var data = JSON.parse(root.querySelector("script.evallib-slider-data").textContent);
  var select = root.querySelector("select"), range = root.querySelector("input[type=range]");
  data.forEach(function (d, i) {
    var o = document.createElement("option"); o.value = i; o.textContent = d.name; select.appendChild(o);
  });
  if (data.length < 2) { select.style.display = "none"; }
  function fmt(x) { return isFinite(x) ? x.toFixed(4) : "n/a"; }
  function set(name, text) { root.querySelector("[data-field=" + name + "]").textContent = text; }
  function show() {
    var d = data[+select.value], k = +range.value;
    var t = d.thresholds[k], tp = d.tp[k], fp = d.fp[k], fn = d.n_pos - tp, tn = d.n_neg - fp;
    var n = d.n_pos + d.n_neg;
    root.querySelector("[data-field=threshold]").setAttribute("data-threshold", String(t));
    set("threshold", t.toPrecision(6));
    set("tp", tp); set("fp", fp); set("fn", fn); set("tn", tn);
    set("accuracy", fmt((tp + tn) / n));
    set("precision", fmt(tp + fp > 0 ? tp / (tp + fp) : NaN));
    set("recall", fmt(d.n_pos > 0 ? tp / d.n_pos : NaN));
    set("f1", fmt(2 * tp + fp + fn > 0 ? 2 * tp / (2 * tp + fp + fn) : NaN));
    set("far", fmt(d.n_neg > 0 ? fp / d.n_neg : NaN));
    set("how", d.how);
    root.querySelectorAll("[data-field=pos]").forEach(function (e) { e.textContent = d.positive; });
    root.querySelectorAll("[data-field=neg]").forEach(function (e) { e.textContent = d.negative; });
  }
  function reset() {
    var d = data[+select.value];
    range.max = d.thresholds.length - 1;
    var start = 0;
    for (var i = 0; i < d.thresholds.length; i++) { if (d.thresholds[i] <= %(initial)s) { start = i; } }
    range.value = start; show();
  }
  select.addEventListener("change", reset);
  range.addEventListener("input", show);
  reset();
})();
"""

_STYLE = """
<style>
.evallib-slider {border: 1px solid #ccc; border-radius: 6px; padding: 10px 14px; margin: 8px 0; max-width: 760px;
  font-family: sans-serif; font-size: 14px;}
.evallib-slider input[type=range] {width: 100%;}
.evallib-slider table {border-collapse: collapse; margin: 6px 12px 6px 0; display: inline-table; vertical-align: top;}
.evallib-slider td, .evallib-slider th {border: 1px solid #ddd; padding: 3px 8px; text-align: right;}
.evallib-slider .note {color: #555; font-size: 12px;}
</style>
"""


def static_slider_html(payloads, *, initial=0.5, title="Threshold slider"):
    """HTML (with inline script and JSON data) for a slider over one or more sweeps."""
    sid = "evallib-slider-" + uuid.uuid4().hex[:10]
    data = json.dumps(payloads).replace("</", "<\\/")
    return (_STYLE + f"""
<div class="evallib-slider" id="{sid}">
  <b>{html.escape(title)}</b> <select aria-label="which curve"></select>
  <div>threshold: <span data-field="threshold" data-threshold=""></span>
    <span class="note">(accept when score &gt;= threshold)</span></div>
  <input type="range" min="0" max="0" step="1" value="0" aria-label="threshold">
  <table><tr><th></th><th>predicted <span data-field="pos"></span></th><th>predicted <span data-field="neg"></span></th></tr>
    <tr><th>true <span data-field="pos"></span></th><td data-field="tp"></td><td data-field="fn"></td></tr>
    <tr><th>true <span data-field="neg"></span></th><td data-field="fp"></td><td data-field="tn"></td></tr></table>
  <table><tr><th>accuracy</th><td data-field="accuracy"></td></tr><tr><th>precision</th><td data-field="precision"></td></tr>
    <tr><th>recall (TAR)</th><td data-field="recall"></td></tr><tr><th>F1</th><td data-field="f1"></td></tr>
    <tr><th>FAR</th><td data-field="far"></td></tr></table>
  <div class="note" data-field="how"></div>
  <script type="application/json" class="evallib-slider-data">{data}</script>
  <script>{_SCRIPT % {"id": sid, "initial": float(initial) if np.isfinite(initial) else 0.0}}</script>
</div>""")


def counts_html(sweep, threshold):
    """The live slider's readout: confusion counts and rates of ``sweep`` at ``threshold``."""
    c = sweep.table([threshold])
    tp, fp, tn, fn = (int(c[k][0]) for k in ("tp", "fp", "tn", "fn"))
    rows = "".join(f"<tr><th>{k}</th><td>{float(c[k][0]):.4f}</td></tr>"
                   for k in ("accuracy", "precision", "recall", "f1", "far"))
    return (f'<table><tr><th></th><th>predicted +</th><th>predicted -</th></tr>'
            f'<tr><th>true +</th><td data-field="tp">{tp}</td><td data-field="fn">{fn}</td></tr>'
            f'<tr><th>true -</th><td data-field="fp">{fp}</td><td data-field="tn">{tn}</td></tr></table>'
            f"<table>{rows}</table>")


def live_slider(sweeps, *, initial=0.5, curve_plot=None):
    """An ipywidgets slider for a live kernel; ``sweeps`` is ``{name: ThresholdSweep}``.

    ``curve_plot(sweep, threshold)`` may return a matplotlib Figure that marks the threshold.
    """
    import ipywidgets as w
    from IPython.display import HTML, display

    from .display import figure_image

    names = list(sweeps)
    pick = w.Dropdown(options=names, description="curve")
    first = sweeps[names[0]]
    lo, hi = float(first.thresholds.min()), float(first.thresholds.max())
    slider = w.FloatSlider(value=min(max(initial, lo), hi), min=lo, max=hi, step=(hi - lo) / 1000 or 0.001,
                           description="threshold", readout_format=".4f", continuous_update=False,
                           layout=w.Layout(width="600px"))
    out = w.Output()

    def update(*_):
        s = sweeps[pick.value]
        out.clear_output(wait=True)
        with out:
            display(HTML(counts_html(s, slider.value)))
            if curve_plot is not None:
                display(figure_image(curve_plot(s, slider.value)))

    def repick(*_):
        s = sweeps[pick.value]
        slider.min, slider.max = float(s.thresholds.min()), float(s.thresholds.max())
        update()

    pick.observe(repick, names="value")
    slider.observe(update, names="value")
    update()
    return w.VBox([pick, slider, out] if len(names) > 1 else [slider, out])
