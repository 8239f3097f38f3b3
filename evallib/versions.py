"""Comparing two evaluated versions of a model: which images the new one breaks (``evallib compare``).

Reads two model folders written by ``evallib run`` (their predictions and run facts), lines up the
images both evaluated, and computes :func:`evallib.metrics.flips.version_regression` on them. Nothing
here runs inference or draws: the page is made by :mod:`evallib.report.versions`, the files are
written by :func:`evallib.outputs.write_comparison`.

Two models are compared only when they were evaluated on the same data (the data fingerprint of
``run.json``: the images' contents and labels), so a flip is always the same image judged twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import EvallibError
from .metrics.flips import CompatibilityResult, VersionRegression, cross_model_compatibility, version_regression
from .outputs import RUN, data_key, load_predictions, load_run, scan

FORMAT_VERSION = 1


@dataclass(frozen=True)
class VersionComparison:
    """Two versions of a model on the same images, from :func:`compare_versions`.

    Attributes
    ----------
    old, new : str
        The models' names.
    old_dir, new_dir : Path
        Their output folders.
    result : VersionRegression
        The regression table, the flips and the transitions, indexed like ``y``.
    y : ndarray of int, shape (n_samples,)
        True class of each image both models evaluated, in the old model's order.
    classes : list of str
        Class names, in the old model's order (the new model's scores are put in that order).
    files : list of str
        Each image's file, relative to the data folder (the old model's listing).
    index_old, index_new : ndarray of int, shape (n_samples,)
        Each image's row in the old and in the new model's predictions.
    data_key : str
        The data fingerprint both share.
    group_name : str or None
        What the slice rows are (a slice column's name), None without slices.
    compatibility : CompatibilityResult or None
        BCT's cross-model test on the images' embeddings, when both models stored embeddings of one size.
    notes : list of str
    """

    old: str
    new: str
    old_dir: Path
    new_dir: Path
    result: VersionRegression
    y: np.ndarray
    classes: list
    files: list
    index_old: np.ndarray
    index_new: np.ndarray
    data_key: str
    group_name: str | None = None
    compatibility: CompatibilityResult | None = None
    notes: list = field(default_factory=list)

    def flip_rows(self) -> list[dict]:
        """One record per flipped image (negative flips, then positive ones), the rows of ``flips.csv``."""
        return self.result.flip_table(files=self.files, classes=self.classes)

    def over_budget(self, max_nfr: float) -> list:
        """The rows a CI gate fails on: :meth:`VersionRegression.over_budget`."""
        return self.result.over_budget(max_nfr)

    def to_dict(self, *, max_nfr: float | None = None) -> dict:
        """What ``compare.json`` holds: the pair, the data, every row with its intervals and tests, the gate."""
        out = {"format_version": FORMAT_VERSION, "old": self.old, "new": self.new, "images": int(len(self.y)),
               "classes": list(self.classes), "data_fingerprint": self.data_key, "groups": self.group_name,
               "regression": self.result.to_dict(), "compatibility": _compat_dict(self.compatibility),
               "notes": list(self.notes)}
        if max_nfr is not None:
            failing = self.over_budget(max_nfr)
            out["gate"] = {"max_nfr": max_nfr, "passed": not failing,
                           "failing": [{"kind": r.kind, "name": r.name, "nfr": r.nfr, "nfr_upper": r.nfr_upper()}
                                       for r in failing]}
        return out


def _compat_dict(c):
    if c is None:
        return None
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(c).items()}


def _compatibility(eo, en, y, far, seed, notes, max_pairs=10_000_000):
    """BCT's cross-test on both models' embeddings of the same images (a seeded probe subset when all ordered
    pairs would be too many), or None with the reason in ``notes``."""
    if eo is None or en is None:
        return None
    if eo.shape[1] != en.shape[1]:
        notes.append(f"Embeddings of {eo.shape[1]} and {en.shape[1]} dimensions: no cross-model (BCT) test, "
                     f"which needs one embedding space")
        return None
    n = len(y)
    probe = None
    if n * (n - 1) > max_pairs:
        k = max(1, min(n // 2, max_pairs // n))
        probe = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
    return cross_model_compatibility(eo, en, y, probe=probe, far=far, seed=seed)


def model_dir(model, out_root) -> Path:
    """The output folder of ``model``: a folder name under ``out_root``, a model folder, or a params file.

    Raises
    ------
    EvallibError
        When no evaluated model answers to ``model``; the message lists the models under ``out_root``.
    """
    out_root = Path(out_root)
    path = Path(model)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from .params import load_params

        name = load_params(path).name
        found = out_root / name
        if not (found / RUN).exists():
            raise EvallibError(f"{model}: expected the outputs of model {name!r} under {out_root}; got none "
                               f"(run `evallib run {model} --out {out_root}` first)")
        return found
    for candidate in (out_root / str(model), path):
        if (candidate / RUN).exists():
            return candidate
    known = ", ".join(m.name for m in scan(out_root)) or "none"
    raise EvallibError(f"{model}: expected a model folder under {out_root}, a model folder or a params file; got "
                       f"none of these (models under {out_root}: {known})")


def _align(pred_old, pred_new):
    """Rows of both predictions that hold the same image (content hash, and the k-th copy of a repeated one)."""
    def keyed(hashes):
        seen, out = {}, []
        for h in hashes:
            k = seen.get(h, 0)
            seen[h] = k + 1
            out.append((h, k))
        return out

    where_new = {k: j for j, k in enumerate(keyed(pred_new.file_hashes))}
    io, jn = [], []
    for i, k in enumerate(keyed(pred_old.file_hashes)):
        j = where_new.get(k)
        if j is not None:
            io.append(i)
            jn.append(j)
    return np.asarray(io, dtype=np.int64), np.asarray(jn, dtype=np.int64)


def slice_groups(pred, index):
    """The slice of each image, when the predictions carry slice columns: ``(name, labels)`` or ``(None, None)``.

    The hook through which the comparison gets its per-slice rows: predictions written with slice
    columns (metadata or image properties, :mod:`evallib.data.slicing`) would expose them here as
    ``pred.slices`` (``{column: labels per image}``); the first column is used. Predictions without
    them give no slice rows. Pass ``groups=`` to :func:`compare_versions` to slice by any labels.
    """
    slices = getattr(pred, "slices", None)
    if not slices:
        return None, None
    name, labels = next(iter(slices.items()))
    return str(name), np.asarray(labels)[index]


def compare_versions(old, new, *, out_root="outputs", groups=None, group_name: str = "slice", n_boot: int = 1000,
                     seed: int = 0, alpha: float = 0.05, far: float = 1e-3) -> VersionComparison:
    """Compare two evaluated classifiers image by image: negative and positive flips, with statistics.

    Parameters
    ----------
    old, new : str or Path
        Each a model's folder name under ``out_root``, a model's output folder, or its params file.
    out_root : str or Path, default "outputs"
    groups : array-like of shape (n_old_images,), optional
        A slice label per image of the old model's predictions (in their order); adds one row per
        label, with Benjamini–Hochberg across them. By default the predictions' own slice columns
        (:func:`slice_groups`), when they have any.
    group_name : str, default "slice"
        What ``groups`` are, for the page.
    n_boot, seed, alpha
        Bootstrap resamples, their seed, and the false discovery rate (see :func:`version_regression`).
    far : float, default 1e-3
        The false accept rate of BCT's cross-test, when both models stored embeddings of one size.

    Returns
    -------
    VersionComparison

    Raises
    ------
    EvallibError
        When a model is not found, failed, has no class scores, was evaluated on other data, or its
        classes differ.
    """
    out_root = Path(out_root)
    dirs = {"old": model_dir(old, out_root), "new": model_dir(new, out_root)}
    runs, preds = {}, {}
    for role, d in dirs.items():
        run = load_run(d)
        if run is None:  # model_dir found run.json; it went away since
            raise EvallibError(f"{d}: expected a model's output folder with run.json ({role}); got none")
        if run.get("status") != "ok":
            raise EvallibError(f"{d}: expected a model evaluated without error to compare ({role}); got a failed "
                               f"run: {run.get('error')}")
        pred = load_predictions(d)
        if pred.scores is None or pred.labels is None:
            raise EvallibError(f"{d}: expected class scores and labels to compare ({role}); got a model without "
                               f"them (version comparison is for classification)")
        runs[role], preds[role] = run, pred
    name_old, name_new = (runs[r].get("name", dirs[r].name) for r in ("old", "new"))
    if name_old == name_new:
        raise EvallibError(f"new: expected another model than the old one; got {name_new!r} twice")
    key_old, key_new = data_key(runs["old"]), data_key(runs["new"])
    if key_old != key_new:
        raise EvallibError(
            f"{name_old} and {name_new} were evaluated on different data (data fingerprints {key_old[:12]} and "
            f"{key_new[:12]}): a flip is one image judged by both models, so a comparison needs the same images. "
            f"Evaluate both on one data folder")
    po, pn = preds["old"], preds["new"]
    assert po.labels is not None and pn.labels is not None  # checked above
    classes = [str(c) for c in po.classes]
    if sorted(classes) != sorted(str(c) for c in pn.classes):
        raise EvallibError(f"{name_new}: expected the classes of {name_old} ({len(classes)}); got other classes "
                           f"({len(pn.classes)})")
    order = [[str(c) for c in pn.classes].index(c) for c in classes]
    io, jn = _align(po, pn)
    if len(io) == 0:
        raise EvallibError(f"{name_old} and {name_new}: expected images both evaluated; got none in common")
    notes = []
    if len(io) < len(po.labels) or len(jn) < len(pn.labels):
        notes.append(f"{len(io):,} images in common ({len(po.labels):,} evaluated by {name_old}, "
                     f"{len(pn.labels):,} by {name_new}): the others are left out")
    y = np.asarray(po.labels, dtype=np.int64)[io]
    so = np.asarray(po.scores, dtype=np.float64)[io]
    sn = np.asarray(pn.scores, dtype=np.float64)[jn][:, order]
    if groups is not None:
        g = np.asarray(groups)
        if len(g) != len(po.labels):
            raise EvallibError(f"groups: expected one label per image of {name_old} ({len(po.labels)}); got {len(g)}")
        name, g = group_name, g[io]
    else:
        name, g = slice_groups(po, io)
    result = version_regression(y, so, sn, scores_are=po.scores_are or "logits",
                                scores_are_new=pn.scores_are or "logits", groups=g, classes=classes,
                                n_boot=n_boot, seed=seed, alpha=alpha)
    emb = [None if p.embeddings is None else np.asarray(p.embeddings, dtype=np.float64)[ix]
           for p, ix in ((po, io), (pn, jn))]
    compat = _compatibility(emb[0], emb[1], y, far, seed, notes)
    return VersionComparison(old=name_old, new=name_new, old_dir=dirs["old"], new_dir=dirs["new"], result=result,
                             y=y, classes=classes, files=[str(po.paths[i]) for i in io], index_old=io, index_new=jn,
                             data_key=key_old, group_name=name, compatibility=compat, notes=notes)
