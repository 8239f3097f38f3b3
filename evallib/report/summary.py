"""The top of a report: headline metrics, the decision rule, the model's rank, warnings, contents.

The checks here look at what the report already holds (params, predictions, metrics) and
return short messages; :meth:`evallib.report.Report.summary` shows them with the rest.
"""

from __future__ import annotations

import math
from pathlib import Path

from .._messages import skipped_files
from ..metrics.stats import format_interval
from ..outputs import data_key
from .html import render_template

HEADLINE_NAMES = {
    "accuracy": "accuracy (top-1)", "macro_f1": "macro F1", "roc_auc_macro": "macro ROC AUC (one-vs-rest)",
    "auc": "verification ROC AUC", "eer": "equal error rate", "lfw_accuracy": "pair-list 10-fold accuracy",
    "rank_1": "rank-1 identification accuracy",
}
POLICY_TEXT = {
    "max_f1": "the threshold with the highest F1", "max_accuracy": "the threshold with the highest accuracy",
    "youden": "the threshold with the highest TAR minus FAR (Youden's J)",
    "eer": "the threshold where false accepts and false rejects are equally frequent (EER)",
    "far": "the lowest threshold whose false accept rate stays at or below the target",
}
# where each section starts: the anchors in notebooks/report.ipynb, in page order
SECTIONS = [
    ("sec-model", "Model and data", None), ("sec-classification", "Classification", "classification"),
    ("sec-confusion", "Confusion matrix", "classification"),
    ("sec-curves", "ROC and precision-recall", "classification"),
    ("sec-calibration", "Calibration", "classification"),
    ("sec-classification-slider", "Class threshold slider", "classification"),
    ("sec-verification", "Verification", "verification"),
    ("sec-verification-slider", "Similarity threshold slider", "verification"),
    ("sec-identification", "Identification (1:N)", "identification"), ("sec-templates", "Templates", "templates"),
    ("sec-gallery", "Grad-CAM gallery", None), ("sec-tsne", "t-SNE map", None),
    ("sec-slices", "Where it fails", None), ("sec-verification-groups", "Verification by group", "verification"),
    ("sec-training", "Training curves", "training_log"),
    ("sec-changes", "What changed since the baseline", "baseline"), ("sec-notes", "Notes", None),
]


def headline_name(key, entry=None):
    """A headline metric's name as the report shows it (``top_5`` -> "top-5 accuracy")."""
    if key.startswith("top_"):
        return f"top-{key[4:]} accuracy"
    if key == "tar_at_far":
        return f"TAR at FAR {(entry or {}).get('far', float('nan')):g}"
    if key == "template_tar_at_far":
        return f"template TAR at FAR {(entry or {}).get('far', float('nan')):g}"
    if key == "fnir_at_fpir":
        return f"FNIR at FPIR {(entry or {}).get('fpir', float('nan')):g} (lower is better)"
    return HEADLINE_NAMES.get(key, key)


def _num(v):
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def rank_among(name, peers, metric):
    """This model's place among models evaluated on the same data, best first by ``metric``.

    Parameters
    ----------
    name : str
        The model.
    peers : dict
        ``{model name: metrics dict}`` of every model found (this one included), as
        ``metrics.json`` holds them, or as :func:`evallib.peers.model_summary` gives them (with
        ``data_key`` and ``headline``).
    metric : str
        A headline key (``macro_f1``, ``auc``...); higher is better.

    Returns
    -------
    list of dict or None
        ``{"rank", "name", "value", "interval"}`` per model of the same data, best first (models
        without a value last); None when no other model of the same data has a value.
    """
    if name not in peers:
        return None

    def data_of(m):
        return m.get("data_key") or data_key(m.get("run", {}))

    key = data_of(peers[name])
    rows = []
    for other, m in peers.items():
        h = m.get("headline", {}).get(metric)
        if data_of(m) != key or (other != name and not (h and _num(h.get("value")))):
            continue
        value = h.get("value") if h else None
        rows.append({"name": other, "value": value if _num(value) else None, "interval": (h or {}).get("interval")})
    if len(rows) < 2:
        return None
    rows.sort(key=lambda r: (r["value"] is None, -(r["value"] or 0.0), r["name"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def left_out_text(skipped, images):
    """What the headline numbers leave out: files not evaluated, and how many of them for the model's outputs."""
    from ..inference import is_output_problem

    if not skipped:
        return ""
    bad_output = sum(1 for s in skipped if is_output_problem(s["reason"]))
    why = (f"; {bad_output:,} of them because the model's output was NaN, infinite or an all-zero embedding"
           if bad_output else "")
    return f"the metrics are computed on {images:,} images; {skipped_files(skipped)[0]} left out{why} " \
           f"(listed under Model and data)."


_SUMMARY = """<div class="evallib-summary">
<p class="evallib-lede">{{ lede }}</p>
<table class="evallib-table">
<thead><tr><th>headline metric</th><th>value</th><th>95% interval</th></tr></thead>
<tbody>
{% for h in headline %}<tr{% if h.primary %} class="evallib-primary"{% endif %}>\
<td>{{ h.name }}{% if h.primary %} (primary){% endif %}</td><td>{{ h.value }}</td><td>{{ h.interval }}</td></tr>
{% endfor %}
</tbody></table>
{% if left_out %}<p class="evallib-warn"><b>Left out:</b> {{ left_out }}</p>
{% endif %}
{% if labels %}<p><b>Labels:</b> {{ labels }}</p>
{% endif %}
<p><b>Decision:</b> {{ decision }}</p>
{% if ranking %}
<p><b>How this model ranks:</b> {{ rank_text }}</p>
<table class="evallib-table">
<thead><tr><th>rank</th><th>model</th><th>{{ metric_name }}</th><th>95% interval</th></tr></thead>
<tbody>
{% for r in ranking %}<tr{% if r.name == name %} class="evallib-primary"{% endif %}><td>{{ r.rank }}</td>\
<td>{{ r.name }}{% if r.name == name %} (this model){% endif %}</td><td>{{ r.value }}</td><td>{{ r.interval }}</td></tr>
{% endfor %}
</tbody></table>
{% endif %}
{% if warnings %}
{% for w in warnings %}<p class="evallib-warn"><b>Warning:</b> {{ w }}</p>
{% endfor %}
{% else %}
<p>No warnings.</p>
{% endif %}
</div>
<nav class="evallib-toc" aria-label="contents"><b>Contents</b>
{% for id, title in toc %}<a href="#{{ id }}">{{ title }}</a>
{% endfor %}
</nav>"""

PAGE_CSS = """<style>
.evallib-summary {font-size: 14px;}
.evallib-summary .evallib-lede {font-size: 15px;}
.evallib-primary td {font-weight: bold;}
.evallib-summary ul {margin: 4px 0; padding-left: 22px;}
.evallib-toc {margin: 10px 0; padding: 6px 10px; border-left: 3px solid #4c72b0; background: #f5f8fc; font-size: 13px;}
.evallib-toc b {margin-right: 10px;}
.evallib-toc a {display: inline-block; margin: 2px 12px 2px 0; color: #1f4e8c; text-decoration: none;}
.evallib-toc a:hover {text-decoration: underline;}
/* wide pages: the contents stay in view beside the report */
@media (min-width: 1680px) {
  .evallib-toc {position: fixed; top: 24px; left: 16px; width: 190px; max-height: calc(100vh - 48px);
    overflow-y: auto; margin: 0; z-index: 10;}
  .evallib-toc b {display: block; margin-bottom: 4px;}
  .evallib-toc a {display: block; margin: 3px 0;}
}
</style>"""


def _interval(iv):
    return format_interval(*iv) if iv and all(_num(x) for x in iv) else "n/a"


def _value(v):
    return f"{v:.4f}" if _num(v) else "n/a"


def overrides_text(facts):
    """One sentence on the label corrections a run applied (``run.json`` ``label_overrides``), or ""."""
    if not facts:
        return ""
    rows, changed = facts["rows"], facts["changed"]
    same = rows - changed
    return (f"{changed:,} label{'' if changed == 1 else 's'} overridden by {Path(facts['file']).name} "
            f"({rows:,} row{'' if rows == 1 else 's'}"
            + (f", {same:,} confirming the given label" if same else "")
            + f"; sha256 {facts['sha256'][:12]}); the metrics use the corrected labels.")


def summary_html(*, name, lede, headline, primary, decision, ranking, warnings, toc, left_out="", labels=""):
    """The summary block and the contents, as HTML.

    Parameters
    ----------
    name : str
        The model.
    lede : str
        One sentence: model, data, images, classes.
    headline : dict
        ``metrics.json``'s ``headline``: ``{key: {"value", "interval", ...}}``.
    primary : str
        The primary metric's key (marked in the table).
    decision : str
        The decision rule: chosen threshold and policy.
    ranking : list of dict or None
        From :func:`rank_among`.
    warnings : list of str
    toc : list of (anchor id, title)
    left_out : str
        What the metrics leave out (:func:`left_out_text`), shown under the headline.
    labels : str
        The label corrections applied (:func:`overrides_text`), shown under the headline.
    """
    rows = [{"name": headline_name(k, h), "value": _value(h.get("value")), "interval": _interval(h.get("interval")),
             "primary": k == primary} for k, h in headline.items()]
    rank_text = ""
    if ranking:
        me = next(r for r in ranking if r["name"] == name)
        rank_text = (f"{me['rank']} of {len(ranking)} models evaluated on the same data, by "
                     f"{headline_name(primary, headline.get(primary))} (higher is better); overlapping intervals "
                     f"mean the order is not settled by this data.")
        ranking = [{**r, "value": _value(r["value"]), "interval": _interval(r["interval"])} for r in ranking]
    return PAGE_CSS + render_template(
        _SUMMARY, name=name, lede=lede, headline=rows, decision=decision, ranking=ranking, rank_text=rank_text,
        metric_name=headline_name(primary, headline.get(primary)), warnings=warnings, toc=toc, left_out=left_out,
        labels=labels)
