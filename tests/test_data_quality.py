"""Image quality rules: planted black, white, blurred, constant and odd-sized images among the demo's clean digits
are all found, and no clean digit is flagged; the measures against scipy."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from evallib.data.image_properties import histogram_entropy, image_properties, properties_table
from evallib.errors import EvallibError
from evallib.metrics.data_quality import ISSUES, image_issues, robust_z


@pytest.fixture(scope="module")
def digits():
    from evallib.demo import split_digits

    images, _, _, test = split_digits()
    return images[test]


def _planted(digits):
    """Each planted image and the issues it must raise (and no other)."""
    d = digits
    return [
        (np.zeros((8, 8), np.uint8), {"dark", "low_information"}),
        (np.full((8, 8), 255, np.uint8), {"bright", "low_information"}),
        (np.full((8, 8), 128, np.uint8), {"low_information"}),
        (np.asarray(Image.fromarray(d[3]).filter(ImageFilter.GaussianBlur(1.5))), {"blurry"}),
        (np.asarray(Image.fromarray(d[7]).resize((64, 64), Image.NEAREST)), {"odd_size"}),
        (np.asarray(Image.fromarray(d[9]).resize((16, 5), Image.NEAREST)), {"odd_aspect"}),
        (np.clip(d[11].astype(int) // 8 + 1, 0, 255).astype(np.uint8), {"dark"}),  # a digit, nearly black
    ]


@pytest.mark.parametrize("seed", range(3))
def test_planted_images_are_all_found_and_no_clean_digit_is_flagged(digits, seed):
    rng = np.random.default_rng(seed)
    clean = [digits[i] for i in rng.choice(len(digits), 300, replace=False)]
    planted = _planted(digits)
    images = clean + [p for p, _ in planted]
    res = image_issues(properties_table([image_properties(g) for g in images]))
    assert not res.flagged[:len(clean)].any()
    for k, (_, want) in enumerate(planted):
        got = {name for name, f in res.flags.items() if f[len(clean) + k]}
        assert got == want, (k, got, want)
    assert set(res.flags) == set(ISSUES) and res.notes == ()
    rows = res.rows(names=[f"img{i}" for i in range(len(images))])
    assert len(rows) == sum(len(w) for _, w in planted)
    assert {r["image"] for r in rows} == {f"img{len(clean) + k}" for k in range(len(planted))}
    dark = [r for r in rows if r["issue"] == "nearly black"]
    assert [r["value"] for r in dark] == sorted(r["value"] for r in dark) and dark[0]["value"] == 0.0
    words = {"nearly black": "dark", "nearly white": "bright", "low in information": "low_information",
             "blurry": "blurry", "odd size": "odd_size", "odd aspect ratio": "odd_aspect"}
    for r in rows:
        k = words[r["issue"]]
        assert r["rule"] == res.rules[k] and r["value"] == res.values[k][r["index"]]


def test_all_clean_digits_pass(digits):
    res = image_issues(properties_table([image_properties(g) for g in digits]))
    assert res.flagged.sum() == 0 and res.counts() == dict.fromkeys(ISSUES, 0)


def test_entropy_and_robust_z_against_scipy():
    from scipy.stats import entropy, median_abs_deviation

    rng = np.random.default_rng(0)
    for _ in range(5):
        g = rng.integers(0, rng.integers(1, 256), (17, 23)).astype(np.uint8)
        counts = np.bincount(g.ravel(), minlength=256)
        assert histogram_entropy(g) == pytest.approx(entropy(counts, base=2))
        assert image_properties(g).entropy == pytest.approx(entropy(counts, base=2))
    x = rng.lognormal(size=101)
    want = (x - np.median(x)) / median_abs_deviation(x, scale="normal")
    np.testing.assert_allclose(robust_z(x), want, rtol=1e-3)  # scipy's normal scale is 1 / 0.67449 = 1.4826
    same = robust_z([5.0, 5.0, 5.0, 7.0])  # MAD 0: the odd value is infinitely far
    assert same.tolist()[:3] == [0.0, 0.0, 0.0] and same[3] == np.inf


def test_one_size_data_flags_only_what_really_differs():
    """With every image the same size (MAD 0), an image a pixel wider is not odd; one twice as large is."""
    props = {"pixels": [64] * 50 + [72, 128], "aspect_ratio": [1.0] * 50 + [9 / 8, 2.0]}
    res = image_issues(props)
    assert res.flags["odd_size"].tolist() == [False] * 51 + [True]
    assert res.flags["odd_aspect"].tolist() == [False] * 51 + [True]
    assert {n.split(":")[0] for n in res.notes} == {"nearly black", "low in information", "blurry"}


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="properties: expected a mapping"):
        image_issues([1, 2])
    with pytest.raises(EvallibError, match="dark, bright: expected 0 <= dark < bright <= 1"):
        image_issues({"brightness": [0.5]}, dark=0.6, bright=0.5)
    with pytest.raises(EvallibError, match="blur_factor: expected a positive number; got 0"):
        image_issues({"brightness": [0.5]}, blur_factor=0)
    with pytest.raises(EvallibError, match="properties: expected one value per image in every column"):
        image_issues({"brightness": [0.5], "contrast": [0.1, 0.2]})
