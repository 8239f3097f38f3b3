"""A reviewer's label corrections (``data.label_overrides``), applied to the listed images before any metric.

The file is a CSV with a header naming a ``path`` column (relative to ``data.root``, as in the
manifest; ``image`` is taken too) and a ``label`` column (a class name; ``suggested_label`` is taken
too, so that the label review's ``suspected_labels.csv``, with the rows a reviewer rejected deleted,
can be given as it is). Other columns are ignored. Every problem of every row is collected and the
error names the file and the rows: a path that is not one of the listed images, a class name that is
not one of the classes, a path listed twice, a missing value.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ParamsError

PATH_COLUMNS = ("path", "image")
LABEL_COLUMNS = ("label", "suggested_label")
SHOWN = 8  # problems named in an error; the rest are counted


@dataclass(frozen=True)
class LabelOverrides:
    """The corrections of one file, matched to a listing.

    Attributes
    ----------
    file : str
    sha256 : str
        Of the file's bytes.
    rows : ndarray of shape (n_overrides,)
        The listed images' indices.
    labels : ndarray of shape (n_overrides,)
        Their corrected class indices.
    previous : ndarray of shape (n_overrides,)
        Their labels as given by the listing.
    """

    file: str
    sha256: str
    rows: np.ndarray
    labels: np.ndarray
    previous: np.ndarray

    @property
    def count(self):
        """Rows of the file."""
        return int(len(self.rows))

    @property
    def changed(self):
        """Rows whose label differs from the listing's (the others confirm it)."""
        return int((self.labels != self.previous).sum())

    def apply(self, labels):
        """A copy of ``labels`` (the listing's, shape (n_images,)) with the corrections."""
        out = np.array(labels, dtype=np.int64, copy=True)
        out[self.rows] = self.labels
        return out

    def facts(self):
        """What ``run.json`` ``label_overrides`` records."""
        return {"file": self.file, "sha256": self.sha256, "rows": self.count, "changed": self.changed}


def _norm(path):
    return Path(os.path.normpath(str(path).strip().replace("\\", "/"))).as_posix()


def read_label_overrides(path, paths, labels, classes, *, key="data.label_overrides"):
    """Read a corrections file and match it to the listed images.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    paths : sequence of str, shape (n_images,)
        The listed images, relative to ``data.root``.
    labels : array-like of int, shape (n_images,)
        Their labels as listed.
    classes : sequence of str
        The class names; every corrected label must be one of them.
    key : str
        The params key named in errors.

    Returns
    -------
    LabelOverrides

    Raises
    ------
    ParamsError
        Naming ``key``, the file and each bad row (rows are lines of the file, the header being row 1).
    """
    f = Path(path)
    where = f"{key}: {f}"
    try:
        data = f.read_bytes()
    except FileNotFoundError:
        raise ParamsError(f"{where}: expected a CSV file of path,label corrections; got no such file") from None
    except OSError as exc:
        raise ParamsError(f"{where}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{where}: expected UTF-8 text; got byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start}") from None
    reader = csv.reader(text.splitlines())
    rows = [(reader.line_num, row) for row in reader]
    rows = [(n, r) for n, r in rows if r and "".join(r).strip()]
    if not rows:
        raise ParamsError(f"{where}: expected a header with columns path and label, then one row per correction; "
                          f"got an empty file")
    head = [c.strip().lower() for c in rows[0][1]]
    p_col = next((head.index(c) for c in PATH_COLUMNS if c in head), None)
    l_col = next((head.index(c) for c in LABEL_COLUMNS if c in head), None)
    if p_col is None or l_col is None:
        raise ParamsError(f"{where}: row 1: expected a header naming a path column ({' or '.join(PATH_COLUMNS)}) "
                          f"and a label column ({' or '.join(LABEL_COLUMNS)}); got {','.join(rows[0][1])!r}")
    index = {_norm(p): i for i, p in enumerate(paths)}
    names = {str(c): k for k, c in enumerate(classes)}
    problems, seen, got_rows, got_labels = [], {}, [], []
    for n, row in rows[1:]:
        rel = row[p_col].strip() if p_col < len(row) else ""
        lab = row[l_col].strip() if l_col < len(row) else ""
        if not rel or not lab:
            missing = " and ".join(w for w, v in (("path", rel), ("label", lab)) if not v)
            problems.append(f"row {n}: expected a path and a label; got no {missing}")
            continue
        key_path = _norm(rel)
        bad = []
        if key_path not in index:
            bad.append(f"path {rel!r} is not one of the {len(index):,} listed images under data.root")
        if lab not in names:
            shown = ", ".join(list(names)[:10]) + (" ..." if len(names) > 10 else "")
            bad.append(f"label {lab!r} is not one of the classes ({shown})")
        if key_path in seen:
            bad.append(f"path {rel!r} is listed already in row {seen[key_path]}")
        if bad:
            problems.append(f"row {n}: " + "; ".join(bad))
            continue
        seen[key_path] = n
        got_rows.append(index[key_path])
        got_labels.append(names[lab])
    if problems:
        more = f"; and {len(problems) - SHOWN} more rows with problems" if len(problems) > SHOWN else ""
        raise ParamsError(f"{where}: " + "; ".join(problems[:SHOWN]) + more)
    rows_arr = np.asarray(got_rows, dtype=np.int64)
    return LabelOverrides(file=str(f), sha256=hashlib.sha256(data).hexdigest(), rows=rows_arr,
                          labels=np.asarray(got_labels, dtype=np.int64),
                          previous=np.asarray(labels, dtype=np.int64)[rows_arr])
