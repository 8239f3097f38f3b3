"""The label review of an output folder: suspected label errors, duplicates and leakage, per evaluation data.

After every model of an output folder is evaluated, :func:`write_label_reviews` takes each group of
models evaluated on the same data (the data fingerprint, as the comparison page groups them) and
writes ``out_root/labels/<data>/``:

- ``suspected_labels.csv``: every flagged image, most suspect first (given and suggested label, votes,
  quality, each model's top-1 and its confidence);
- ``labels.html``: what the flags mean for the ranking, one card per flagged image (the image, given
  and suggested label, each model's top-1, the quality score and a Grad-CAM) with a filter by class
  (:class:`~evallib.report.label_quality.LabelReviewDisplay`; an inline script, nothing is fetched),
  and the data quality: exact duplicates (content hash), near duplicates (perceptual hash, confirmed
  by embeddings where a model has them), leakage from ``data.train_root`` by the same hashes, and the
  images that are nearly black or white, blurry, low in information or of an odd size;
- ``labels.json``: the summary the index shows in one line and links.

The numbers come from :mod:`evallib.metrics.label_quality` (confident learning, Northcutt, Jiang and
Chuang, JAIR 2021; agreement across models), :mod:`evallib.metrics.duplicates` and
:mod:`evallib.metrics.data_quality`. Flagged images are never dropped from anything; corrections a
reviewer gives back through ``data.label_overrides`` are applied by the next run, and the page says how
many. With one model the flags are its own opinion of the labels it is judged
on, and the page says that the score is circular.
"""

from __future__ import annotations

import csv
import hashlib
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
from ..metrics.data_quality import ISSUE_NAMES
from ..metrics.duplicates import exact_duplicates, perceptual_duplicates, perceptual_hash
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
from .label_quality import (
    CARDS,
    THUMB,
    DuplicatesDisplay,
    ImageIssuesDisplay,
    LabelIssuesDisplay,
    LabelReviewDisplay,
    _markup,
)
from .summary import overrides_text

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
        The first model's ``report.near_duplicate_threshold`` (the cosine that confirms a pair).
    near_distance : int
        The first model's ``report.near_duplicate_distance`` (perceptual hash bits).
    properties : dict of str to ndarray of shape (n_samples,) or None
        The first model's image properties measured while decoding.
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
    near_distance: int
    properties: dict | None
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


def load_group(out_root, models, *, thresholds=None, distances=None):
    """The aligned predictions of ``models`` (folder names under ``out_root``, best first).

    ``thresholds`` maps a model to its near-duplicate cosine (default 0.99), ``distances`` to its
    perceptual-hash distance (default 3); the first model's are used.

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
    emb, emb_from, threshold = None, None, 0.99
    for m, p in preds:
        if p.embeddings is not None:
            r = _align(ref, p)
            if r is not None:
                emb, emb_from = np.asarray(p.embeddings)[r], m
                break
    distance = (distances or {}).get(ref_name, 3)
    threshold = (thresholds or {}).get(ref_name, threshold) if emb is not None else threshold
    return GroupData(tuple(names), scores, kinds, rows, np.asarray(ref.labels, dtype=np.int64), list(ref.classes),
                     list(ref.paths), str(ref.root), list(ref.file_hashes), emb, emb_from, threshold, int(distance),
                     ref.image_properties, notes)


# ----------------------------------------------------------------------------------------- training data

def _train_listing(train_root, extensions):
    root = Path(train_root)
    if not root.is_dir():
        raise EvallibError(f"data.train_root: expected a folder of training images; got {root} (no such folder)")
    exts = {e.lower() for e in extensions}
    return root, sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                        if p.is_file() and p.suffix.lower() in exts)


def leakage(file_hashes, train_root, *, extensions=(".png", ".jpg", ".jpeg"), labels=None, hashes=None,
            max_distance=3, ignore=None):
    """Evaluation images whose content also appears in the training folder: exact (content hash) and near
    (perceptual hash).

    Parameters
    ----------
    file_hashes : list of str, shape (n_samples,)
        The evaluation images' content hashes (``Predictions.file_hashes``).
    train_root : str or Path
        The training images, searched recursively for files with ``extensions``.
    labels : sequence of str, optional
        The evaluation labels (shown beside the names).
    hashes : sequence of int, shape (n_samples,), optional
        The evaluation images' perceptual hashes (:func:`~evallib.metrics.duplicates.perceptual_hash`):
        with them, the training images are hashed the same way and near copies are found too.
    max_distance : int, default 3
        Perceptual-hash bits at or below which a training image is a near copy.
    ignore : array-like of bool, shape (n_samples,), optional
        Evaluation images whose hash says nothing (constant images): never a near copy.

    Returns
    -------
    exact : DuplicatePairs
        Pairs ``(evaluation index, training index)`` of identical files.
    near : DuplicatePairs or None
        Pairs of near copies that are not identical files (None without ``hashes``).
    train_paths : list of str
        The training files by index, relative to ``train_root``.

    Raises
    ------
    EvallibError
        Naming ``data.train_root`` when the folder does not exist.
    """
    root, paths = _train_listing(train_root, extensions)
    content, _, _ = hash_listing(root, paths)
    exact = exact_duplicates(list(file_hashes), labels=labels, reference=content)
    near = None
    if hashes is not None:
        train = perceptual_hashes(root, paths)
        ok = [j for j, h in enumerate(train) if h is not None]
        near = perceptual_duplicates(list(hashes), max_distance=max_distance, labels=labels,
                                     reference=[train[j] for j in ok], content_hashes=list(file_hashes),
                                     reference_content_hashes=[content[j] for j in ok], ignore=ignore)
        if len(ok) < len(paths):  # pairs index the hashed training images: back to the listing's indices
            from dataclasses import replace

            near = replace(near, pairs=np.column_stack([near.pairs[:, 0], np.asarray(ok, dtype=np.int64)[
                near.pairs[:, 1]]]) if near.n_pairs else near.pairs)
    return exact, near, paths


def perceptual_hashes(root, paths):
    """:func:`~evallib.metrics.duplicates.perceptual_hash` of each file (None for a file that cannot be read)."""
    from ..data import load_image

    out = []
    for p in paths:
        try:
            out.append(perceptual_hash(np.asarray(load_image(Path(root) / p, "rgb"))))
        except Exception:  # noqa: BLE001 -- an unreadable file: no hash, the others go on
            out.append(None)
    return out


# ----------------------------------------------------------------------------------------- images

def _image_loader(root, paths, *, side=THUMB):
    """``images(indices) -> list of arrays in [0, 1]`` (None for a file gone since the run), shrunk to ``side``."""
    from ..data import load_image

    def images(idx):
        out = []
        for i in idx:
            try:
                img = load_image(Path(root) / paths[i], "rgb")
            except Exception:  # noqa: BLE001 -- a file gone since the run: the card shows its name only
                out.append(None)
                continue
            img.thumbnail((side, side))
            out.append(np.asarray(img, dtype=np.float32) / 255.0)
        return out
    return images


def _cams(out_root, group, idx, targets):
    """Grad-CAM of the flagged images ``idx`` for their suggested label, from the best model with a route.

    Returns ``({index: image array}, caption, note)``; no heat maps (and the reason) when no model has a route.
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
                    out[int(i)] = img
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
h3 {font-size: 15px; margin-top: 18px;}
.lr-meta {color: #555;}
</style></head>
<body>
<p><a href="{{ index_link }}">&larr; Model comparison</a></p>
<h1>Label review of {{ title }}: can the test labels be trusted?</h1>
<p class="lr-meta">{{ meta }}</p>
{% for n in lines %}<p><b>{{ n[0] }}</b> {{ n[1] }}</p>
{% endfor %}
{% for n in notes %}<p class="evallib-warn">{{ n }}</p>
{% endfor %}
<h2 id="ranking">What the flags mean for the ranking</h2>
{{ ranking }}
<h2 id="flags">Suspected label errors ({{ "{:,}".format(n_flagged) }})</h2>
{{ review }}
<h2 id="data-quality">Data quality: duplicates, leakage and image quality</h2>
{% for v in quality %}<h3{% if v.id %} id="{{ v.id }}"{% endif %}>{{ v.title }}</h3>
{{ v.html }}
{% endfor %}
</body></html>
"""


def render_page(issues, sensitivity, *, classes, paths, title, meta="", images=None, cam=None, cam_caption="",
                duplicates=(), quality=(), notes=(), lines=(), index_link="../../index.html", cards=CARDS):
    """The review page's HTML: a page around the displays.

    Parameters
    ----------
    issues : LabelIssues
    sensitivity : RankingSensitivity
    classes : list of str
    paths : list of str, shape (n_samples,), or None
    title, meta : str
        The data's name and a line about it.
    images : callable or ndarray, optional
        The images, for the cards (:class:`~evallib.report.label_quality.LabelReviewDisplay`).
    cam : callable, optional
        ``cam(indices, targets) -> list of arrays``: heat maps for the cards.
    duplicates, quality : sequence of Display
        Duplicate and leakage views, then the image-quality views, shown in order under "Data quality".
    notes : sequence of str
        Warnings shown at the top.
    lines : sequence of (str, str)
        Facts shown at the top, bold name then text (the label corrections applied).
    cards : int
        Flagged images shown as cards, most suspect first; the others follow in a table.

    Returns
    -------
    str
    """
    disp = LabelIssuesDisplay.from_result(issues, sensitivity, classes=classes, names=paths)
    ranking = "".join([*disp._summary(), guide(
        "Each model's accuracy with the given labels (circle) and with the suggested labels on flagged images "
        "(square). If about half the flags are real errors, as in published audits, the truth lies near the "
        "middle; lines that cross mean the ranking depends on the labels."), disp._figure_html(),
        disp._model_table(), disp._pair_table()])
    review = LabelReviewDisplay.from_result(issues, images=images, cam=cam, classes=classes, names=paths, cards=cards,
                                            cam_caption=cam_caption, csv_name=SUSPECTED_LABELS)
    views = [{"id": "duplicates" if k == 0 else None, "title": d.title, "html": Markup("".join(d._parts()))}
             for k, d in enumerate(duplicates)]
    views += [{"id": "image-quality" if k == 0 else None, "title": d.title, "html": Markup("".join(d._parts()))}
              for k, d in enumerate(quality)]
    views = [{**v, "html": _markup(v["html"])} for v in views]
    return render_template(
        _PAGE, title=title, css=Markup(CSS), meta=meta, notes=list(notes), lines=list(lines), ranking=Markup(ranking),
        n_flagged=issues.n_flagged, review=Markup("".join(review._parts())), quality=views, index_link=index_link)


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
        remarks.append("more near pairs than images: lower report.near_duplicate_distance")
    parts.append(dup + (f" ({'; '.join(remarks)})" if remarks else ""))
    if d.get("leaked") is not None:
        parts.append(f"{d['leaked']:,} image{'' if d['leaked'] == 1 else 's'} also in the training data")
    q = summary.get("image_issues")
    if q and q.get("flagged"):
        found = ", ".join(f"{v:,} {ISSUE_NAMES[k]}" for k, v in q["counts"].items() if v)
        parts.append(f"{q['flagged']:,} image{'' if q['flagged'] == 1 else 's'} with quality issues ({found})")
    if summary.get("label_overrides"):
        changed = next(iter(summary["label_overrides"].values()))["changed"]  # one data group: the same labels
        parts.append(f"{changed:,} label{'' if changed == 1 else 's'} overridden by the reviewer's corrections")
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
        h.update(json.dumps([name, run.get("predictions_key"), params, run.get("label_overrides")], sort_keys=True,
                            default=str).encode())
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
    report = {m: runs[m].get("params", {}).get("report", {}) for m in group.models}
    g = load_group(out_root, group.models,
                   thresholds={m: r.get("near_duplicate_threshold") or 0.99 for m, r in report.items()},
                   distances={m: r.get("near_duplicate_distance", 3) for m, r in report.items()})
    if g is None or not g.names:
        return None
    names = [g.classes[k] for k in g.labels]
    issues = label_issues(g.labels, g.scores, model_names=g.names, scores_are=g.scores_are)
    sens = ranking_sensitivity(issues)
    notes = list(g.notes)
    loader = _image_loader(g.root, g.paths)
    quality, quality_summary = [], None
    if g.properties is not None:
        qd = ImageIssuesDisplay.from_properties(g.properties, names=g.paths, images=loader)
        quality.append(qd)
        quality_summary = {"flagged": int(qd.result.flagged.sum()), "counts": qd.result.counts(),
                           "rules": qd.result.rules}
    else:
        notes.append("Image quality not checked: the predictions hold no image properties (made by an earlier "
                     "evallib; they are measured when the images are next decoded)")
    # a constant image's hash says nothing (every constant image hashes alike): it is listed as low in information
    flat = quality[0].result.flags.get("low_information") if quality else None
    exact = exact_duplicates(g.file_hashes, labels=names)
    views = [DuplicatesDisplay.from_result(exact, names=g.paths, labels=names)]
    hashes = perceptual_hashes(g.root, g.paths)
    gone = sum(h is None for h in hashes)
    near = None
    if gone:
        hashes = None
        notes.append(f"Near duplicates not checked: {gone:,} of the {len(names):,} images can no longer be read "
                     f"under {g.root}")
    else:
        near = perceptual_duplicates(hashes, max_distance=g.near_distance, labels=names, embeddings=g.embeddings,
                                     threshold=g.near_threshold, content_hashes=g.file_hashes, ignore=flat)
        disp = DuplicatesDisplay.from_result(near, names=g.paths, labels=names)
        if g.embeddings is not None:
            disp.title += f", confirmed by the embeddings of {g.embeddings_from}"
        views.append(disp)
        if near.n_pairs > len(names):
            notes.append(f"{near.n_pairs:,} near-duplicate pairs among {len(names):,} images: lower "
                         f"report.near_duplicate_distance ({g.near_distance})")
    leaked, leaked_near = None, None
    for t in train_roots:
        try:
            res, res_near, train_paths = leakage(g.file_hashes, t, extensions=extensions, labels=names, hashes=hashes,
                                                 max_distance=g.near_distance, ignore=flat)
        except EvallibError as exc:
            notes.append(str(exc))
            continue
        found = res.duplicated(len(names))
        for r in (res, res_near):
            if r is None:
                continue
            disp = DuplicatesDisplay.from_result(r, names=g.paths, labels=names, reference_names=train_paths)
            disp.title += f" ({Path(t).name})"
            views.append(disp)
        if res_near is not None:
            found |= res_near.duplicated(len(names))
            leaked_near = (leaked_near or 0) + int(res_near.duplicated(len(names)).sum())
        leaked = (leaked or 0) + int(found.sum())
    shown = issues.review_order()[:CARDS]
    cams, caption = {}, ""
    if cam and len(shown):
        cams, caption, why = _cams(out_root, g, shown, issues.suggested_labels)
        if why:
            notes.append(why)
    overrides = {m: runs[m]["label_overrides"] for m in group.models if runs[m].get("label_overrides")}
    lines = []
    if overrides:
        first = next(iter(overrides.values()))
        lines.append(("Labels:", overrides_text(first).replace("the metrics use", "these flags and every metric use")))
    meta = (f"{len(names):,} images, {len(g.classes):,} classes; models: {', '.join(g.names)}; data fingerprint "
            f"{group.key[:12]}")
    page = render_page(issues, sens, classes=g.classes, paths=g.paths, title=group.title, meta=meta, images=loader,
                       cam=(lambda idx, targets: [cams.get(int(i)) for i in idx]) if cams else None,
                       cam_caption=caption, duplicates=views, quality=quality, lines=lines,
                       notes=[short_message(n, limit=600) for n in notes], index_link="../../index.html")
    summary = {"group": group.key, "title": group.title, "page": rel, "images": len(names),
               "models": list(g.names), "n_models": issues.n_models, "min_votes": issues.min_votes,
               "n_flagged": issues.n_flagged, "circular": issues.circular,
               "ranking_changed": sens.ranking_changed, "verdicts_changed": int(sens.verdict_changed.sum()),
               "accuracy": {m: float(a) for m, a in zip(g.names, sens.accuracy)},
               "accuracy_corrected": {m: float(a) for m, a in zip(g.names, sens.accuracy_corrected)},
               "duplicates": {"exact_pairs": exact.n_pairs, "exact_conflicting": exact.n_conflicting,
                              "near_pairs": near.n_pairs if near is not None else None,
                              "near_conflicting": near.n_conflicting if near is not None else None,
                              "near_distance": g.near_distance if near is not None else None,
                              "near_threshold": g.near_threshold if near is not None and g.embeddings is not None
                              else None,
                              "near_evidence": None if near is None else "perceptual hash" + (
                                  f", confirmed by the embeddings of {g.embeddings_from}" if g.embeddings is not None
                                  else ""),
                              "leaked": leaked, "leaked_near": leaked_near, "train_roots": train_roots},
               "image_issues": quality_summary, "label_overrides": overrides or None,
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
