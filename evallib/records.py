"""Typed records passed between the pipeline's stages and written to a model's output folder.

* :class:`Predictions`: a model's outputs for the images that decoded (``predictions.npz``);
* :class:`RunFacts` and :class:`FailedRun`: what a run did, or why it failed (``run.json``);
* :class:`MetricsRecord`: the headline metrics and their details (``metrics.json``).

Each file carries a format version (``format_version``); ``docs/schemas/run.schema.json`` and
``docs/schemas/metrics.schema.json`` describe the two JSON files. A dict given to a writer is read
into its record first, so a file is always written from a record: a missing or unknown key is an
error before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

PREDICTIONS_FORMAT_VERSION = 1
RUN_FORMAT_VERSION = 1
METRICS_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------- predictions

@dataclass(frozen=True)
class Predictions:
    """A model's outputs for the images that decoded, as inference makes them and as ``predictions.npz`` holds them.

    Inference (:func:`evallib.inference.predict`) fills the model's outputs and ``kept``, ``failed``
    and ``seconds``; a run adds what it knows of the data (``paths``, ``labels``, ``classes``,
    ``root``, ``skipped``, ``cache_key``, ``data_fingerprint``, ``checks``) and writes it
    (:func:`evallib.outputs.write_predictions`); :func:`evallib.outputs.load_predictions` reads it
    back into this same type.

    Attributes
    ----------
    kept : ndarray of shape (n_samples,) or None
        Rows of the dataset that were evaluated (inference only).
    scores : ndarray of shape (n_samples, n_classes) or None
        Logits when ``scores_are == "logits"`` (no test-time augmentation), else view-averaged
        probabilities.
    scores_are : {"logits", "probabilities"} or None
    embeddings : ndarray of shape (n_samples, dim) or None
        View-averaged, L2-normalized.
    scores_center, embeddings_center : ndarray or None
        The center view alone, when test-time augmentation ran.
    failed : list of dict
        Files left out by inference, each ``{"path", "reason"}`` (inference only).
    seconds : float or None
        Inference time (inference only).
    file_hashes : list of str
        Content hash of each evaluated image (:func:`evallib._keys.content_hash`).
    raw_scores_are : {"logits", "probabilities"} or None
        The type of the model's own score output (and of ``scores_center``).
    score_type : dict or None
        How it was decided: ``{"declared", "detected", "used", "evidence"}``.
    paths : list of str
        Evaluated files, relative to ``root``.
    labels : ndarray of shape (n_samples,) or None
        Class index of each evaluated image.
    classes : list of str
    root : str or None
    skipped : list of dict
        Every file left out (listing and inference), each ``{"path", "reason"}``.
    cache_key : str or None
        The predictions key they were made under (:func:`evallib._keys.predictions_key`).
    data_fingerprint : str or None
        :func:`evallib._keys.data_fingerprint` of the evaluated images.
    checks : dict or None
        The score-type and class-order findings.
    image_properties : dict of str to ndarray of shape (n_samples,) or None
        Properties of each decoded image, measured before resizing
        (:func:`evallib.data.image_properties.properties_table`: brightness, contrast, blur, size,
        aspect ratio and entropy), for slicing by them and for the data-quality checks.
    label_overrides : dict or None
        The corrections ``labels`` hold (``{"file", "sha256", "rows", "changed"}``;
        :meth:`evallib.data.overrides.LabelOverrides.facts`), None without any.

    Notes
    -----
    For code written against the dicts of earlier versions, ``pred["scores"]``, ``"scores" in pred``
    and ``pred.get("scores_center")`` read the attributes (a field that is None counts as absent).
    """

    kept: np.ndarray | None = None
    scores: np.ndarray | None = None
    scores_are: str | None = None
    embeddings: np.ndarray | None = None
    scores_center: np.ndarray | None = None
    embeddings_center: np.ndarray | None = None
    failed: list = field(default_factory=list)
    seconds: float | None = None
    file_hashes: list = field(default_factory=list)
    raw_scores_are: str | None = None
    score_type: dict | None = None
    paths: list = field(default_factory=list)
    labels: np.ndarray | None = None
    classes: list = field(default_factory=list)
    root: str | None = None
    skipped: list = field(default_factory=list)
    cache_key: str | None = None
    data_fingerprint: str | None = None
    checks: dict | None = None
    image_properties: dict | None = None
    label_overrides: dict | None = None

    _ARRAYS: ClassVar[tuple[str, ...]] = ("scores", "embeddings", "scores_center", "embeddings_center")
    _TEXT: ClassVar[tuple[str, ...]] = ("scores_are", "raw_scores_are", "cache_key", "root", "data_fingerprint")
    _LISTS: ClassVar[tuple[str, ...]] = ("paths", "classes", "file_hashes")

    # ------------------------------------------------------------ the mapping view of earlier versions
    def _value(self, key: str) -> Any:
        if key == "skipped_paths":
            return [s["path"] for s in self.skipped]
        if key == "skipped_reasons":
            return [s["reason"] for s in self.skipped]
        if key in {f.name for f in dataclasses.fields(self)}:
            return getattr(self, key)
        raise KeyError(key)

    def __getitem__(self, key: str) -> Any:
        value = self._value(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        try:
            return self._value(str(key)) is not None
        except KeyError:
            return False

    def get(self, key: str, default: Any = None) -> Any:
        """The attribute ``key``, or ``default`` when it is None or no such attribute."""
        return self[key] if key in self else default

    def keys(self) -> Iterator[str]:
        """The names of the attributes that are not None."""
        return iter([f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None])

    # ------------------------------------------------------------ on disk
    def to_arrays(self) -> dict[str, np.ndarray]:
        """What ``predictions.npz`` holds: arrays and strings only (read back without pickle)."""
        out = {
            "format_version": np.array(PREDICTIONS_FORMAT_VERSION),
            "paths": np.array(list(self.paths), dtype=str),
            "labels": np.asarray(self.labels if self.labels is not None else [], dtype=np.int64),
            "classes": np.array(list(self.classes), dtype=str),
            "skipped_paths": np.array([s["path"] for s in self.skipped], dtype=str),
            "skipped_reasons": np.array([s["reason"] for s in self.skipped], dtype=str),
            "file_hashes": np.array(list(self.file_hashes), dtype=str),
        }
        for name in self._TEXT:
            if getattr(self, name) is not None:
                out[name] = np.array(str(getattr(self, name)))
        for name in self._ARRAYS:
            if getattr(self, name) is not None:
                out[name] = np.asarray(getattr(self, name))
        if self.checks is not None:
            out["checks"] = np.array(json.dumps(self.checks))
        if self.label_overrides is not None:
            out["label_overrides"] = np.array(json.dumps(self.label_overrides))
        if self.image_properties is not None:
            names = list(self.image_properties)
            out["image_property_names"] = np.array(names, dtype=str)
            out["image_properties"] = np.stack([np.asarray(self.image_properties[k], dtype=np.float64)
                                                for k in names], axis=1).reshape(-1, len(names))
        return out

    @classmethod
    def from_arrays(cls, z: Mapping[str, Any]) -> Predictions:
        """The predictions from the arrays of ``predictions.npz`` (:meth:`to_arrays`); other keys are left out."""
        kw: dict[str, Any] = {}
        for name in cls._LISTS:
            if name in z:
                kw[name] = np.asarray(z[name]).tolist()
        for name in cls._TEXT:
            if name in z:
                kw[name] = str(z[name])
        for name in cls._ARRAYS:
            if name in z:
                kw[name] = np.asarray(z[name])
        if "labels" in z:
            kw["labels"] = np.asarray(z["labels"])
        if "skipped_paths" in z:
            kw["skipped"] = [{"path": p, "reason": r} for p, r in zip(np.asarray(z["skipped_paths"]).tolist(),
                                                                     np.asarray(z["skipped_reasons"]).tolist())]
        if "checks" in z:
            kw["checks"] = json.loads(str(z["checks"]))
            kw["score_type"] = kw["checks"].get("score_type")
        if "label_overrides" in z:
            kw["label_overrides"] = json.loads(str(z["label_overrides"]))
        if "image_properties" in z:
            values = np.asarray(z["image_properties"], dtype=np.float64)
            kw["image_properties"] = {str(k): values[:, j] for j, k in
                                      enumerate(np.asarray(z["image_property_names"]).tolist())}
        return cls(**kw)


# --------------------------------------------------------------------------------------------- run.json

class _Record:
    """A JSON record: read from a dict with every key checked, written back as one."""

    #: fields left out of the file while they are None (they are added by later steps)
    _OPTIONAL: ClassVar[tuple[str, ...]] = ()
    #: every subclass is a dataclass (set by the decorator; declared so the type checker knows)
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The record as the JSON file holds it."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in self._OPTIONAL:
                continue
            out[f.name] = value.to_dict() if isinstance(value, _Record) else value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        """The record from a dict as :meth:`to_dict` gives it (``format_version`` may be absent: files of
        earlier versions).

        Raises
        ------
        ValueError
            Naming the keys that are missing or unknown.
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"{cls.__name__}: expected a mapping; got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        missing = sorted(n for n, f in fields.items() if n not in d and f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
        if unknown or missing:
            raise ValueError(f"{cls.__name__}: expected the keys {', '.join(fields)}; got"
                             + (f" unknown keys {unknown}" if unknown else "")
                             + (" and" if unknown and missing else "")
                             + (f" no {', '.join(missing)}" if missing else ""))
        kw = dict(d)
        for name, kind in getattr(cls, "_NESTED", {}).items():
            if isinstance(kw.get(name), Mapping):
                kw[name] = kind.from_dict(kw[name])
        kw.pop("format_version", None)
        return cls(**kw)


@dataclass(frozen=True)
class DatasetFacts(_Record):
    """``run.json`` ``dataset``: the data as listed."""

    root: str
    images: int
    classes: list
    class_order: str
    counts: dict
    skipped: list


@dataclass(frozen=True)
class InferenceFacts(_Record):
    """``run.json`` ``inference``: how the predictions were made, or that they were reused."""

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("seconds", "images", "images_per_second", "tta", "device", "providers",
                                            "device_note")

    cached: bool
    seconds: float | None = None
    images: int | None = None
    images_per_second: float | None = None
    tta: str | None = None
    device: str | None = None  # where the model ran: cuda, cpu (evallib.inference.DeviceChoice)
    providers: list | None = None  # onnxruntime's execution providers of the session, in order
    device_note: str | None = None  # why runtime.device auto ran on the CPU


@dataclass(frozen=True)
class RunFacts(_Record):
    """``run.json`` of a successful run.

    The metrics step adds ``metrics_key``, ``metrics_cached`` and ``metrics_seconds``; the report step
    ``report_key``, ``report_cached`` and ``report_seconds`` (:func:`dataclasses.replace`). ``runtime``
    records the threads the run used (cores, the job's share, onnxruntime's and the verification pass's);
    ``label_overrides`` the corrections applied to the labels (absent without any).
    """

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("metrics_key", "metrics_cached", "metrics_seconds", "report_key",
                                            "report_cached", "report_seconds", "runtime", "label_overrides")
    _NESTED: ClassVar[dict] = {"dataset": DatasetFacts, "inference": InferenceFacts}

    name: str
    evallib: str
    params: dict
    model: dict
    dataset: DatasetFacts
    data_fingerprint: str
    inference: InferenceFacts
    score_type: dict | None
    class_order_check: dict | None
    warnings: list
    predictions_key: str
    seconds_total: float
    metrics_key: str | None = None
    metrics_cached: bool | None = None
    metrics_seconds: float | None = None
    report_key: str | None = None
    report_cached: bool | None = None
    report_seconds: float | None = None
    runtime: dict | None = None
    label_overrides: dict | None = None
    status: str = "ok"
    format_version: int = RUN_FORMAT_VERSION


@dataclass(frozen=True)
class FailedRun(_Record):
    """``run.json`` of a failed run: the error, and whether evallib expected it (a bad input)."""

    name: str
    params_file: str
    error: str
    expected: bool
    traceback: str
    status: str = "failed"
    format_version: int = RUN_FORMAT_VERSION


def run_record(facts: RunFacts | FailedRun | Mapping[str, Any]) -> RunFacts | FailedRun:
    """The record of run facts given as a record or as a dict (by its ``status``)."""
    if isinstance(facts, (RunFacts, FailedRun)):
        return facts
    return (RunFacts if facts.get("status", "ok") == "ok" else FailedRun).from_dict(facts)


# --------------------------------------------------------------------------------------------- metrics.json

@dataclass(frozen=True)
class MetricsRecord(_Record):
    """``metrics.json``: the headline metrics with their intervals, and each task's details.

    ``classification``, ``verification``, ``pairs``, ``tsne`` and ``slices`` are present when computed;
    ``run`` is the run facts the metrics were computed from.
    """

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("classification", "verification", "pairs", "identification", "tsne",
                                            "slices")

    name: str
    task: list
    headline: dict
    primary_metric: str
    images: int
    left_out: int
    predictions_key: str | None
    run: dict
    warnings: list
    classification: dict | None = None
    verification: dict | None = None
    pairs: dict | None = None
    identification: dict | None = None
    tsne: dict | None = None
    slices: dict | None = None
    metrics_key: str | None = None
    status: str = "ok"
    format_version: int = METRICS_FORMAT_VERSION
