"""Evaluation data: listing labelled images, decoding them, and test-time views.

Three label layouts are read:

* ``folder``: ``root/<class>/<image>`` (as torchvision's ``ImageFolder``);
* ``filename_prefix``: ``root/<label>_<anything>.<ext>`` (as face datasets are laid out);
* ``csv``: a manifest with ``path,label`` rows, paths relative to ``data.root``.

A file that cannot be used is left out with a reason (``Dataset.skipped``, or the decoding
reason of :func:`load_views`): empty, truncated or not an image, larger than Pillow's
decompression-bomb limit, or a link that leads nowhere. EXIF orientation is applied.

Preprocessing follows torchvision on PIL images: resize (shorter side, exact size, or fit inside a
box and pad) with Pillow's nearest, bilinear, bicubic or Lanczos filters, timm's ``crop_pct``, RGB or
BGR channel order, center crop, ``TenCrop`` (four corners and the center, then their horizontal
flips), and ``(x - mean) / std`` on pixels in 0..1 or 0..255; uint8 models get the raw pixels.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import re
import struct
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


def list_images(root, *, labels="folder", csv_path=None, classes=None, classes_source="params data.classes",
                extensions=(".png", ".jpg", ".jpeg"), allow_outside_root=False):
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
    items, skipped, empty = [], [], []
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

_OPEN_LOCK = threading.Lock()


def _open(path):
    """``Image.open`` (the header only, no pixels) refusing the sizes Pillow calls a decompression bomb.

    Pillow raises ``DecompressionBombError`` above twice ``Image.MAX_IMAGE_PIXELS`` and only warns
    above it; the warning is raised as an error too. Warning filters are process-wide, so decoding
    threads open one file at a time (parsing a header is quick; decoding the pixels is not locked).
    """
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "more pixels than allowed"
        raise DataError(f"refused: the image declares {size}, more than PIL.Image.MAX_IMAGE_PIXELS "
                        f"({Image.MAX_IMAGE_PIXELS:,}); a possible decompression bomb") from None


def load_image(path, mode="rgb"):
    """Decode an image with Pillow into ``mode`` ("rgb" or "grayscale").

    The EXIF orientation is applied, as ``PIL.ImageOps.exif_transpose`` does (a photo taken
    sideways is seen upright). 16-bit and 32-bit integer images are scaled to 8 bits; palette and
    alpha images are converted (alpha dropped), as ``PIL.Image.convert`` does.

    Raises
    ------
    DataError
        When the header declares more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (a possible
        decompression bomb); the pixels are never allocated.
    """
    with _open(path) as img:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
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


INTERPOLATIONS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                  "lanczos": Image.LANCZOS}
RESIZE_MODES = ("shorter", "exact", "fit")
PADS = ("center", "bottom_right")
DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "uint8": np.uint8}


def crop_pct_size(crop, crop_pct):
    """The shorter side timm resizes to before its center crop: ``floor(crop / crop_pct)``.

    As timm's ``transforms_imagenet_eval`` computes ``scale_size = math.floor(img_size / crop_pct)``,
    for a square crop (an integer or ``[n, n]``).
    """
    h, w = _pair(crop)
    if h != w:
        raise DataError(f"preprocess.crop_pct: expected a square crop (an integer or [n, n]); got crop {[h, w]}")
    return math.floor(h / crop_pct)


def fit_size(height, width, box):
    """Size ``(new_height, new_width)`` of an image ``height x width`` scaled to fit inside ``box``.

    ``scale = min(box_h / height, box_w / width)``; each side becomes ``round(side * scale)``
    (Python's ``round``, as ultralytics' ``LetterBox`` computes it), kept within ``1..box``, so the
    limiting side equals the box exactly. Small images are scaled up.
    """
    bh, bw = _pair(box)
    scale = min(bh / height, bw / width)
    return (min(bh, max(1, int(round(height * scale)))), min(bw, max(1, int(round(width * scale)))))


def resize(img, size, *, mode=None, interpolation="bilinear"):
    """Resize a PIL image like ``torchvision.transforms.v2.Resize(size, interpolation, antialias=True)``.

    Parameters
    ----------
    img : PIL.Image.Image
    size : int or [height, width] or None
        ``None`` returns ``img`` unchanged.
    mode : {"shorter", "exact", "fit"}, optional
        ``shorter`` (the default for an integer) resizes the shorter side to ``size`` and the longer
        side to ``int(size * long / short)``, as torchvision does; ``exact`` (the default for a list)
        resizes to exactly ``[height, width]``; ``fit`` keeps the aspect ratio and scales the image to
        fit inside ``[height, width]`` (sides rounded as :func:`fit_size` says); the caller pads it to
        the box with :func:`pad_to_box`. An integer with ``exact`` or ``fit`` means ``[size, size]``.
    interpolation : {"nearest", "bilinear", "bicubic", "lanczos"}
        Pillow's resampling filter of that name, as torchvision uses on PIL images (Pillow's filters
        antialias when downscaling).

    Returns
    -------
    PIL.Image.Image
    """
    if size is None:
        return img
    if interpolation not in INTERPOLATIONS:
        raise DataError(f"preprocess.interpolation: expected one of {', '.join(INTERPOLATIONS)}; "
                        f"got {interpolation!r}")
    mode = mode or ("shorter" if isinstance(size, int) else "exact")
    w, h = img.size
    if mode == "shorter":
        if not isinstance(size, int):
            raise DataError(f"preprocess.resize_mode: shorter expects an integer preprocess.resize; got {size}")
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    elif mode == "exact":
        new_h, new_w = _pair(size)
    elif mode == "fit":
        new_h, new_w = fit_size(h, w, size)
    else:
        raise DataError(f"preprocess.resize_mode: expected one of {', '.join(RESIZE_MODES)}; got {mode!r}")
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), INTERPOLATIONS[interpolation])


def pad_to_box(arr, size, *, where="center", value=0):
    """Pad an ``(H, W, C)`` array no larger than ``size`` to exactly ``size`` with ``value``.

    Parameters
    ----------
    arr : ndarray of shape (H, W, C)
    size : int or [height, width]
    where : {"center", "bottom_right"}
        ``center`` splits the padding, the odd pixel going to the bottom and right (``top =
        (box_h - H) // 2``, as ultralytics' letterbox and torchvision's ``CenterCrop`` pad);
        ``bottom_right`` keeps the image in the top left corner (OCR line models).
    value : float or sequence of float
        One value, or one per channel, in the units of ``arr``.

    Returns
    -------
    ndarray of shape (height, width, C)
    """
    bh, bw = _pair(size)
    h, w, c = arr.shape
    if (h, w) == (bh, bw):
        return arr
    value = np.broadcast_to(np.asarray(value, dtype=arr.dtype).reshape(-1), (c,))
    out = np.empty((bh, bw, c), dtype=arr.dtype)
    out[...] = value
    top, left = ((bh - h) // 2, (bw - w) // 2) if where == "center" else (0, 0)
    out[top:top + h, left:left + w] = arr
    return out


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
    """Views of one PIL image as ``(n_views, C, H, W)``, normalized, in the model's input type.

    ``pre`` is the params ``preprocess`` mapping; a missing key takes its default. The steps:

    1. resize (:func:`resize`): ``resize``, ``resize_mode`` (shorter | exact | fit) and
       ``interpolation``; with ``crop_pct`` and no ``resize``, the shorter side goes to
       ``floor(crop / crop_pct)`` as timm does;
    2. ``channels: bgr`` reverses the channel order (the model reads BGR, as OpenCV decodes);
    3. ``resize_mode: fit`` pads to exactly ``resize`` (:func:`pad_to_box`, ``pad`` and
       ``pad_value`` in 0..255 pixel units, in the model's channel order);
    4. ``(x / s - mean) / std`` with ``s = 255`` for ``scale: unit`` (pixels in 0..1) and ``s = 1``
       for ``scale: byte`` (pixels in 0..255); ``mean`` and ``std`` are in the model's channel
       order (BGR when ``channels`` is bgr), as the model's own pipeline lists them;
    5. the test-time views (:func:`views`: ``crop`` and ``tta``).

    ``dtype`` float32 (also for ``auto``), float16 or float64 gives that type; ``uint8`` gives the
    raw 0..255 pixels (``mean`` must then be 0 and ``std`` 1; ``scale`` has no effect).

    Returns
    -------
    ndarray of shape (n_views, C, H, W)
    """
    crop, tta = pre.get("crop"), pre.get("tta", "none")
    size, mode = pre.get("resize"), pre.get("resize_mode")
    if pre.get("crop_pct") is not None:
        if crop is None or size is not None:
            raise DataError(f"preprocess.crop_pct: expected preprocess.crop and no preprocess.resize with it; "
                            f"got crop {crop}, resize {size}")
        size, mode = crop_pct_size(crop, pre["crop_pct"]), "shorter"
    img = resize(img, size, mode=mode, interpolation=pre.get("interpolation", "bilinear"))
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    c = arr.shape[-1]
    if pre.get("channels", "rgb") == "bgr":
        if c != 3:
            raise DataError(f"preprocess.channels: expected rgb for {c}-channel images (mode grayscale); got 'bgr'")
        arr = arr[:, :, ::-1]
    dtype = np.dtype(DTYPES.get(pre.get("dtype", "auto"), np.float32))
    mean = np.asarray(pre.get("mean", [0.0]), dtype=np.float32)
    std = np.asarray(pre.get("std", [1.0]), dtype=np.float32)
    if mean.size not in (1, c) or std.size not in (1, c):
        raise DataError(f"preprocess.mean/std: expected 1 or {c} values for {c}-channel images; "
                        f"got {mean.size} and {std.size}")
    if dtype == np.uint8 and (mean.any() or (std != 1).any()):
        raise DataError(f"preprocess.mean/std: expected mean [0] and std [1] for uint8 input (the model takes "
                        f"raw 0..255 pixels); got mean {mean.tolist()}, std {std.tolist()}")
    fresh = False
    if size is not None and mode == "fit":
        value = np.asarray(pre.get("pad_value", 0), dtype=np.float64).reshape(-1)
        if value.size not in (1, c):
            raise DataError(f"preprocess.pad_value: expected 1 or {c} values for {c}-channel images; "
                            f"got {value.size}")
        if (value != np.round(value)).any():  # a fractional pad value is padded in floating point
            if dtype == np.uint8:
                raise DataError(f"preprocess.pad_value: expected whole pixel values for uint8 input; "
                                f"got {value.tolist()}")
            arr, fresh = arr.astype(np.float32), True
        arr = pad_to_box(arr, size, where=pre.get("pad", "center"), value=value)
    if crop is not None and tta != "tencrop":
        arr = _pad_to(arr, crop)  # torchvision pads with black before normalizing
    if dtype == np.uint8:
        return np.stack(views(arr, crop, tta)).transpose(0, 3, 1, 2)
    # normalize the image once (one conversion, one fused scale-and-shift); the views are then
    # crops of it, copied once into the stack
    f = arr if fresh else arr.astype(np.float32)
    f *= 1.0 / ((255.0 if pre.get("scale", "unit") == "unit" else 1.0) * std)
    f -= mean / std
    out = np.stack(views(f, crop, tta)).transpose(0, 3, 1, 2)
    return out if dtype == np.float32 else out.astype(dtype)


def _pad_to(arr, size):
    ch, cw = _pair(size)
    h, w = arr.shape[:2]
    if ch <= h and cw <= w:
        return arr
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    return np.pad(arr, ((ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2), (0, 0)))


def load_views(path, pre):
    """Decode and preprocess one file; returns ``(views, None)`` or ``(None, reason)``.

    A file that cannot be decoded (not an image, truncated, an unreadable header) or that
    :func:`load_image` refuses gives the reason; errors of the preprocessing itself concern every
    file and are raised.
    """
    try:
        img = load_image(path, pre.get("mode", "rgb"))
    except DataError as exc:
        return None, str(exc)
    except UnidentifiedImageError:  # its message holds the file object's repr, not the file
        return None, "cannot decode: not an image file Pillow can read"
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        return None, f"cannot decode: {type(exc).__name__}: {exc}"
    return preprocess(img, pre), None  # a size error here concerns every file: it propagates
