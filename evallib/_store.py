"""Metric results on disk: evallib's own result dataclasses as JSON with their arrays beside it.

:func:`dump` turns a tree of dicts, lists, numbers, strings, arrays and the result classes listed in
``_TYPES`` into a JSON-able tree plus a dict of arrays; :func:`load` rebuilds the same objects. Only
those classes can be rebuilt (no pickle: reading a results file never runs code from it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def _types():
    from .metrics.classification import ClassificationResult
    from .metrics.identification import IdentificationResult
    from .metrics.slices import (
        DiscoveredSlice,
        GroupDetCurves,
        GroupThresholdResult,
        GroupThresholdRow,
        GroupVerificationResult,
        GroupVerificationRow,
        SliceResult,
        SliceRow,
        WeakSliceDiscovery,
    )
    from .metrics.sweep import ThresholdChoice, ThresholdSweep
    from .metrics.templates import TemplateFeatures
    from .metrics.verification import VerificationResult
    from .steps_identification import IdentificationEvaluation
    from .steps_slices import SliceFindings

    return {c.__name__: c for c in (ClassificationResult, VerificationResult, ThresholdSweep, ThresholdChoice,
                                    IdentificationResult, TemplateFeatures, IdentificationEvaluation,
                                    SliceFindings, SliceResult, SliceRow, WeakSliceDiscovery, DiscoveredSlice,
                                    GroupVerificationResult, GroupVerificationRow, GroupDetCurves,
                                    GroupThresholdResult, GroupThresholdRow)}


def dump(obj: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """``(tree, arrays)``: ``tree`` is JSON-able (NaN and inf kept as floats), ``arrays`` maps keys to ndarrays."""
    arrays: dict[str, np.ndarray] = {}
    types = _types()

    def enc(o):
        if isinstance(o, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = o
            return {"__array__": key}
        if isinstance(o, np.generic):
            return o.item()
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            name = type(o).__name__
            if types.get(name) is not type(o):
                raise TypeError(f"obj: cannot store a {name} (expected dicts, lists, numbers, strings, arrays or "
                                f"one of {', '.join(types)})")
            return {"__type__": name, "fields": {f.name: enc(getattr(o, f.name)) for f in dataclasses.fields(o)}}
        if isinstance(o, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in o):
                return {k: enc(v) for k, v in o.items()}
            return {"__items__": [[enc(k), enc(v)] for k, v in o.items()]}
        if isinstance(o, tuple):
            return {"__tuple__": [enc(v) for v in o]}
        if isinstance(o, list):
            return [enc(v) for v in o]
        if o is None or isinstance(o, (str, bool, int, float)):
            return o
        raise TypeError(f"obj: cannot store a {type(o).__name__}")

    return enc(obj), arrays


def load(tree: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """Rebuild what :func:`dump` stored (``arrays``: a mapping such as an open ``np.load`` file)."""
    types = _types()

    def dec(o):
        if isinstance(o, list):
            return [dec(v) for v in o]
        if not isinstance(o, dict):
            return o
        if "__array__" in o:
            return np.asarray(arrays[o["__array__"]])
        if "__tuple__" in o:
            return tuple(dec(v) for v in o["__tuple__"])
        if "__items__" in o:
            return {_key(dec(k)): dec(v) for k, v in o["__items__"]}
        if "__type__" in o:
            cls = types.get(o["__type__"])
            if cls is None:
                raise ValueError(f"results: unknown result type {o['__type__']!r}")
            return cls(**{k: dec(v) for k, v in o["fields"].items()})
        return {k: dec(v) for k, v in o.items()}

    return dec(tree)


def _key(k):
    return tuple(k) if isinstance(k, list) else k


def same(a: Any, b: Any) -> bool:
    """Whether two stored trees hold equal values (NaN equal to NaN): for tests of a round trip."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f")
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
