import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def make_classification(rng, n=500, c=6, *, ties=False, missing_class=None, signal=1.5):
    y = rng.integers(0, c, n)
    if missing_class is not None:
        y[y == missing_class] = (missing_class + 1) % c
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += signal
    if ties:
        logits = np.round(logits, 0)  # many equal scores, within rows and across samples
    return y, logits


def make_embeddings(rng, n=400, ids=20, dim=16, spread=1.0):
    labels = rng.integers(0, ids, n)
    centers = rng.normal(size=(ids, dim))
    return centers[labels] * spread + rng.normal(size=(n, dim)), labels
