"""Readers of face-recognition protocol files: the IJB-B/IJB-C meta layout and LFW/CFP pair lists.

IJB-B and IJB-C (Whitelam et al. 2017; Maze et al. 2018), in the layout of insightface's
``recognition/_evaluation_/ijb`` meta folder:

- ``ijbc_face_tid_mid.txt``: ``image_name template_id media_id`` per line (space separated);
- ``ijbc_template_pair_label.txt``: ``template_id template_id label`` (label 1: same subject);
- ``ijbc_name_5pts_score.txt``: ``image_name x1 y1 ... x5 y5 detector_score``;
- ``ijbc_1N_gallery_G1.csv``, ``..._G2.csv``, ``ijbc_1N_probe_mixed.csv`` (IJB-B: ``S1``, ``S2``): CSV
  with a header naming ``TEMPLATE_ID`` and ``SUBJECT_ID``, one row per image.

LFW ``pairs.txt`` (Huang et al. 2007) and CFP's ``Protocol`` folder (Sengupta et al. 2016) give pair
lists with folds. Every reader checks each row and raises :class:`~evallib.errors.DataError` naming
the file and line, what was expected and what came.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class FaceTemplateMedia:
    """Rows of a ``face_tid_mid`` file: each image's template and media (arrays of shape (n_images,))."""

    images: np.ndarray
    templates: np.ndarray
    media: np.ndarray


@dataclass(frozen=True)
class TemplatePairs:
    """Rows of a ``template_pair_label`` file (arrays of shape (n_pairs,)); ``same`` is bool."""

    t1: np.ndarray
    t2: np.ndarray
    same: np.ndarray


@dataclass(frozen=True)
class TemplateSubjects:
    """Templates of a 1:N gallery or probe list, ascending, and the subject of each."""

    templates: np.ndarray
    subjects: np.ndarray


@dataclass(frozen=True)
class FaceDetections:
    """Rows of a ``name_5pts_score`` file: image names, landmarks of shape (n, 5, 2) and detector scores."""

    images: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class PairList:
    """An image pair list: the two images of each pair, whether they show one person, and the fold."""

    first: np.ndarray
    second: np.ndarray
    same: np.ndarray
    fold: np.ndarray


def _read(path):
    p = Path(path)
    try:
        return p, p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{p}: expected a file; got a directory") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: expected UTF-8 text; got undecodable bytes at offset {e.start}") from None


def _rows(p, text, n_fields, what):
    """``(line_number, fields)`` of every non-blank line, each with exactly ``n_fields`` fields."""
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) != n_fields:
            raise DataError(f"{p}:{no}: expected {n_fields} fields ({what}); got {len(f)}: {line.strip()[:80]!r}")
        out.append((no, f))
    if not out:
        raise DataError(f"{p}: expected rows of {what}; got an empty file")
    return out


def _int(p, no, value, name):
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{p}:{no}: {name}: expected an integer; got {value!r}") from None


def _float(p, no, value, name):
    try:
        v = float(value)
    except ValueError:
        raise DataError(f"{p}:{no}: {name}: expected a number; got {value!r}") from None
    if not np.isfinite(v):
        raise DataError(f"{p}:{no}: {name}: expected a finite number; got {value!r}")
    return v


_SPACE = np.zeros(256, dtype=bool)
_SPACE[list(b" \t\r\n\v\f")] = True


def _int_table(p, text, names):
    """Whitespace-separated integer columns, parsed in one pass of NumPy; when a line has the wrong
    number of fields or a field is not an integer, a row-by-row check names the first bad line."""
    n = len(names)
    b = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    space = _SPACE[b]
    token_start = ~space & np.r_[True, space[:-1]]
    newline = np.flatnonzero(b == 10)
    starts = np.flatnonzero(token_start)
    per_line = np.diff(np.searchsorted(starts, np.r_[0, newline + 1, len(b) + 1]))
    per_line = per_line[per_line > 0]
    if len(per_line) and (per_line == n).all():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # NumPy warns (and stops) at the first token that is not an integer
            try:
                a = np.fromstring(text, dtype=np.int64, sep=" ")
            except (ValueError, DeprecationWarning):
                a = None
        if a is not None and len(a) == n * len(per_line):
            return a.reshape(-1, n)
    rows = _rows(p, text, n, " ".join(names))
    return np.array([[_int(p, no, v, name) for v, name in zip(f, names)] for no, f in rows], dtype=np.int64)


def read_face_tid_mid(path):
    """Read a ``face_tid_mid`` file: ``image_name template_id media_id`` per line.

    Returns
    -------
    FaceTemplateMedia
    """
    p, text = _read(path)
    rows = _rows(p, text, 3, "image_name template_id media_id")
    t = np.array([_int(p, no, f[1], "template_id") for no, f in rows], dtype=np.int64)
    m = np.array([_int(p, no, f[2], "media_id") for no, f in rows], dtype=np.int64)
    return FaceTemplateMedia(images=np.array([f[0] for _, f in rows]), templates=t, media=m)


def read_template_pair_label(path):
    """Read a ``template_pair_label`` file: ``template_id template_id label`` per line, label 0 or 1.

    Returns
    -------
    TemplatePairs
    """
    p, text = _read(path)
    a = _int_table(p, text, ("template_id_1", "template_id_2", "label"))
    bad = ~np.isin(a[:, 2], [0, 1])
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        no = [i for i, line in enumerate(text.splitlines(), 1) if line.strip()][k]
        raise DataError(f"{p}:{no}: label: expected 0 or 1; got {int(a[k, 2])}")
    return TemplatePairs(t1=a[:, 0], t2=a[:, 1], same=a[:, 2].astype(bool))


def read_name_5pts_score(path):
    """Read a ``name_5pts_score`` file: image name, five landmarks (x, y) and the detector score.

    Returns
    -------
    FaceDetections
    """
    p, text = _read(path)
    rows = _rows(p, text, 12, "image_name, 10 landmark coordinates and a detector score")
    lm = np.array([[_float(p, no, v, f"landmark {k // 2 + 1} {'xy'[k % 2]}") for k, v in enumerate(f[1:11])]
                   for no, f in rows]).reshape(-1, 5, 2)
    scores = np.array([_float(p, no, f[11], "detector_score") for no, f in rows])
    return FaceDetections(images=np.array([f[0] for _, f in rows]), landmarks=lm, scores=scores)


def read_template_subjects(path):
    """Read a 1:N gallery or probe CSV (header with ``TEMPLATE_ID`` and ``SUBJECT_ID``; one row per image).

    Returns
    -------
    TemplateSubjects
        One entry per template, ascending. A template listed with two subjects is an error.
    """
    p, text = _read(path)
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    cols = [c.strip().upper() for c in header] if header else []
    if "TEMPLATE_ID" not in cols or "SUBJECT_ID" not in cols:
        raise DataError(f"{p}:1: expected a header naming TEMPLATE_ID and SUBJECT_ID; got {','.join(cols)[:80]!r}")
    it, isub = cols.index("TEMPLATE_ID"), cols.index("SUBJECT_ID")
    subject_of, line_of = {}, {}
    for no, row in enumerate(reader, 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(it, isub):
            raise DataError(f"{p}:{no}: expected at least {max(it, isub) + 1} comma-separated fields; got {len(row)}")
        t = _int(p, no, row[it].strip(), "TEMPLATE_ID")
        s = _int(p, no, row[isub].strip(), "SUBJECT_ID")
        if subject_of.setdefault(t, s) != s:
            raise DataError(f"{p}:{no}: template {t}: expected subject {subject_of[t]} as on line {line_of[t]}; "
                            f"got {s}")
        line_of.setdefault(t, no)
    if not subject_of:
        raise DataError(f"{p}: expected rows after the header; got none")
    t = np.array(sorted(subject_of), dtype=np.int64)
    return TemplateSubjects(templates=t, subjects=np.array([subject_of[x] for x in t.tolist()], dtype=np.int64))


def _lfw_image(name, number):
    return f"{name}/{name}_{number:04d}.jpg"


def read_lfw_pairs(path):
    """Read LFW's ``pairs.txt``: a header ``folds pairs_per_fold`` (or ``pairs``), then in each fold the
    matched pairs ``name n1 n2`` followed by the mismatched pairs ``name1 n1 name2 n2``.

    Returns
    -------
    PairList
        Images as ``name/name_0001.jpg`` (LFW's layout); ``fold`` from 0.
    """
    p, text = _read(path)
    lines = [(no, line.split()) for no, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise DataError(f"{p}: expected an LFW pairs file; got an empty file")
    no, head = lines[0]
    if len(head) not in (1, 2):
        raise DataError(f"{p}:{no}: expected a header 'folds pairs_per_fold' or 'pairs'; got {' '.join(head)!r}")
    head = [_int(p, no, v, name) for v, name in zip(head, ("folds", "pairs_per_fold"))]
    folds, per = (1, head[0]) if len(head) == 1 else head
    body = lines[1:]
    # pairs.txt: per fold, `per` matched then `per` mismatched; pairsDevTrain.txt: `per` of each
    per_fold = 2 * per
    if len(body) != folds * per_fold:
        raise DataError(f"{p}: expected {folds * per_fold} pair lines after the header ({folds} folds of {per} "
                        f"matched and {per} mismatched); got {len(body)}")
    first, second, same, fold = [], [], [], []
    for k, (no, f) in enumerate(body):
        matched = k % per_fold < per
        if matched:
            if len(f) != 3:
                raise DataError(f"{p}:{no}: expected a matched pair 'name n1 n2'; got {' '.join(f)!r}")
            a = _lfw_image(f[0], _int(p, no, f[1], "n1"))
            b = _lfw_image(f[0], _int(p, no, f[2], "n2"))
        else:
            if len(f) != 4:
                raise DataError(f"{p}:{no}: expected a mismatched pair 'name1 n1 name2 n2'; got {' '.join(f)!r}")
            a = _lfw_image(f[0], _int(p, no, f[1], "n1"))
            b = _lfw_image(f[2], _int(p, no, f[3], "n2"))
        first.append(a)
        second.append(b)
        same.append(matched)
        fold.append(k // per_fold)
    return PairList(first=np.array(first), second=np.array(second), same=np.array(same, dtype=bool),
                    fold=np.array(fold, dtype=np.int64))


def _cfp_list(path):
    p, text = _read(path)
    rows = _rows(p, text, 2, "index image_path")
    out = {}
    for no, f in rows:
        i = _int(p, no, f[0], "index")
        if i in out:
            raise DataError(f"{p}:{no}: index {i}: expected each index once; got it again")
        out[i] = f[1]
    return p, out


def read_cfp_pairs(root, protocol="FP"):
    """Read CFP's frontal-profile (``FP``) or frontal-frontal (``FF``) protocol.

    ``root/Protocol/Pair_list_F.txt`` and ``Pair_list_P.txt`` map indices to image paths;
    ``root/Protocol/Split/<FP|FF>/<01..10>/same.txt`` and ``diff.txt`` list ``i,j`` index pairs. In ``FP``
    the first index is a frontal image and the second a profile one; in ``FF`` both are frontal.

    Returns
    -------
    PairList
        Image paths as listed; ``fold`` from 0 (split ``01`` is fold 0).
    """
    if protocol not in ("FP", "FF"):
        raise DataError(f"protocol: expected FP or FF; got {protocol!r}")
    base = Path(root) / "Protocol"
    _, frontal = _cfp_list(base / "Pair_list_F.txt")
    second_list = _cfp_list(base / "Pair_list_P.txt") if protocol == "FP" else (None, frontal)
    second_names = second_list[1]
    splits = sorted(d for d in (base / "Split" / protocol).glob("[0-9][0-9]") if d.is_dir())
    if not splits:
        raise DataError(f"{base / 'Split' / protocol}: expected split folders 01..10; got none")
    first, second, same, fold = [], [], [], []
    for k, d in enumerate(splits):
        for fname, is_same in (("same.txt", True), ("diff.txt", False)):
            p, text = _read(d / fname)
            for no, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                f = [v.strip() for v in line.split(",")]
                if len(f) != 2:
                    raise DataError(f"{p}:{no}: expected 'i,j'; got {line.strip()[:80]!r}")
                i, j = _int(p, no, f[0], "i"), _int(p, no, f[1], "j")
                if i not in frontal:
                    raise DataError(f"{p}:{no}: i: expected an index of Pair_list_F.txt; got {i}")
                if j not in second_names:
                    raise DataError(f"{p}:{no}: j: expected an index of Pair_list_{'P' if protocol == 'FP' else 'F'}"
                                    f".txt; got {j}")
                first.append(frontal[i])
                second.append(second_names[j])
                same.append(is_same)
                fold.append(k)
    return PairList(first=np.array(first), second=np.array(second), same=np.array(same, dtype=bool),
                    fold=np.array(fold, dtype=np.int64))
