import hashlib

import numpy as np
import pytest

from evallib.errors import EvallibError
from evallib.metrics.duplicates import DuplicatePairs, content_hash, exact_duplicates, near_duplicates


def brute_force_pairs(e, threshold, r=None):
    """Every pair from the full cosine matrix."""
    a = e / np.linalg.norm(e, axis=1, keepdims=True)
    b = a if r is None else r / np.linalg.norm(r, axis=1, keepdims=True)
    s = a @ b.T
    if r is None:
        i, j = np.nonzero(np.triu(s >= threshold, k=1))
    else:
        i, j = np.nonzero(s >= threshold)
    return {(int(x), int(y)) for x, y in zip(i, j)}, s


def planted(seed, n=300, dim=32, n_near=6, noise=0.03):
    """Random embeddings (no two alike in 32 dimensions) with planted near copies of the first rows."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, dim))
    src = np.arange(n_near)
    copies = e[src] + noise * rng.standard_normal((n_near, dim))
    return np.vstack([e, copies]), {(int(s), n + k) for k, s in enumerate(src)}


@pytest.mark.parametrize("block_size", [3, 64, 10_000])
@pytest.mark.parametrize("seed", range(2))
def test_blocked_search_equals_the_full_matrix(seed, block_size):
    rng = np.random.default_rng(seed)
    # clustered points so that many pairs sit around the threshold
    centres = rng.standard_normal((8, 6))
    e = centres[rng.integers(0, 8, 150)] + 0.35 * rng.standard_normal((150, 6))
    ref = centres[rng.integers(0, 8, 90)] + 0.35 * rng.standard_normal((90, 6))
    for threshold in (0.8, 0.95):
        res = near_duplicates(e, threshold=threshold, block_size=block_size)
        expected, s = brute_force_pairs(e, threshold)
        # the brute force runs on unrounded float64: allow disagreement only within 1e-6 of the threshold
        close = {(i, j) for i, j in zip(*np.nonzero(np.abs(s - threshold) < 1e-6)) if i < j}
        got = {tuple(p) for p in res.pairs.tolist()}
        assert got - close == expected - close and len(expected) > 20
        np.testing.assert_allclose(res.similarity, [s[i, j] for i, j in res.pairs], atol=1e-6)
        same = near_duplicates(e, threshold=threshold, block_size=13)
        np.testing.assert_array_equal(same.pairs, res.pairs)  # exact whatever the blocks
        leak = near_duplicates(e, threshold=threshold, reference=ref, block_size=block_size)
        expected, s = brute_force_pairs(e, threshold, ref)
        close = set(zip(*np.nonzero(np.abs(s - threshold) < 1e-6)))
        got = {tuple(p) for p in leak.pairs.tolist()}
        assert got - close == expected - close and len(expected) > 20
        assert leak.against_reference and leak.groups is None


def test_planted_near_duplicates_and_leaks_are_all_found_with_no_false_ones():
    for seed in range(5):
        e, truth = planted(seed)
        res = near_duplicates(e, threshold=0.95)
        assert {tuple(p) for p in res.pairs.tolist()} == truth
        train = np.random.default_rng(seed + 10).standard_normal((200, 32))
        leaked = np.array([10, 50, 120])  # not among the planted near copies
        train[[7, 8, 9]] = e[leaked] * 2.0 + 0.02 * np.random.default_rng(seed).standard_normal((3, 32))
        leak = near_duplicates(e, threshold=0.95, reference=train)
        assert {tuple(p) for p in leak.pairs.tolist()} == {(10, 7), (50, 8), (120, 9)}
        assert leak.duplicated(len(e)).sum() == 3


def test_conflicting_labels_come_first_and_groups_link_chains():
    e = np.array([[1.0, 0, 0], [1.0, 0.01, 0], [1.0, 0.02, 0], [0, 1.0, 0], [0, 1.0, 0.01], [0, 0, 1.0]])
    labels = np.array(["a", "a", "a", "b", "c", "d"])
    res = near_duplicates(e, threshold=0.99, labels=labels)
    assert res.pairs.tolist()[0] == [3, 4] and res.conflicting.tolist() == [True, False, False, False]
    assert res.n_conflicting == 1 and res.n_pairs == 4
    assert sorted(res.pairs.tolist()[1:]) == [[0, 1], [0, 2], [1, 2]]
    assert np.all(np.diff(res.similarity[1:]) <= 0)
    g = res.groups
    assert g[0] == g[1] == g[2] and g[3] == g[4] and g[0] != g[3] and g[5] == -1
    assert sorted(set(g[:5].tolist())) == [0, 1]


def test_exact_duplicates_by_content_hash(tmp_path):
    contents = [b"one", b"two", b"one", b"three", b"two", b"one"]
    paths = []
    for k, c in enumerate(contents):
        p = tmp_path / f"img{k}.png"
        p.write_bytes(c)
        paths.append(p)
    hashes = [content_hash(p, chunk=2) for p in paths]
    assert hashes[0] == hashlib.blake2b(b"one", digest_size=16).hexdigest()
    labels = [0, 1, 0, 2, 1, 5]
    res = exact_duplicates(hashes, labels=labels)
    assert isinstance(res, DuplicatePairs) and res.kind == "exact"
    # groups {0, 2, 5} (labels 0, 0, 5: conflicting) and {1, 4}
    assert res.pairs.tolist() == [[0, 5], [0, 2], [1, 4]]
    assert res.conflicting.tolist() == [True, False, False]
    assert res.groups.tolist() == [0, 1, 0, -1, 1, 0]
    assert np.all(res.similarity == 1.0)
    train = [hashlib.blake2b(c, digest_size=16).hexdigest() for c in (b"two", b"four", b"two", b"three")]
    leak = exact_duplicates(hashes, labels=labels, reference=train, reference_labels=[1, 4, 3, 2])
    assert leak.pairs.tolist() == [[1, 2], [4, 2], [1, 0], [3, 3], [4, 0]]
    assert leak.conflicting.tolist() == [True, True, False, False, False]
    assert leak.duplicated(6).tolist() == [False, True, False, True, True, False]
    none = exact_duplicates([hashlib.blake2b(c, digest_size=16).hexdigest() for c in (b"x", b"y")])
    assert none.n_pairs == 0 and none.groups.tolist() == [-1, -1]


def test_errors_name_the_argument():
    e = np.eye(3)
    with pytest.raises(EvallibError, match=r"threshold: expected a cosine similarity in \(-1, 1\]"):
        near_duplicates(e, threshold=1.5)
    with pytest.raises(EvallibError, match="block_size: expected a positive integer"):
        near_duplicates(e, block_size=0)
    with pytest.raises(EvallibError, match="labels: expected 3 labels"):
        near_duplicates(e, labels=[1, 2])
    with pytest.raises(EvallibError, match="reference: expected embeddings of dimension 3"):
        near_duplicates(e, reference=np.ones((2, 4)))
    with pytest.raises(EvallibError, match="embeddings: expected non-zero vectors"):
        near_duplicates(np.zeros((2, 3)))
    with pytest.raises(EvallibError, match="reference_labels: expected 1 labels"):
        exact_duplicates(["a"], reference=["a"], reference_labels=[1, 2])
