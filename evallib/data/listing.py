"""Listing labelled images, and the order of their classes.

Three label layouts are read:

* ``folder``: ``root/<class>/<image>`` (as torchvision's ``ImageFolder``);
* ``filename_prefix``: ``root/<label>_<anything>.<ext>`` (as face datasets are laid out);
* ``csv``: a manifest with ``path,label`` rows, paths relative to ``data.root``.

A file that cannot be used is left out with a reason (``Dataset.skipped``): a link that leads
nowhere, a link to a folder inside a class folder, a class folder that loops back to the root.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError


@dataclass
class Dataset:
    """A labelled list of image files.

    Attributes
    ----------
    root : Path
    paths : list of str
        File paths relative to ``root`` (POSIX form), in a fixed sorted order.
    labels : ndarray of shape (n_samples,)
        Class index of each file into ``classes``.
    classes : list of str
    skipped : list of dict
        Files left out while listing, each ``{"path", "reason"}``.
    class_order : str
        Where the order of ``classes`` came from, e.g. ``"params data.classes"``,
        ``"model metadata key 'character'"`` or ``"sorted folder names (numeric)"``.
    """

    root: Path
    paths: list
    labels: np.ndarray
    classes: list
    skipped: list = field(default_factory=list)
    class_order: str = ""

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        """Images per class, as a dict ordered like ``classes``."""
        c = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, c)}

    def file(self, i: int) -> Path:
        return self.root / self.paths[i]

    def subset(self, keep: np.ndarray) -> Dataset:
        """A dataset with only the rows where ``keep`` is true (a boolean mask or index array)."""
        idx = np.arange(len(self))[keep]
        return Dataset(self.root, [self.paths[i] for i in idx], self.labels[idx], self.classes, list(self.skipped),
                       self.class_order)


# --- class order ---------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
METADATA_CLASS_KEYS = ("classes", "labels", "names", "class_names", "character")


def sort_labels(labels: Iterable[object]) -> tuple[list[str], str]:
    """Label names in the order used for the score columns when nothing else gives one.

    Names that read as numbers (``"0"``, ``"90"``, ``"-1"``, ``"2.5"``) come first, in numeric
    order (``"2"`` before ``"10"``); the other names follow in plain text order, the order
    torchvision's ``ImageFolder`` gives folder names, so a model trained from class folders with
    non-numeric names keeps its column order.

    Parameters
    ----------
    labels : iterable of str

    Returns
    -------
    names : list of str
    kind : {"numeric", "text", "numeric, then text"}
        How the names were ordered.

    Examples
    --------
    >>> sort_labels(["0", "90", "180", "270"])
    (['0', '90', '180', '270'], 'numeric')
    """
    names = sorted(set(map(str, labels)))
    numeric = [n for n in names if _NUMBER.fullmatch(n)]
    text = [n for n in names if not _NUMBER.fullmatch(n)]
    numeric.sort(key=lambda n: (float(n), n))
    kind = "numeric" if not text else "text" if not numeric else "numeric, then text"
    return numeric + text, kind


def classes_from_metadata(metadata: Mapping[str, str]) -> tuple[str, list[str]] | None:
    """Class names in score-column order from an ONNX model's metadata, if it names them.

    The keys ``classes``, ``labels``, ``names``, ``class_names`` and ``character`` are read, in that
    order (the first that gives at least two names wins). A value may be a JSON list
    (``["cat", "dog"]``), a JSON or Python dict from column index to name
    (``{0: 'person', 1: 'bicycle'}``, as ultralytics writes ``names``; read with
    ``ast.literal_eval``, never evaluated), or names separated by newlines, commas or spaces (tried
    in that order: ``"0,90,180,270"``).

    Parameters
    ----------
    metadata : dict of str to str
        ``metadata_props`` of the model (``model_facts(path)["metadata"]``).

    Returns
    -------
    (key, names) : tuple of str and list of str, or None
        The metadata key that was read and the names, one per score column.
    """
    by_lower = {str(k).lower(): k for k in metadata}
    for key in METADATA_CLASS_KEYS:
        if key in by_lower:
            names = _parse_names(metadata[by_lower[key]])
            if names is not None and len(names) >= 2:
                return by_lower[key], names
    return None


def _parse_names(text):
    text = str(text).strip()
    if not text:
        return None
    if text[0] in "[{(":
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return None
        return _names_from_value(value)
    if "\n" in text:
        parts = text.splitlines()
    elif "," in text:
        parts = text.split(",")
    else:
        parts = text.split()
    return [p.strip() for p in parts]


def _names_from_value(value):
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (list, tuple, dict)) for v in value):
            return None
        return [str(v) for v in value]
    if not isinstance(value, dict) or not value:
        return None

    def index(v):
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            return v
        return int(v) if isinstance(v, str) and v.strip().isdigit() else None

    for pairs in ([(index(k), v) for k, v in value.items()],  # {index: name}
                  [(index(v), k) for k, v in value.items()]):  # {name: index}
        if sorted(-1 if i is None else i for i, _ in pairs) == list(range(len(pairs))):
            return [str(name) for _, name in sorted(pairs)]
    return None


def describe_class_order(classes: Sequence[str], source: str, *, limit: int = 10) -> str:
    """One line naming the class order and where it came from; the first ``limit`` names when there are more.

    >>> describe_class_order(["0", "90", "180", "270"], "model metadata key 'character'")
    "model metadata key 'character': 0, 90, 180, 270"
    """
    shown = ", ".join(map(str, classes[:limit]))
    more = f", ... ({len(classes):,} classes)" if len(classes) > limit else ""
    return f"{source}: {shown}{more}"


def _is_image(path, extensions):
    return path.is_file() and path.suffix.lower() in extensions and not path.name.startswith(".")


def _dead_link(path, extensions):
    """A link named like an image that leads to no file (broken, or a loop of links)."""
    return path.suffix.lower() in extensions and not path.name.startswith(".") and path.is_symlink() \
        and not path.is_file()


_DEAD_LINK = "a link that leads to no file (broken, or a loop of links)"


def _class_files(root, sub, extensions, skipped):
    """Images under the class folder ``sub``, sorted; links to folders inside it are not followed."""
    found = []
    for top, dirs, names in os.walk(sub):  # os.walk does not follow links to folders: no loop
        top = Path(top)
        for d in dirs:
            if (top / d).is_symlink():
                skipped.append({"path": (top / d).relative_to(root).as_posix(),
                                "reason": "a link to a folder: links inside class folders are not followed"})
        for name in names:
            f = top / name
            if _is_image(f, extensions):
                found.append(f)
            elif _dead_link(f, extensions):
                skipped.append({"path": f.relative_to(root).as_posix(), "reason": _DEAD_LINK})
    return sorted(found)


def _loops_to_root(sub, root):
    """Whether the class folder ``sub`` is a link to the data root or to a folder holding it."""
    if not sub.is_symlink():
        return False
    target, real_root = os.path.realpath(sub), os.path.realpath(root)
    return real_root == target or real_root.startswith(target.rstrip(os.sep) + os.sep)


def list_images(root: str | Path, *, labels: str = "folder", csv_path: str | Path | None = None,
                classes: Sequence[object] | None = None, classes_source: str = "params data.classes",
                extensions: Sequence[str] = (".png", ".jpg", ".jpeg"), allow_outside_root: bool = False) -> Dataset:
    """List labelled images under ``root``.

    Only files with one of ``extensions`` are listed; a file that is not an image in spite of its
    name is found out when it is decoded (:func:`load_views`).

    Parameters
    ----------
    root : str or Path
    labels : {"folder", "filename_prefix", "csv"}
        ``folder``: every folder under ``root`` is a class, one without images included (a class
        with 0 images, as torchvision's ``ImageFolder(allow_empty=True)`` numbers classes); links
        to folders inside a class folder are not followed, and a class folder that links back to
        ``root`` (a loop) is left out; both are listed in ``skipped``.
    csv_path : str or Path, optional
        The manifest when ``labels="csv"``: ``path,label`` rows, paths relative to ``root``. A
        file that does not exist, a file listed twice, or (unless ``allow_outside_root``) a path
        outside ``root`` is an error naming the manifest and its rows (counted as lines of the
        file, a header being row 1).
    classes : list, optional
        Class names in score-column order; every label in the data must be one of them (some may
        have no images). When omitted, the label names are sorted with :func:`sort_labels`.
    classes_source : str
        Where ``classes`` came from (recorded as ``Dataset.class_order`` and named in errors).
    extensions : sequence of str
    allow_outside_root : bool, default False
        Let the manifest list files outside ``root`` (params ``data.allow_outside_root``).

    Returns
    -------
    Dataset
    """
    root = Path(root)
    extensions = tuple(e.lower() for e in extensions)
    if not root.is_dir():
        raise DataError(f"data.root: expected a folder of images; got {root} which "
                        f"{'is not a folder' if root.exists() else 'does not exist'}")
    items: list[tuple[str, str]] = []
    skipped: list[dict[str, str]] = []
    empty: list[str] = []
    if labels == "folder":
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if _loops_to_root(sub, root):
                skipped.append({"path": sub.name, "reason": f"a link to {os.path.realpath(sub)}, which holds "
                                                            f"data.root (a loop): not followed"})
                continue
            files = _class_files(root, sub, extensions, skipped)
            items.extend((f.relative_to(root).as_posix(), sub.name) for f in files)
            if not files:
                empty.append(sub.name)
    elif labels == "filename_prefix":
        for f in sorted(root.iterdir()):
            if _dead_link(f, extensions):
                skipped.append({"path": f.name, "reason": _DEAD_LINK})
            if not _is_image(f, extensions):
                continue
            if "_" not in f.stem:
                skipped.append({"path": f.name, "reason": "no '_' in the file name, so no label"})
                continue
            items.append((f.name, f.stem.split("_", 1)[0]))
    elif labels == "csv":
        if csv_path is None:
            raise DataError("csv_path: expected a manifest path when labels is 'csv'; got None")
        items = _read_manifest(Path(csv_path), root, allow_outside_root=allow_outside_root)
    else:
        raise DataError(f"data.labels: expected one of folder, filename_prefix, csv; got {labels!r}")

    if not items:
        raise DataError(f"data.root: expected image files ({', '.join(extensions)}) laid out for labels "
                        f"'{labels}'; got none in {root}")
    found = sort_labels(lab for _, lab in items)[0]
    if classes is None:
        classes, kind = sort_labels([*found, *empty])
        classes_source = f"sorted {'folder names' if labels == 'folder' else 'labels'} ({kind})"
    else:
        classes = [str(c) for c in classes]
        twice = sorted({str(c) for c in classes if classes.count(c) > 1})
        if twice:
            raise DataError(f"{classes_source}: expected distinct class names; got {twice[:10]} more than once")
        unknown = sort_labels(set(found) - set(classes))[0]
        if unknown:
            hint = "" if classes_source == "params data.classes" else \
                " (set data.classes in the params to give the model's column order)"
            raise DataError(f"{classes_source}: expected every label in the data to be one of the "
                            f"{len(classes)} classes; got unknown labels {unknown[:10]}"
                            f"{' ...' if len(unknown) > 10 else ''}{hint}")
    if len(found) < 2:
        raise DataError(f"data.root: expected images of at least 2 classes; got only class "
                        f"{found[0]!r} ({len(items)} images) in {root}")
    index = {c: i for i, c in enumerate(classes)}
    return Dataset(root=root, paths=[p for p, _ in items],
                   labels=np.array([index[lab] for _, lab in items], dtype=np.int64),
                   classes=list(classes), skipped=skipped, class_order=classes_source)


def _read_manifest(csv_path, root, *, allow_outside_root=False, shown=3):
    """``[(path, label)]`` from a manifest; every row's problem is collected, the first ``shown`` named."""
    if not csv_path.is_file():
        raise DataError(f"data.csv: expected a manifest file with path,label rows; got no file at {csv_path}")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as exc:
        raise DataError(f"{csv_path}: expected UTF-8 text; got byte {exc.object[exc.start]:#04x} at offset "
                        f"{exc.start}") from None
    if rows and [c.strip().lower() for c in rows[0][1][:2]] == ["path", "label"]:
        rows = rows[1:]
    base = os.path.abspath(root)
    items, problems, seen = [], [], {}
    for n, row in rows:
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise DataError(f"{csv_path}: row {n}: expected 'path,label'; got {','.join(row)!r}")
        rel, lab = row[0].strip(), row[1].strip()
        full = os.path.abspath(os.path.join(base, rel))  # lexical: links inside the root stay inside
        if os.path.commonpath([base, full]) != base and not allow_outside_root:
            problems.append(f"row {n}: expected a path inside data.root ({root}); got {rel!r} "
                            f"(set data.allow_outside_root: true to allow it)")
        elif full in seen:
            problems.append(f"rows {seen[full]} and {n}: expected each file once; got {rel!r} twice")
        elif not os.path.isfile(full):
            problems.append(f"row {n}: expected an image file at {rel!r} under data.root ({root}); got no such file")
        else:
            seen[full] = n
            items.append((Path(rel).as_posix(), lab))
    if problems:
        more = f"; and {len(problems) - shown} more rows with problems" if len(problems) > shown else ""
        raise DataError(f"{csv_path}: " + "; ".join(problems[:shown]) + more)
    return items
