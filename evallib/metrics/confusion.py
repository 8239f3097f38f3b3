"""Orders of classes for showing a large confusion matrix: clustered, and the most confused few.

Both work on the counts alone; nothing here draws.
"""

from __future__ import annotations

import numpy as np

from ..errors import EvallibError

OPTIMAL_LEAF_LIMIT = 300  # optimal leaf ordering costs O(n^3): above this the plain dendrogram order is used


def _check(confusion):
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise EvallibError(f"confusion: expected a square ndarray of shape (n_classes, n_classes); got shape "
                           f"{cm.shape}")
    if (cm < 0).any():
        raise EvallibError("confusion: expected counts >= 0; got negative values")
    return cm


def confusion_distance(confusion):
    """Symmetric distance between classes: 1 minus their mutual confusion, scaled to [0, 1].

    The mutual confusion of classes i and j is the share of i's images predicted as j plus the
    share of j's images predicted as i. The most confused pair is at distance 0, classes never
    confused with each other at 1.

    Parameters
    ----------
    confusion : array-like of shape (n_classes, n_classes)
        Counts: rows are true classes, columns predicted classes.

    Returns
    -------
    ndarray of shape (n_classes, n_classes)
    """
    cm = _check(confusion)
    totals = cm.sum(axis=1, keepdims=True)
    rate = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    mutual = rate + rate.T
    np.fill_diagonal(mutual, 0.0)
    top = mutual.max()
    dist = 1.0 - (mutual / top if top > 0 else mutual)
    np.fill_diagonal(dist, 0.0)
    return dist


def cluster_order(confusion):
    """A permutation of the classes that puts classes confused with each other next to each other.

    Average-linkage hierarchical clustering (scipy) of :func:`confusion_distance`; the leaves'
    order, made optimal (adjacent leaves as close as possible) up to ``OPTIMAL_LEAF_LIMIT``
    classes. Two classes that merge before any other class joins them are adjacent, so the most
    confused pair always is.

    Parameters
    ----------
    confusion : array-like of shape (n_classes, n_classes)

    Returns
    -------
    ndarray of shape (n_classes,)
        Class indices in display order.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    dist = confusion_distance(confusion)
    n = len(dist)
    if n < 3:
        return np.arange(n)
    condensed = squareform(dist, checks=False)
    tree = linkage(condensed, method="average")
    if n <= OPTIMAL_LEAF_LIMIT:
        tree = optimal_leaf_ordering(tree, condensed)
    return leaves_list(tree).astype(np.int64)


def most_confused_classes(confusion, *, max_classes=25):
    """The classes involved in the largest off-diagonal counts, in :func:`cluster_order`.

    Off-diagonal cells are taken from the largest count down; both classes of a cell join the
    set while they fit in ``max_classes``. Cells with no count are never taken, so a model that
    confuses few classes gives fewer.

    Parameters
    ----------
    confusion : array-like of shape (n_classes, n_classes)
    max_classes : int
        At least 2.

    Returns
    -------
    ndarray of shape (n_chosen,)
        Indices into the classes, ordered so that confused classes sit next to each other
        (order the submatrix ``confusion[np.ix_(idx, idx)]`` by them).
    """
    if max_classes < 2:
        raise EvallibError(f"max_classes: expected an integer >= 2; got {max_classes!r}")
    cm = _check(confusion)
    off = cm.copy()
    np.fill_diagonal(off, 0.0)
    cells = np.flatnonzero(off)
    cells = cells[np.argsort(-off.flat[cells], kind="stable")]
    chosen, seen = [], set()
    for cell in cells:
        new = [k for k in dict.fromkeys(divmod(int(cell), len(cm))) if k not in seen]
        if len(chosen) + len(new) <= max_classes:
            chosen += new
            seen.update(new)
        if len(chosen) >= max_classes:
            break
    idx = np.array(chosen, dtype=np.int64)
    return idx[cluster_order(cm[np.ix_(idx, idx)])] if len(idx) else idx


def most_confused_pairs(confusion, classes, *, k=10):
    """The ``k`` largest off-diagonal cells: which true class is taken for which, how often.

    Parameters
    ----------
    confusion : array-like of shape (n_classes, n_classes)
        Rows are true classes, columns predictions.
    classes : sequence of length n_classes
    k : int, default 10

    Returns
    -------
    list of dict
        ``{"true", "predicted", "count", "rate"}``, largest count first (ties in row-major order);
        ``rate`` is the share of the true class's images. Cells with no count are left out.
    """
    cm = np.asarray(confusion)
    c = len(cm)
    if len(classes) != c:
        raise ValueError(f"classes: expected one name per row of the confusion matrix ({c}); got {len(classes)}")
    true_n = cm.sum(axis=1)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    return [{"true": str(classes[i // c]), "predicted": str(classes[i % c]), "count": int(off.flat[i]),
             "rate": float(off.flat[i] / true_n[i // c]) if true_n[i // c] else float("nan")}
            for i in flat if off.flat[i] > 0]
