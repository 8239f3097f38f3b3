"""Params files: one YAML file describes one model's evaluation.

Each section of a params file is a typed, frozen dataclass (:class:`DataParams`,
:class:`PreprocessParams`, :class:`OutputsParams`, :class:`ReportParams`, :class:`RuntimeParams`)
holding its defaults and its rules; :class:`Params` holds one of each. Validation happens once, here,
before any work: the JSON Schema (:data:`SCHEMA`) checks each value's type and range, and each section
checks its keys against each other when it is built. Every error names the file, the key, what was
expected and what came, for example::

    params/cnn.yaml: preprocess.tta: expected one of none, flip, tencrop; got 'tencorp'
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import yaml

from ._jsonschema import jsonschema
from .errors import ParamsError
from .metrics.sweep import POLICIES

TTA_CHOICES = ("none", "flip", "tencrop")
LABEL_SOURCES = ("folder", "filename_prefix", "csv")
TASKS = ("classification", "verification")
RESIZE_MODES = ("shorter", "exact", "fit", "text_line")
PADS = ("center", "bottom_right")
INTERPOLATION_NAMES = ("nearest", "bilinear", "bicubic", "lanczos", "area")
RESIZE_BACKENDS = ("pil", "opencv")
DTYPE_NAMES = ("float32", "float16", "float64", "uint8")
DEVICES = ("auto", "cpu", "cuda")
CAM_METHODS = ("gradcam", "gradcam++", "scorecam", "eigencam", "xgradcam", "layercam", "hirescam")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

_size = {
    "oneOf": [
        {"type": "integer", "minimum": 1},
        {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
    ],
    "description": "an integer >= 1 or a list [height, width]",
}
_pixel = {"type": "number", "minimum": 0, "maximum": 255}
_floats = {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 4}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "model", "data"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                 "description": "letters, digits, '_', '.', '-' (it names the output folder)"},
        "model": {"type": "string", "minLength": 1},
        "task": {
            "oneOf": [
                {"enum": list(TASKS) + ["both"]},
                {"type": "array", "items": {"enum": list(TASKS)}, "minItems": 1, "uniqueItems": True},
            ],
            "description": "one of classification, verification, both, or a list of them",
        },
        "data": {
            "type": "object",
            "additionalProperties": False,
            "required": ["root"],
            "properties": {
                "root": {"type": "string", "minLength": 1},
                "labels": {"enum": list(LABEL_SOURCES)},
                "csv": {"type": "string", "minLength": 1},
                "classes": {"type": "array", "items": {"type": ["string", "integer"]}, "minItems": 2,
                            "uniqueItems": True},
                "pairs": {"type": "string", "minLength": 1},
                "extensions": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "allow_outside_root": {"type": "boolean"},
                "train_root": {"type": "string", "minLength": 1},
                "label_overrides": {"type": "string", "minLength": 1},
                "role_column": {"type": "string", "minLength": 1},
                "templates": {"type": "string", "minLength": 1},
                "template_pairs": {"type": "string", "minLength": 1},
                "gallery": {"type": "string", "minLength": 1},
                "probes": {"type": "string", "minLength": 1},
                "detector_scores": {"type": "string", "minLength": 1},
                "metadata": {"type": "string", "minLength": 1},
                "folder_slices": {"type": "object", "additionalProperties": {"type": "integer"},
                                  "description": "a mapping of slice name to folder index, e.g. {scanner: 0}"},
            },
        },
        "preprocess": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "resize": {"oneOf": [_size, {"type": "null"}],
                           "description": "an integer (shorter side), [height, width], or null"},
                "crop": {"oneOf": [_size, {"type": "null"}],
                         "description": "an integer, [height, width], or null"},
                "mean": _floats,
                "std": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0},
                        "minItems": 1, "maxItems": 4},
                "resize_mode": {"enum": list(RESIZE_MODES)},
                "interpolation": {"enum": list(INTERPOLATION_NAMES)},
                "pad": {"enum": list(PADS)},
                "pad_value": {"oneOf": [_pixel, {"type": "array", "items": _pixel, "minItems": 1, "maxItems": 3}],
                              "description": "a pixel value in 0..255, or one per channel"},
                "crop_pct": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "mode": {"enum": ["grayscale", "rgb"]},
                "channels": {"enum": ["rgb", "bgr"]},
                "scale": {"enum": ["unit", "byte"]},
                "dtype": {"enum": ["auto", *DTYPE_NAMES]},
                "layout": {"enum": ["auto", "nchw", "nhwc"]},
                "tta": {"enum": list(TTA_CHOICES)},
                "batch_size": {"type": "integer", "minimum": 1},
                "resize_backend": {"enum": list(RESIZE_BACKENDS)},
                "pad_value_normalized": {"oneOf": [{"type": "number"},
                                                   {"type": "array", "items": {"type": "number"}, "minItems": 1,
                                                    "maxItems": 3}],
                                         "description": "a value in the model's normalized input units, or one "
                                                        "per channel"},
            },
        },
        "outputs": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "scores": {"type": ["string", "null"]},
                "scores_are": {"enum": ["auto", "logits", "probabilities"]},
                "embedding": {"type": ["string", "null"]},
            },
        },
        "report": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "threshold_policy": {"enum": list(POLICIES)},
                "far_target": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "bootstrap": {"type": "integer", "minimum": 0},
                "gallery_size": {"type": "integer", "minimum": 0},
                "primary_metric": {"type": "string"},
                "top_k": {"type": "integer", "minimum": 1},
                "seed": {"type": "integer", "minimum": 0},
                "training_log": {"type": "string"},
                "cam_method": {"enum": list(CAM_METHODS)},
                "cam_layer": {"type": ["string", "null"]},
                "torch_model": {"type": ["string", "null"]},
                "torch_model_factory": {"type": ["string", "null"], "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                                        "description": "'package.module:callable' that builds the module"},
                "allow_pickle": {"type": "boolean"},
                "tsne_thumbnails": {"type": "integer", "minimum": 0},
                "tsne_perplexity": {"type": "number", "exclusiveMinimum": 0},
                "near_duplicate_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "near_duplicate_distance": {"type": "integer", "minimum": 0, "maximum": 64},
                "baseline": {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                             "description": "the name of another model evaluated on the same data"},
                "min_slice_size": {"type": "integer", "minimum": 1},
                "min_slice_effect": {"type": "number", "minimum": 0, "maximum": 1},
                "slice_intersections": {"type": "boolean"},
                "verification_group": {"type": ["string", "null"], "minLength": 1},
            },
        },
        "runtime": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "threads": {"type": "integer", "minimum": 0},
                "decode_workers": {"type": "integer", "minimum": 0},
                "max_cpu_temp": {"type": ["number", "null"]},
                "device": {"enum": list(DEVICES)},
                "providers": {"type": "array", "items": {"type": "string", "pattern": r"^[A-Za-z]+ExecutionProvider$"},
                              "minItems": 1, "uniqueItems": True,
                              "description": "a list of onnxruntime execution provider names, "
                                             "such as CUDAExecutionProvider"},
            },
        },
    },
}

S = TypeVar("S", bound="_Section")


def _key(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> tuple[list, str]:
    """Turn one jsonschema error into 'expected ...; got ...'."""
    got = error.instance
    schema = error.schema
    v = error.validator
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return list(error.absolute_path) + [missing], "expected this key to be present; got nothing"
    if v == "additionalProperties":
        allowed = ", ".join(sorted(schema.get("properties", {})))
        extra = sorted(set(got) - set(schema.get("properties", {})))
        return list(error.absolute_path) + [extra[0]], f"unknown key; expected one of {allowed}"
    if "description" in schema and v in ("oneOf", "anyOf", "pattern"):
        return list(error.absolute_path), f"expected {schema['description']}; got {got!r}"
    if v == "enum":
        return list(error.absolute_path), f"expected one of {', '.join(map(str, schema['enum']))}; got {got!r}"
    if v == "type":
        want = schema["type"]
        want = " or ".join(want) if isinstance(want, list) else want
        article = "an" if want[0] in "aeiou" else "a"
        return list(error.absolute_path), f"expected {article} {want}; got {got!r} ({type(got).__name__})"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        words = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
        return list(error.absolute_path), f"expected a number {words[v]} {error.validator_value}; got {got!r}"
    if v in ("minItems", "maxItems", "minLength"):
        return list(error.absolute_path), f"expected {v} {error.validator_value}; got {got!r}"
    return list(error.absolute_path), f"expected {error.message}; got {got!r}"


_VALIDATORS: dict[int, jsonschema.Draft202012Validator] = {}  # by id of SCHEMA or one of its sections


def _check_schema(schema: dict, instance: Any, *, where: str | None = None, prefix: tuple = ()) -> None:
    """Raise :class:`ParamsError` listing every way ``instance`` breaks ``schema`` (one line each)."""
    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        validator = _VALIDATORS[id(schema)] = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    lines: list[str] = []
    for err in errors:
        path, what = _describe(err)
        line = f"{_key([*prefix, *path])}: {what}"
        line = f"{where}: {line}" if where else line
        if line not in lines:
            lines.append(line)
    if lines:
        raise ParamsError("\n".join(lines))


def _listed(value: Any) -> Any:
    """Tuples as lists, recursively (what JSON and the schema take)."""
    if isinstance(value, (list, tuple)):
        return [_listed(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _tupled(value: Any) -> Any:
    """Lists as tuples, recursively (what a frozen dataclass holds)."""
    return tuple(_tupled(v) for v in value) if isinstance(value, (list, tuple)) else value


class _Section:
    """What every params section shares: built from a mapping, checked against its schema, back to a dict."""

    SECTION: ClassVar[str] = ""
    #: every subclass is a dataclass (set by the decorator; declared so the type checker knows)
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, _tupled(value))
        given = {k: v for k, v in self._plain().items() if v is not None}
        _check_schema(SCHEMA["properties"][self.SECTION], given, prefix=(self.SECTION,))
        self._check()

    def _check(self) -> None:
        """The section's rules between its keys (each section overrides it)."""

    def _fail(self, key: str, what: str) -> None:
        raise ParamsError(f"{self.SECTION}.{key}: {what}")

    def _plain(self) -> dict[str, Any]:
        return {f.name: _listed(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        """The section as plain JSON values (lists, strings, numbers, None)."""
        return self._plain()

    @classmethod
    def from_mapping(cls: type[S], mapping: Mapping[str, Any] | None, *, strict: bool = True) -> S:
        """The section from a mapping, every key not given taking its default.

        ``strict`` refuses keys the section does not have (a params file); otherwise they are left out
        (``run.json`` of another evallib version).
        """
        mapping = dict(mapping or {})
        names = {f.name for f in dataclasses.fields(cls)}
        if strict:
            _check_schema(SCHEMA["properties"][cls.SECTION], _listed(mapping), prefix=(cls.SECTION,))
        return cls(**{k: v for k, v in mapping.items() if k in names})

    @classmethod
    def coerce(cls: type[S], value: S | Mapping[str, Any] | None, *, error: type[Exception] = ParamsError) -> S:
        """``value`` itself when it is a section already, else the section built from the mapping.

        A mapping that breaks a rule raises ``error`` (a function that takes a ``preprocess`` mapping
        raises :class:`~evallib.errors.DataError`).
        """
        if isinstance(value, cls):
            return value
        try:
            try:  # a function called once per image with the same mapping builds its section once
                text = json.dumps(value, sort_keys=True)
            except (TypeError, ValueError):
                return cls.from_mapping(cast("Mapping[str, Any] | None", value))
            return _coerced(cls, text)  # type: ignore[arg-type]  # a class is hashable; type[S] hides it
        except ParamsError as exc:
            if error is ParamsError:
                raise
            raise error(str(exc)) from None


@functools.lru_cache(maxsize=64)
def _coerced(cls: type[S], text: str) -> S:
    return cls.from_mapping(json.loads(text))


@dataclass(frozen=True)
class DataParams(_Section):
    """The ``data`` section: where the images are and how they are labelled.

    Attributes
    ----------
    root : Path
        The folder of images (resolved against the params file's folder).
    labels : {"folder", "filename_prefix", "csv"}
    csv : Path or None
        The manifest of ``path,label`` rows; required when ``labels`` is ``"csv"``.
    classes : tuple of str or None
        Class names in the model's score-column order.
    pairs : Path or None
        An LFW-style pair list for verification.
    extensions : tuple of str
        File extensions listed, lower case with their dot.
    allow_outside_root : bool
        Let the manifest list files outside ``root``.
    train_root : Path or None
        The training images (any layout, searched recursively): evaluation images whose content also
        appears there are listed as leakage on the label review page (exact copies by content hash, near
        copies by perceptual hash).
    label_overrides : Path or None
        A reviewer's corrections: a CSV with ``path`` and ``label`` columns (paths relative to ``root``;
        the label review's ``suspected_labels.csv`` with its ``image`` and ``suggested_label`` columns is
        taken too). They replace the listed labels before any metric; ``run.json`` ``label_overrides``
        records the file's sha256 and how many labels it set, and the reports say so
        (:func:`evallib.data.overrides.read_label_overrides`).
    role_column : str or None
        1:N identification: the ``data.csv`` column giving each image's role, ``gallery`` or ``probe``.
    templates : Path or None
        IJB templates: a ``*_face_tid_mid.txt`` file (``image_name template_id media_id`` per line; image
        names relative to ``root``, or unique file names).
    template_pairs : Path or None
        1:1 template verification: a ``*_template_pair_label.txt`` file (needs ``templates``).
    gallery, probes : Path or None
        1:N template identification: the gallery and probe CSVs with ``TEMPLATE_ID`` and ``SUBJECT_ID``
        columns (both, with ``templates``).
    detector_scores : Path or None
        A ``*_name_5pts_score.txt`` file whose detector scores weight each image when templates are pooled.
    metadata : Path or None
        A CSV with a ``path`` column (relative to ``root``) and one column per slicing column (camera,
        site...), joined to the images by path (:func:`evallib.data.slicing.read_metadata`).
    folder_slices : dict of str to int or None
        Slicing columns from folders of the image paths: name to folder index, 0 the top folder, -1 the
        folder holding the file (:func:`evallib.data.slicing.slices_from_paths`), e.g. ``{"scanner": 0}``.
    """

    SECTION: ClassVar[str] = "data"

    root: Path
    labels: str = "folder"
    csv: Path | None = None
    classes: tuple | None = None
    pairs: Path | None = None
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    allow_outside_root: bool = False
    train_root: Path | None = None
    label_overrides: Path | None = None
    role_column: str | None = None
    templates: Path | None = None
    template_pairs: Path | None = None
    gallery: Path | None = None
    probes: Path | None = None
    detector_scores: Path | None = None
    metadata: Path | None = None
    folder_slices: dict | None = None

    _PROTOCOL_FILES: ClassVar[tuple[str, ...]] = ("templates", "template_pairs", "gallery", "probes",
                                                   "detector_scores")

    def __post_init__(self) -> None:
        for key in ("root", "csv", "pairs", "metadata", "train_root", "label_overrides", *self._PROTOCOL_FILES):
            value = getattr(self, key)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, key, Path(value))
        object.__setattr__(self, "extensions", tuple(
            e.lower() if e.startswith(".") else "." + e.lower() for e in self.extensions))
        super().__post_init__()

    def _check(self) -> None:
        if self.labels == "csv" and not self.csv:
            self._fail("csv", "expected a manifest path when data.labels is 'csv'; got nothing")
        if self.role_column and not self.csv:
            self._fail("role_column", "expected data.csv, the manifest that holds the column; got no data.csv")
        for key in ("template_pairs", "gallery", "probes", "detector_scores"):
            if getattr(self, key) and not self.templates:
                self._fail(key, "expected data.templates (a *_face_tid_mid.txt file) with it; got no data.templates")
        if bool(self.gallery) != bool(self.probes):
            self._fail("probes" if self.gallery else "gallery",
                       "expected data.gallery and data.probes together (1:N template identification); got one of them")


@dataclass(frozen=True)
class PreprocessParams(_Section):
    """The ``preprocess`` section: how an image becomes the model's input (:func:`evallib.data.preprocess`).

    Attributes
    ----------
    resize : int or (int, int) or None
        The shorter side (an integer) or ``(height, width)``.
    resize_mode : {"shorter", "exact", "fit", "text_line"} or None
        Filled in from ``resize`` when not given: ``shorter`` for an integer, ``exact`` for a pair.
        ``text_line`` (a pair ``[height, width]``): the height becomes ``height``, the width
        ``ceil(height * aspect)`` capped at ``width``, and the rest of the width is padded on the right
        after normalization with ``pad_value_normalized`` (PaddleOCR's ``resize_norm_img``).
    interpolation : {"nearest", "bilinear", "bicubic", "lanczos", "area"}
        ``area`` is OpenCV's ``INTER_AREA`` (``resize_backend: opencv`` only).
    pad : {"center", "bottom_right"}
        Where a ``fit`` image sits in its box.
    pad_value : float or tuple of float
        In 0..255 pixel units, one value or one per channel.
    crop : int or (int, int) or None
    crop_pct : float or None
        timm's: resize the shorter side to ``floor(crop / crop_pct)``, then center-crop.
    mean, std : tuple of float
        One value or one per channel, in the model's channel order.
    mode : {"rgb", "grayscale"}
    channels : {"rgb", "bgr"}
    scale : {"unit", "byte"}
        Pixels in 0..1 or in 0..255 before ``(x - mean) / std``.
    dtype : {"auto", "float32", "float16", "float64", "uint8"}
    layout : {"auto", "nchw", "nhwc"}
    tta : {"none", "flip", "tencrop"}
    batch_size : int
    resize_backend : {"pil", "opencv"}
        ``pil``: Pillow's filters, as torchvision on PIL images (antialiased when shrinking);
        ``opencv``: ``cv2.resize`` with the ``INTER_*`` flag of ``interpolation``, as OpenCV pipelines
        resize (needs ``opencv-python-headless``).
    pad_value_normalized : float or tuple of float
        ``text_line`` only: the pad value in the model's input units after ``(x / s - mean) / std``
        (PaddleOCR pads with 0 there), one value or one per channel.
    """

    SECTION: ClassVar[str] = "preprocess"

    resize: int | tuple[int, int] | None = None
    resize_mode: str | None = None
    interpolation: str = "bilinear"
    pad: str = "center"
    pad_value: float | tuple[float, ...] = 0
    crop: int | tuple[int, int] | None = None
    crop_pct: float | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    mode: str = "rgb"
    channels: str = "rgb"
    scale: str = "unit"
    dtype: str = "auto"
    layout: str = "auto"
    tta: str = "none"
    batch_size: int = 64
    resize_backend: str = "pil"
    pad_value_normalized: float | tuple[float, ...] = 0

    @property
    def pad_values(self) -> tuple[float, ...]:
        """``pad_value`` as a tuple (one value, or one per channel)."""
        return tuple(self.pad_value) if isinstance(self.pad_value, tuple) else (self.pad_value,)

    def _check(self) -> None:
        fail = self._fail
        for key in ("mean", "std"):
            if len(getattr(self, key)) not in (1, 3, 4):
                fail(key, f"expected 1 value or one per channel (3); got {len(getattr(self, key))} values")
        if self.channels == "bgr" and self.mode == "grayscale":
            fail("channels", "expected rgb with preprocess.mode grayscale (one channel has no order); got 'bgr'")
        resize, crop = _listed(self.resize), _listed(self.crop)
        if self.crop_pct is not None:
            if crop is None:
                fail("crop_pct", "expected preprocess.crop with it (the image is resized to floor(crop / crop_pct), "
                                 "then center-cropped to crop); got no crop")
            if resize is not None:
                fail("crop_pct", f"expected no preprocess.resize with it (crop_pct sets the resize to "
                                 f"floor(crop / crop_pct)); got both crop_pct {self.crop_pct} and resize {resize}")
            if not isinstance(crop, int) and crop[0] != crop[1]:
                fail("crop_pct", f"expected a square preprocess.crop with it (an integer or [n, n]); got crop {crop}")
        if self.tta == "tencrop" and crop is None and self.resize_mode != "text_line":
            fail("tta", "expected preprocess.crop with tta 'tencrop' (the ten crops need a crop size); got no crop")
        if self.resize_mode is not None and resize is None:
            fail("resize_mode", f"expected preprocess.resize with it; got resize_mode {self.resize_mode!r} "
                                f"and no resize")
        if self.resize_mode == "shorter" and not isinstance(resize, int):
            fail("resize_mode",
                 f"expected an integer preprocess.resize with resize_mode 'shorter'; got resize {resize}")
        if resize is not None and self.resize_mode is None:
            object.__setattr__(self, "resize_mode", "shorter" if isinstance(resize, int) else "exact")
        for key, default in (("pad", "center"), ("pad_value", 0)):
            if getattr(self, key) != default and self.resize_mode != "fit":
                fail(key, f"expected resize_mode 'fit' with it (it pads the fitted image to resize); "
                          f"got resize_mode {self.resize_mode!r}")
        self._check_text_line_and_backend(resize, crop)
        channels = 1 if self.mode == "grayscale" else 3
        if len(self.pad_values) not in (1, channels):
            fail("pad_value", f"expected 1 value or one per channel ({channels}); got {len(self.pad_values)} values")
        if self.dtype == "uint8":
            if not takes_raw_pixels(self):
                fail("dtype", f"uint8 input takes the raw 0..255 pixels: expected mean [0] and std [1]; "
                              f"got mean {list(self.mean)}, std {list(self.std)}")
            if not whole_pad_values(self):
                fail("pad_value", f"expected whole pixel values with dtype uint8; got {_listed(self.pad_value)}")


    def _check_text_line_and_backend(self, resize, crop) -> None:
        fail = self._fail
        pads = self.pad_value_normalized
        pads = tuple(pads) if isinstance(pads, tuple) else (pads,)
        if self.resize_mode == "text_line":
            if isinstance(resize, int):
                fail("resize", f"expected [height, width] with resize_mode 'text_line' (the fixed height and the "
                               f"widest width); got {resize}")
            if crop is not None or self.crop_pct is not None or self.tta == "tencrop":
                given = [f"{k} {_listed(getattr(self, k))!r}" for k in ("crop", "crop_pct", "tta")
                         if getattr(self, k) not in (None, "none", "flip")]
                fail("resize_mode", "expected no preprocess.crop, crop_pct or tta tencrop with 'text_line' (the "
                                    "line is padded to [height, width], not cropped); got " + ", ".join(given))
        elif any(v != 0 for v in pads):
            fail("pad_value_normalized", f"expected resize_mode 'text_line' with it (it pads the normalized line on "
                                         f"the right); got resize_mode {self.resize_mode!r}")
        channels = 1 if self.mode == "grayscale" else 3
        if len(pads) not in (1, channels):
            fail("pad_value_normalized", f"expected 1 value or one per channel ({channels}); got {len(pads)} values")
        if self.dtype == "uint8" and any(v != round(v) or not 0 <= v <= 255 for v in pads):
            fail("pad_value_normalized", f"expected whole pixel values in 0..255 with dtype uint8 (the input is "
                                         f"the raw pixels); got {_listed(self.pad_value_normalized)}")
        if self.interpolation == "area" and self.resize_backend != "opencv":
            fail("interpolation", f"expected resize_backend 'opencv' with 'area' (OpenCV's INTER_AREA; Pillow has "
                                  f"no such filter); got resize_backend {self.resize_backend!r}")


def takes_raw_pixels(pre: PreprocessParams) -> bool:
    """Whether ``pre`` leaves pixels as they are (mean 0, std 1), as a uint8 model input needs."""
    return all(m == 0 for m in pre.mean) and all(s == 1 for s in pre.std)


def whole_pad_values(pre: PreprocessParams) -> bool:
    """Whether every pad value is a whole pixel value, as a uint8 model input needs."""
    return all(v == round(v) for v in pre.pad_values)


@dataclass(frozen=True)
class OutputsParams(_Section):
    """The ``outputs`` section: which ONNX outputs hold the class scores and the embedding.

    Attributes
    ----------
    scores : str or None
    scores_are : {"auto", "logits", "probabilities"}
        ``auto`` decides from the scores themselves.
    embedding : str or None
    """

    SECTION: ClassVar[str] = "outputs"

    scores: str | None = "logits"
    scores_are: str = "auto"
    embedding: str | None = None


@dataclass(frozen=True)
class ReportParams(_Section):
    """The ``report`` section: the metrics' options and what the report shows.

    Attributes
    ----------
    threshold_policy : {"max_f1", "max_accuracy", "youden", "eer", "far"}
    far_target : float
    bootstrap : int
        Bootstrap resamples of the intervals (0: none).
    gallery_size : int
    primary_metric : str or None
        Default: macro F1 for classification, AUC for verification.
    top_k : int
    seed : int
    training_log : str or None
    cam_method, cam_layer, torch_model, torch_model_factory, allow_pickle
        Grad-CAM's method, layer and torch fallback.
    tsne_thumbnails : int
    tsne_perplexity : float
    near_duplicate_distance : int
        Bits (of 64) at or below which the perceptual hashes of two images make them near duplicates on
        the label review page (:func:`evallib.metrics.duplicates.perceptual_duplicates`).
    near_duplicate_threshold : float
        Cosine similarity of the embeddings that confirms a pair whose perceptual hashes are up to
        ``near_duplicate_distance + 2`` bits apart: both signals must agree (embeddings alone join images
        of a class, not copies: on the demo digits 1,350 to 101,294 pairs reach 0.95).
    baseline : str or None
        Another model's name: the report shows what changed since it (negative flips), when both
        were evaluated on the same data.
    min_slice_size : int
        Slices with fewer images are shown but not tested (:func:`evallib.metrics.slices.metrics_by_slice`).
    min_slice_effect : float
        A weak slice's accuracy is at least this much below the rest's (and q < 0.05).
    slice_intersections : bool
        Also every two-way intersection of slices.
    verification_group : str or None
        The metadata column that gives each identity's group for verification by group; default the
        first metadata column that holds one value per identity.
    """

    SECTION: ClassVar[str] = "report"

    threshold_policy: str = "max_accuracy"
    far_target: float = 1e-3
    bootstrap: int = 1000
    gallery_size: int = 8
    primary_metric: str | None = None
    top_k: int = 5
    seed: int = 0
    training_log: str | None = None
    cam_method: str = "gradcam"
    cam_layer: str | None = None
    torch_model: str | None = None
    torch_model_factory: str | None = None
    allow_pickle: bool = False
    tsne_thumbnails: int = 100
    tsne_perplexity: float = 30.0
    near_duplicate_threshold: float = 0.99
    near_duplicate_distance: int = 3
    # the model this one is compared with, image by image (a "What changed since <baseline>" view)
    baseline: str | None = None
    min_slice_size: int = 30
    min_slice_effect: float = 0.02
    slice_intersections: bool = True
    verification_group: str | None = None


@dataclass(frozen=True)
class RuntimeParams(_Section):
    """The ``runtime`` section: how the work runs, which never changes a result.

    Attributes
    ----------
    threads : int
        onnxruntime intra-op threads (0: one per core).
    decode_workers : int
        Threads that decode and preprocess images while the model runs (0: one per core).
    max_cpu_temp : float or None
        Pause while the CPU is hotter than this (degrees C).
    device : {"auto", "cpu", "cuda"}
        Where the model runs. ``auto`` takes onnxruntime's CUDA execution provider when a GPU is
        usable and the CPU otherwise (``run.json`` ``inference.device`` says which, and why);
        ``cuda`` refuses to run without a usable GPU.
    providers : tuple of str or None
        onnxruntime execution providers to ask for, in order of preference (for example
        ``[TensorrtExecutionProvider, CUDAExecutionProvider]``); the CPU provider is always last.
        Not with ``device: cpu``; with ``device: cuda`` the list holds ``CUDAExecutionProvider``.
    """

    SECTION: ClassVar[str] = "runtime"

    threads: int = 0
    decode_workers: int = 0
    max_cpu_temp: float | None = None
    device: str = "auto"
    providers: tuple[str, ...] | None = None

    def _check(self) -> None:
        if self.providers is not None and self.device == "cpu":
            self._fail("providers", f"expected no list with runtime.device cpu (it runs on CPUExecutionProvider "
                                    f"only); got {list(self.providers)}")
        if self.providers is not None and self.device == "cuda" and "CUDAExecutionProvider" not in self.providers:
            self._fail("providers", f"expected CUDAExecutionProvider in the list with runtime.device cuda; "
                                    f"got {list(self.providers)}")


_SECTIONS: dict[str, type[_Section]] = {"data": DataParams, "preprocess": PreprocessParams, "outputs": OutputsParams,
                                         "report": ReportParams, "runtime": RuntimeParams}


def _defaults(cls: type[_Section]) -> dict[str, Any]:
    return {f.name: _listed(f.default) for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


#: The default of every key, as the section dataclasses give them (``data.root`` has none).
DEFAULTS: dict[str, Any] = {"task": "classification", **{name: _defaults(cls) for name, cls in _SECTIONS.items()}}


@dataclass(frozen=True)
class Params:
    """A validated params file, defaults filled in and paths resolved against its folder.

    Each section is a frozen dataclass: ``params.preprocess.resize``, ``params.report.bootstrap``.
    """

    name: str
    model: Path
    tasks: tuple[str, ...]
    data: DataParams
    preprocess: PreprocessParams = field(default_factory=PreprocessParams)
    outputs: OutputsParams = field(default_factory=OutputsParams)
    report: ReportParams = field(default_factory=ReportParams)
    runtime: RuntimeParams = field(default_factory=RuntimeParams)
    source: Path | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if "classification" in self.tasks and not self.outputs.scores:
            raise ParamsError(f"outputs.scores: expected the name of the ONNX output with class scores "
                              f"for task classification; got {self.outputs.scores!r}")
        if "verification" in self.tasks and not self.outputs.embedding:
            raise ParamsError(f"outputs.embedding: expected the name of the ONNX output with the embedding "
                              f"for task verification; got {self.outputs.embedding!r}")

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain JSON values (``run.json`` ``params``)."""
        return {"name": self.name, "model": str(self.model), "task": list(self.tasks),
                **{name: getattr(self, name).to_dict() for name in _SECTIONS},
                "source": str(self.source) if self.source else None}

    def settings(self) -> dict[str, Any]:
        """Every setting that decides what a run computes: :meth:`to_dict` but ``runtime`` and ``source``."""
        return {k: v for k, v in self.to_dict().items() if k not in ("runtime", "source")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Params:
        """The params as :meth:`to_dict` gave them (``run.json`` holds them).

        Keys this version does not know are left out and keys it added take their defaults.
        """
        sections: dict[str, Any] = {name: kind.from_mapping(d.get(name), strict=False)
                                    for name, kind in _SECTIONS.items() if name != "data"}
        return cls(name=d["name"], model=Path(d["model"]), tasks=tuple(d["task"]),
                   data=DataParams.from_mapping(d["data"], strict=False), **sections,
                   source=Path(d["source"]) if d.get("source") else None)


def parse_params(raw: Any, *, source: str | Path | None = None, base_dir: str | Path | None = None) -> Params:
    """Validate a params mapping and return :class:`Params`.

    Parameters
    ----------
    raw : dict
        The mapping as read from YAML.
    source : str or Path, optional
        File the mapping came from; named in every error message.
    base_dir : str or Path, optional
        Folder that relative paths resolve against (default: the source's folder, else cwd).

    Raises
    ------
    ParamsError
        Naming the file, the key, what was expected and what came; every schema error at once.
    """
    where = str(source) if source else "params"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: (top level): expected a mapping of keys; got {type(raw).__name__}")
    _check_schema(SCHEMA, raw, where=where)
    base = Path(base_dir) if base_dir else (Path(source).parent if source else Path.cwd())

    def resolve(value: str | Path) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path).resolve()

    task = raw.get("task", DEFAULTS["task"])
    tasks = TASKS if task == "both" else ((task,) if isinstance(task, str) else tuple(task))
    data = dict(raw["data"])
    for key in ("root", "csv", "pairs", "metadata", "train_root", "label_overrides", *DataParams._PROTOCOL_FILES):
        if data.get(key):
            data[key] = resolve(data[key])
    if data.get("train_root") and not Path(data["train_root"]).is_dir():
        raise ParamsError(f"{where}: data.train_root: expected a folder of training images; got "
                          f"{data['train_root']} (no such folder)")
    report = dict(raw.get("report") or {})
    for key in ("training_log", "torch_model"):
        if report.get(key):
            report[key] = str(resolve(report[key]))
    try:  # the values are valid: what is checked now are the rules between keys
        return Params(name=raw["name"], model=resolve(raw["model"]), tasks=tasks, data=DataParams(**data),
                      preprocess=PreprocessParams(**(raw.get("preprocess") or {})),
                      outputs=OutputsParams(**(raw.get("outputs") or {})), report=ReportParams(**report),
                      runtime=RuntimeParams(**(raw.get("runtime") or {})),
                      source=Path(source).resolve() if source else None, raw=raw)
    except ParamsError as exc:
        raise ParamsError("\n".join(f"{where}: {line}" for line in str(exc).splitlines())) from None


def load_params(path: str | Path) -> Params:
    """Read and validate one params YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: expected a params YAML file; got no such file") from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ParamsError(f"{path}: expected valid YAML; got a syntax error{at}: "
                          f"{getattr(exc, 'problem', exc)}") from None
    return parse_params(raw, source=path)


def find_params(paths):
    """Expand files and folders (``*.yaml``/``*.yml`` inside) into a sorted list of files."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not found:
                raise ParamsError(f"{p}: expected a folder with .yaml params files; got none")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise ParamsError(f"{p}: expected a params file or folder; got no such path")
    return out
