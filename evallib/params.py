"""Params files: one YAML file describes one model's evaluation.

Validation happens once, here, before any work. Every error names the file, the key,
what was expected and what came, for example::

    params/cnn.yaml: preprocess.tta: expected one of none, flip, tencrop; got 'tencorp'
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from .data import DTYPES, INTERPOLATIONS, PADS, RESIZE_MODES
from .errors import ParamsError

TTA_CHOICES = ("none", "flip", "tencrop")
LABEL_SOURCES = ("folder", "filename_prefix", "csv")
TASKS = ("classification", "verification")
POLICIES = ("max_f1", "max_accuracy", "youden", "eer", "far")

_size = {
    "oneOf": [
        {"type": "integer", "minimum": 1},
        {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
    ],
    "description": "an integer >= 1 or a list [height, width]",
}
_pixel = {"type": "number", "minimum": 0, "maximum": 255}
_floats = {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 4}

SCHEMA = {
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
                "interpolation": {"enum": list(INTERPOLATIONS)},
                "pad": {"enum": list(PADS)},
                "pad_value": {"oneOf": [_pixel, {"type": "array", "items": _pixel, "minItems": 1, "maxItems": 3}],
                              "description": "a pixel value in 0..255, or one per channel"},
                "crop_pct": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "mode": {"enum": ["grayscale", "rgb"]},
                "channels": {"enum": ["rgb", "bgr"]},
                "scale": {"enum": ["unit", "byte"]},
                "dtype": {"enum": ["auto", *DTYPES]},
                "layout": {"enum": ["auto", "nchw", "nhwc"]},
                "tta": {"enum": list(TTA_CHOICES)},
                "batch_size": {"type": "integer", "minimum": 1},
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
                "cam_method": {"enum": ["gradcam", "gradcam++", "scorecam", "eigencam", "xgradcam", "layercam",
                                        "hirescam"]},
                "cam_layer": {"type": ["string", "null"]},
                "torch_model": {"type": ["string", "null"]},
                "torch_model_factory": {"type": ["string", "null"], "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                                        "description": "'package.module:callable' that builds the module"},
                "allow_pickle": {"type": "boolean"},
                "tsne_thumbnails": {"type": "integer", "minimum": 0},
                "tsne_perplexity": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "runtime": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "threads": {"type": "integer", "minimum": 0},
                "decode_workers": {"type": "integer", "minimum": 1},
                "max_cpu_temp": {"type": ["number", "null"]},
            },
        },
    },
}

DEFAULTS = {
    "task": "classification",
    "data": {"labels": "folder", "extensions": [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"],
             "allow_outside_root": False},
    "preprocess": {"resize": None, "resize_mode": None, "interpolation": "bilinear", "pad": "center",
                   "pad_value": 0, "crop": None, "crop_pct": None, "mean": [0.0], "std": [1.0], "mode": "rgb",
                   "channels": "rgb", "scale": "unit", "dtype": "auto", "layout": "auto", "tta": "none",
                   "batch_size": 64},
    "outputs": {"scores": "logits", "scores_are": "auto", "embedding": None},
    "report": {"threshold_policy": "max_accuracy", "far_target": 1e-3, "bootstrap": 1000,
               "gallery_size": 8, "primary_metric": None, "top_k": 5, "seed": 0, "training_log": None,
               "cam_method": "gradcam", "cam_layer": None, "torch_model": None, "torch_model_factory": None,
               "allow_pickle": False, "tsne_thumbnails": 100, "tsne_perplexity": 30.0},
    "runtime": {"threads": 0, "decode_workers": 2, "max_cpu_temp": None},
}


@dataclass(frozen=True)
class Params:
    """A validated params file, defaults filled in and paths resolved against its folder."""

    name: str
    model: Path
    tasks: tuple
    data: dict
    preprocess: dict
    outputs: dict
    report: dict
    runtime: dict
    source: Path | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self):
        return {
            "name": self.name, "model": str(self.model), "task": list(self.tasks),
            "data": {k: (str(v) if isinstance(v, Path) else v) for k, v in self.data.items()},
            "preprocess": self.preprocess, "outputs": self.outputs, "report": self.report,
            "runtime": self.runtime, "source": str(self.source) if self.source else None,
        }

    def settings(self):
        """Every setting that decides what a run computes: :meth:`to_dict` but ``runtime`` and ``source``."""
        return {k: v for k, v in self.to_dict().items() if k not in ("runtime", "source")}

    @classmethod
    def from_dict(cls, d):
        """The params as :meth:`to_dict` gave them (``run.json`` holds them); not validated again."""
        return cls(name=d["name"], model=Path(d["model"]), tasks=tuple(d["task"]), data=dict(d["data"]),
                   preprocess=dict(d["preprocess"]), outputs=dict(d["outputs"]), report=dict(d["report"]),
                   runtime=dict(d["runtime"]), source=Path(d["source"]) if d.get("source") else None)


def _key(path):
    return ".".join(str(p) for p in path) or "(top level)"


def _describe(error):
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


def _merge(defaults, given):
    out = copy.deepcopy(defaults)
    for k, v in given.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_params(raw, *, source=None, base_dir=None):
    """Validate a params mapping and return :class:`Params`.

    Parameters
    ----------
    raw : dict
        The mapping as read from YAML.
    source : str or Path, optional
        File the mapping came from; named in every error message.
    base_dir : str or Path, optional
        Folder that relative paths resolve against (default: the source's folder, else cwd).
    """
    where = str(source) if source else "params"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: (top level): expected a mapping of keys; got {type(raw).__name__}")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(raw), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if errors:
        lines = []
        for err in errors:
            path, what = _describe(err)
            line = f"{where}: {_key(path)}: {what}"
            if line not in lines:
                lines.append(line)
        raise ParamsError("\n".join(lines))

    p = _merge(DEFAULTS, raw)
    base = Path(base_dir) if base_dir else (Path(source).parent if source else Path.cwd())

    def resolve(value):
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path).resolve()

    task = p["task"]
    tasks = ("classification", "verification") if task == "both" else ((task,) if isinstance(task, str) else tuple(task))

    data = dict(p["data"])
    data["root"] = resolve(data["root"])
    for key in ("csv", "pairs"):
        if data.get(key):
            data[key] = resolve(data[key])
    if data["labels"] == "csv" and not data.get("csv"):
        raise ParamsError(f"{where}: data.csv: expected a manifest path when data.labels is 'csv'; got nothing")
    data["extensions"] = [e.lower() if e.startswith(".") else "." + e.lower() for e in data["extensions"]]

    pre = _check_preprocess(dict(p["preprocess"]), raw.get("preprocess") or {}, where)
    outs = p["outputs"]
    if "classification" in tasks and not outs["scores"]:
        raise ParamsError(f"{where}: outputs.scores: expected the name of the ONNX output with class scores "
                          f"for task classification; got {outs['scores']!r}")
    if "verification" in tasks and not outs["embedding"]:
        raise ParamsError(f"{where}: outputs.embedding: expected the name of the ONNX output with the embedding "
                          f"for task verification; got {outs['embedding']!r}")
    for key in ("training_log", "torch_model"):
        if p["report"][key]:
            p["report"][key] = str(resolve(p["report"][key]))

    return Params(name=p["name"], model=resolve(p["model"]), tasks=tasks, data=data, preprocess=pre,
                  outputs=outs, report=p["report"], runtime=p["runtime"],
                  source=Path(source).resolve() if source else None, raw=raw)


def _check_preprocess(pre, given, where):
    """Check the preprocess keys against each other; fill in ``resize_mode``. ``given`` is the raw mapping."""
    def fail(key, what):
        raise ParamsError(f"{where}: preprocess.{key}: {what}")

    for key in ("mean", "std"):
        if len(pre[key]) not in (1, 3, 4):
            fail(key, f"expected 1 value or one per channel (3); got {len(pre[key])} values")
    if pre["channels"] == "bgr" and pre["mode"] == "grayscale":
        fail("channels", "expected rgb with preprocess.mode grayscale (one channel has no order); got 'bgr'")
    if pre["crop_pct"] is not None:
        if pre["crop"] is None:
            fail("crop_pct", "expected preprocess.crop with it (the image is resized to floor(crop / crop_pct), "
                             "then center-cropped to crop); got no crop")
        if pre["resize"] is not None:
            fail("crop_pct", f"expected no preprocess.resize with it (crop_pct sets the resize to "
                             f"floor(crop / crop_pct)); got both crop_pct {pre['crop_pct']} and resize {pre['resize']}")
        if not isinstance(pre["crop"], int) and pre["crop"][0] != pre["crop"][1]:
            fail("crop_pct", f"expected a square preprocess.crop with it (an integer or [n, n]); got crop {pre['crop']}")
    if pre["resize_mode"] is not None and pre["resize"] is None:
        fail("resize_mode", f"expected preprocess.resize with it; got resize_mode {pre['resize_mode']!r} "
                            f"and no resize")
    if pre["resize_mode"] == "shorter" and not isinstance(pre["resize"], int):
        fail("resize_mode", f"expected an integer preprocess.resize with resize_mode 'shorter'; got resize {pre['resize']}")
    if pre["resize"] is not None and pre["resize_mode"] is None:
        pre["resize_mode"] = "shorter" if isinstance(pre["resize"], int) else "exact"
    for key in ("pad", "pad_value"):
        if key in given and pre["resize_mode"] != "fit":
            fail(key, f"expected resize_mode 'fit' with it (it pads the fitted image to resize); "
                      f"got resize_mode {pre['resize_mode']!r}")
    values = pre["pad_value"] if isinstance(pre["pad_value"], list) else [pre["pad_value"]]
    channels = 1 if pre["mode"] == "grayscale" else 3
    if len(values) not in (1, channels):
        fail("pad_value", f"expected 1 value or one per channel ({channels}); got {len(values)} values")
    if pre["dtype"] == "uint8":
        if any(m != 0 for m in pre["mean"]) or any(v != 1 for v in pre["std"]):
            fail("dtype", f"uint8 input takes the raw 0..255 pixels: expected mean [0] and std [1]; "
                          f"got mean {pre['mean']}, std {pre['std']}")
        if any(v != round(v) for v in values):
            fail("pad_value", f"expected whole pixel values with dtype uint8; got {pre['pad_value']}")
    return pre


def load_params(path):
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
