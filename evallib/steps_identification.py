"""The identification part of the metrics step: 1:N searches and IJB-style templates of an embedding model.

Which images are searched against which comes from the params' ``data`` section (see
``docs/identification.md``):

- ``data.role_column``: a column of the ``data.csv`` manifest giving each image's role, ``gallery``
  or ``probe``; every probe is searched against the gallery images (their labels are the identities;
  a probe whose identity has no gallery image is a non-mated search, open set);
- ``data.templates`` (an IJB ``*_face_tid_mid.txt``: image, template, media), with
  ``data.template_pairs`` (``*_template_pair_label.txt``) for 1:1 template verification and
  ``data.gallery`` and ``data.probes`` (the 1:N ``TEMPLATE_ID,SUBJECT_ID`` CSVs) for 1:N template
  identification; ``data.detector_scores`` (``*_name_5pts_score.txt``) weights each image when its
  features are pooled.

Every score comes from the embeddings the verification pass uses (``Predictions.embeddings``), by
the same definition. A protocol file with a bad row raises :class:`~evallib.errors.DataError` naming
the file and line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .errors import DataError
from .metrics.identification import IdentificationResult, evaluate_identification, split_by_role
from .metrics.templates import (
    TemplateFeatures,
    evaluate_template_identification,
    evaluate_template_verification,
    pool_templates,
)
from .metrics.verification import VerificationResult

HEADLINE_FPIR = 1e-2  # the FPIR of the headline FNIR (FRVT's usual operating point)


@dataclass(frozen=True)
class IdentificationEvaluation:
    """What the metrics step computed for 1:N identification and templates.

    Attributes
    ----------
    images : IdentificationResult or None
        Probe images searched against gallery images (``data.role_column``).
    probe_rows, gallery_rows : ndarray of shape (n_probes,), (n_gallery,)
        Rows of the predictions of the probes and the gallery images, in the result's order.
    templates : TemplateFeatures or None
        Pooled template features (``data.templates``).
    template_rows : ndarray of shape (n_template_images,)
        Rows of the predictions of the images pooled, in ``template_of`` order.
    template_of : ndarray of shape (n_template_images,)
        The template of each of those images.
    template_verification : VerificationResult or None
        1:1 template verification over ``data.template_pairs``.
    template_pairs : dict
        ``t1``, ``t2`` (template ids) and ``same`` (bool) of that pair list.
    template_identification : IdentificationResult or None
        Probe templates searched against gallery templates (``data.gallery``, ``data.probes``).
    gallery_templates, probe_templates : ndarray
        Template ids of the gallery and probe lists, in the result's order.
    notes : list of str
    """

    images: IdentificationResult | None = None
    probe_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    gallery_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    templates: TemplateFeatures | None = None
    template_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    template_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    template_verification: VerificationResult | None = None
    template_pairs: dict = field(default_factory=dict)
    template_identification: IdentificationResult | None = None
    gallery_templates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    probe_templates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    notes: list = field(default_factory=list)

    @property
    def headline_result(self) -> IdentificationResult | None:
        """The search the headline figures come from: the images', else the templates'."""
        return self.images if self.images is not None else self.template_identification


def wanted(params) -> bool:
    """Whether the params ask for identification or templates."""
    d = params.data
    return bool(d.role_column or d.templates)


def read_roles(csv_path, column, paths):
    """The role of each image from a manifest column.

    Parameters
    ----------
    csv_path : str or Path
        The manifest (``data.csv``); its first row is a header naming ``column``.
    column : str
        The role column (``data.role_column``).
    paths : sequence of str
        The evaluated images, relative to the data folder (as the predictions list them).

    Returns
    -------
    ndarray of shape (n_images,) of str
        ``gallery`` or ``probe``.
    """
    p = Path(csv_path)
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise DataError(f"{p}: data.csv: expected a manifest file; got no such file") from None
    header = [c.strip() for c in rows[0]] if rows else []
    if column not in header or "path" not in [c.lower() for c in header]:
        raise DataError(f"{p}:1: data.role_column: expected a header naming path and {column!r}; "
                        f"got {','.join(header)[:80]!r}")
    ip, ir = [c.lower() for c in header].index("path"), header.index(column)
    role_of = {}
    for no, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        role = row[ir].strip().lower() if len(row) > ir else ""
        if role not in ("gallery", "probe"):
            raise DataError(f"{p}:{no}: {column}: expected gallery or probe; got {role!r}")
        role_of[PurePosixPath(row[ip].strip().replace("\\", "/")).as_posix()] = role
    missing = [q for q in paths if q not in role_of]
    if missing:
        raise DataError(f"{p}: {column}: expected a role for every image; got none for {missing[0]!r}"
                        + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    return np.array([role_of[q] for q in paths])


def _image_rows(names, paths, where):
    """Row in ``paths`` of each protocol image name: by path relative to the data folder, else by file name
    when that is unique; every image must be found."""
    by_path = {q: i for i, q in enumerate(paths)}
    by_name, seen = {}, set()
    for i, q in enumerate(paths):
        n = PurePosixPath(q).name
        if n in seen:
            by_name.pop(n, None)
        else:
            by_name[n] = i
        seen.add(n)
    rows = np.array([by_path.get(n, by_name.get(PurePosixPath(n).name, -1)) for n in names.tolist()], np.int64)
    if (rows < 0).any():
        k = int(np.flatnonzero(rows < 0)[0])
        n = int((rows < 0).sum())
        raise DataError(f"{where}:{k + 1}: expected an image evaluated under data.root (a path relative to it, or a "
                        f"unique file name); got {str(names[k])!r}" + (f" and {n - 1} more such rows" if n > 1 else "")
                        + " (images that could not be decoded are left out of the data)")
    return rows


def evaluate_identification_step(params, pred) -> IdentificationEvaluation | None:
    """Identification and template metrics of one model from its predictions (None when not asked for).

    Parameters
    ----------
    params : Params
    pred : Predictions
        Their ``embeddings`` are the ones the verification pass scores.

    Returns
    -------
    IdentificationEvaluation or None
    """
    from .data import protocols

    if not wanted(params) or pred.embeddings is None:
        return None
    d, rep = params.data, params.report
    emb = np.asarray(pred.embeddings)
    opts = dict(threads=params.runtime.threads, n_bootstrap=rep.bootstrap, seed=rep.seed)
    out: dict[str, Any] = {}
    if d.role_column:
        roles = read_roles(d.csv, d.role_column, list(pred.paths))
        probe, gallery = split_by_role(roles, name=f"{Path(d.csv).name}: {d.role_column}")
        y = np.asarray(pred.labels)
        out.update(images=evaluate_identification(emb[probe], y[probe], emb[gallery], y[gallery], **opts),
                   probe_rows=probe, gallery_rows=gallery)
    if d.templates:
        tm = protocols.read_face_tid_mid(d.templates)
        rows = _image_rows(tm.images, list(pred.paths), d.templates)
        weights = None
        if d.detector_scores:
            det = protocols.read_name_5pts_score(d.detector_scores)
            score_of = dict(zip(det.images.tolist(), det.scores.tolist()))
            lost = [n for n in tm.images.tolist() if n not in score_of]
            if lost:
                raise DataError(f"{d.detector_scores}: expected a detector score for every image of data.templates; "
                                f"got none for {lost[0]!r} ({len(lost)} such images)")
            weights = np.array([score_of[n] for n in tm.images.tolist()])
        feats = pool_templates(emb[rows], tm.templates, tm.media, weights=weights)
        out.update(templates=feats, template_rows=rows, template_of=tm.templates)
        if d.template_pairs:
            pairs = protocols.read_template_pair_label(d.template_pairs)
            _known(feats, np.r_[pairs.t1, pairs.t2], d.template_pairs, "template_pairs")
            out.update(template_verification=evaluate_template_verification(
                feats, pairs.t1, pairs.t2, pairs.same, policy_far=rep.far_target, n_bootstrap=rep.bootstrap,
                seed=rep.seed), template_pairs={"t1": pairs.t1, "t2": pairs.t2, "same": pairs.same})
        if d.gallery:
            g, p = protocols.read_template_subjects(d.gallery), protocols.read_template_subjects(d.probes)
            _known(feats, g.templates, d.gallery, "gallery")
            _known(feats, p.templates, d.probes, "probes")
            out.update(template_identification=evaluate_template_identification(
                feats, gallery_templates=g.templates, gallery_subjects=g.subjects, probe_templates=p.templates,
                probe_subjects=p.subjects, **opts), gallery_templates=g.templates, probe_templates=p.templates)
    return IdentificationEvaluation(**out)


def _known(feats, ids, where, key):
    bad = ~np.isin(ids, feats.templates)
    if bad.any():
        n = len(np.unique(ids[bad]))
        raise DataError(f"{where}: data.{key}: expected templates listed in data.templates; got template "
                        f"{int(ids[np.flatnonzero(bad)[0]])}"
                        + (f" and {n - 1} more not listed there" if n > 1 else ""))


def headline(ident: IdentificationEvaluation | None, far_target: float) -> dict:
    """Headline entries for ``metrics.json``: rank-1 accuracy and FNIR at FPIR 1e-2 (each with its 95%
    interval) of the image (else template) search, and TAR at FAR of template verification."""
    out: dict[str, Any] = {}
    if ident is None:
        return out
    r = ident.headline_result
    if r is not None:
        out["rank_1"] = {"value": r.rank_accuracy.get(1, float("nan")), "interval": r.intervals.get("rank_1")}
        f = r.fnir_at_fpir.get(HEADLINE_FPIR, {})
        out["fnir_at_fpir"] = {"value": f.get("fnir", float("nan")), "fpir": HEADLINE_FPIR,
                               "interval": r.intervals.get(f"fnir_at_fpir_{HEADLINE_FPIR:g}")}
    v = ident.template_verification
    if v is not None:
        out["template_tar_at_far"] = {"value": v.tar_at_far.get(far_target, {}).get("tar", float("nan")),
                                      "far": far_target, "interval": v.intervals.get(f"tar_at_far_{far_target:g}")}
    return out


def summary(ident: IdentificationEvaluation | None) -> dict | None:
    """The ``identification`` part of ``metrics.json`` (the full results stay in ``metrics.npz``)."""
    if ident is None:
        return None
    out: dict[str, Any] = {}
    if ident.images is not None:
        out["images"] = ident.images.to_dict()
    if ident.template_identification is not None:
        out["templates"] = ident.template_identification.to_dict()
    if ident.template_verification is not None:
        v = ident.template_verification
        out["template_pairs"] = {"auc": v.auc, "eer": v.eer, "n_genuine": v.n_genuine, "n_impostor": v.n_impostor,
                                 "tar_at_far": {f"{k:g}": x for k, x in v.tar_at_far.items()}}
    if ident.templates is not None:
        out["n_templates"] = len(ident.templates.templates)
    return out
