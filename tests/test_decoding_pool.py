"""Decoding beside the model: the thread pool and the reduced-scale JPEG decode, pixel for pixel against
the default path."""

import io

import numpy as np
import pytest
from PIL import Image

from conftest import export_tiny_model
from evallib.data import load_views
from evallib.data.preprocessing import load_views_draft
from evallib.inference import open_session, predict

SETTINGS = [
    {"resize": 256, "crop": 224},
    {"resize": 256, "crop": 224, "tta": "tencrop"},
    {"resize": [224, 224], "resize_mode": "exact"},
    {"crop": 224, "crop_pct": 0.875, "interpolation": "bicubic"},
    {"resize": 160, "crop": 128, "mode": "grayscale", "mean": [0.5], "std": [0.25], "tta": "flip"},
]


def _photo(w, h, seed=0, *, orientation=None):
    """JPEG bytes of a smooth random photo-like image (low-pass noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    arr = np.clip(np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, size=(h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    exif = None
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
    Image.fromarray(arr).save(buf, format="JPEG", quality=90, **({"exif": exif} if exif else {}))
    return buf.getvalue()


@pytest.mark.parametrize("pre", SETTINGS)
@pytest.mark.parametrize("size", [(500, 375), (375, 500), (333, 500), (300, 225)])
def test_draft_is_pixel_identical_where_nothing_is_reduced(pre, size):
    """Below twice the size asked for (ImageNet's photos for a 256 resize), draft changes nothing; above, it
    reduces and the pixels differ."""
    raw = _photo(*size, seed=size[0])
    want, reason = load_views(io.BytesIO(raw), pre)
    got, reason2, _ = load_views_draft(io.BytesIO(raw), pre)
    assert reason is None and reason2 is None
    assert got.dtype == want.dtype and got.shape == want.shape
    asked = 256 if "crop_pct" in pre else (max(pre["resize"]) if isinstance(pre["resize"], list) else pre["resize"])
    if min(size) < 2 * asked:  # libjpeg's smallest reduction, 1/2, would go below the size asked for
        np.testing.assert_array_equal(got, want)
    else:
        assert np.abs(got - want).max() > 0


@pytest.mark.parametrize("size,orientation", [((1200, 900), None), ((1100, 1500), None), ((1200, 900), 6)])
def test_draft_on_large_photos_differs_a_little_so_it_is_an_option(size, orientation):
    pre = {"resize": 256, "crop": 224, "mean": [0.0], "std": [1.0], "scale": "byte"}
    raw = _photo(*size, seed=1, orientation=orientation)
    want = load_views(io.BytesIO(raw), pre)[0]
    got = load_views_draft(io.BytesIO(raw), pre)[0]
    assert got.shape == want.shape  # the EXIF rotation is applied all the same
    diff = np.abs(got.astype(float) - want.astype(float))
    assert diff.max() > 0  # not the default path's pixels
    assert diff.mean() < 3.0 and np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99  # but the same picture


def test_draft_leaves_other_formats_and_bad_files_to_the_default_path(tmp_path):
    pre = {"resize": 32, "crop": 32}
    arr = np.random.default_rng(0).integers(0, 256, (100, 90, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_views_draft(tmp_path / "a.png", pre)[0], load_views(tmp_path / "a.png", pre)[0])
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    views, reason, _ = load_views_draft(tmp_path / "bad.jpg", pre)
    assert views is None and reason == load_views(tmp_path / "bad.jpg", pre)[1]


def test_the_pool_gives_the_sequential_result_whatever_its_size(tmp_path):
    """Decoding in 1, 3 or one-per-core threads, overlapped with the model, equals decoding one file at a time."""
    model = export_tiny_model(tmp_path / "m.onnx", channels=3, size=32)
    files = []
    for i, size in enumerate([(60, 45), (45, 60), (50, 50), (70, 40)] * 3):
        files.append(tmp_path / f"{i}.jpg")
        files[-1].write_bytes(_photo(*size, seed=i))
    pre = {"resize": 36, "crop": 32, "tta": "flip"}
    outs = {"scores": "logits", "embedding": "embedding"}
    sess = open_session(model, threads=1)
    ref = np.stack([sess.run(["embedding"], {"input": load_views(f, pre)[0]})[0].mean(0) for f in files])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    for workers in (1, 3, 0):
        got = predict(sess, files, pre, outs, batch_size=4, decode_workers=workers, progress=False)
        np.testing.assert_allclose(got.embeddings, ref, rtol=1e-5, atol=1e-6)
    same = predict(sess, files, pre, outs, batch_size=4, progress=False, jpeg_draft=True)  # nothing to reduce
    np.testing.assert_array_equal(same.embeddings, got.embeddings)
