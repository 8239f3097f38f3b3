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

from ._base import Display
from .html import guide

EXACT_LIMIT = 100_000
THINNED = 2_000
SEARCH_FROM = 10  # with more curves than this the chooser gets a search box


def sweep_payload(sweep, *, name, positive="positive", negative="negative", max_points=None):
    """JSON-ready counts of a sweep, ascending thresholds; thinned above ``EXACT_LIMIT``.

    With ``max_points`` (for many curves on one page) it keeps about that many evenly spaced
    thresholds plus every one where the true-positive count changes (up to ``max_points`` of
    them), so the range where the positives lie keeps its steps.
    """
    n = len(sweep.thresholds)
    total = sweep.n_thresholds or n  # a sweep kept at some of its thresholds counts as the whole
    limit = EXACT_LIMIT if max_points is None else min(max_points, EXACT_LIMIT)
    exact = sweep.exact and total <= limit and total == n
    keep = np.arange(n)  # descending thresholds
    if total > limit:
        keep = np.linspace(0, n - 1, min(limit, THINNED)).round().astype(int)
        steps = np.nonzero(np.diff(np.r_[0, sweep.tp]))[0] if max_points is not None else []
        if len(steps):
            keep = np.r_[keep, steps[np.linspace(0, len(steps) - 1, min(len(steps), limit)).round().astype(int)]]
        keep = np.unique(keep)
    idx = keep[::-1]  # ascending thresholds
    how = (f"exact at every one of the {n:,} distinct thresholds" if exact else
           f"exact counts at {len(idx):,} of {total:,} thresholds" + ("" if sweep.exact else " (bin edges)"))
    return {"name": name, "positive": positive, "negative": negative, "thresholds": sweep.thresholds[idx].tolist(),
            "tp": sweep.tp[idx].astype(int).tolist(), "fp": sweep.fp[idx].astype(int).tolist(),
            "n_pos": int(sweep.n_pos), "n_neg": int(sweep.n_neg), "how": how}


_SCRIPT = r"""
(function () {
  var root = document.getElementById("%(id)s");
  var data = JSON.parse(root.querySelector("script.evallib-slider-data").textContent);
  var select = root.querySelector("select"), range = root.querySelector("input[type=range]");
  var search = root.querySelector("input[type=search]");
  data.forEach(function (d, i) {
    var o = document.createElement("option"); o.value = i; o.textContent = d.name; select.appendChild(o);
  });
  if (data.length < 2) { select.style.display = "none"; }
  if (data.length <= %(search_from)s) { search.style.display = "none"; }
  search.addEventListener("input", function () {
    var q = search.value.trim().toLowerCase(), first = null, kept = false;
    Array.prototype.forEach.call(select.options, function (o) {
      var hit = o.textContent.toLowerCase().indexOf(q) >= 0;
      o.hidden = !hit;
      if (hit && first === null) { first = o; }
      if (hit && o.selected) { kept = true; }
    });
    root.querySelector("[data-field=matches]").textContent =
      q ? (first === null ? "no match" : select.querySelectorAll("option:not([hidden])").length + " match") : "";
    if (!kept && first !== null) { select.value = first.value; reset(); }
  });
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
    """HTML (with inline script and JSON data) for a slider over one or more sweeps.

    The chooser lists the payloads in their order; above ``SEARCH_FROM`` of them a search box
    filters it (case-insensitive, any part of the name).
    """
    sid = "evallib-slider-" + uuid.uuid4().hex[:10]
    data = json.dumps(payloads).replace("</", "<\\/")
    return (_STYLE + f"""
<div class="evallib-slider" id="{sid}">
  <b>{html.escape(title)}</b> <input type="search" placeholder="search {len(payloads)} curves"
    aria-label="search curves"> <select aria-label="which curve"></select> \
<span class="note" data-field="matches"></span>
  <div>threshold: <span data-field="threshold" data-threshold=""></span>
    <span class="note">(accept when score &gt;= threshold)</span></div>
  <input type="range" min="0" max="0" step="1" value="0" aria-label="threshold">
  <table><tr><th></th><th>predicted <span data-field="pos"></span></th>\
<th>predicted <span data-field="neg"></span></th></tr>
    <tr><th>true <span data-field="pos"></span></th><td data-field="tp"></td><td data-field="fn"></td></tr>
    <tr><th>true <span data-field="neg"></span></th><td data-field="fp"></td><td data-field="tn"></td></tr></table>
  <table><tr><th>accuracy</th><td data-field="accuracy"></td></tr>\
<tr><th>precision</th><td data-field="precision"></td></tr>
    <tr><th>recall (TAR)</th><td data-field="recall"></td></tr><tr><th>F1</th><td data-field="f1"></td></tr>
    <tr><th>FAR</th><td data-field="far"></td></tr></table>
  <div class="note" data-field="how"></div>
  <script type="application/json" class="evallib-slider-data">{data}</script>
  <script>{_SCRIPT % {"id": sid, "initial": float(initial) if np.isfinite(initial) else 0.0,
                      "search_from": SEARCH_FROM}}</script>
</div>""")


def counts_html(sweep, threshold, *, positive="positive", negative="negative"):
    """The live slider's readout: confusion counts and rates of ``sweep`` at ``threshold``, with the
    static slider's labels (``positive``/``negative``: e.g. class/other classes, genuine/impostor)."""
    c = sweep.table([threshold])
    tp, fp, tn, fn = (int(c[k][0]) for k in ("tp", "fp", "tn", "fn"))
    rows = "".join(f"<tr><th>{name}</th><td>{float(c[k][0]):.4f}</td></tr>" for k, name in (
        ("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall (TAR)"), ("f1", "F1"),
        ("far", "FAR")))
    pos, neg = html.escape(positive), html.escape(negative)
    return (f'<table><tr><th></th><th>predicted {pos}</th><th>predicted {neg}</th></tr>'
            f'<tr><th>true {pos}</th><td data-field="tp">{tp}</td><td data-field="fn">{fn}</td></tr>'
            f'<tr><th>true {neg}</th><td data-field="fp">{fp}</td><td data-field="tn">{tn}</td></tr></table>'
            f"<table>{rows}</table>")


def live_slider(sweeps, *, initial=0.5, curve_plot=None, positive="positive", negative="negative"):
    """An ipywidgets slider for a live kernel.

    Parameters
    ----------
    sweeps : dict
        ``{name: ThresholdSweep}``, or ``{name: function returning one}`` (made when chosen, then kept).
        The chooser lists the names in this order; above ``SEARCH_FROM`` of them a search box
        filters it.
    curve_plot : callable, optional
        ``curve_plot(sweep, threshold)`` returns a matplotlib Figure that marks the threshold.
    positive, negative : str
        The readout's row and column labels.
    """
    import ipywidgets as w
    from IPython.display import HTML, display

    from .html import figure_image

    names = list(sweeps)
    made = {}

    def get(name):
        if name not in made:
            s = sweeps[name]
            made[name] = s() if callable(s) else s
        return made[name]

    pick = w.Dropdown(options=names, description="curve")
    search = w.Text(placeholder=f"search {len(names)} curves", description="search", continuous_update=True)
    first = get(names[0])
    lo, hi = float(first.thresholds.min()), float(first.thresholds.max())
    slider = w.FloatSlider(value=min(max(initial, lo), hi), min=lo, max=hi, step=(hi - lo) / 1000 or 0.001,
                           description="threshold", readout_format=".4f", continuous_update=False,
                           layout=w.Layout(width="600px"))
    out = w.Output()

    def update(*_):
        if pick.value is None:
            return
        s = get(pick.value)
        out.clear_output(wait=True)
        with out:
            display(HTML(counts_html(s, slider.value, positive=positive, negative=negative)))
            if curve_plot is not None:
                display(figure_image(curve_plot(s, slider.value)))

    def repick(*_):
        if pick.value is None:
            return
        s = get(pick.value)
        lo, hi = float(s.thresholds.min()), float(s.thresholds.max())
        if lo > slider.max:  # move the bounds in an order that never puts min above max
            slider.max, slider.min = hi, lo
        else:
            slider.min, slider.max = lo, hi
        update()

    def refilter(*_):
        q = search.value.strip().casefold()
        kept = [n for n in names if q in n.casefold()]
        current = pick.value
        pick.options = kept
        if kept:
            pick.value = current if current in kept else kept[0]

    pick.observe(repick, names="value")
    search.observe(refilter, names="value")
    slider.observe(update, names="value")
    update()
    chooser = [search, pick] if len(names) > SEARCH_FROM else [pick]
    return w.VBox([*chooser, slider, out] if len(names) > 1 else [slider, out])


STATIC_POINTS = 300  # thresholds per curve in a static slider of many curves (plus the steps of tp)


STATIC_CLASSES = 50  # classes a static per-class slider embeds (the worst ones, above this)


class ThresholdSliderDisplay(Display):
    """A threshold slider over one or more sweeps: static HTML in a page, live widgets in JupyterLab.

    ``plot`` draws the chosen curve's ROC with the operating point at ``threshold``.

    Parameters
    ----------
    sweeps : dict
        ``{name: ThresholdSweep}``, or ``{name: function returning one}`` (made when first needed).
    threshold : float
        Where the slider starts.
    title : str
    positive, negative : str
        What accepted and rejected mean (class / other classes, genuine / impostor).
    interactive : bool
        In JupyterLab, live widgets instead of the static slider.
    """

    def __init__(self, sweeps, *, threshold=0.5, title="Threshold slider", positive="positive", negative="negative",
                 interactive=False, how_to_read=("Move the slider to see what a decision threshold would do: the "
                                                 "counts of right and wrong decisions and the rates they give.")):
        if not sweeps:
            raise ValueError("sweeps: expected at least one curve; got none")
        self.sweeps, self.threshold, self.title = dict(sweeps), float(threshold), title
        self.positive, self.negative, self.interactive, self.how_to_read = positive, negative, interactive, how_to_read
        self._made = {}

    @property
    def live(self):
        return self.interactive

    @classmethod
    def from_predictions(cls, y_true, scores, *, threshold=0.5, name="scores", **kwargs):
        """One curve from binary labels and scores (higher means positive)."""
        from ..metrics.sweep import threshold_sweep

        return cls({name: threshold_sweep(np.asarray(y_true, dtype=bool), np.asarray(scores, dtype=np.float64))},
                   threshold=threshold, **kwargs)

    @classmethod
    def from_classes(cls, y_true, scores, *, classes=None, scores_are="auto", interactive=False, **kwargs):
        """One curve per class, its probability against the rest (two classes: the second class only).

        A static slider of more than ``STATIC_CLASSES`` classes embeds the classes with the lowest
        F1 (the live one has every class). The chooser lists the classes A to Z.
        """
        from ..metrics.classification import evaluate_classification
        from ..metrics.sweep import threshold_sweep
        from .classification import _class_indices, _probabilities, worst_first

        probs, _ = _probabilities(scores, scores_are)
        y, classes = _class_indices(y_true, classes, probs.shape[1])
        n = len(classes)
        support = np.bincount(y, minlength=n)
        present = [k for k in range(n) if support[k] > 0]
        keys, note = present, ""
        if n == 2:
            keys = [1]
        elif not interactive and len(present) > STATIC_CLASSES:
            f1 = evaluate_classification(y, probs, scores_are="probabilities", top_k=1).f1
            keys = [k for k in worst_first(f1, support) if support[k] > 0][:STATIC_CLASSES]
            note = (f" (the {len(keys)} classes with the lowest F1 of {n:,}; in JupyterLab the live slider has every "
                    f"class)")
        keys = sorted(keys, key=lambda k: (str(classes[k]).casefold(), k))

        def sweep(k):
            return lambda: threshold_sweep(y == k, probs[:, k])

        kwargs.setdefault("threshold", 0.5)
        kwargs.setdefault("title", f"Probability threshold per class{note}")
        return cls({f"class {classes[k]} vs rest": sweep(k) for k in keys}, positive="class",
                   negative="other classes", interactive=interactive, **kwargs)

    @classmethod
    def from_sweep(cls, sweep, *, name="all pairs", **kwargs):
        return cls({name: sweep}, **kwargs)

    @classmethod
    def from_result(cls, result, *, policy="max_f1", **kwargs):
        """From a :class:`~evallib.metrics.VerificationResult`: the similarity threshold of all pairs,
        starting at the threshold of ``policy``."""
        chosen = result.policies.get(policy)
        kwargs.setdefault("title", "Similarity threshold (accept as same identity)")
        kwargs.setdefault("positive", "genuine")
        kwargs.setdefault("negative", "impostor")
        return cls({"all pairs": result.sweep}, threshold=chosen.threshold if chosen else 0.5, **kwargs)

    def sweep(self, name=None):
        """The :class:`~evallib.metrics.ThresholdSweep` of a curve (the first by default)."""
        name = next(iter(self.sweeps)) if name is None else name
        if name not in self._made:
            s = self.sweeps[name]
            self._made[name] = s() if callable(s) else s
        return self._made[name]

    def _draw(self, ax, name=None):
        from .plots import plot_roc

        s = self.sweep(name)
        c = s.table([self.threshold])
        plot_roc({name or next(iter(self.sweeps)): s}, ax=ax, marker=(float(c["far"][0]), float(c["recall"][0])),
                 title=f"ROC at threshold {self.threshold:.4f}")

    def plot(self, ax=None, *, name=None):
        """The ROC of curve ``name`` (default: the first) with the point at ``threshold``; returns self."""
        return super().plot(ax, name=name)

    def _parts(self):
        points = STATIC_POINTS if len(self.sweeps) > SEARCH_FROM else None
        payloads = [sweep_payload(self.sweep(n), name=n, positive=self.positive, negative=self.negative,
                                  max_points=points) for n in self.sweeps]
        return [guide(self.how_to_read), static_slider_html(payloads, initial=self.threshold, title=self.title)]

    def _live(self):
        from .plots import plot_roc

        def curve(sweep, t):
            c = sweep.table([t])
            return plot_roc({"ROC": sweep}, marker=(float(c["far"][0]), float(c["recall"][0]))).figure

        import ipywidgets as w

        return w.VBox([w.HTML(guide(self.how_to_read)),
                       live_slider({n: (lambda n=n: self.sweep(n)) for n in self.sweeps}, initial=self.threshold,
                                   curve_plot=curve, positive=self.positive, negative=self.negative)])

    def __repr__(self):
        return f"<ThresholdSliderDisplay {self.title!r}: {len(self.sweeps)} curves, plot(ax=...)>"
