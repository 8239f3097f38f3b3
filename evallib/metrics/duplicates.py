"""Duplicate images in an evaluation set, and evaluation images that also appear in the training data.

Two kinds, each within one set or between the evaluation set and a reference (training) set:

- **exact**: files with the same content hash (BLAKE2b of the bytes, 16-byte digest: the hash the
  predictions already carry in ``Predictions.file_hashes``; :func:`content_hash` computes it for a file);
- **near**: embeddings with cosine similarity at or above a threshold. The search runs over blocks of
  rows, so it holds at most ``block_size x block_size`` similarities at once and never the ``n x n``
  matrix, and lists every pair above the threshold (no approximate index). Embeddings are
  L2-normalized onto the grid of :func:`~evallib.metrics.verification.normalize_embeddings`, on which
  the float64 dot products are exact, so the pairs do not depend on the block size.

Duplicates whose labels differ (one of the two labels is wrong, or the class is ambiguous) come first
in every result; then pairs by decreasing similarity. Nothing is removed from the data: results list
pairs and groups. Near-duplicate and train/test-leakage checks follow the practice of the test-set
audits of Barz and Denzler ("Do we train on test data? Purging CIFAR of near-duplicates", J. Imaging
2020) and Northcutt, Athalye and Mueller (NeurIPS Datasets and Benchmarks 2021).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EvallibError
from .verification import normalize_embeddings


@dataclass(frozen=True)
class DuplicatePairs:
    """Duplicate pairs, pairs with conflicting labels first.

    Attributes
    ----------
    pairs : ndarray of shape (n_pairs, 2)
        Within one set: ``(i, j)`` with ``i < j``. Against a reference: ``(i, j)`` with ``i`` an
        evaluation image and ``j`` a reference image.
    similarity : ndarray of shape (n_pairs,)
        Cosine similarity (1.0 for exact duplicates).
    conflicting : ndarray of bool, shape (n_pairs,)
        The two labels differ (all False when no labels were given).
    groups : ndarray of shape (n_samples,) or None
        Within one set: images linked by a chain of pairs share a group id (0, 1, ...); images in no
        pair have -1. ``None`` against a reference.
    kind : {"exact", "near"}
    threshold : float
        The cosine threshold (1.0 for exact duplicates).
    against_reference : bool
    """

    pairs: np.ndarray
    similarity: np.ndarray
    conflicting: np.ndarray
    groups: np.ndarray | None
    kind: str
    threshold: float
    against_reference: bool

    @property
    def n_pairs(self):
        return int(len(self.pairs))

    @property
    def n_conflicting(self):
        return int(self.conflicting.sum())

    def duplicated(self, n_samples):
        """Boolean mask of shape (n_samples,): evaluation images that are in at least one pair."""
        mask = np.zeros(n_samples, dtype=bool)
        if len(self.pairs):
            mask[self.pairs[:, 0]] = True
            if not self.against_reference:
                mask[self.pairs[:, 1]] = True
        return mask


def content_hash(path, *, chunk=1 << 20):
    """BLAKE2b (16-byte digest) of a file's bytes, as hex: the hash recorded for every evaluated image."""
    h = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _labels(name, labels, n):
    if labels is None:
        return None
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n:
        raise EvallibError(f"{name}: expected {n} labels in a 1-d array; got shape {arr.shape}")
    return arr


def _groups(n, pairs):
    """Connected components of the pair graph; -1 for images in no pair."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    groups = np.full(n, -1, dtype=np.int64)
    if len(pairs) == 0:
        return groups
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    linked = np.zeros(n, dtype=bool)
    linked[pairs.ravel()] = True
    _, first = np.unique(comp[linked], return_inverse=True)  # number the linked components 0, 1, ...
    groups[linked] = first
    return groups


def _result(pairs, sim, labels, ref_labels, *, kind, threshold, n, against_reference):
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    sim = np.asarray(sim, dtype=np.float64)
    if labels is not None and (ref_labels is not None or not against_reference):
        other = labels if not against_reference else ref_labels
        conflicting = np.asarray(labels[pairs[:, 0]] != other[pairs[:, 1]], dtype=bool).reshape(-1)
    else:
        conflicting = np.zeros(len(pairs), dtype=bool)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -sim, ~conflicting))
    pairs, sim, conflicting = pairs[order], sim[order], conflicting[order]
    groups = None if against_reference else _groups(n, pairs)
    return DuplicatePairs(pairs=pairs, similarity=sim, conflicting=conflicting, groups=groups, kind=kind,
                          threshold=float(threshold), against_reference=against_reference)


def near_duplicates(embeddings, *, threshold=0.95, labels=None, reference=None, reference_labels=None,
                    block_size=1024):
    """Pairs of images whose embeddings have cosine similarity at or above ``threshold``.

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, dim)
        The evaluation images' embeddings (any scale; rows are L2-normalized here).
    threshold : float, default 0.95
        Cosine similarity in ``(-1, 1]`` at or above which two images are near duplicates.
    labels : array-like of shape (n_samples,), optional
        Labels of the evaluation images; pairs whose labels differ are marked ``conflicting``.
    reference : array-like of shape (n_reference, dim), optional
        Training-set embeddings from the same model: the pairs are then evaluation images that
        nearly duplicate a training image (leakage), instead of pairs within the evaluation set.
    reference_labels : array-like of shape (n_reference,), optional
    block_size : int, default 1024
        Rows per block: at most ``block_size ** 2`` similarities are held at once.

    Returns
    -------
    DuplicatePairs

    Examples
    --------
    >>> import numpy as np
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01]])
    >>> near_duplicates(e, threshold=0.99, labels=["cat", "dog", "dog"]).pairs.tolist()
    [[0, 2]]
    """
    if not -1 < threshold <= 1:
        raise EvallibError(f"threshold: expected a cosine similarity in (-1, 1]; got {threshold!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise EvallibError(f"block_size: expected a positive integer; got {block_size!r}")
    e = normalize_embeddings(embeddings, "embeddings")
    n = len(e)
    labels = _labels("labels", labels, n)
    cross = reference is not None
    r = normalize_embeddings(reference, "reference") if cross else e
    if cross and r.shape[1] != e.shape[1]:
        raise EvallibError(f"reference: expected embeddings of dimension {e.shape[1]} like embeddings; "
                           f"got {r.shape[1]}")
    ref_labels = _labels("reference_labels", reference_labels, len(r)) if cross else None
    found_i, found_j, found_s = [], [], []
    for a in range(0, n, block_size):
        ea = e[a:a + block_size].astype(np.float64)
        for b in range(0 if cross else a, len(r), block_size):
            s = ea @ r[b:b + block_size].astype(np.float64).T
            hit = s >= threshold
            if not cross and b == a:
                hit &= np.triu(np.ones(hit.shape, dtype=bool), k=1)  # each pair once, never an image with itself
            i, j = np.nonzero(hit)
            found_i.append(i + a)
            found_j.append(j + b)
            found_s.append(s[i, j])
    pairs = np.column_stack([np.concatenate(found_i), np.concatenate(found_j)]) if found_i else np.zeros((0, 2))
    sim = np.concatenate(found_s) if found_s else np.zeros(0)
    return _result(pairs, sim, labels, ref_labels, kind="near", threshold=threshold, n=n, against_reference=cross)


def exact_duplicates(hashes, *, labels=None, reference=None, reference_labels=None):
    """Images with identical content hashes, within the evaluation set or against a reference set.

    Parameters
    ----------
    hashes : sequence of str, shape (n_samples,)
        The content hash of each evaluation image (``Predictions.file_hashes``, or :func:`content_hash`).
    labels : array-like of shape (n_samples,), optional
    reference : sequence of str, shape (n_reference,), optional
        Content hashes of the training images: the pairs are then evaluation images whose file also
        appears in the training data, one pair per matching training file.
    reference_labels : array-like of shape (n_reference,), optional

    Returns
    -------
    DuplicatePairs
        Within one set, each group of identical files is listed as pairs from its first image (lowest
        index) to each other member, and ``groups`` numbers the groups; a group's labels all agree
        exactly when none of its pairs is ``conflicting``.
    """
    h = np.asarray(hashes, dtype=object).reshape(-1) if len(hashes) else np.zeros(0, dtype=object)
    n = len(h)
    labels = _labels("labels", labels, n)
    if reference is None:
        first = {}
        i_list, j_list = [], []
        for idx, key in enumerate(h):
            if key in first:
                i_list.append(first[key])
                j_list.append(idx)
            else:
                first[key] = idx
        pairs = np.column_stack([i_list, j_list]) if i_list else np.zeros((0, 2))
        return _result(pairs, np.ones(len(i_list)), labels, None, kind="exact", threshold=1.0, n=n,
                       against_reference=False)
    ref = list(reference)
    ref_labels = _labels("reference_labels", reference_labels, len(ref))
    where = {}
    for idx, key in enumerate(ref):
        where.setdefault(key, []).append(idx)
    pairs = [(i, j) for i, key in enumerate(h) for j in where.get(key, ())]
    pairs = np.array(pairs) if pairs else np.zeros((0, 2))
    return _result(pairs, np.ones(len(pairs)), labels, ref_labels, kind="exact", threshold=1.0, n=n,
                   against_reference=True)
