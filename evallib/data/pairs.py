"""Pair lists for verification: LFW's ``pairs.txt`` layout mapped onto a :class:`~evallib.data.Dataset`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .listing import Dataset


@dataclass
class Pairs:
    """An explicit pair list: indices into a :class:`Dataset`, same/different, and fold."""

    i: np.ndarray
    j: np.ndarray
    same: np.ndarray
    fold: np.ndarray


def read_pairs(path: str | Path, dataset: Dataset) -> Pairs:
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
    by_class: dict[str, list[int]] = {}
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
        i.append(a)
        j.append(b)
        same.append(s)
    if not i:
        raise DataError(f"{path}: expected at least one pair; got none")
    n = len(i)
    if folds and per_fold and folds * per_fold == n:
        fold = np.arange(n) // per_fold
    else:
        fold = (np.arange(n) * 10) // n
    return Pairs(np.array(i), np.array(j), np.array(same, dtype=bool), fold.astype(np.int64))
