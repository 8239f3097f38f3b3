"""Atomic file writes: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are shared files
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def to_jsonable(obj: Any) -> Any:
    """Round-trip through json so NaN stays NaN but numpy types become plain Python."""
    return json.loads(json.dumps(obj, default=_json_default))


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (NaN kept) to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n")


def write_npz(path: str | Path, *, compressed: bool = False, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to an ``.npz`` file at ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            payload: dict[str, Any] = arrays  # keyword names of the arrays, none of them allow_pickle
            (np.savez_compressed if compressed else np.savez)(fh, **payload)
