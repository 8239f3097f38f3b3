"""Evaluation data: listing labelled images, decoding them, and test-time views.

Three label layouts are read:

* ``folder``: ``root/<class>/<image>`` (as torchvision's ``ImageFolder``);
* ``filename_prefix``: ``root/<label>_<anything>.<ext>`` (as face datasets are laid out);
* ``csv``: a manifest with ``path,label`` rows, paths relative to ``data.root``.

Preprocessing follows torchvision on PIL images: bilinear resize (shorter side or exact size),
center crop, ``TenCrop`` (four corners and the center, then their horizontal flips), scaling to
[0, 1] and ``(x - mean) / std``.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError

CENTER_VIEW = {"none": 0, "flip": 0, "tencrop": 4}
N_VIEWS = {"none": 1, "flip": 2, "tencrop": 10}


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

    def __len__(self):
        return len(self.paths)

    def counts(self):
        """Images per class, as a dict ordered like ``classes``."""
        c = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, c)}

    def file(self, i):
        return self.root / self.paths[i]

    def subset(self, keep):
        """A dataset with only the rows where ``keep`` is true (a boolean mask or index array)."""
        idx = np.arange(len(self))[keep]
        return Dataset(self.root, [self.paths[i] for i in idx], self.labels[idx], self.classes, list(self.skipped),
                       self.class_order)


# --- class order ---------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
METADATA_CLASS_KEYS = ("classes", "labels", "names", "class_names", "character")


def sort_labels(labels):
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


def classes_from_metadata(metadata):
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


def describe_class_order(classes, source, *, limit=10):
    """One line naming the class order and where it came from; the first ``limit`` names when there are more.

    >>> describe_class_order(["0", "90", "180", "270"], "model metadata key 'character'")
    "model metadata key 'character': 0, 90, 180, 270"
    """
    shown = ", ".join(map(str, classes[:limit]))
    more = f", ... ({len(classes):,} classes)" if len(classes) > limit else ""
    return f"{source}: {shown}{more}"


def _is_image(path, extensions):
    return path.is_file() and path.suffix.lower() in extensions and not path.name.startswith(".")


def list_images(root, *, labels="folder", csv_path=None, classes=None, classes_source="params data.classes",
                extensions=(".png", ".jpg", ".jpeg")):
    """List labelled images under ``root``.

    Parameters
    ----------
    root : str or Path
    labels : {"folder", "filename_prefix", "csv"}
    csv_path : str or Path, optional
        The manifest when ``labels="csv"``.
    classes : list, optional
        Class names in score-column order; every label in the data must be one of them (some may
        have no images). When omitted, the label names are sorted with :func:`sort_labels`.
    classes_source : str
        Where ``classes`` came from (recorded as ``Dataset.class_order`` and named in errors).
    extensions : sequence of str

    Returns
    -------
    Dataset
    """
    root = Path(root)
    extensions = tuple(e.lower() for e in extensions)
    if not root.is_dir():
        raise DataError(f"data.root: expected a folder of images; got {root} which "
                        f"{'is not a folder' if root.exists() else 'does not exist'}")
    items, skipped = [], []
    if labels == "folder":
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for f in sorted(sub.rglob("*")):
                if _is_image(f, extensions):
                    items.append((f.relative_to(root).as_posix(), sub.name))
    elif labels == "filename_prefix":
        for f in sorted(root.iterdir()):
            if not _is_image(f, extensions):
                continue
            if "_" not in f.stem:
                skipped.append({"path": f.name, "reason": "no '_' in the file name, so no label"})
                continue
            items.append((f.name, f.stem.split("_", 1)[0]))
    elif labels == "csv":
        items = _read_manifest(Path(csv_path), root, skipped)
    else:
        raise DataError(f"data.labels: expected one of folder, filename_prefix, csv; got {labels!r}")

    if not items:
        raise DataError(f"data.root: expected image files ({', '.join(extensions)}) laid out for labels "
                        f"'{labels}'; got none in {root}")
    found, kind = sort_labels(lab for _, lab in items)
    if classes is None:
        classes = found
        classes_source = f"sorted {'folder names' if labels == 'folder' else 'labels'} ({kind})"
    else:
        classes = [str(c) for c in classes]
        twice = sorted({c for c in classes if classes.count(c) > 1})
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


def _read_manifest(csv_path, root, skipped):
    if not csv_path.is_file():
        raise DataError(f"data.csv: expected a manifest file with path,label rows; got no file at {csv_path}")
    items = []
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    for n, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise DataError(f"{csv_path}: row {n}: expected 'path,label'; got {','.join(row)!r}")
        rel, lab = row[0].strip(), row[1].strip()
        if not (root / rel).is_file():
            skipped.append({"path": rel, "reason": f"listed in {csv_path.name} but not found"})
            continue
        items.append((Path(rel).as_posix(), lab))
    return items


# --- pairs ---------------------------------------------------------------------------------

@dataclass
class Pairs:
    """An explicit pair list: indices into a :class:`Dataset`, same/different, and fold."""

    i: np.ndarray
    j: np.ndarray
    same: np.ndarray
    fold: np.ndarray


def read_pairs(path, dataset):
    """Read an LFW ``pairs.txt``-style list and map its images onto ``dataset``.

    Lines are ``name n1 n2`` (a genuine pair) or ``name1 n1 name2 n2`` (an impostor pair);
    an optional first line ``folds pairs_per_half`` gives the fold structure (each fold is
    ``pairs_per_half`` genuine then as many impostor pairs, as in LFW). Image ``n`` of
    ``name`` is the file whose stem is ``name_000n``, else the ``n``-th file (1-based) of
    that class.
    """
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except FileNotFoundError:
        raise DataError(f"data.pairs: expected a pairs file; got no file at {path}") from None
    folds, per_fold = None, None
    if lines and len(lines[0]) == 2 and all(t.isdigit() for t in lines[0]):
        folds, half = map(int, lines[0])
        per_fold = 2 * half
        lines = lines[1:]
    by_stem = {Path(p).stem: k for k, p in enumerate(dataset.paths)}
    by_class = {}
    for k, lab in enumerate(dataset.labels):
        by_class.setdefault(dataset.classes[lab], []).append(k)

    def find(name, n, lineno):
        k = by_stem.get(f"{name}_{int(n):04d}")
        if k is None:
            members = by_class.get(name, [])
            if not 1 <= int(n) <= len(members):
                raise DataError(f"{path}: line {lineno}: expected image {n} of {name!r}; "
                                f"got {len(members)} images of that name in the data")
            k = members[int(n) - 1]
        return k

    i, j, same = [], [], []
    offset = 2 if folds else 1
    for ln, toks in enumerate(lines):
        lineno = ln + offset
        if len(toks) == 3:
            a, b, s = find(toks[0], toks[1], lineno), find(toks[0], toks[2], lineno), True
        elif len(toks) == 4:
            a, b, s = find(toks[0], toks[1], lineno), find(toks[2], toks[3], lineno), False
        else:
            raise DataError(f"{path}: line {lineno}: expected 'name n1 n2' or 'name1 n1 name2 n2'; "
                            f"got {' '.join(toks)!r}")
        i.append(a), j.append(b), same.append(s)
    if not i:
        raise DataError(f"{path}: expected at least one pair; got none")
    n = len(i)
    if folds and per_fold and folds * per_fold == n:
        fold = np.arange(n) // per_fold
    else:
        fold = (np.arange(n) * 10) // n
    return Pairs(np.array(i), np.array(j), np.array(same, dtype=bool), fold.astype(np.int64))


# --- decoding and views --------------------------------------------------------------------

def load_image(path, mode="rgb"):
    """Decode an image with Pillow into ``mode`` ("rgb" or "grayscale").

    16-bit and 32-bit integer images are scaled to 8 bits; palette and alpha images are
    converted (alpha dropped), as ``PIL.Image.convert`` does.
    """
    with Image.open(path) as img:
        img.load()
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            arr = np.asarray(img, dtype=np.float64)
            top = 65535.0 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255.0
            img = Image.fromarray(np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8), "L")
        elif img.mode == "F":
            arr = np.asarray(img, dtype=np.float64)
            img = Image.fromarray(np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8), "L")
        elif img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        return img.convert("L" if mode == "grayscale" else "RGB")


def _pair(size):
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def resize(img, size):
    """Resize like ``torchvision.transforms.Resize`` on a PIL image (bilinear).

    An integer resizes the shorter side (the longer side is ``int(size * long / short)``);
    ``[height, width]`` resizes to exactly that.
    """
    if size is None:
        return img
    w, h = img.size
    if isinstance(size, int):
        short, long = (w, h) if w <= h else (h, w)
        if short == size:
            return img
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    else:
        new_h, new_w = _pair(size)
    return img.resize((new_w, new_h), Image.BILINEAR)


def _center_box(h, w, ch, cw):
    return int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))


def center_crop(arr, size):
    """Center crop of an ``(H, W, C)`` array like torchvision (zero padding when too small)."""
    ch, cw = _pair(size)
    arr = _pad_to(arr, size)
    h, w = arr.shape[:2]
    top, left = _center_box(h, w, ch, cw)
    return arr[top:top + ch, left:left + cw]


def five_crop(arr, size):
    """Top-left, top-right, bottom-left, bottom-right and center crops, as torchvision orders them."""
    ch, cw = _pair(size)
    h, w = arr.shape[:2]
    if ch > h or cw > w:
        raise DataError(f"preprocess.crop: expected a crop no larger than the resized image ({h}x{w}); "
                        f"got {ch}x{cw}")
    return [arr[:ch, :cw], arr[:ch, w - cw:], arr[h - ch:, :cw], arr[h - ch:, w - cw:], center_crop(arr, size)]


def views(arr, crop, tta):
    """Test-time views of one ``(H, W, C)`` image: list of arrays.

    ``none``: the center crop; ``flip``: it and its horizontal flip; ``tencrop``: torchvision's
    ``TenCrop`` (the five crops of the image, then the five crops of its mirror image).
    """
    if tta == "tencrop":
        return five_crop(arr, crop) + five_crop(arr[:, ::-1], crop)
    base = center_crop(arr, crop) if crop is not None else arr
    return [base, base[:, ::-1]] if tta == "flip" else [base]


def preprocess(img, pre):
    """Views of one PIL image as float32 ``(n_views, C, H, W)``, normalized.

    ``pre`` is the params ``preprocess`` mapping (resize, crop, mean, std, tta).
    """
    img = resize(img, pre.get("resize"))
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    crop = pre.get("crop")
    if crop is not None and pre.get("tta", "none") != "tencrop":
        arr = _pad_to(arr, crop)  # torchvision pads with black before normalizing
    mean = np.asarray(pre.get("mean", [0.0]), dtype=np.float32)
    std = np.asarray(pre.get("std", [1.0]), dtype=np.float32)
    c = arr.shape[-1]
    if mean.size not in (1, c) or std.size not in (1, c):
        raise DataError(f"preprocess.mean/std: expected 1 or {c} values for {c}-channel images; "
                        f"got {mean.size} and {std.size}")
    # normalize the image once (one conversion, one fused scale-and-shift); the views are then
    # crops of it, copied once into the stack
    f = arr.astype(np.float32)
    f *= 1.0 / (255.0 * std)
    f -= mean / std
    return np.stack(views(f, crop, pre.get("tta", "none"))).transpose(0, 3, 1, 2)


def _pad_to(arr, size):
    ch, cw = _pair(size)
    h, w = arr.shape[:2]
    if ch <= h and cw <= w:
        return arr
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    return np.pad(arr, ((ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2), (0, 0)))


def load_views(path, pre):
    """Decode and preprocess one file; returns ``(views, None)`` or ``(None, reason)``."""
    try:
        img = load_image(path, pre.get("mode", "rgb"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return None, f"cannot decode: {type(exc).__name__}: {exc}"
    return preprocess(img, pre), None  # a size error here concerns every file: it propagates
