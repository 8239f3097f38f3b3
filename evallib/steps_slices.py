"""The metrics step's slices: where a model fails, from the data's slicing columns and its predictions.

:func:`slicing_columns` puts together the slicing columns of a run: the metadata file
(``data.metadata``) joined by path, folders of the image paths (``data.folder_slices``) and the binned
image properties measured while decoding (``predictions.npz``). :func:`evaluate_slices` computes, from
them and the predictions, what the report's "Where it fails" section shows (:class:`SliceFindings`):

- accuracy by slice and two-way intersection with intervals and Benjamini–Hochberg
  (:func:`evallib.metrics.slices.metrics_by_slice`);
- weak slices searched for on half of the images and confirmed on the other half, from the
  embeddings (clusters) and the slicing columns (:func:`evallib.metrics.slices.discover_weak_slices`);
- for a verification model whose metadata gives each identity a group, error rates by group at one
  global threshold (:func:`evallib.metrics.slices.verification_by_group`).

:func:`slices_summary` is the short entry of ``metrics.json``: the weakest confirmed slices with n and
interval, which the index page reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.slicing import NO_METADATA, bin_properties, read_metadata, slices_from_paths
from .errors import DataError
from .metrics.slices import (
    discover_weak_slices,
    group_det_curves,
    metrics_by_slice,
    verification_at_group_thresholds,
    verification_by_group,
)

GROUP_RESAMPLES = 200  # identity-bootstrap resamples of the per-group verification intervals
MAX_GROUP_PAIRS = 1_000_000  # above this many pairs of images, impostor pairs are sampled for the groups
MAX_GROUPS = 50  # a metadata column with more values than this is not taken as a verification group
SUMMARY_SLICES = 10  # weakest confirmed slices listed in metrics.json


@dataclass
class SliceFindings:
    """What the metrics step found about slices of the data.

    Attributes
    ----------
    columns : dict of str to ndarray of shape (n_samples,), dtype str
        The slicing columns, one label per evaluated image (in the predictions' order).
    sources : dict of str to str
        Where each column came from: ``"metadata"``, ``"folders"`` or ``"image properties"``.
    by_slice : SliceResult or None
        Classification accuracy by slice (None for a model without class scores).
    discovery : WeakSliceDiscovery or None
    group_column : str or None
        The metadata column that gave the verification groups.
    by_group : GroupVerificationResult or None
    group_det : GroupDetCurves or None
        Each group's DET curve within its own pairs.
    group_thresholds : GroupThresholdResult or None
        Each group at its own threshold, set at the same target FMR (``report.far_target``).
    skipped : dict of str to str
        Why a part was not computed (``{"discovery": "..."}``).
    """

    columns: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    by_slice: object = None
    discovery: object = None
    group_column: str | None = None
    by_group: object = None
    group_det: object = None
    group_thresholds: object = None
    skipped: dict = field(default_factory=dict)


def _as_text(col):
    return np.asarray([str(v) for v in col], dtype=str)


def slicing_columns(params, paths, *, root, skipped=(), properties=None):
    """The slicing columns of a run and where each came from.

    Parameters
    ----------
    params : Params
    paths : sequence of str, length n_samples
        The evaluated images, relative to ``root``.
    root : str or Path
        The data folder.
    skipped : sequence of str
        Files of the data folder left out of the evaluation; a metadata row naming one is no error.
    properties : dict of str to ndarray of shape (n_samples,), optional
        The image properties measured while decoding (:attr:`evallib.records.Predictions.image_properties`).

    Returns
    -------
    columns : dict of str to ndarray of shape (n_samples,), dtype str
    sources : dict of str to str

    Raises
    ------
    DataError
        A bad metadata file (naming the file and its rows), a folder level that a path does not have, or a
        name given both to a metadata column and to a folder slice.
    """
    d = params.data
    paths = list(paths)
    columns, sources = {}, {}
    if d.metadata is not None:
        meta = read_metadata(d.metadata, paths + list(skipped), root=root)
        for name, col in meta.items():
            columns[name], sources[name] = _as_text(col[:len(paths)]), "metadata"
    if d.folder_slices:
        for name, col in slices_from_paths(paths, levels=d.folder_slices).items():
            if name in columns:
                raise DataError(f"data.folder_slices: {name!r} is also a column of the metadata file "
                                f"{d.metadata}; give the folder slice another name")
            columns[name], sources[name] = _as_text(col), "folders"
    if properties is not None and len(paths):
        for name, col in bin_properties(properties).items():
            if name not in columns:  # a metadata column of the same name is the user's own: it stays
                columns[name], sources[name] = _as_text(col), "image properties"
    return columns, sources


def check_slicing(params, paths, *, root):
    """Read the metadata file and folder levels against the listed images before any inference, so that a
    bad file fails the run at once (:func:`slicing_columns` raises)."""
    if params.data.metadata is not None or params.data.folder_slices:
        slicing_columns(params, paths, root=root)


def _group_column(params, columns, sources, ids):
    """``(name, groups)``: the metadata column giving each identity one group, or ``(None, reason)``."""
    wanted = params.report.verification_group
    if wanted is not None:
        if sources.get(wanted) != "metadata":
            raise DataError(f"report.verification_group: expected a column of the metadata file "
                            f"({', '.join(k for k, s in sources.items() if s == 'metadata') or 'none given'}); "
                            f"got {wanted!r}")
        return wanted, columns[wanted]
    for name, src in sources.items():
        if src != "metadata":
            continue
        col = columns[name]
        listed = col != NO_METADATA
        values = np.unique(col[listed])
        if not 2 <= len(values) <= MAX_GROUPS:
            continue
        _, ident = np.unique(ids[listed], return_inverse=True)
        _, code = np.unique(col[listed], return_inverse=True)
        per_id = np.unique(np.c_[ident, code], axis=0)
        if len(per_id) == ident.max(initial=-1) + 1:  # one group per identity
            return name, col
    return None, "no metadata column gives each identity one group"


def _pairs(params, pred, seed):
    """``(i, j, same)``: the pair list of ``data.pairs``, or every pair of images (impostor pairs sampled
    above ``MAX_GROUP_PAIRS``)."""
    y = np.asarray(pred.labels)
    n = len(y)
    if params.data.pairs:
        from .data import Dataset, read_pairs

        p = read_pairs(params.data.pairs, Dataset(Path(pred.root), pred.paths, pred.labels, pred.classes))
        return np.asarray(p.i), np.asarray(p.j), np.asarray(p.same, dtype=bool)
    if n * (n - 1) // 2 <= MAX_GROUP_PAIRS:
        i, j = np.triu_indices(n, 1)
    else:  # every genuine pair (up to the cap) and random impostor pairs
        order = np.argsort(y, kind="stable")
        starts = np.r_[0, np.flatnonzero(np.diff(y[order])) + 1, n]
        gi, gj = [], []
        for a, b in zip(starts[:-1], starts[1:]):
            u, v = np.triu_indices(b - a, 1)
            gi.append(order[a + u])
            gj.append(order[a + v])
        gi, gj = np.concatenate(gi), np.concatenate(gj)
        rng = np.random.default_rng(seed)
        if len(gi) > MAX_GROUP_PAIRS // 2:
            keep = rng.choice(len(gi), MAX_GROUP_PAIRS // 2, replace=False)
            gi, gj = gi[keep], gj[keep]
        ri, rj = rng.integers(0, n, MAX_GROUP_PAIRS), rng.integers(0, n, MAX_GROUP_PAIRS)
        imp = (ri != rj) & (y[ri] != y[rj])
        i, j = np.r_[gi, ri[imp]], np.r_[gj, rj[imp]]
    return i, j, y[i] == y[j]


def evaluate_slices(params, pred):
    """Metrics by slice, weak slices confirmed on held-out images and verification by group, for one model.

    Parameters
    ----------
    params : Params
    pred : Predictions

    Returns
    -------
    SliceFindings or None
        None when the data has no slicing column (no metadata, no folder slices, and image properties
        that are all alike or were not measured).
    """
    rep = params.report
    columns, sources = slicing_columns(params, pred.paths, root=pred.root,
                                       skipped=[s["path"] for s in pred.skipped], properties=pred.image_properties)
    if not columns:
        return None
    out = SliceFindings(columns=columns, sources=sources)
    y = np.asarray(pred.labels)
    if "classification" in params.tasks and pred.scores is not None:
        out.by_slice = metrics_by_slice(y, pred.scores, columns, top_k=rep.top_k, intersections=rep.slice_intersections,
                                        min_slice_size=rep.min_slice_size, min_slice_effect=rep.min_slice_effect)
        half = max(5, rep.min_slice_size // 2)  # each half holds about half of the images
        if len(y) < 4 * half:
            out.skipped["discovery"] = (f"{len(y)} images are too few to find slices on one half and confirm "
                                        f"them on the other (at least {4 * half} for slices of {half} per half)")
        else:
            out.discovery = discover_weak_slices(y, pred.scores, embeddings=pred.embeddings, slices=columns,
                                                 min_slice_size=half, min_slice_effect=rep.min_slice_effect,
                                                 seed=rep.seed)
    if "verification" in params.tasks and pred.embeddings is not None:
        name, groups = _group_column(params, columns, sources, y)
        if name is None:
            out.skipped["by_group"] = groups
        else:
            i, j, same = _pairs(params, pred, rep.seed)
            e = np.asarray(pred.embeddings, dtype=np.float64)
            scores = np.einsum("ij,ij->i", e[i], e[j])
            out.group_column = name
            out.by_group = verification_by_group(scores, same, groups[i], groups[j], far=rep.far_target,
                                                 ids_a=y[i], ids_b=y[j], n_boot=min(rep.bootstrap, GROUP_RESAMPLES),
                                                 seed=rep.seed)
            out.group_det = group_det_curves(scores, same, groups[i], groups[j])
            out.group_thresholds = verification_at_group_thresholds(
                scores, same, groups[i], groups[j], far=rep.far_target, global_threshold=out.by_group.threshold,
                ids_a=y[i], ids_b=y[j], n_boot=min(rep.bootstrap, GROUP_RESAMPLES), seed=rep.seed)
    return out


def _rounded(x):
    return None if x is None or not np.isfinite(x) else float(x)


def slices_summary(found):
    """The ``metrics.json`` entry: the slicing columns, the weakest confirmed slices (n, accuracy, interval,
    gap, q) and, when computed, the discovery and group verification in brief."""
    if found is None:
        return None
    out = {"columns": {k: found.sources[k] for k in found.columns}, "skipped": dict(found.skipped)}
    r = found.by_slice
    if r is not None:
        out["tested"] = r.n_tests
        out["weak"] = len(r.weak)
        out["weakest"] = [{"name": w.name, "n": w.n, "accuracy": w.accuracy, "interval": list(w.accuracy_interval),
                           "rest_accuracy": w.rest_accuracy, "gap": w.gap, "gap_interval": list(w.gap_interval),
                           "q": w.q_value} for w in r.weakest(SUMMARY_SLICES)]
    if found.discovery is not None:
        out["discovered"] = [{"name": c.name, "n": c.holdout_n, "accuracy": c.holdout_accuracy,
                              "interval": list(c.holdout_interval), "gap": c.holdout_gap,
                              "gap_interval": list(c.holdout_gap_interval), "q": c.holdout_q}
                             for c in found.discovery.confirmed]
    g = found.by_group
    if g is not None:
        out["by_group"] = {"column": found.group_column, "threshold": g.threshold, "fmr_ratio": _rounded(g.fmr_ratio),
                           "groups": [{"group": x.group, "fnmr": x.fnmr, "fmr": x.fmr} for x in g.rows]}
    return out
