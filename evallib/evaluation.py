"""The metrics step: from a model's predictions to every number its report shows.

:func:`evaluate` computes the metrics once from ``predictions.npz`` and the run facts (no inference),
:func:`write_evaluation` writes them next to the predictions: ``metrics.json`` (what people and the
comparison page read; a large confusion matrix goes to ``metrics.npz``) and the full results in
``metrics.npz`` (sweeps, intervals, the t-SNE map), which :func:`read_evaluation` rebuilds without
recomputing anything. Every number is kept as computed; only a verification sweep of more than
``STORED_SWEEP_POINTS`` thresholds is stored at that many of them (:func:`thin_sweep`): its AUC,
EER, TAR@FAR and threshold table were computed from the whole sweep and are stored as they are. The
report draws from an :class:`Evaluation`; it never computes a metric itself.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _store
from ._io import to_jsonable, write_json, write_npz
from ._messages import short_message, skipped_warnings
from .metrics import (
    DegenerateWarning,
    ThresholdSweep,
    bootstrap_classification,
    evaluate_classification,
    evaluate_verification,
    infer_score_type,
)
from .metrics.curves import class_curves, thin
from .outputs import METRICS, METRICS_ARRAYS
from .records import MetricsRecord, Predictions
from .steps_identification import evaluate_identification_step
from .steps_identification import headline as identification_headline
from .steps_identification import summary as identification_summary
from .steps_slices import evaluate_slices, slices_summary

if TYPE_CHECKING:
    from .params import Params

TSNE_MIN_SCORES = 3  # a t-SNE map of this many class scores or fewer is not drawn
TSNE_MAX_POINTS = 20_000  # above this many images the map shows a random sample of them (mistakes first)
BULKY_CELLS = 10_000  # a confusion matrix with more cells than this goes to METRICS_ARRAYS
PER_CLASS_CURVES = 10  # up to this many classes each class's own curves (and bands) are kept
BAND_RESAMPLES = 200  # bootstrap resamples of the curves' bands (at most report.bootstrap)
PRIMARY = {
    "accuracy": ("classification", "accuracy"), "macro_f1": ("classification", "macro_f1"),
    "top_5": ("classification", "top_5"), "roc_auc_macro": ("classification", "roc_auc_macro"),
    "auc": ("verification", "auc"), "tar_at_far": ("verification", "tar_at_far"),
    "lfw_accuracy": ("verification", "lfw_accuracy"), "rank_1": ("identification", "rank_1"),
    "template_tar_at_far": ("identification", "template_tar_at_far"),
}


@dataclass
class Evaluation:
    """Every metric of one model's evaluation, as the report draws it.

    Attributes
    ----------
    classification : ClassificationResult or None
    cls_intervals : dict
        95% bootstrap intervals of the headline classification metrics, ``{name: [low, high]}``.
    cls_center : ClassificationResult or None
        The single center crop's metrics when test-time augmentation was used.
    verification, ver_center, verification_pairs : VerificationResult or None
        All pairs; all pairs on the center crop; the pair list of ``data.pairs``.
    curves : dict
        Thinned micro- and macro-average curves: ``roc_micro``, ``pr_micro``
        and ``roc_macro``: arrays ``fpr`` and ``tpr`` (ROC) or ``precision`` and ``recall``, and ``area``.
    identification : IdentificationEvaluation or None
        1:N identification and templates (:mod:`evallib.steps_identification`).
    tsne : dict or None
        ``coords`` (ndarray of shape (n_points, 2)), ``index`` (rows of the predictions mapped),
        ``trustworthiness``, ``trust_sample``, ``method``, ``source``; or ``{"skipped": reason}``.
    warnings : list of str
        The run's checks, skipped files and degenerate metrics, short and without paths.
    metrics : dict
        What ``metrics.json`` holds.
    slices : SliceFindings or None
        Metrics by slice, weak slices and verification by group (:mod:`evallib.steps_slices`).
    """

    classification: object = None
    cls_intervals: dict = field(default_factory=dict)
    cls_center: object = None
    verification: object = None
    ver_center: object = None
    verification_pairs: object = None
    curves: dict = field(default_factory=dict)
    identification: object = None
    tsne: dict | None = None
    warnings: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    slices: object = None

    _STORED = ("classification", "cls_intervals", "cls_center", "verification", "ver_center", "verification_pairs",
               "curves", "identification", "tsne", "warnings", "slices")


def default_primary_metric(has_classification: bool) -> str:
    """The primary metric when none is named: macro F1 for a classifier, else verification AUC."""
    return "macro_f1" if has_classification else "auc"


def primary_metric(params: Params, has_classification: bool) -> str:
    """The primary metric's name: ``report.primary_metric``, else :func:`default_primary_metric`."""
    name = params.report.primary_metric or default_primary_metric(has_classification)
    if name not in PRIMARY:
        raise ValueError(f"report.primary_metric: expected one of {', '.join(PRIMARY)}; got {name!r}")
    return name


def probabilities(pred: Predictions) -> np.ndarray:
    """Class probabilities of the predictions, ndarray of shape (n_samples, n_classes) (softmax of logits)."""
    from .metrics.classification import to_probabilities

    return to_probabilities(np.asarray(pred.scores, dtype=np.float64), pred.scores_are or "logits")


def _tsne(params, pred, classification):
    from .explain.tsne import tsne_map

    outs, rep = params.outputs, params.report
    if pred.embeddings is not None:
        feats, source = pred.embeddings, f"output {outs.embedding!r}"
    elif pred.scores is not None and pred.scores.shape[1] > TSNE_MIN_SCORES:
        kind = "class probabilities" if pred.scores_are == "probabilities" else "class scores"
        feats, source = pred.scores, f"output {outs.scores!r} ({kind})"
    else:
        n = pred.scores.shape[1] if pred.scores is not None else 0
        return {"skipped": "No t-SNE map: the model has no embedding output"
                + (f", and a map of its {n} class scores would show nothing the scores themselves do not "
                   f"(a map needs more than {TSNE_MIN_SCORES})" if n else "") + "."}
    index = np.arange(len(feats))
    if len(feats) > TSNE_MAX_POINTS:  # a random sample, the mistakes first
        rng = np.random.default_rng(rep.seed)
        wrong = (pred.scores.argmax(1) != pred.labels) if classification is not None else np.zeros(len(feats))
        index = np.sort(np.argsort(-(wrong + rng.random(len(feats))), kind="stable")[:TSNE_MAX_POINTS])
    m = tsne_map(feats[index], seed=rep.seed, perplexity=rep.tsne_perplexity)
    return {"coords": m.coords, "index": index, "trustworthiness": m.trustworthiness, "trust_sample": m.trust_sample,
            "method": m.method, "seed": m.seed, "source": source, "points": len(index), "images": len(feats)}


def evaluate(params: Params, run: Mapping[str, Any], pred: Predictions) -> Evaluation:
    """Compute every metric of one model from its run facts and predictions (no inference).

    Parameters
    ----------
    params : Params
    run : dict
        The run facts (``run.json``).
    pred : Predictions
        The predictions (:func:`evallib.outputs.load_predictions`).

    Returns
    -------
    Evaluation
    """
    ev = Evaluation()
    y, rep = pred.labels, params.report
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateWarning)
        if "classification" in params.tasks and pred.scores is not None:
            kind = pred.scores_are or params.outputs.scores_are
            classes = pred.classes
            names = np.asarray(classes)[y]
            ev.classification = evaluate_classification(names, pred.scores, scores_are=kind, classes=classes,
                                                        top_k=(1, rep.top_k))
            ev.cls_intervals = bootstrap_classification(y, pred.scores, scores_are=kind, n_boot=rep.bootstrap,
                                                        seed=rep.seed, ks=(rep.top_k,))
            if pred.scores_center is not None:
                raw_kind = pred.raw_scores_are or infer_score_type(pred.scores_center)[0]
                ev.cls_center = evaluate_classification(names, pred.scores_center, classes=classes,
                                                        scores_are=raw_kind, top_k=(1, rep.top_k))
            ev.curves = class_curves(y, probabilities(pred), per_class=len(classes) <= PER_CLASS_CURVES,
                                     n_boot=min(rep.bootstrap, BAND_RESAMPLES), seed=rep.seed, bands=rep.bootstrap > 0)
        if "verification" in params.tasks and pred.embeddings is not None:
            kw = dict(policy_far=rep.far_target, threads=params.runtime.threads)
            ev.verification = evaluate_verification(pred.embeddings, y, n_bootstrap=rep.bootstrap,
                                                    seed=rep.seed, **kw)
            if pred.embeddings_center is not None:
                ev.ver_center = evaluate_verification(pred.embeddings_center, y, **kw)
            if params.data.pairs:
                ev.verification_pairs = _pair_list(params, pred, **kw)
            ev.identification = evaluate_identification_step(params, pred)
        ev.tsne = _tsne(params, pred, ev.classification)
        ev.slices = evaluate_slices(params, pred)
    ev.warnings = _checks(run) + sorted({str(w.message) for w in caught if issubclass(w.category, DegenerateWarning)})
    ev.metrics = _metrics_dict(params, run, ev)
    return ev


def _checks(run):
    """What the summary warns about: the run's findings (class order, score type), decided once after
    inference, and the skipped files."""
    skipped = [{**s, "reason": short_message(s["reason"])} for s in run["dataset"]["skipped"]]
    return list(run.get("warnings", [])) + skipped_warnings(skipped)


def _pair_list(params, pred, **kw):
    from .data import Dataset, read_pairs

    ds = Dataset(Path(pred.root), pred.paths, pred.labels, pred.classes)
    pairs = read_pairs(params.data.pairs, ds)
    return evaluate_verification(pred.embeddings, pred.labels, pairs=(pairs.i, pairs.j, pairs.same, pairs.fold),
                                 n_bootstrap=params.report.bootstrap, seed=params.report.seed, **kw)


def _headline(params, ev):
    out = {}
    c, iv = ev.classification, ev.cls_intervals
    if c is not None:
        k = params.report.top_k
        out["accuracy"] = {"value": c.accuracy, "interval": iv.get("accuracy")}
        out["macro_f1"] = {"value": c.macro_f1, "interval": iv.get("macro_f1")}
        if k in c.top_k:
            out[f"top_{k}"] = {"value": c.top_k[k], "interval": iv.get(f"top_{k}")}
        out["roc_auc_macro"] = {"value": c.roc_auc_macro, "interval": iv.get("roc_auc_macro")}
    v = ev.verification
    if v is not None:
        far = params.report.far_target
        out["auc"] = {"value": v.auc, "interval": v.intervals.get("auc")}
        out["tar_at_far"] = {"value": v.tar_at_far.get(far, {}).get("tar", float("nan")),
                             "interval": v.intervals.get(f"tar_at_far_{far:g}"), "far": far}
        out["eer"] = {"value": v.eer, "interval": None}
    if ev.verification_pairs is not None and ev.verification_pairs.lfw:
        lfw = ev.verification_pairs.lfw
        out["lfw_accuracy"] = {"value": lfw["mean"], "interval": None, "std": lfw["std"]}
    out.update(identification_headline(ev.identification, params.report.far_target))
    return out


def _metrics_dict(params, run, ev):
    m = {"name": params.name, "task": list(params.tasks), "headline": _headline(params, ev),
         "primary_metric": primary_metric(params, ev.classification is not None),
         "images": ev.classification.n_samples if ev.classification is not None else (
             ev.verification.n_samples if ev.verification is not None else 0),
         "left_out": len(run["dataset"]["skipped"]), "predictions_key": run.get("predictions_key"),
         "run": dict(run), "warnings": ev.warnings}
    if ev.classification is not None:
        c = ev.classification.to_dict()
        c["intervals"] = ev.cls_intervals
        c["roc_micro"] = {k: ev.curves["roc_micro"][k].tolist() for k in ("fpr", "tpr")}
        if ev.cls_center is not None:
            c["center_crop"] = ev.cls_center.to_dict()
        m["classification"] = c
    if ev.verification is not None:
        v = ev.verification.to_dict()
        fpr, tpr, _ = ev.verification.sweep.roc()
        x, y = thin(fpr, tpr)
        v["roc"] = {"fpr": x.tolist(), "tpr": y.tolist()}
        if ev.ver_center is not None:
            v["center_crop"] = {"auc": ev.ver_center.auc, "eer": ev.ver_center.eer,
                                "tar_at_far": {f"{k:g}": x for k, x in ev.ver_center.tar_at_far.items()}}
        m["verification"] = v
    if ev.verification_pairs is not None:
        m["pairs"] = ev.verification_pairs.to_dict()
    m["identification"] = identification_summary(ev.identification)
    if ev.slices is not None:
        m["slices"] = slices_summary(ev.slices)
    if ev.tsne is not None:
        m["tsne"] = {k: v for k, v in ev.tsne.items() if k not in ("coords", "index")}
    return to_jsonable(MetricsRecord(**m).to_dict())


def _split_bulky(m):
    """``(metrics for JSON, {key: array})``: confusion matrices of more than ``BULKY_CELLS`` cells move out."""
    c = m.get("classification")
    if not isinstance(c, dict) or len(c.get("confusion") or []) ** 2 <= BULKY_CELLS:
        return m, {}
    arrays = {}

    def move(part, key):
        arrays[key] = np.asarray(part["confusion"], dtype=np.int64)
        return {**part, "confusion": {"npz": METRICS_ARRAYS, "key": key, "shape": list(arrays[key].shape)}}

    c = move(c, "confusion")
    if isinstance(c.get("center_crop"), dict):
        c["center_crop"] = move(c["center_crop"], "center_crop_confusion")
    return {**m, "classification": c}, arrays


STORED_SWEEP_POINTS = 100_000  # thresholds kept of a stored sweep (the drawings need no more)


def thin_sweep(sweep: ThresholdSweep, max_points: int = STORED_SWEEP_POINTS) -> ThresholdSweep:
    """The sweep at no more than about ``max_points`` of its thresholds, its counts there unchanged.

    Half the thresholds are spread evenly over the whole sweep, the other half where the false
    positives first reach each of a geometric series of counts, so that a ROC curve on a log FAR
    axis keeps its detail down to a single false positive. The first and last thresholds stay.
    """
    k = len(sweep.thresholds)
    if k <= max_points:
        return sweep
    even = np.linspace(0, k - 1, max_points // 2).round().astype(np.int64)
    levels = np.unique(np.geomspace(1, max(float(sweep.fp[-1]), 1.0), max_points // 2).astype(np.int64))
    at_levels = np.searchsorted(sweep.fp, levels, side="left").clip(0, k - 1)
    idx = np.unique(np.r_[0, even, at_levels, k - 1])
    return dataclasses.replace(sweep, thresholds=sweep.thresholds[idx], tp=sweep.tp[idx], fp=sweep.fp[idx],
                               n_thresholds=sweep.n_thresholds or k)


def _for_storage(ev):
    """What :func:`write_evaluation` keeps of ``ev``: every field, verification sweeps thinned (:func:`thin_sweep`)."""
    parts = {k: getattr(ev, k) for k in Evaluation._STORED}
    for k in ("verification", "ver_center", "verification_pairs"):
        if parts[k] is not None:
            parts[k] = dataclasses.replace(parts[k], sweep=thin_sweep(parts[k].sweep))
    tv = getattr(parts["identification"], "template_verification", None)
    if tv is not None:
        thinned = dataclasses.replace(tv, sweep=thin_sweep(tv.sweep))
        parts["identification"] = dataclasses.replace(parts["identification"], template_verification=thinned)
    return parts


def write_evaluation(out_dir: str | Path, ev: Evaluation, *, metrics_key: str | None = None) -> None:
    """Write ``metrics.json`` and ``metrics.npz`` (atomically each; ``metrics.json`` last).

    ``metrics_key`` (what the metrics were computed from) goes into ``metrics.json``.
    """
    out_dir = Path(out_dir)
    m, arrays = _split_bulky(MetricsRecord.from_dict({**ev.metrics, "metrics_key": metrics_key}).to_dict())
    tree, stored = _store.dump(_for_storage(ev))
    write_npz(out_dir / METRICS_ARRAYS, compressed=True, results=np.array(json.dumps(tree)), **arrays, **stored)
    write_json(out_dir / METRICS, m)


def read_slices(out_dir: str | Path):
    """The metrics step's slices of ``out_dir`` (:class:`evallib.steps_slices.SliceFindings`), or None when it
    found none; reads only that part of ``metrics.npz``."""
    out_dir = Path(out_dir)
    with np.load(out_dir / METRICS_ARRAYS, allow_pickle=False) as z:
        tree = json.loads(str(z["results"])).get("slices")
        return None if tree is None else _store.load(tree, z)


def read_evaluation(out_dir: str | Path) -> Evaluation:
    """The :class:`Evaluation` written by :func:`write_evaluation` in ``out_dir``."""
    from .outputs import load_metrics

    out_dir = Path(out_dir)
    with np.load(out_dir / METRICS_ARRAYS, allow_pickle=False) as z:
        parts = _store.load(json.loads(str(z["results"])), {k: z[k] for k in z.files if k != "results"})
    metrics = load_metrics(out_dir)
    if metrics is None:
        raise FileNotFoundError(f"{out_dir / METRICS}: expected the metrics step's {METRICS}; got no file")
    return Evaluation(**parts, metrics=metrics)
