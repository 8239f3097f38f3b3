"""Duplicate images in an evaluation set, and evaluation images that also appear in the training data.

Two kinds, each within one set or between the evaluation set and a reference (training) set:

- **exact**: files with the same content hash (BLAKE2b of the bytes, 16-byte digest: the hash the
  predictions already carry in ``Predictions.file_hashes``; :func:`content_hash` computes it for a file);
- **perceptual** (the default evidence of a near duplicate): 64-bit DCT perceptual hashes
  (:func:`perceptual_hash`) at most ``max_distance`` bits apart (Hamming distance). The hash is the
  pHash of Zauner ("Implementation and Benchmarking of Perceptual Image Hash Functions", master's
  thesis, Hagenberg 2010) as the pHash library and ``imagehash.phash`` compute it: the luma shrunk to
  32 x 32, its 2-d DCT-II, the 8 x 8 lowest frequencies, one bit per coefficient above their median.
  It survives resizing, recompression and small changes of brightness, not crops, flips or shifts
  of a large part of the image. Optionally, embeddings confirm pairs whose hashes are a little
  further apart (:func:`perceptual_duplicates` with ``embeddings``): both signals must agree;
- **near**: embeddings with cosine similarity at or above a threshold. The search runs over blocks of
  rows, so it holds at most ``block_size x block_size`` similarities at once and never the ``n x n``
  matrix, and lists every pair above the threshold (no approximate index). Embeddings are
  L2-normalized onto the grid of :func:`~evallib.metrics.verification.normalize_embeddings`, on which
  the float64 dot products are exact, so the pairs do not depend on the block size. Used alone, a
  classifier's embeddings join images of one class that are not copies (about 2,000 pairs at cosine
  0.95 among the demo's 540 evaluation digits), so the label review never uses them alone.

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
        Cosine similarity (1.0 for exact duplicates; ``1 - distance / 64`` for perceptual pairs).
    conflicting : ndarray of bool, shape (n_pairs,)
        The two labels differ (all False when no labels were given).
    groups : ndarray of shape (n_samples,) or None
        Within one set: images linked by a chain of pairs share a group id (0, 1, ...); images in no
        pair have -1. ``None`` against a reference.
    kind : {"exact", "near", "perceptual"}
    threshold : float
        The cosine threshold (1.0 for exact duplicates; ``1 - max_distance / 64`` for perceptual pairs).
    against_reference : bool
    distance : ndarray of shape (n_pairs,) or None
        Perceptual pairs: the Hamming distance of the two hashes, in bits.
    cosine : ndarray of shape (n_pairs,) or None
        Perceptual pairs with embeddings: the cosine similarity of the two embeddings.
    max_distance : int or None
        Perceptual pairs: the distance at or below which the hash alone makes a pair.
    confirm_distance : int or None
        Perceptual pairs with embeddings: pairs up to this distance are listed when the cosine also
        reaches ``cosine_threshold``.
    cosine_threshold : float or None
    """

    pairs: np.ndarray
    similarity: np.ndarray
    conflicting: np.ndarray
    groups: np.ndarray | None
    kind: str
    threshold: float
    against_reference: bool
    distance: np.ndarray | None = None
    cosine: np.ndarray | None = None
    max_distance: int | None = None
    confirm_distance: int | None = None
    cosine_threshold: float | None = None

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


def _result(pairs, sim, labels, ref_labels, *, kind, threshold, n, against_reference, **extra):
    """The pairs sorted (conflicting first, then by decreasing similarity); ``extra`` per-pair arrays follow
    the same order, other ``extra`` values are set as they are."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    sim = np.asarray(sim, dtype=np.float64)
    conflicting = _conflicts(pairs, labels, ref_labels, against_reference)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -sim, ~conflicting))
    pairs, sim, conflicting = pairs[order], sim[order], conflicting[order]
    extra = {k: (v[order] if isinstance(v, np.ndarray) else v) for k, v in extra.items()}
    groups = None if against_reference else _groups(n, pairs)
    return DuplicatePairs(pairs=pairs, similarity=sim, conflicting=conflicting, groups=groups, kind=kind,
                          threshold=float(threshold), against_reference=against_reference, **extra)


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


# ----------------------------------------------------------------------------------------- perceptual hashes

HASH_BITS = 64
_HASH_SIDE = 8  # the hash keeps the 8 x 8 lowest DCT frequencies
_HASH_GRID = 32  # of the luma shrunk to 32 x 32
_BIT_WEIGHTS = (np.uint64(1) << np.arange(HASH_BITS - 1, -1, -1, dtype=np.uint64))


def _gray(image):
    """8-bit luma of an (H, W) or (H, W, 3) array (uint8, or float in [0, 1])."""
    from ..data.image_properties import _luma

    a = np.asarray(image)
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"image: expected a uint8 array or floats in [0, 1]; got dtype {a.dtype}")
        if np.issubdtype(a.dtype, np.floating):
            a = np.clip(a, 0.0, 1.0) * 255.0
        a = np.clip(np.round(a), 0, 255).astype(np.uint8)
    return _luma(a)


def perceptual_hash(image):
    """The 64-bit DCT perceptual hash (pHash) of one image.

    The luma is shrunk (or, for images under 32 pixels, enlarged) to 32 x 32 with Pillow's box filter
    (the mean of the pixels each output pixel covers), transformed with the 2-d DCT-II, and the
    8 x 8 lowest frequencies (the DC term included) give one bit each: 1 where the coefficient is
    above their median (Zauner 2010; ``imagehash.phash``). The first bit is the DC term's, then row
    by row.

    Parameters
    ----------
    image : ndarray of shape (height, width) or (height, width, 3)
        uint8 pixels, or floats in [0, 1].

    Returns
    -------
    int
        The 64 bits as an unsigned integer (``f"{h:016x}"`` writes it as 16 hexadecimal digits).

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    >>> h = perceptual_hash(ramp)
    >>> h == perceptual_hash(ramp[::2, ::2])  # the same picture at half the size
    True
    """
    from PIL import Image
    from scipy.fft import dct

    gray = _gray(image)
    small = np.asarray(Image.fromarray(gray).resize((_HASH_GRID, _HASH_GRID), Image.BOX), dtype=np.float64)
    coef = dct(dct(small, axis=0), axis=1)[:_HASH_SIDE, :_HASH_SIDE]
    bits = (coef > np.median(coef)).ravel()
    return int((bits.astype(np.uint64) * _BIT_WEIGHTS).sum())


def hash_distance(a, b):
    """Hamming distance between perceptual hashes, element by element (broadcasting).

    Parameters
    ----------
    a, b : int or array-like of uint64

    Returns
    -------
    ndarray of int
    """
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return np.bitwise_count(x).astype(np.int64)


def _hash_array(name, hashes):
    try:
        arr = np.asarray([int(h, 16) if isinstance(h, str) else int(h) for h in hashes], dtype=np.uint64)
    except (TypeError, ValueError, OverflowError):
        raise EvallibError(f"{name}: expected 64-bit perceptual hashes (integers or hexadecimal strings); "
                           f"got {list(hashes)[:3]!r}...") from None
    return arr


def perceptual_duplicates(hashes, *, max_distance=3, labels=None, reference=None, reference_labels=None,
                          embeddings=None, threshold=0.99, confirm_distance=None, content_hashes=None,
                          reference_content_hashes=None, ignore=None, block_size=2048):
    """Pairs of images whose perceptual hashes are at most ``max_distance`` bits apart.

    With ``embeddings``, pairs further apart (up to ``confirm_distance``) are listed too when their
    embeddings also have cosine similarity at or above ``threshold``: both signals must agree. The
    embeddings alone are not evidence: a classifier's embedding brings the images of one class
    together whether or not they are copies.

    Parameters
    ----------
    hashes : sequence of int or hexadecimal str, shape (n_samples,)
        :func:`perceptual_hash` of each evaluation image.
    max_distance : int, default 3
        Hamming distance (of 64 bits) at or below which two images are near duplicates. Measured on
        the demo's 540 evaluation digits (8 x 8 pixels): 0 pairs at 2 bits, 10 at 4; copies enlarged
        3 or 4 times or recompressed as JPEG are at most 4 bits away.
    labels : array-like of shape (n_samples,), optional
        Pairs whose labels differ are marked ``conflicting`` (and listed first).
    reference : sequence of int or str, shape (n_reference,), optional
        The training images' hashes: the pairs are then evaluation images that nearly duplicate a
        training image (leakage).
    reference_labels : array-like of shape (n_reference,), optional
    embeddings : array-like of shape (n_samples, dim), optional
        Within one set only: each image's embedding, to confirm pairs up to ``confirm_distance``.
    threshold : float, default 0.99
        The cosine similarity that confirms a pair. Strict: a classifier's embeddings put most images of
        a class above 0.95 (on the demo digits, 1,350 to 101,294 of the 145,530 pairs).
    confirm_distance : int, optional
        Default ``max_distance + 2``: the next distance two hashes can have.
    content_hashes, reference_content_hashes : sequence of str, optional
        The files' content hashes (:func:`content_hash`): pairs of identical files are left out, being
        exact duplicates (:func:`exact_duplicates` lists them).
    ignore : array-like of bool, shape (n_samples,), optional
        Evaluation images never paired: those whose hash says nothing, such as constant images (no
        frequency but the mean: every constant image hashes alike, and a black one differs from a
        white one by one bit).
    block_size : int, default 2048
        Rows per block: at most ``block_size ** 2`` distances are held at once.

    Returns
    -------
    DuplicatePairs
        ``kind="perceptual"``; ``distance`` and (with embeddings) ``cosine`` per pair.

    Examples
    --------
    >>> perceptual_duplicates([0b1011, 0b1001, 0xFF00], max_distance=1).pairs.tolist()
    [[0, 1]]
    """
    if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)) \
            or not 0 <= max_distance <= HASH_BITS:
        raise EvallibError(f"max_distance: expected an integer number of bits in 0..{HASH_BITS}; got {max_distance!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise EvallibError(f"block_size: expected a positive integer; got {block_size!r}")
    h = _hash_array("hashes", hashes)
    n = len(h)
    labels = _labels("labels", labels, n)
    cross = reference is not None
    r = _hash_array("reference", reference) if cross else h
    ref_labels = _labels("reference_labels", reference_labels, len(r)) if cross else None
    emb = None
    if embeddings is not None:
        if cross:
            raise EvallibError("embeddings: expected none against a reference (the training images have no "
                               "embeddings); got embeddings")
        if not -1 < threshold <= 1:
            raise EvallibError(f"threshold: expected a cosine similarity in (-1, 1]; got {threshold!r}")
        emb = normalize_embeddings(embeddings, "embeddings").astype(np.float64)
        if len(emb) != n:
            raise EvallibError(f"embeddings: expected {n} rows, one per hash; got {len(emb)}")
    reach = max_distance
    if emb is not None:
        reach = min(HASH_BITS, max_distance + 2) if confirm_distance is None else int(confirm_distance)
        if not max_distance <= reach <= HASH_BITS:
            raise EvallibError(f"confirm_distance: expected an integer in {max_distance}..{HASH_BITS}; "
                               f"got {confirm_distance!r}")
    found_i, found_j, found_d = [], [], []
    for a in range(0, n, block_size):
        ha = h[a:a + block_size, None]
        for b in range(0 if cross else a, len(r), block_size):
            d = np.bitwise_count(np.bitwise_xor(ha, r[None, b:b + block_size])).astype(np.int64)
            hit = d <= reach
            if not cross and b == a:
                hit &= np.triu(np.ones(hit.shape, dtype=bool), k=1)
            i, j = np.nonzero(hit)
            found_i.append(i + a)
            found_j.append(j + b)
            found_d.append(d[i, j])
    pairs = np.column_stack([np.concatenate(found_i), np.concatenate(found_j)]) if found_i else np.zeros((0, 2))
    pairs = pairs.astype(np.int64).reshape(-1, 2)
    dist = np.concatenate(found_d) if found_d else np.zeros(0, dtype=np.int64)
    if content_hashes is not None:
        same = np.asarray(list(content_hashes), dtype=object)
        other = same if not cross else np.asarray(list(reference_content_hashes or [None] * len(r)), dtype=object)
        if len(same) != n or len(other) != len(r):
            raise EvallibError(f"content_hashes: expected one per image ({n}) and reference_content_hashes one per "
                               f"reference image ({len(r)}); got {len(same)} and {len(other)}")
        keep = same[pairs[:, 0]] != other[pairs[:, 1]]
        pairs, dist = pairs[keep], dist[keep]
    if ignore is not None:
        skip = np.asarray(ignore, dtype=bool).reshape(-1)
        if len(skip) != n:
            raise EvallibError(f"ignore: expected {n} booleans, one per image; got {len(skip)}")
        keep = ~skip[pairs[:, 0]] & (np.ones(len(pairs), bool) if cross else ~skip[pairs[:, 1]])
        pairs, dist = pairs[keep], dist[keep]
    cos = None
    if emb is not None:
        cos = np.einsum("ij,ij->i", emb[pairs[:, 0]], emb[pairs[:, 1]]) if len(pairs) else np.zeros(0)
        keep = (dist <= max_distance) | (cos >= threshold)
        pairs, dist, cos = pairs[keep], dist[keep], cos[keep]
    return _result(pairs, 1.0 - dist / HASH_BITS, labels, ref_labels, kind="perceptual",
                   threshold=1.0 - max_distance / HASH_BITS, n=n, against_reference=cross, distance=dist,
                   cosine=cos, max_distance=int(max_distance),
                   confirm_distance=int(reach) if emb is not None else None,
                   cosine_threshold=float(threshold) if emb is not None else None)


def _conflicts(pairs, labels, ref_labels, against_reference):
    if labels is not None and (ref_labels is not None or not against_reference):
        other = labels if not against_reference else ref_labels
        return np.asarray(labels[pairs[:, 0]] != other[pairs[:, 1]], dtype=bool).reshape(-1)
    return np.zeros(len(pairs), dtype=bool)
