"""Slice definitions: which slice of each slicing column every image falls in.

A slicing column is a name and one label per image (``{"camera": array(["A", "B", ...])}``). Columns come
from three places, and :func:`combine_slices` puts them together for
:func:`evallib.metrics.slices.metrics_by_slice`:

- a metadata file joined to the images by path (:func:`read_metadata`); images the file does not list
  fall in their own slice, :data:`NO_METADATA`;
- a component of the image path, such as a folder level above the class folders (:func:`slices_from_paths`);
- image properties measured while decoding (:mod:`evallib.data.image_properties`), binned
  (:func:`bin_values`, :func:`bin_properties`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import DataError

NO_METADATA = "(no metadata)"
"""The slice of images a metadata file does not list."""

NO_VALUE = "(unknown)"
"""The bin of images whose value is missing (NaN)."""

_SHOW = 5  # rows named in an error message before "and N more"


def _rows_text(lines):
    shown = ", ".join(str(r) for r in lines[:_SHOW])
    more = f" and {len(lines) - _SHOW} more" if len(lines) > _SHOW else ""
    return f"row{'s' if len(lines) > 1 else ''} {shown}{more}"


def _norm_path(p, root=None):
    """Image path as a relative POSIX path; absolute paths under ``root`` are made relative to it."""
    s = str(p)
    if (s and not s[0].isspace() and not s[-1].isspace() and s[0] not in "/." and s[-1] != "/"
            and s[1:2] != ":" and "\\" not in s and "//" not in s and "/." not in s):
        return s  # already relative, POSIX and normal: what the steps below would return
    s = s.strip().replace("\\", "/")
    if s.startswith("/") or (len(s) > 1 and s[1] == ":"):
        if root is None:
            return s
        try:
            return Path(s).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return s
    parts = s.split("/")
    if any(part in ("", ".", "..") for part in parts):
        s = PurePosixPath(os.path.normpath(s).replace("\\", "/")).as_posix()
    return s


def _image_keys(image_paths, root):
    keys = [_norm_path(p, root) for p in image_paths]
    index = {}
    for i, k in enumerate(keys):
        if k in index:
            raise ValueError(f"image_paths: expected distinct paths; {k!r} is listed at positions {index[k]} and {i}")
        index[k] = i
    return index


def read_metadata(path, image_paths, *, root=None, path_column="path", unknown="raise",
                  numeric_bins=4, max_categories=20):
    """Join a metadata CSV to the evaluated images by path: one slicing column per other CSV column.

    Parameters
    ----------
    path : str or Path
        The CSV file (``data.metadata``). Its header names a ``path_column`` and at least one other column;
        each row describes one image.
    image_paths : sequence of str, length n_images
        The evaluated images, in the order of the predictions, as paths relative to ``root`` (the order
        ``evallib.data.list_images`` returns).
    root : str or Path, optional
        The data folder: CSV paths that are absolute and lie under it are made relative to it.
    path_column : str, default "path"
    unknown : {"raise", "ignore"}, default "raise"
        What to do with CSV rows naming a path that is not among ``image_paths`` (a typo, or an image the
        evaluation skipped).
    numeric_bins : int, default 4
        A column whose values are all numbers and which has more than ``max_categories`` distinct values
        (an age, an exposure time) is cut into this many quantile bins with :func:`bin_values`.
    max_categories : int, default 20

    Returns
    -------
    dict of str to ndarray of shape (n_images,), dtype object
        One column per CSV column other than ``path_column``; images the CSV does not list get
        :data:`NO_METADATA` in every column.

    Raises
    ------
    DataError
        Naming the file and the CSV rows (line numbers, the header being line 1): a missing or unreadable file,
        no ``path_column``, duplicate column names, paths listed twice, paths not among the images, empty values.
    """
    path = Path(path)
    if unknown not in ("raise", "ignore"):
        raise ValueError(f"unknown: expected 'raise' or 'ignore'; got {unknown!r}")
    index = _image_keys(image_paths, root)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DataError(f"{path}: metadata file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the metadata file: {exc}") from None
    if not rows:
        raise DataError(f"{path}: the metadata file is empty; expected a header with a {path_column!r} column")
    header = [h.strip() for h in rows[0]]
    if path_column not in header:
        raise DataError(f"{path}: expected a column {path_column!r} naming each image; got columns {header}")
    dup_cols = sorted({h for h in header if header.count(h) > 1})
    if dup_cols:
        raise DataError(f"{path}: column names must be distinct; {dup_cols} appear more than once")
    if "" in header:
        raise DataError(f"{path}: column {header.index('') + 1} of the header has no name")
    columns = [h for h in header if h != path_column]
    if not columns:
        raise DataError(f"{path}: expected at least one column besides {path_column!r}; got {header}")
    pcol = header.index(path_column)
    col_index = [header.index(c) for c in columns]
    data = [(line, r) for line, r in enumerate(rows[1:], start=2) if any(c.strip() for c in r)]
    short = [line for line, r in data if len(r) != len(header)]
    if short:
        raise DataError(f"{path}: {_rows_text(short)}: expected {len(header)} fields like the header")
    first_line, dups, unknown_rows, missing = {}, [], [], {}
    keys = [_norm_path(r[pcol], root) for _, r in data]
    for (line, r), key in zip(data, keys):
        if not r[pcol].strip():
            missing.setdefault(path_column, []).append(line)
            continue
        if key in first_line:
            dups.append(f"{line} (same path as row {first_line[key]}: {r[pcol].strip()!r})")
            continue
        first_line[key] = line
        if key not in index:
            unknown_rows.append(f"{line} ({r[pcol].strip()!r})")
        for c, j in zip(columns, col_index):
            if not r[j].strip():
                missing.setdefault(c, []).append(line)
    if dups:
        raise DataError(f"{path}: each image may be listed once; duplicate paths at {_rows_text(dups)}")
    if missing:
        parts = "; ".join(f"column {c!r}: {_rows_text(lines)}" for c, lines in missing.items())
        raise DataError(f"{path}: missing values ({parts}); fill them in or drop the rows "
                        f"(images without a row fall in the slice {NO_METADATA!r})")
    if unknown_rows and unknown == "raise":
        raise DataError(f"{path}: paths not among the {len(index)} evaluated images at {_rows_text(unknown_rows)}; "
                        f"paths are relative to the data folder")
    n = len(index)
    rows_at = [(index[key], r) for (_, r), key in zip(data, keys) if key in index]
    where = np.array([i for i, _ in rows_at], dtype=np.int64)
    out = {}
    for c in columns:
        j = header.index(c)
        col = np.full(n, NO_METADATA, dtype=object)
        col[where] = [r[j].strip() for _, r in rows_at]
        out[c] = _maybe_bin(c, col, numeric_bins, max_categories)
    return out


def _maybe_bin(name, col, bins, max_categories):
    listed = col != NO_METADATA
    values = col[listed]
    try:
        nums = values.astype(np.float64)
    except ValueError:
        return col
    if len(np.unique(nums)) <= max_categories:
        return col
    binned = np.full(len(col), NO_METADATA, dtype=object)
    binned[listed] = bin_values(nums, bins=bins)
    return binned


def slices_from_paths(image_paths, *, levels=None):
    """Slicing columns from folders in the image paths.

    Parameters
    ----------
    image_paths : sequence of str, length n_images
        Paths relative to the data folder, e.g. ``"scanner_b/cat/0001.jpg"``.
    levels : dict of str to int, default ``{"folder": 0}``
        Column name to the index of a folder in the path (the file name is not a folder): 0 is the top
        folder, -1 the folder holding the file (the class folder of an ImageFolder layout).

    Returns
    -------
    dict of str to ndarray of shape (n_images,), dtype object

    Raises
    ------
    DataError
        When a path has fewer folders than a level asks for (naming the path and the level).

    Examples
    --------
    >>> slices_from_paths(["a/cat/1.jpg", "b/dog/2.jpg"])["folder"].tolist()
    ['a', 'b']
    """
    levels = {"folder": 0} if levels is None else dict(levels)
    if not levels:
        raise ValueError("levels: expected at least one {name: folder index}; got an empty mapping")
    parts = [PurePosixPath(_norm_path(p)).parts[:-1] for p in image_paths]
    out = {}
    for name, level in levels.items():
        if not isinstance(level, (int, np.integer)) or isinstance(level, bool):
            raise TypeError(f"levels[{name!r}]: expected an int folder index; got {level!r}")
        col = np.empty(len(parts), dtype=object)
        for i, folders in enumerate(parts):
            if not -len(folders) <= level < len(folders):
                raise DataError(f"image_paths: {str(image_paths[i])!r} has {len(folders)} folder(s); "
                                f"levels[{name!r}] = {level} asks for folder {level}")
            col[i] = folders[level]
        out[name] = col
    return out


def _edge_labels(edges):
    """Edges written to 3 significant digits, or more where 3 would make two edges look alike."""
    for digits in range(3, 17):
        text = [f"{v:.{digits}g}" for v in edges]
        if len(set(text)) == len(text):
            return text
    return [repr(float(v)) for v in edges]


def bin_values(values, *, bins=3, edges=None):
    """Cut numbers into bins labelled by their range, e.g. ``"[0.12, 0.35)"``; NaN falls in :data:`NO_VALUE`.

    Parameters
    ----------
    values : array-like of shape (n,)
    bins : int, default 3
        Number of quantile bins (terciles by default), so bins hold similar numbers of images. Tied values
        are never split, so fewer bins may come out.
    edges : array-like of float, optional
        Increasing inner edges to use instead of quantiles (``[0.2, 0.5]`` gives three bins).

    Returns
    -------
    ndarray of shape (n,), dtype object
        Labels ``"< a"``, ``"[a, b)"``, ``">= b"`` with numbers to 3 significant digits (more where needed
        to tell two edges apart).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values: expected a 1-d array; got shape {x.shape}")
    ok = np.isfinite(x)
    if edges is None:
        if not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValueError(f"bins: expected an int >= 1; got {bins!r}")
        inner = np.unique(np.quantile(x[ok], np.arange(1, bins) / bins)) if ok.any() and bins > 1 else np.array([])
        inner = inner[inner > x[ok].min()] if ok.any() else inner  # a bin below the minimum would be empty
    else:
        inner = np.asarray(edges, dtype=np.float64).ravel()
        if len(inner) and np.any(np.diff(inner) <= 0):
            raise ValueError(f"edges: expected increasing numbers; got {inner.tolist()}")
    e = _edge_labels(inner)
    labels = ([f"< {e[0]}"] + [f"[{a}, {b})" for a, b in zip(e[:-1], e[1:])] + [f">= {e[-1]}"]) if len(e) else ["all"]
    idx = np.searchsorted(inner, x, side="right")
    out = np.array(labels, dtype=object)[np.where(ok, idx, 0)]
    out[~ok] = NO_VALUE
    return out


def bin_properties(properties, *, bins=3, names=("brightness", "contrast", "blur", "pixels", "aspect_ratio")):
    """Binned image properties as slicing columns.

    Parameters
    ----------
    properties : dict of str to array-like of shape (n_images,)
        As :func:`evallib.data.image_properties.properties_table` returns.
    bins : int, default 3
        Quantile bins per property (see :func:`bin_values`).
    names : sequence of str
        Which properties to bin; absent ones are skipped, and so are properties that come out as one bin
        (every image the same size, for example), which would slice nothing.

    Returns
    -------
    dict of str to ndarray of shape (n_images,), dtype object
    """
    if not isinstance(properties, Mapping):
        raise TypeError(f"properties: expected a mapping of name to values; got {type(properties).__name__}")
    out = {}
    for name in names:
        if name in properties:
            col = bin_values(properties[name], bins=bins)
            if len(set(col.tolist())) > 1:
                out[name] = col
    return out


def combine_slices(*columns):
    """Merge slicing-column mappings into one, refusing clashing names and different lengths.

    Returns
    -------
    dict of str to ndarray of shape (n_images,), dtype object
    """
    out, n = {}, None
    for mapping in columns:
        for name, col in mapping.items():
            if name in out:
                raise ValueError(f"columns: the slicing column {name!r} is given twice; rename one")
            col = np.asarray(col, dtype=object)
            if n is not None and len(col) != n:
                raise ValueError(f"columns: {name!r} has {len(col)} values; expected {n} like the others")
            n = len(col)
            out[name] = col
    return out
