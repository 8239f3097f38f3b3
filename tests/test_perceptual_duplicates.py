"""Perceptual hashes (64-bit DCT pHash) and the near duplicates found with them, checked against the
definition written out here, and measured on the demo's digits with planted copies."""

import io

import numpy as np
import pytest
from PIL import Image

from evallib.errors import EvallibError
from evallib.metrics.duplicates import hash_distance, perceptual_duplicates, perceptual_hash


def reference_phash(gray):
    """Zauner's pHash written out: box-shrink to 32 x 32, DCT-II as a cosine matrix, 8 x 8 lowest
    frequencies, one bit per coefficient above their median, DC first, row by row."""
    small = np.asarray(Image.fromarray(gray).resize((32, 32), Image.BOX), dtype=np.float64)
    n = np.arange(32)
    basis = np.cos(np.pi * np.outer(np.arange(8), 2 * n + 1) / 64)  # (8, 32): frequency k, sample n
    coef = basis @ small @ basis.T
    bits = (coef > np.median(coef)).ravel()
    return sum(int(b) << (63 - k) for k, b in enumerate(bits))


def brute_pairs(hashes, reach, ref=None):
    h = [int(x) for x in hashes]
    r = h if ref is None else [int(x) for x in ref]
    return {(i, j) for i in range(len(h)) for j in range(len(r))
            if (ref is not None or i < j) and bin(h[i] ^ r[j]).count("1") <= reach}


@pytest.mark.parametrize("seed", range(4))
def test_hash_is_the_definition_for_any_input_type(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 90, 2)
    gray = rng.integers(0, 256, (h, w), dtype=np.uint8)
    assert perceptual_hash(gray) == reference_phash(gray)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    assert perceptual_hash(rgb) == perceptual_hash(gray)  # luma of a grey RGB image is the grey
    assert perceptual_hash(gray / 255.0) == perceptual_hash(gray)  # floats in [0, 1]
    assert 0 <= perceptual_hash(gray) < 2 ** 64 and bin(perceptual_hash(gray)).count("1") == 32


def test_hash_distance_counts_differing_bits():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2 ** 63, 50, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2 ** 63, 50, dtype=np.int64).astype(np.uint64)
    d = hash_distance(a, b)
    assert d.tolist() == [bin(int(x) ^ int(y)).count("1") for x, y in zip(a, b)]
    assert hash_distance(a[:, None], a[None, :]).diagonal().tolist() == [0] * 50


@pytest.mark.parametrize("block_size", [5, 17, 4096])
def test_pairs_equal_the_brute_force_within_and_against_a_reference(block_size):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2 ** 63, 12, dtype=np.int64).astype(np.uint64)
    # many hashes a few bits from a dozen centres, so that distances around the cut are common
    flips = np.uint64(1) << rng.integers(0, 64, (120, 3)).astype(np.uint64)
    hashes = base[rng.integers(0, 12, 120)] ^ flips[:, 0] ^ np.where(rng.random(120) < 0.5, flips[:, 1], 0) \
        .astype(np.uint64) ^ np.where(rng.random(120) < 0.5, flips[:, 2], 0).astype(np.uint64)
    hashes[100:110] = hashes[:10]  # equal hashes: pairs at distance 0
    labels = rng.integers(0, 3, 120)
    for d in (0, 2, 3, 5):
        res = perceptual_duplicates(hashes, max_distance=d, labels=labels, block_size=block_size)
        assert {tuple(p) for p in res.pairs.tolist()} == brute_pairs(hashes, d) and res.n_pairs > 0
        assert res.distance.tolist() == [bin(int(hashes[i]) ^ int(hashes[j])).count("1") for i, j in res.pairs]
        assert res.conflicting.tolist() == [bool(labels[i] != labels[j]) for i, j in res.pairs]
        assert not any(res.conflicting[res.n_conflicting:]) and all(res.conflicting[:res.n_conflicting])
        ref = hashes[:40] ^ (np.uint64(1) << np.uint64(5))
        leak = perceptual_duplicates(hashes, max_distance=d, reference=ref, block_size=block_size)
        assert {tuple(p) for p in leak.pairs.tolist()} == brute_pairs(hashes, d, ref) and leak.groups is None
    hexed = perceptual_duplicates([f"{int(h):016x}" for h in hashes], max_distance=3)
    np.testing.assert_array_equal(hexed.pairs, perceptual_duplicates(hashes, max_distance=3).pairs)


def test_embeddings_confirm_pairs_a_little_further_apart_and_never_alone():
    rng = np.random.default_rng(2)
    h = rng.integers(0, 2 ** 63, 6, dtype=np.int64).astype(np.uint64)
    one = np.uint64(1)
    h[1] = h[0] ^ (one << np.uint64(3)) ^ (one << np.uint64(9))  # 2 bits: a pair by the hash alone
    h[3] = h[2] ^ (one << np.uint64(1)) ^ (one << np.uint64(2)) ^ (one << np.uint64(40)) ^ (one << np.uint64(50))
    h[5] = h[4] ^ np.uint64(0b111111)  # 6 bits: beyond confirmation
    e = rng.normal(size=(6, 8))
    e[3] = e[2] + 1e-3  # 4 bits apart, embeddings agree: confirmed
    e[5] = e[4] + 1e-3  # embeddings agree, hashes too far: not listed
    res = perceptual_duplicates(h, max_distance=3, embeddings=e, threshold=0.99)
    assert sorted(res.pairs.tolist()) == [[0, 1], [2, 3]] and res.confirm_distance == 5
    cos = (e / np.linalg.norm(e, axis=1, keepdims=True))
    want = {(i, j): float(cos[i] @ cos[j]) for i, j in res.pairs.tolist()}
    np.testing.assert_allclose(res.cosine, [want[tuple(p)] for p in res.pairs.tolist()], atol=1e-6)
    e[3] = -e[2]
    assert perceptual_duplicates(h, max_distance=3, embeddings=e).pairs.tolist() == [[0, 1]]
    same = perceptual_duplicates(h, max_distance=3, content_hashes=["x", "x", "a", "b", "c", "d"])
    assert same.n_pairs == 0  # identical files are exact duplicates, listed apart
    flat = perceptual_duplicates(h, max_distance=3, embeddings=e, ignore=[False, True, False, False, False, False])
    assert flat.n_pairs == 0 and perceptual_duplicates(h, max_distance=3, reference=h[:2], ignore=[
        True, False, False, False, False, False]).pairs.tolist() == [[1, 1], [1, 0]]


def test_errors_name_the_argument():
    with pytest.raises(EvallibError, match=r"max_distance: expected an integer number of bits in 0\.\.64; got 65"):
        perceptual_duplicates([1, 2], max_distance=65)
    with pytest.raises(EvallibError, match="hashes: expected 64-bit perceptual hashes"):
        perceptual_duplicates(["not hex"])
    with pytest.raises(EvallibError, match="embeddings: expected none against a reference"):
        perceptual_duplicates([1], reference=[1], embeddings=np.ones((1, 2)))
    with pytest.raises(EvallibError, match="embeddings: expected 2 rows, one per hash; got 3"):
        perceptual_duplicates([1, 2], embeddings=np.ones((3, 2)))
    with pytest.raises(EvallibError, match="confirm_distance: expected an integer in 3..64; got 2"):
        perceptual_duplicates([1, 2], embeddings=np.eye(2), confirm_distance=2)
    with pytest.raises(EvallibError, match="ignore: expected 2 booleans, one per image; got 1"):
        perceptual_duplicates([1, 2], ignore=[True])
    with pytest.raises(TypeError, match="image: expected a uint8 array or floats"):
        perceptual_hash(np.array([["a"]]))


def _copies(g, rng):
    big = Image.fromarray(g).resize((32, 32), Image.BILINEAR)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=75)
    return {"enlarged 4x": np.asarray(big),
            "enlarged 3x (bicubic)": np.asarray(Image.fromarray(g).resize((24, 24), Image.BICUBIC)),
            "enlarged 4x, JPEG q75": np.asarray(Image.open(buf)),
            "brighter by 10": np.clip(g.astype(int) + 10, 0, 255).astype(np.uint8)}


def test_demo_digits_have_no_false_pairs_and_planted_copies_are_found():
    """The clean evaluation digits of the demo (sklearn's load_digits, 8 x 8) make no pair at the default
    distance; copies of 30 of them, enlarged, recompressed or brightened, are found (all at 4 bits, nearly
    all at the default), each with its own original only."""
    from evallib.demo import split_digits

    images, labels, _, test = split_digits()
    digits = images[test]
    clean = [perceptual_hash(g) for g in digits]
    d = hash_distance(np.array(clean, dtype=np.uint64)[:, None], np.array(clean, dtype=np.uint64)[None, :])
    iu = np.triu_indices(len(digits), 1)
    assert perceptual_duplicates(clean).n_pairs == int((d[iu] <= 3).sum()) == 0
    assert int((d[iu] <= 4).sum()) <= 20  # 10 measured: 8 x 8 digits of one class can be that alike
    rng = np.random.default_rng(0)
    src = rng.choice(len(digits), 30, replace=False)
    for kind in _copies(digits[0], rng):
        planted = [perceptual_hash(_copies(digits[i], rng)[kind]) for i in src]
        res = perceptual_duplicates(clean + planted, max_distance=4)
        truth = {(int(i), len(digits) + k) for k, i in enumerate(src)}
        found = {tuple(p) for p in res.pairs.tolist()}
        assert truth <= found, kind
        assert len(found - truth) <= 25  # the clean digits' own pairs at 4 bits, and those of copies of them
        at_default = {tuple(p) for p in perceptual_duplicates(clean + planted).pairs.tolist()}
        assert len(truth & at_default) >= 27 and at_default <= truth, kind  # recall >= 0.9, precision 1
