"""Score transforms shared by every layer: softmax of logits and L2 normalisation of embeddings.

They live here, in the lowest layer, so that inference, the metrics and the report use one
definition each.
"""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``, as ``scipy.special.softmax`` computes it (the maximum subtracted first).

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_classes), or any shape
        Logits; not changed.
    axis : int, default -1

    Returns
    -------
    ndarray of the shape of ``x``, floating point
        Non-negative, summing to 1 along ``axis``.
    """
    z = np.asarray(x)
    z = z - np.max(z, axis=axis, keepdims=True)  # a new array: the caller's stays as it was
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    np.exp(z, out=z)
    z /= np.sum(z, axis=axis, keepdims=True)
    return z


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Each vector along ``axis`` divided by its Euclidean norm; an all-zero vector stays zero.

    Parameters
    ----------
    x : ndarray of shape (n_samples, dim), or any shape
    axis : int, default -1

    Returns
    -------
    ndarray of the shape of ``x``
    """
    x = np.asarray(x)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)
