"""The label review of an output folder: suspected label errors, duplicates and leakage, per evaluation data.

After every model of an output folder is evaluated, :func:`write_label_reviews` takes each group of
models evaluated on the same data (the data fingerprint, as the comparison page groups them) and
writes ``out_root/labels/<data>/``:

- ``suspected_labels.csv``: every flagged image, most suspect first (given and suggested label, votes,
  quality, each model's top-1 and its confidence);
- ``labels.html``: what the flags mean for the ranking, one card per flagged image (the image, given
  and suggested label, each model's top-1, the quality score and a Grad-CAM), a filter by class (an
  inline script; nothing is fetched), and the duplicates and leakage found;
- ``labels.json``: the summary the index shows in one line and links.

The numbers come from :mod:`evallib.metrics.label_quality` (confident learning, Northcutt, Jiang and
Chuang, JAIR 2021; agreement across models) and :mod:`evallib.metrics.duplicates`. Flagged images are
never dropped from anything. With one model the flags are its own opinion of the labels it is judged
on, and the page says that the score is circular.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._keys import code_digest, file_stat, hash_listing
from .._messages import short_message
from ..errors import EvallibError
from ..metrics.duplicates import exact_duplicates, near_duplicates
from ..metrics.label_quality import label_issues, ranking_sensitivity
from ..outputs import (
    LABELS,
    LABELS_HTML,
    LABELS_KEY,
    LABELS_SUMMARY,
    SUSPECTED_LABELS,
    labels_dir,
    load_label_summary,
    load_predictions,
    write_label_review,
)
from .html import CSS, Markup, guide, render_template
from .label_quality import DuplicatesDisplay, LabelIssuesDisplay

CARDS = 200  # flagged images shown as cards (most suspect first); the rest in a table below them
THUMB = 96  # pixels of a card's longer image side
_CAM_BATCH = 16


@dataclass(frozen=True)
class GroupData:
    """The models of one data group that have class scores, aligned on the first model's images.

    Attributes
    ----------
    names : tuple of str
        The models, best first.
    scores : list of ndarray of shape (n_samples, n_classes)
        Each model's scores, rows in the first model's image order, columns in its class order.
    scores_are : list of str
    rows : list of ndarray of shape (n_samples,)
        For each model, the row of its own predictions holding each image.
    labels : ndarray of shape (n_samples,)
    classes : list of str
    paths : list of str
    root : str
    file_hashes : list of str
    embeddings : ndarray of shape (n_samples, dim) or None
        The first model's embeddings that has them (aligned), for near duplicates.
    embeddings_from : str or None
    near_threshold : float
        That model's ``report.near_duplicate_threshold``.
    notes : list of str
        Models left out, and why.
    """

    names: tuple
    scores: list
    scores_are: list
    rows: list
    labels: np.ndarray
    classes: list
    paths: list
    root: str
    file_hashes: list
    embeddings: np.ndarray | None
    embeddings_from: str | None
    near_threshold: float
    notes: list


def _align(ref, other):
    """For each image of ``ref``, the row of ``other`` holding the same file content (the k-th copy of a
    content to the k-th copy), or None when the two hold different images."""
    if list(ref.paths) == list(other.paths) and list(ref.file_hashes) == list(other.file_hashes):
        return np.arange(len(ref.paths))
    where = defaultdict(list)
    for j, h in enumerate(other.file_hashes):
        where[h].append(j)
    used = defaultdict(int)
    rows = []
    for h in ref.file_hashes:
        k = used[h]
        if k >= len(where[h]):
            return None
        rows.append(where[h][k])
        used[h] += 1
    return np.asarray(rows, dtype=np.int64)


def load_group(out_root, models, *, thresholds=None):
    """The aligned predictions of ``models`` (folder names under ``out_root``, best first).

    ``thresholds`` maps a model to its near-duplicate threshold (default 0.95).

    Returns
    -------
    GroupData or None
        None when no model has class scores.
    """
    out_root = Path(out_root)
    preds = [(m, load_predictions(out_root / m)) for m in models]
    with_scores = [(m, p) for m, p in preds if p.scores is not None and p.labels is not None and len(p.labels)]
    if not with_scores:
        return None
    ref_name, ref = with_scores[0]
    names, scores, kinds, rows, notes = [], [], [], [], []
    for m, p in with_scores:
        r = _align(ref, p)
        if r is None or p.scores.shape[1] != len(ref.classes) or set(p.classes) != set(ref.classes):
            notes.append(f"{m}: left out: its images or classes differ from those of {ref_name}")
            continue
        cols = [list(p.classes).index(c) for c in ref.classes]
        names.append(m)
        scores.append(np.asarray(p.scores)[r][:, cols])
        kinds.append(p.scores_are or "auto")
        rows.append(r)
    emb, emb_from, threshold = None, None, 0.95
    for m, p in preds:
        if p.embeddings is not None:
            r = _align(ref, p)
            if r is not None:
                emb, emb_from = np.asarray(p.embeddings)[r], m
                threshold = (thresholds or {}).get(m, threshold)
                break
    return GroupData(tuple(names), scores, kinds, rows, np.asarray(ref.labels, dtype=np.int64), list(ref.classes),
                     list(ref.paths), str(ref.root), list(ref.file_hashes), emb, emb_from, threshold, notes)


# ----------------------------------------------------------------------------------------- training data

def _train_listing(train_root, extensions):
    root = Path(train_root)
    if not root.is_dir():
        raise EvallibError(f"data.train_root: expected a folder of training images; got {root} (no such folder)")
    exts = {e.lower() for e in extensions}
    return root, sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                        if p.is_file() and p.suffix.lower() in exts)


def leakage(file_hashes, train_root, *, extensions=(".png", ".jpg", ".jpeg"), labels=None):
    """Evaluation images whose content also appears in the training folder (exact, by content hash).

    Parameters
    ----------
    file_hashes : list of str, shape (n_samples,)
        The evaluation images' content hashes (``Predictions.file_hashes``).
    train_root : str or Path
        The training images, searched recursively for files with ``extensions``.
    labels : sequence of str, optional
        The evaluation labels (shown beside the names).

    Returns
    -------
    result : DuplicatePairs
        Pairs ``(evaluation index, training index)``.
    train_paths : list of str
        The training files by index, relative to ``train_root``.

    Raises
    ------
    EvallibError
        Naming ``data.train_root`` when the folder does not exist.
    """
    root, paths = _train_listing(train_root, extensions)
    hashes, _, _ = hash_listing(root, paths)
    return exact_duplicates(list(file_hashes), labels=labels, reference=hashes), paths


# ----------------------------------------------------------------------------------------- images

def _png(arr):
    """An (H, W) or (H, W, 3) image in [0, 1] as an inline PNG ``<img>``, its longer side at most THUMB
    pixels (tiny images are scaled up without smoothing by the page)."""
    from PIL import Image

    a = np.clip(np.asarray(arr, dtype=np.float32), 0, 1)
    img = Image.fromarray((a * 255 + 0.5).astype(np.uint8))
    if max(img.size) > THUMB:
        img.thumbnail((THUMB, THUMB), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    w, h = img.size
    scale = THUMB / max(w, h)
    return Markup(f'<img src="data:image/png;base64,{data}" width="{round(w * scale)}" height="{round(h * scale)}" '
                  f'alt="">')


def _thumbnails(root, paths, idx):
    from ..data import load_image

    out = {}
    for i in idx:
        try:
            img = load_image(Path(root) / paths[i], "rgb")
        except Exception:  # noqa: BLE001 -- a file gone since the run: the card shows its name only
            continue
        img.thumbnail((THUMB, THUMB))
        out[int(i)] = _png(np.asarray(img, dtype=np.float32) / 255.0)
    return out


def _cams(out_root, group, idx, targets):
    """Grad-CAM of the flagged images ``idx`` for their suggested label, from the best model with a route.

    Returns ``({index: img}, caption, note)``; no heat maps (and the reason) when no model has a route.
    """
    from .report import load

    reasons = []
    for name, rows in zip(group.names, group.rows):
        try:
            rep = load(Path(out_root) / name)
            route = rep.cam_route("scores")
        except EvallibError as exc:
            reasons.append(f"{name}: {exc}")
            continue
        if route is None:
            reasons.extend([rep.cam_reason] if rep.cam_reason else [])
            continue
        cols = list(rep.classes)
        out = {}
        try:
            for lo in range(0, len(idx), _CAM_BATCH):
                part = idx[lo:lo + _CAM_BATCH]
                heat = rep.heat_maps([rows[i] for i in part], [cols.index(group.classes[targets[i]]) for i in part])
                for i, img in zip(part, heat or []):
                    out[int(i)] = _png(img)
        except Exception as exc:  # noqa: BLE001 -- the cards keep their images; the reason is shown
            reasons.append(f"{name}: {route.method} failed: {type(exc).__name__}: {exc}")
            continue
        return out, f"{route.method} of {name} for the suggested label", None
    return {}, "", "No Grad-CAM: " + ("; ".join(reasons[:2]) or "no model has a route to heat maps")


# ----------------------------------------------------------------------------------------- the page

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Label review: {{ title }}</title>
{{ css }}
<style>
body {font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 20px auto; max-width: 1200px;
      padding: 0 16px; color: #222;}
h1 {font-size: 22px;} h2 {font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px;}
.lr-meta {color: #555;}
.lr-filter {position: sticky; top: 0; background: #fff; padding: 8px 0; z-index: 2; border-bottom: 1px solid #eee;}
.lr-filter select {font-size: 14px; padding: 2px 4px; max-width: 260px;}
.lr-cards {display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 10px; margin-top: 10px;}
.lr-card {border: 1px solid #ddd; border-radius: 6px; padding: 8px; font-size: 13px; background: #fcfcfc;
           min-width: 0; overflow: hidden;}
.lr-card[hidden], tr[hidden] {display: none;}
.lr-imgs {display: flex; gap: 6px; align-items: flex-start;}
.lr-imgs figure {margin: 0; text-align: center; font-size: 11px; color: #666;}
.lr-imgs img {image-rendering: pixelated; border: 1px solid #ccc; background: #eee;}
.lr-path {font-family: monospace; font-size: 12px; word-break: break-all; margin: 4px 0;}
.lr-labels {margin: 4px 0;}
.lr-given {color: #b00020; font-weight: 600;} .lr-suggested {color: #1b6e20; font-weight: 600;}
.lr-card table {border-collapse: collapse; width: 100%; font-size: 12px; table-layout: fixed;}
.lr-card td {padding: 1px 4px; border-top: 1px solid #eee; overflow: hidden; text-overflow: ellipsis;
             white-space: nowrap;}
.lr-card td.num {text-align: right; font-variant-numeric: tabular-nums; width: 3.2em;}
.lr-labels span {overflow-wrap: anywhere;}
#lr-count {margin-left: 12px; color: #555;}
.lr-rest td {font-size: 12px;}
.lr-scroll {max-height: 640px; overflow: auto; border: 1px solid #eee;}
.lr-scroll .evallib-table {margin: 0;}
</style></head>
<body>
<p><a href="{{ index_link }}">&larr; Model comparison</a></p>
<h1>Label review of {{ title }}: can the test labels be trusted?</h1>
<p class="lr-meta">{{ meta }}</p>
{% for n in notes %}<p class="evallib-warn">{{ n }}</p>
{% endfor %}
<h2 id="ranking">What the flags mean for the ranking</h2>
{{ ranking }}
<h2 id="flags">Suspected label errors ({{ "{:,}".format(n_flagged) }})</h2>
{{ flag_intro }}
{% if n_flagged %}
<div class="lr-filter">
<label>Class: <select id="lr-class">
<option value="">all classes</option>
{% for c, k in filter_classes %}<option value="{{ c }}">{{ c }} ({{ k }})</option>
{% endfor %}
</select></label>
<label><input type="radio" name="lr-side" value="either" checked> given or suggested</label>
<label><input type="radio" name="lr-side" value="given"> given</label>
<label><input type="radio" name="lr-side" value="suggested"> suggested</label>
<span id="lr-count"></span>
</div>
<div class="lr-cards">
{% for c in cards %}<div class="lr-card lr-item" data-given="{{ c.given }}" data-suggested="{{ c.suggested }}">
<div class="lr-imgs">{% if c.thumb %}<figure>{{ c.thumb }}<figcaption>image</figcaption></figure>{% endif %}
{% if c.cam %}<figure>{{ c.cam }}<figcaption>Grad-CAM</figcaption></figure>{% endif %}</div>
<div class="lr-path" title="{{ c.image }}">#{{ c.rank }} {{ c.image }}</div>
<div class="lr-labels">given <span class="lr-given">{{ c.given }}</span> &rarr; suggested
<span class="lr-suggested">{{ c.suggested }}</span></div>
<div>quality {{ c.quality }}; {{ c.votes }}</div>
<table title="each model's top-1 class and its probability">{% for m in c.models %}<tr>
<td title="{{ m.name }}">{{ m.name }}</td><td title="{{ m.top1 }}">{{ m.top1 }}</td>
<td class="num">{{ m.confidence }}</td></tr>{% endfor %}</table>
</div>
{% endfor %}
</div>
{% if rest %}
<p>The other {{ "{:,}".format(rest | length) }} flagged images, most suspect first (all of them are in
<a href="{{ csv_name }}">{{ csv_name }}</a>):</p>
<div class="lr-scroll"><table class="evallib-table lr-rest">
<thead><tr>{% for h in rest_head %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for r in rest %}<tr class="lr-item" data-given="{{ r.given }}" data-suggested="{{ r.suggested }}">
{% for v in r.cells %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
{% endif %}
<script>
(function () {
  var select = document.getElementById("lr-class"), count = document.getElementById("lr-count");
  var items = Array.prototype.slice.call(document.querySelectorAll(".lr-item"));
  function side() { return document.querySelector('input[name="lr-side"]:checked').value; }
  function apply() {
    var c = select.value, s = side(), shown = 0;
    items.forEach(function (el) {
      var g = el.getAttribute("data-given"), t = el.getAttribute("data-suggested");
      var ok = !c || (s !== "suggested" && g === c) || (s !== "given" && t === c);
      el.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = "showing " + shown.toLocaleString() + " of " + items.length.toLocaleString();
  }
  select.addEventListener("change", apply);
  document.querySelectorAll('input[name="lr-side"]').forEach(function (r) { r.addEventListener("change", apply); });
  apply();
})();
</script>
{% endif %}
<h2 id="duplicates">Duplicates and leakage</h2>
{{ duplicates }}
</body></html>
"""


def _fmt_votes(votes, n_models):
    return f"{votes} of {n_models} models disagree" if n_models > 1 else "the model disagrees"


def _markup(value):
    """Markup inside a template's nested values (``render_template`` marks the top-level ones only)."""
    import markupsafe

    return markupsafe.Markup(value) if isinstance(value, Markup) else value


def render_page(issues, sensitivity, *, classes, paths, title, meta="", thumbs=None, cams=None, cam_caption="",
                duplicates=(), notes=(), index_link="../../index.html", cards=CARDS):
    """The review page's HTML.

    Parameters
    ----------
    issues : LabelIssues
    sensitivity : RankingSensitivity
    classes : list of str
    paths : list of str, shape (n_samples,)
    title, meta : str
        The data's name and a line about it.
    thumbs, cams : dict of {image index: Markup}, optional
        Inline image and Grad-CAM of the flagged images shown as cards.
    duplicates : sequence of Display
        Duplicate and leakage views, shown in order.
    notes : sequence of str
        Warnings shown at the top.
    cards : int
        Flagged images shown as cards, most suspect first; the others follow in a table.

    Returns
    -------
    str
    """
    thumbs, cams = thumbs or {}, cams or {}
    disp = LabelIssuesDisplay.from_result(issues, sensitivity, classes=classes, names=paths)
    ranking = "".join([*disp._summary(), guide(
        "Each model's accuracy with the given labels (circle) and with the suggested labels on flagged images "
        "(square). If about half the flags are real errors, as in published audits, the truth lies near the "
        "middle; lines that cross mean the ranking depends on the labels."), disp._figure_html(),
        disp._model_table(), disp._pair_table()])
    rows = issues.rows(classes=classes, names=paths)
    names = issues.model_names
    items = []
    for rank, r in enumerate(rows[:cards], 1):
        i = r["index"]
        models = [{"name": m, "top1": r[f"{m} top-1"], "confidence": f"{r[f'{m} confidence']:.2f}"} for m in names]
        items.append({"rank": rank, "image": r["image"], "given": r["given_label"], "suggested": r["suggested_label"],
                      "quality": f"{r['quality']:+.2f}", "votes": _fmt_votes(r["votes"], len(names)),
                      "models": models, "thumb": _markup(thumbs.get(i)), "cam": _markup(cams.get(i))})
    rest = [{"given": r["given_label"], "suggested": r["suggested_label"],
             "cells": [r["image"], r["given_label"], r["suggested_label"], r["votes"], f"{r['quality']:+.3f}",
                       *[f"{r[f'{m} top-1']} ({r[f'{m} confidence']:.2f})" for m in names]]}
            for r in rows[cards:]]
    rest_head = ["image", "given", "suggested", "models disagreeing", "quality", *[f"{m}: top-1" for m in names]]
    counts = defaultdict(int)
    for r in rows:
        counts[r["given_label"]] += 1
        if r["suggested_label"] != r["given_label"]:
            counts[r["suggested_label"]] += 1
    filter_classes = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if issues.circular:
        intro = ("One model only: the quality score is that model's own margin on the labels it is evaluated on, "
                 "so it is circular; it finds the model's confident mistakes as well as wrong labels.")
    else:
        intro = (f"An image is flagged when at least {issues.min_votes} of the {issues.n_models} models confidently "
                 f"disagree with its label (confident learning's per-class thresholds); the suggested label is the "
                 f"class they vote for.")
    intro += (" Quality is the mean over models of the probability of the given label minus the highest other "
              "probability (from -1: surely wrong, to +1: surely right). Flags are candidates for review: nothing "
              "was dropped or corrected.")
    if cam_caption:
        intro += f" Heat maps: {cam_caption}."
    if len(rows) > cards:
        intro += f" The {cards:,} most suspect are shown as cards, the other {len(rows) - cards:,} in a table below."
    flag_intro = Markup(f"<p>{html.escape(intro)} Export: <a href=\"{SUSPECTED_LABELS}\">{SUSPECTED_LABELS}</a>.</p>")
    return render_template(
        _PAGE, title=title, css=Markup(CSS), meta=meta, notes=list(notes), ranking=Markup(ranking),
        n_flagged=issues.n_flagged, flag_intro=flag_intro, filter_classes=filter_classes, cards=items, rest=rest,
        rest_head=rest_head, csv_name=SUSPECTED_LABELS, index_link=index_link,
        duplicates=Markup("".join(f"<h3>{html.escape(d.title)}</h3>" + "".join(d._parts()) for d in duplicates)))


def suspected_labels_csv(issues, *, classes, paths):
    """``suspected_labels.csv``: one row per flagged image, most suspect first (:meth:`LabelIssues.rows`)."""
    rows = issues.rows(classes=classes, names=paths)
    head = ["index", "image", "given_label", "suggested_label", "votes", "quality",
            *[k for m in issues.model_names for k in (f"{m} top-1", f"{m} confidence")]]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=head, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


# ----------------------------------------------------------------------------------------- the step

def summary_line(summary):
    """One line about a group's label review, for the index."""
    if summary.get("error"):
        return f"Label review failed: {summary['error']}"
    n, k = summary["images"], summary["n_flagged"]
    parts = [f"{k:,} of {n:,} images ({k / max(n, 1):.1%}) have suspected label errors"
             + (" (one model: circular)" if summary["circular"] else
                f" ({summary['min_votes']} of {summary['n_models']} models disagree)")]
    if summary["n_models"] > 1:
        parts.append("the ranking " + ("changes" if summary["ranking_changed"] else "does not change")
                     + " if every flag is an error"
                     + (f", and {summary['verdicts_changed']} McNemar verdict(s) change"
                        if summary["verdicts_changed"] else ""))
    d = summary["duplicates"]
    dup = f"{d['exact_pairs']:,} exact"
    last = d["exact_pairs"]
    if d.get("near_pairs") is not None:
        dup += f" and {d['near_pairs']:,} near"
        last = d["near_pairs"]
    conflicting = d["exact_conflicting"] + (d.get("near_conflicting") or 0)
    dup += f" duplicate pair{'' if last == 1 else 's'}"
    remarks = [f"{conflicting:,} with conflicting labels"] if conflicting else []
    if (d.get("near_pairs") or 0) > n:
        remarks.append("more near pairs than images: raise report.near_duplicate_threshold")
    parts.append(dup + (f" ({'; '.join(remarks)})" if remarks else ""))
    if d.get("leaked") is not None:
        parts.append(f"{d['leaked']:,} image{'' if d['leaked'] == 1 else 's'} also in the training data")
    return "; ".join(parts) + "."


def _train_stats(train_roots, extensions):
    out = []
    for t in train_roots:
        try:
            root, paths = _train_listing(t, extensions)
        except EvallibError:
            out.append([t, None])
            continue
        out.append([t, [[p, list(file_stat(root / p))] for p in paths]])
    return out


def _group_key(group_runs, train):
    """What a group's review shows: the code, each model's predictions and settings, the training files."""
    h = hashlib.sha256(json.dumps([code_digest(), train]).encode())
    for name, run in group_runs:
        params = {k: v for k, v in run.get("params", {}).items() if k not in ("runtime", "source")}
        h.update(json.dumps([name, run.get("predictions_key"), params], sort_keys=True, default=str).encode())
    return h.hexdigest()


def review_group(out_root, group, runs, *, cam=True, folder=None):
    """Compute and write one data group's label review; returns its summary (``labels.json``).

    Parameters
    ----------
    out_root : str or Path
    group : DataGroup
        From :meth:`evallib.report.compare.Comparison.groups`.
    runs : dict of {model name: run facts}
    cam : bool, default True
        Draw a Grad-CAM on each card (the best model that has a route).
    folder : Path, optional
        Default :func:`evallib.outputs.labels_dir`.
    """
    out_root = Path(out_root)
    folder = Path(folder) if folder is not None else labels_dir(out_root, group.key, group.title)
    rel = f"{LABELS}/{folder.name}/{LABELS_HTML}"
    data = [runs[m].get("params", {}).get("data", {}) for m in group.models]
    train_roots = sorted({d["train_root"] for d in data if d.get("train_root")})
    extensions = tuple(next((d["extensions"] for d in data if d.get("extensions")), (".png", ".jpg", ".jpeg")))
    key = _group_key([(m, runs[m]) for m in group.models], _train_stats(train_roots, extensions))
    if (folder / LABELS_KEY).exists() and (folder / LABELS_KEY).read_text() == key:
        found = load_label_summary(folder)
        if found is not None:
            return found
    g = load_group(out_root, group.models, thresholds={
        m: runs[m].get("params", {}).get("report", {}).get("near_duplicate_threshold") or 0.95 for m in group.models})
    if g is None or not g.names:
        return None
    names = [g.classes[k] for k in g.labels]
    issues = label_issues(g.labels, g.scores, model_names=g.names, scores_are=g.scores_are)
    sens = ranking_sensitivity(issues)
    notes = list(g.notes)
    exact = exact_duplicates(g.file_hashes, labels=names)
    views = [DuplicatesDisplay.from_result(exact, names=g.paths, labels=names)]
    near = None
    if g.embeddings is not None:
        near = near_duplicates(g.embeddings, threshold=g.near_threshold, labels=names)
        disp = DuplicatesDisplay.from_result(near, names=g.paths, labels=names)
        disp.title += f" (embeddings of {g.embeddings_from})"
        views.append(disp)
        if near.n_pairs > len(names):
            notes.append(f"{near.n_pairs:,} near-duplicate pairs among {len(names):,} images: at cosine "
                         f"{g.near_threshold:g} the embeddings of {g.embeddings_from} join images of a class, not "
                         f"copies; raise report.near_duplicate_threshold")
    leaked = None
    for t in train_roots:
        try:
            res, train_paths = leakage(g.file_hashes, t, extensions=extensions, labels=names)
        except EvallibError as exc:
            notes.append(str(exc))
            continue
        disp = DuplicatesDisplay.from_result(res, names=g.paths, labels=names, reference_names=train_paths)
        disp.title += f" ({Path(t).name})"
        views.append(disp)
        leaked = (leaked or 0) + int(res.duplicated(len(names)).sum())
    shown = issues.review_order()[:CARDS]
    thumbs = _thumbnails(g.root, g.paths, shown)
    cams, caption = {}, ""
    if cam and len(shown):
        cams, caption, why = _cams(out_root, g, shown, issues.suggested_labels)
        if why:
            notes.append(why)
    meta = (f"{len(names):,} images, {len(g.classes):,} classes; models: {', '.join(g.names)}; data fingerprint "
            f"{group.key[:12]}")
    index_link = "../../index.html"
    page = render_page(issues, sens, classes=g.classes, paths=g.paths, title=group.title, meta=meta, thumbs=thumbs,
                       cams=cams, cam_caption=caption, duplicates=views,
                       notes=[short_message(n, limit=600) for n in notes], index_link=index_link)
    summary = {"group": group.key, "title": group.title, "page": rel, "images": len(names),
               "models": list(g.names), "n_models": issues.n_models, "min_votes": issues.min_votes,
               "n_flagged": issues.n_flagged, "circular": issues.circular,
               "ranking_changed": sens.ranking_changed, "verdicts_changed": int(sens.verdict_changed.sum()),
               "accuracy": {m: float(a) for m, a in zip(g.names, sens.accuracy)},
               "accuracy_corrected": {m: float(a) for m, a in zip(g.names, sens.accuracy_corrected)},
               "duplicates": {"exact_pairs": exact.n_pairs, "exact_conflicting": exact.n_conflicting,
                              "near_pairs": near.n_pairs if near is not None else None,
                              "near_conflicting": near.n_conflicting if near is not None else None,
                              "near_threshold": g.near_threshold if near is not None else None,
                              "leaked": leaked, "train_roots": train_roots},
               "notes": notes}
    summary["line"] = summary_line(summary)
    write_label_review(folder, csv_text=suspected_labels_csv(issues, classes=g.classes, paths=g.paths), page=page,
                       summary=summary, key=key)
    return summary


def write_label_reviews(out_root="outputs", *, cam=True):
    """The label review of every data group under ``out_root`` that has a classification model.

    Folders of data groups no longer there are removed. A group whose review fails gets a
    ``labels.json`` with the error (the index says so); the others go on.

    Returns
    -------
    list of dict
        Each group's summary (``labels.json``).
    """
    from .compare import Comparison

    out_root = Path(out_root)
    cmp = Comparison.load(out_root)
    if "labels" in cmp.ok or "labels" in cmp.failed:
        import logging

        logging.getLogger(__name__).warning(
            "%s: expected the label review folder; got a model named 'labels': no label review is written "
            "(rename the model in its params file)", out_root / LABELS)
        return []
    done, keep = [], set()
    for g in cmp.groups():
        folder = labels_dir(out_root, g.key, g.title)
        try:
            s = review_group(out_root, g, cmp.runs, cam=cam, folder=folder)
        except Exception as exc:  # noqa: BLE001 -- one group's failure leaves the others and the index
            s = {"group": g.key, "title": g.title, "error": short_message(exc, limit=600)}
            from .._io import write_json

            write_json(folder / LABELS_SUMMARY, s)
            (folder / LABELS_KEY).unlink(missing_ok=True)
        if s is not None:
            keep.add(folder.name)
            done.append(s)
    base = out_root / LABELS
    if base.is_dir():
        for d in base.iterdir():
            if d.is_dir() and d.name not in keep and (d / LABELS_SUMMARY).exists():
                shutil.rmtree(d, ignore_errors=True)
    return done
