"""Comparing two evaluated versions of a model: which images the new one breaks (``evallib compare``).

Reads two model folders written by ``evallib run`` (their predictions and run facts), lines up the
images both evaluated, and computes :func:`evallib.metrics.flips.version_regression` on them; for
embedding models with a pair list (``data.pairs``), :func:`evallib.metrics.flips.pair_flips` on the
pairs; given two runs of one recipe (``floor``), :func:`evallib.metrics.flips.nfr_against_floor`.
Nothing here runs inference or draws: the page is made by :mod:`evallib.report.versions`, the files
are written by :func:`evallib.outputs.write_comparison`.

Two models are compared only when they were evaluated on the same data (the data fingerprint of
``run.json``: the images' contents and labels), so a flip is always the same image judged twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import EvallibError
from .metrics.flips import (
    CompatibilityResult,
    NoiseFloor,
    PairFlips,
    VersionRegression,
    cross_model_compatibility,
    nfr_against_floor,
    pair_flips,
    version_regression,
)
from .outputs import RUN, data_key, load_metrics, load_predictions, load_run, scan

FORMAT_VERSION = 1


@dataclass(frozen=True)
class PairComparison:
    """The pairs of a verification pair list (``data.pairs``) judged by both models.

    Attributes
    ----------
    pairs_file : str
        The pair list read (the old model's ``data.pairs``, else the new one's).
    pairs : ndarray of int, shape (n_pairs, 2)
        The two images of each pair, indexed like the comparison's ``y`` and ``files``.
    same : ndarray of bool, shape (n_pairs,)
        True for genuine pairs.
    scores_old, scores_new : ndarray of shape (n_pairs,)
        Cosine similarity of each pair under each model.
    matched : PairFlips
        The flips with both models at their own threshold for one FAR (``far``, 1e-3 by default): a
        change of decision there is not a shift of operating point.
    own : PairFlips
        The flips with each model at its own operating point: the threshold its report's
        ``report.threshold_policy`` chose on the pair list.
    policies : dict
        ``{"old": policy, "new": policy}``: each model's threshold policy.
    threshold_sources : dict
        ``{"old": ..., "new": ...}``: where each own threshold came from (the model's ``metrics.json``, or
        recomputed from the pair list with its policy when its metrics are missing or stale).
    notes : list of str
    """

    pairs_file: str
    pairs: np.ndarray
    same: np.ndarray
    scores_old: np.ndarray
    scores_new: np.ndarray
    matched: PairFlips
    own: PairFlips
    policies: dict
    threshold_sources: dict
    notes: list = field(default_factory=list)

    def flipped(self, flips: PairFlips, files: list) -> dict:
        """The pairs that flipped at one operating point, for triage: ``{"genuine_lost", "impostor_gained"}``,
        each a list of ``{"pair", "file_a", "file_b", "score_old", "score_new"}`` in the gallery's order."""
        def rows(idx):
            return [{"pair": int(k), "file_a": str(files[self.pairs[k, 0]]), "file_b": str(files[self.pairs[k, 1]]),
                     "score_old": float(self.scores_old[k]), "score_new": float(self.scores_new[k])} for k in idx]
        return {"genuine_lost": rows(flips.genuine_lost), "impostor_gained": rows(flips.impostor_gained)}

    def to_dict(self, files: list) -> dict:
        """What ``compare.json`` holds under ``pair_flips``."""
        out = {"pairs_file": self.pairs_file, "n_pairs": int(len(self.same)), "n_genuine": int(self.same.sum()),
               "policies": dict(self.policies), "threshold_sources": dict(self.threshold_sources),
               "notes": list(self.notes)}
        for key, r in (("matched_far", self.matched), ("own_thresholds", self.own)):
            out[key] = {**r.to_dict(), "flipped": self.flipped(r, files)}
        return out


@dataclass(frozen=True)
class FloorComparison:
    """The noise floor: the comparison of two runs of one recipe, and the candidate's NFR against it.

    Attributes
    ----------
    old, new : str
        The two runs' names (``--floor A B``).
    old_dir, new_dir : Path
    result : VersionRegression
        The regression between the two runs, on the images they evaluated (its overall NFR and interval
        are the floor).
    against : NoiseFloor
        The candidate's NFR against the floor's, image by image on the images all four models judged.
    notes : list of str
    """

    old: str
    new: str
    old_dir: Path
    new_dir: Path
    result: VersionRegression
    against: NoiseFloor
    notes: list = field(default_factory=list)

    @property
    def nfr(self) -> float:
        return self.result.overall.nfr

    def to_dict(self) -> dict:
        o = self.result.overall
        return {"old": self.old, "new": self.new, "images": o.n, "nfr": o.nfr, "interval": list(o.intervals["nfr"]),
                "wilson": list(o.wilson["nfr"]), "counts": dict(o.counts), "against": self.against.to_dict(),
                "notes": list(self.notes)}


@dataclass(frozen=True)
class VersionComparison:
    """Two versions of a model on the same images, from :func:`compare_versions`.

    Attributes
    ----------
    old, new : str
        The models' names.
    old_dir, new_dir : Path
        Their output folders.
    result : VersionRegression or None
        The regression table, the flips and the transitions, indexed like ``y``; None for models without
        class scores (embedding models: see ``pairs`` and ``compatibility``).
    y : ndarray of int, shape (n_samples,)
        True class (identity) of each image both models evaluated, in the old model's order.
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
    pairs : PairComparison or None
        The flips of a verification pair list, when both models stored embeddings and a pair list is named.
    floor : FloorComparison or None
        The noise floor of two runs of one recipe, when asked (``floor=``).
    notes : list of str
    """

    old: str
    new: str
    old_dir: Path
    new_dir: Path
    result: VersionRegression | None
    y: np.ndarray
    classes: list
    files: list
    index_old: np.ndarray
    index_new: np.ndarray
    data_key: str
    group_name: str | None = None
    compatibility: CompatibilityResult | None = None
    pairs: PairComparison | None = None
    floor: FloorComparison | None = None
    notes: list = field(default_factory=list)

    def flip_rows(self) -> list[dict]:
        """One record per flipped image (negative flips, then positive ones), the rows of ``flips.csv``."""
        return [] if self.result is None else self.result.flip_table(files=self.files, classes=self.classes)

    def over_budget(self, max_nfr: float) -> list:
        """The rows a CI gate fails on: :meth:`VersionRegression.over_budget`."""
        if self.result is None:
            raise EvallibError(f"max_nfr: expected two classifiers to hold to an NFR budget; got {self.old} and "
                               f"{self.new} without class scores (embedding models have no NFR)")
        return self.result.over_budget(max_nfr)

    def gate(self, *, max_nfr: float | None = None, max_nfr_over_floor: float | None = None) -> dict | None:
        """The CI gate's verdict, as ``compare.json`` holds it; None when no budget is given.

        ``{"max_nfr", "passed", "failing"}``: the rows whose NFR upper bound is above ``max_nfr``
        (:meth:`over_budget`). With ``max_nfr_over_floor`` also ``over_floor``: the upper bound of the
        interval of NFR minus the floor's NFR, held to that margin (needs a floor).
        """
        if max_nfr is None and max_nfr_over_floor is None:
            return None
        failing = self.over_budget(max_nfr) if max_nfr is not None else []
        out: dict = {"max_nfr": max_nfr, "passed": not failing,
               "failing": [{"kind": r.kind, "name": r.name, "nfr": r.nfr, "nfr_upper": r.nfr_upper()}
                           for r in failing]}
        if max_nfr_over_floor is not None:
            if self.floor is None:
                raise EvallibError("max_nfr_over_floor: expected a noise floor to hold the NFR against (--floor A "
                                   "B); got none")
            a = self.floor.against
            over = a.over_margin(max_nfr_over_floor)
            out["max_nfr_over_floor"] = max_nfr_over_floor
            out["over_floor"] = {"difference": a.difference, "interval": list(a.intervals["difference"]),
                                 "passed": not over}
            out["passed"] = out["passed"] and not over
        return out

    def to_dict(self, *, max_nfr: float | None = None, max_nfr_over_floor: float | None = None) -> dict:
        """What ``compare.json`` holds: the pair, the data, every row with its intervals and tests, the pair
        flips, the noise floor, the gate."""
        out = {"format_version": FORMAT_VERSION, "old": self.old, "new": self.new, "images": int(len(self.y)),
               "classes": list(self.classes), "data_fingerprint": self.data_key, "groups": self.group_name,
               "regression": None if self.result is None else self.result.to_dict(),
               "compatibility": _compat_dict(self.compatibility),
               "pair_flips": None if self.pairs is None else self.pairs.to_dict(self.files),
               "floor": None if self.floor is None else self.floor.to_dict(), "notes": list(self.notes)}
        gate = self.gate(max_nfr=max_nfr, max_nfr_over_floor=max_nfr_over_floor)
        if gate is not None:
            out["gate"] = gate
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


def _keyed(hashes):
    """Each image's key: its content hash and which copy of that content it is (0 for the first)."""
    seen, out = {}, []
    for h in hashes:
        k = seen.get(h, 0)
        seen[h] = k + 1
        out.append((h, k))
    return out


def _align(pred_old, pred_new):
    """Rows of both predictions that hold the same image (content hash, and the k-th copy of a repeated one)."""
    where_new = {k: j for j, k in enumerate(_keyed(pred_new.file_hashes))}
    io, jn = [], []
    for i, k in enumerate(_keyed(pred_old.file_hashes)):
        j = where_new.get(k)
        if j is not None:
            io.append(i)
            jn.append(j)
    return np.asarray(io, dtype=np.int64), np.asarray(jn, dtype=np.int64)


@dataclass(frozen=True)
class _Pair:
    """Two evaluated models lined up on their common images (what :func:`_load_pair` finds)."""

    dirs: dict
    runs: dict
    preds: dict
    names: tuple
    key: str
    io: np.ndarray
    jn: np.ndarray
    classes: list
    order: list
    notes: list

    @property
    def classifiers(self) -> bool:
        return all(p.scores is not None for p in self.preds.values())

    def scores(self):
        """Both models' class scores on the common images, the new model's columns in the old model's order."""
        po, pn = self.preds["old"], self.preds["new"]
        return (np.asarray(po.scores, dtype=np.float64)[self.io],
                np.asarray(pn.scores, dtype=np.float64)[self.jn][:, self.order])

    @property
    def y(self) -> np.ndarray:
        return np.asarray(self.preds["old"].labels, dtype=np.int64)[self.io]


def _load_pair(old, new, out_root) -> _Pair:
    """Both models' run facts and predictions, checked (evaluated, same data, same classes) and lined up."""
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
        if pred.labels is None or (pred.scores is None and pred.embeddings is None):
            raise EvallibError(f"{d}: expected labels and class scores or embeddings to compare ({role}); got a "
                               f"model without them")
        runs[role], preds[role] = run, pred
    name_old, name_new = (runs[r].get("name", dirs[r].name) for r in ("old", "new"))
    if name_old == name_new:
        raise EvallibError(f"new: expected another model than the old one; got {name_new!r} twice")
    if (preds["old"].scores is None) != (preds["new"].scores is None):
        has, lacks = (name_old, name_new) if preds["old"].scores is not None else (name_new, name_old)
        raise EvallibError(f"{lacks}: expected class scores like {has} (two classifiers, or two embedding models); "
                           f"got a model without them")
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
    return _Pair(dirs=dirs, runs=runs, preds=preds, names=(name_old, name_new), key=key_old, io=io, jn=jn,
                 classes=classes, order=order, notes=notes)


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


def _pairs_file(run):
    return ((run.get("params") or {}).get("data") or {}).get("pairs")


def _own_threshold(model_dir, run, same, scores):
    """A model's own operating point on the pair list: ``(threshold, policy, source)``.

    The threshold its report shows (``metrics.json`` ``pairs.policies[report.threshold_policy]``) when the
    metrics were computed from these predictions; else the same policy applied to the pair scores.
    """
    from .metrics.sweep import threshold_sweep

    report = (run.get("params") or {}).get("report") or {}
    policy, far_target = report.get("threshold_policy", "max_accuracy"), report.get("far_target", 1e-3)
    m = load_metrics(model_dir, arrays=False)
    if m is not None and (m.get("run") or {}).get("predictions_key") == run.get("predictions_key"):
        stored = (((m.get("pairs") or {}).get("policies") or {}).get(policy) or {}).get("threshold")
        if stored is not None:
            return float(stored), policy, "its metrics.json"
    if not same.any() or same.all():
        return float("nan"), policy, "none: the pair list needs genuine and impostor pairs"
    t = threshold_sweep(same, scores).choose(policy, far_target=far_target).threshold
    return float(t), policy, "recomputed from the pair list (no current metrics.json)"


def _pair_comparison(p: _Pair, far, notes) -> PairComparison | None:
    """The flips of the verification pair list, when both models stored embeddings and one names ``data.pairs``."""
    from .data import Dataset, read_pairs
    from .metrics.verification import pair_scores

    po, pn = p.preds["old"], p.preds["new"]
    if po.embeddings is None or pn.embeddings is None:
        return None
    listed = {role: _pairs_file(p.runs[role]) for role in ("old", "new")}
    path = listed["old"] or listed["new"]
    if not path:
        return None
    own_notes = []
    if listed["old"] and listed["new"] and listed["old"] != listed["new"]:
        own_notes.append(f"{p.names[1]} names another pair list ({listed['new']}); the pairs of {p.names[0]} are "
                         f"used ({listed['old']})")
    ds = Dataset(Path(po.root or "."), list(po.paths), np.asarray(po.labels), list(po.classes))
    try:
        pairs = read_pairs(path, ds)
    except EvallibError as exc:
        notes.append(f"No pair flips: the pair list could not be read ({exc})")
        return None
    pos = np.full(len(po.paths), -1, dtype=np.int64)
    pos[p.io] = np.arange(len(p.io))
    a, b = pos[pairs.i], pos[pairs.j]
    keep = (a >= 0) & (b >= 0)
    if not keep.any():
        notes.append(f"No pair flips: none of the {len(keep):,} pairs of {path} has both images evaluated by "
                     f"both models")
        return None
    if not keep.all():
        own_notes.append(f"{int((~keep).sum()):,} of {len(keep):,} pairs left out: an image not evaluated by both "
                         f"models")
    ij, same = np.column_stack([a[keep], b[keep]]), pairs.same[keep].astype(bool)
    eo = np.asarray(po.embeddings)[p.io]
    en = np.asarray(pn.embeddings)[p.jn]
    so, sn = pair_scores(eo, ij[:, 0], ij[:, 1]), pair_scores(en, ij[:, 0], ij[:, 1])
    matched = pair_flips(same, so, sn, far=far)
    own = {role: _own_threshold(p.dirs[role], p.runs[role], same, s) for role, s in (("old", so), ("new", sn))}
    for role, (t, _, _) in own.items():
        if not np.isfinite(t):
            own_notes.append(f"{p.names[0 if role == 'old' else 1]}: no own threshold on the pair list; it accepts "
                             f"no pair at its operating point")
    own_flips = pair_flips(same, so, sn, thresholds=(own["old"][0], own["new"][0]))
    return PairComparison(pairs_file=str(path), pairs=ij, same=same, scores_old=so, scores_new=sn, matched=matched,
                          own=own_flips, policies={r: v[1] for r, v in own.items()},
                          threshold_sources={r: v[2] for r, v in own.items()}, notes=own_notes + matched.notes)


def _floor(floor, p: _Pair, result: VersionRegression, *, out_root, n_boot, seed, alpha) -> FloorComparison:
    """The noise floor of two runs of one recipe, held against the comparison ``p`` (same data, same images)."""
    try:
        a, b = floor
    except (TypeError, ValueError):
        raise EvallibError(f"floor: expected two runs of one recipe (A, B); got {floor!r}") from None
    try:
        f = _load_pair(a, b, out_root)
    except EvallibError as exc:
        raise EvallibError(f"floor: {exc}") from None
    old, new = p.names
    if f.key != p.key:
        raise EvallibError(f"floor: expected two runs evaluated on the data of {old} and {new} (data fingerprint "
                           f"{p.key[:12]}); got {f.names[0]} and {f.names[1]} evaluated on other data (data "
                           f"fingerprint {f.key[:12]})")
    if not f.classifiers:
        raise EvallibError(f"floor: expected two classifiers (a noise floor of NFR needs class scores); got "
                           f"{f.names[0]} and {f.names[1]} without them")
    fo, fn = f.scores()
    fr = version_regression(f.y, fo, fn, scores_are=f.preds["old"].scores_are or "logits",
                            scores_are_new=f.preds["new"].scores_are or "logits", classes=f.classes, n_boot=n_boot,
                            seed=seed, alpha=alpha)
    floor_keys, keys = _keyed(f.preds["old"].file_hashes), _keyed(p.preds["old"].file_hashes)
    where = {floor_keys[i]: k for k, i in enumerate(f.io.tolist())}
    keys = [keys[i] for i in p.io.tolist()]
    both = [(i, where[k]) for i, k in enumerate(keys) if k in where]
    if not both:
        raise EvallibError(f"floor: expected images judged by {old}, {new}, {f.names[0]} and {f.names[1]}; got none "
                           f"in common")
    ci, fi = (np.asarray(v, dtype=np.int64) for v in zip(*both))
    y = p.y
    cand = (result.pred_old == y) & (result.pred_new != y)
    fy = f.y
    floor_flips = (fr.pred_old == fy) & (fr.pred_new != fy)
    notes = list(f.notes)
    if len(ci) < len(y) or len(fi) < len(fy):
        notes.append(f"The floor is held against the candidate on the {len(ci):,} images all four models judged "
                     f"({len(y):,} compared, {len(fy):,} in the floor)")
    against = nfr_against_floor(cand[ci], floor_flips[fi], strata=y[ci], alpha=alpha, n_boot=n_boot, seed=seed)
    return FloorComparison(old=f.names[0], new=f.names[1], old_dir=f.dirs["old"], new_dir=f.dirs["new"], result=fr,
                           against=against, notes=notes)


def compare_versions(old, new, *, out_root="outputs", groups=None, group_name: str = "slice", n_boot: int = 1000,
                     seed: int = 0, alpha: float = 0.05, far: float = 1e-3, floor=None) -> VersionComparison:
    """Compare two evaluated models image by image: negative and positive flips, with statistics.

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
        The false accept rate of BCT's cross-test and of the pair flips at a matched FAR, when both
        models stored embeddings.
    floor : (str, str), optional
        Two runs of one recipe (another seed), named like ``old`` and ``new`` and evaluated on the same
        data: their NFR is the noise floor the candidate's NFR is held against
        (:func:`evallib.metrics.flips.nfr_against_floor`).

    Returns
    -------
    VersionComparison

    Raises
    ------
    EvallibError
        When a model is not found, failed, has neither class scores nor embeddings, was evaluated on
        other data, or its classes differ; for ``floor``, the same, or runs evaluated on other data
        than ``old`` and ``new``.
    """
    if not 0 < far < 1:
        raise EvallibError(f"far: expected a false accept rate in (0, 1); got {far!r}")
    out_root = Path(out_root)
    p = _load_pair(old, new, out_root)
    notes = list(p.notes)
    name_old, name_new = p.names
    po, pn = p.preds["old"], p.preds["new"]
    y, io, jn = p.y, p.io, p.jn
    if groups is not None:
        g = np.asarray(groups)
        if len(g) != len(po.labels):
            raise EvallibError(f"groups: expected one label per image of {name_old} ({len(po.labels)}); got {len(g)}")
        name, g = group_name, g[io]
    else:
        name, g = slice_groups(po, io)
    result = None
    if p.classifiers:
        so, sn = p.scores()
        result = version_regression(y, so, sn, scores_are=po.scores_are or "logits",
                                    scores_are_new=pn.scores_are or "logits", groups=g, classes=p.classes,
                                    n_boot=n_boot, seed=seed, alpha=alpha)
    floor_cmp = None
    if floor is not None:
        if result is None:
            raise EvallibError(f"floor: expected a comparison of two classifiers to hold against a noise floor of "
                               f"NFR; got {name_old} and {name_new} without class scores")
        floor_cmp = _floor(floor, p, result, out_root=out_root, n_boot=n_boot, seed=seed, alpha=alpha)
    emb = [None if q.embeddings is None else np.asarray(q.embeddings, dtype=np.float64)[ix]
           for q, ix in ((po, io), (pn, jn))]
    compat = _compatibility(emb[0], emb[1], y, far, seed, notes)
    pairs = _pair_comparison(p, far, notes)
    return VersionComparison(old=name_old, new=name_new, old_dir=p.dirs["old"], new_dir=p.dirs["new"], result=result,
                             y=y, classes=p.classes, files=[str(po.paths[i]) for i in io], index_old=io,
                             index_new=jn, data_key=p.key, group_name=name, compatibility=compat, pairs=pairs,
                             floor=floor_cmp, notes=notes)
