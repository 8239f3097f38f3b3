"""Preprocessing options against torchvision, timm's recipe and references written here."""

import math

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from evallib._keys import predictions_key_of
from evallib.data import fit_size, list_images, preprocess, resize
from evallib.errors import DataError, ModelError, ParamsError
from evallib.inference import open_session, predict
from evallib.params import parse_params

MODES = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
         "bicubic": InterpolationMode.BICUBIC, "lanczos": InterpolationMode.LANCZOS}
FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _img(rng, size, mode="RGB"):
    """A random image of ``size`` (width, height) with smooth and sharp parts."""
    w, h = size
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    arr[: h // 2, : w // 2] = np.linspace(0, 255, w // 2, dtype=np.uint8)[None, :, None]
    return Image.fromarray(arr, "RGB").convert(mode)


def _torchvision(img, resize_to, crop, interpolation, mean, std):
    """torchvision.transforms.v2 on the PIL image: (C, H, W) float32."""
    steps = [T.Resize(resize_to, interpolation=MODES[interpolation], antialias=True)]
    steps += [T.CenterCrop(crop)] if crop is not None else []
    steps += [T.PILToTensor(), T.ToDtype(torch.float32, scale=True), T.Normalize(mean, std)]
    return T.Compose(steps)(img).numpy()


def _letterbox(img, box, *, where, value, interpolation="bilinear", bgr=False):
    """Fit-and-pad written the way letterbox pipelines write it: (H, W, C) float64 pixels 0..255."""
    bh, bw = box
    w, h = img.size
    r = min(bh / h, bw / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    small = img if (nw, nh) == (w, h) else img.resize((nw, nh), FILTERS[interpolation])
    arr = np.asarray(small, dtype=np.float64).reshape(nh, nw, -1)
    if bgr:
        arr = arr[:, :, ::-1]
    if where == "center":
        dh, dw = (bh - nh) / 2, (bw - nw) / 2
        top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
        left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    else:
        top, bottom, left, right = 0, bh - nh, 0, bw - nw
    value = np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1), (arr.shape[2],))
    out = np.stack([np.pad(arr[:, :, k], ((top, bottom), (left, right)), constant_values=value[k])
                    for k in range(arr.shape[2])], axis=2)
    assert out.shape[:2] == (bh, bw)
    return out


# --- interpolation, crops, crop_pct: torchvision --------------------------------------------

@pytest.mark.parametrize("interpolation", list(MODES))
@pytest.mark.parametrize("size, resize_to, crop, mode", [
    ((37, 23), 17, 15, "RGB"),            # downscale the shorter side, odd sizes
    ((13, 29), 41, [33, 21], "L"),        # upscale a tall grayscale image
    ((37, 23), [19, 45], 17, "RGB"),      # exact size, squashed
    ((9, 11), 9, None, "L"),              # shorter side already right: unchanged
])
def test_interpolation_equals_torchvision(rng, interpolation, size, resize_to, crop, mode):
    img = _img(rng, size, mode)
    ours = resize(img, resize_to, interpolation=interpolation)
    theirs = T.Resize(resize_to, interpolation=MODES[interpolation], antialias=True)(img)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    c = 3 if mode == "RGB" else 1
    mean, std = IMAGENET["mean"][:c], IMAGENET["std"][:c]
    x = preprocess(img, {"resize": resize_to, "crop": crop, "interpolation": interpolation, "mean": mean, "std": std})
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[0], _torchvision(img, resize_to, crop, interpolation, mean, std), atol=1e-6)


def test_interpolations_differ(rng):
    """The filters are really applied: each gives a different image."""
    img = _img(rng, (37, 23))
    outs = {k: np.asarray(resize(img, 10, interpolation=k)).tobytes() for k in MODES}
    assert len(set(outs.values())) == 4


@pytest.mark.parametrize("crop_pct", [0.875, 0.95, 0.9])
@pytest.mark.parametrize("crop, mode", [(23, "RGB"), ([21, 21], "L")])
def test_crop_pct_equals_timm_recipe(rng, crop_pct, crop, mode):
    img = _img(rng, (41, 30), mode)
    side = crop if isinstance(crop, int) else crop[0]
    scale_size = math.floor(side / crop_pct)  # timm: scale_size = math.floor(img_size / crop_pct)
    c = 3 if mode == "RGB" else 1
    mean, std = [0.5] * c, [0.5] * c
    want = _torchvision(img, scale_size, crop, "bicubic", mean, std)
    x = preprocess(img, {"crop": crop, "crop_pct": crop_pct, "interpolation": "bicubic", "mean": mean, "std": std})
    np.testing.assert_allclose(x[0], want, atol=1e-6)
    assert scale_size == {0.875: {23: 26, 21: 24}, 0.95: {23: 24, 21: 22}, 0.9: {23: 25, 21: 23}}[crop_pct][side]


def test_defaults_keep_the_old_preprocessing(rng):
    img = _img(rng, (37, 23))
    p = parse_params({"name": "m", "model": "m.onnx", "data": {"root": "d"},
                      "preprocess": {"resize": 19, "crop": 17, "mean": [0.4], "std": [0.3]}})
    keys = ("resize_mode", "interpolation", "channels", "scale", "dtype", "crop_pct")
    assert {k: getattr(p.preprocess, k) for k in keys} \
        == {"resize_mode": "shorter", "interpolation": "bilinear", "channels": "rgb", "scale": "unit",
            "dtype": "auto", "crop_pct": None}
    old = preprocess(img, {"resize": 19, "crop": 17, "mean": [0.4], "std": [0.3]})
    np.testing.assert_array_equal(preprocess(img, p.preprocess), old)
    np.testing.assert_allclose(old[0], _torchvision(img, 19, 17, "bilinear", [0.4] * 3, [0.3] * 3), atol=1e-6)


# --- fit and pad, BGR: references written here ------------------------------------------------

def test_fit_size_hand_worked():
    assert fit_size(23, 37, [16, 20]) == (12, 20)    # wider: 23 * 20/37 = 12.43
    assert fit_size(41, 15, [16, 20]) == (16, 6)     # taller: 15 * 16/41 = 5.85
    assert fit_size(31, 250, [48, 192]) == (24, 192)  # an OCR line: 31 * 192/250 = 23.81
    assert fit_size(40, 61, [48, 192]) == (48, 73)   # short line, scaled up: 61 * 1.2 = 73.2
    assert fit_size(3, 500, 16) == (1, 16)           # never below one pixel


@pytest.mark.parametrize("where", ["center", "bottom_right"])
@pytest.mark.parametrize("size, box, value, mode", [
    ((37, 23), [16, 20], 114, "RGB"),              # wider than the box
    ((15, 41), [16, 21], [10, 200, 33], "RGB"),     # taller, one pad value per channel, odd padding
    ((61, 40), [48, 192], 0, "L"),                 # an OCR line, scaled up, grayscale
    ((250, 31), [48, 192], 127.5, "L"),            # a long line; a fractional pad value
    ((20, 16), [16, 20], 7, "RGB"),                # already the box size: no padding
])
def test_fit_and_pad_equal_letterbox_reference(rng, where, size, box, value, mode):
    img = _img(rng, size, mode)
    pre = {"resize": box, "resize_mode": "fit", "pad": where, "pad_value": value, "scale": "byte"}
    want = _letterbox(img, box, where=where, value=value)
    x = preprocess(img, pre)  # mean 0, std 1 on 0..255: the pixels themselves
    assert x.shape == (1, want.shape[2], *box)
    np.testing.assert_array_equal(x[0].transpose(1, 2, 0), want)
    normed = preprocess(img, {**pre, "scale": "unit", "mean": [0.5], "std": [0.25]})
    np.testing.assert_allclose(normed[0].transpose(1, 2, 0), (want / 255 - 0.5) / 0.25, atol=1e-5)


def test_fit_pads_where_asked(rng):
    img = _img(rng, (37, 23))  # fits as 12 x 20 in 16 x 20: four rows of padding
    pre = {"resize": [16, 20], "resize_mode": "fit", "pad_value": 255, "scale": "byte"}
    center = preprocess(img, {**pre, "pad": "center"})[0]
    corner = preprocess(img, {**pre, "pad": "bottom_right"})[0]
    assert (center[:, :2] == 255).all() and (center[:, 14:] == 255).all()
    assert (corner[:, 12:] == 255).all() and (center[:, 2:14] == corner[:, :12]).all()


@pytest.mark.parametrize("size", [(37, 23), (15, 41)])
def test_bgr_reverses_channels_before_normalizing(rng, size):
    img = _img(rng, size)
    mean, std = [0.406, 0.456, 0.485], [0.225, 0.224, 0.229]  # listed in the model's (BGR) order
    x = preprocess(img, {"resize": [13, 11], "channels": "bgr", "mean": mean, "std": std})
    bgr = np.asarray(img.resize((11, 13), Image.BILINEAR), dtype=np.float64)[:, :, ::-1]
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), (bgr / 255 - mean) / std, atol=1e-5)
    rgb = preprocess(img, {"resize": [13, 11], "mean": mean[::-1], "std": std[::-1]})
    np.testing.assert_allclose(x[0], rgb[0][::-1], atol=1e-6)


@pytest.mark.parametrize("mode, channels", [("RGB", "bgr"), ("L", "rgb")])
def test_tencrop_and_flip_compose_with_bicubic_bgr_fit(rng, mode, channels):
    img = _img(rng, (37, 23), mode)
    c = 3 if mode == "RGB" else 1
    value, mean, std = [114, 50, 7][:c], [0.3, 0.5, 0.7][:c], [0.2, 0.25, 0.3][:c]
    pre = {"resize": [26, 19], "resize_mode": "fit", "pad": "center", "pad_value": value, "interpolation": "bicubic",
           "channels": channels, "crop": [17, 13], "mean": mean, "std": std, "tta": "tencrop"}
    box = _letterbox(img, (26, 19), where="center", value=value, interpolation="bicubic", bgr=channels == "bgr")
    normed = torch.from_numpy(((box / 255 - mean) / std).transpose(2, 0, 1).astype(np.float32))
    ten = torch.stack(T.TenCrop([17, 13])(normed)).numpy()
    x = preprocess(img, pre)
    assert x.shape == (10, c, 17, 13)
    np.testing.assert_allclose(x, ten, atol=1e-5)
    flip = preprocess(img, {**pre, "tta": "flip"})
    np.testing.assert_allclose(flip, np.stack([ten[4], ten[4][:, :, ::-1]]), atol=1e-5)


# --- scale, dtype: through a real onnxruntime session -----------------------------------------

def _identity_model(path, elem_type, shape):
    """An ONNX model whose output ``out`` is its input: reads back what the session was fed."""
    import onnx

    dims = ["batch", *shape]
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["out"])], "identity",
                              [helper.make_tensor_value_info("input", elem_type, dims)],
                              [helper.make_tensor_value_info("out", elem_type, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


OUTS = {"scores": "out", "scores_are": "logits", "embedding": None}


@pytest.fixture
def images(tmp_path, rng):
    """Three RGB PNG files of odd, non-square sizes in two classes; returns the sorted file list."""
    for k, (cls, size) in enumerate([("a", (37, 23)), ("a", (15, 41)), ("b", (20, 16))]):
        (tmp_path / "d" / cls).mkdir(parents=True, exist_ok=True)
        _img(rng, size).save(tmp_path / "d" / cls / f"{k}.png")
    d = list_images(tmp_path / "d")
    return [d.file(i) for i in range(len(d))]


def _fed(session, files, pre):
    """What the session received for each file, as (n, C, H, W) float64."""
    p = predict(session, files, pre, OUTS, batch_size=2, progress=False)
    return p.scores.reshape(len(files), *session.get_inputs()[0].shape[1:])


def test_byte_scale_bgr_like_arcface(tmp_path, images):
    sess = open_session(_identity_model(tmp_path / "f32.onnx", TensorProto.FLOAT, [3, 14, 12]))
    pre = {"resize": [14, 12], "channels": "bgr", "mean": [127.5], "std": [127.5], "scale": "byte"}
    got = _fed(sess, images, pre)
    for f, g in zip(images, got):
        bgr = np.asarray(T.Resize([14, 12], antialias=True)(Image.open(f).convert("RGB")), np.float64)[:, :, ::-1]
        np.testing.assert_allclose(g, ((bgr - 127.5) / 127.5).transpose(2, 0, 1), atol=1e-6)
    assert got.min() < -0.5 and got.max() > 0.5  # on -1..1: pixels 0..255, not 0..1


def test_float16_input(tmp_path, images):
    sess = open_session(_identity_model(tmp_path / "f16.onnx", TensorProto.FLOAT16, [3, 11, 11]))
    pre = {"resize": 13, "crop": 11, "interpolation": "bicubic", **IMAGENET}
    got = _fed(sess, images, pre)
    for f, g in zip(images, got):
        want = _torchvision(Image.open(f).convert("RGB"), 13, 11, "bicubic", IMAGENET["mean"], IMAGENET["std"])
        np.testing.assert_array_equal(g, g.astype(np.float16))  # the session got half floats
        np.testing.assert_allclose(g, want.astype(np.float16), atol=2e-3)
    assert preprocess(Image.open(images[0]).convert("RGB"), {**pre, "dtype": "float16"}).dtype == np.float16
    with pytest.raises(ModelError, match=r"preprocess\.dtype: expected auto or float16 \(model input 'input' has "
                                         r"type tensor\(float16\)\); got 'float32'"):
        predict(sess, images, {**pre, "dtype": "float32"}, OUTS, progress=False)


def test_uint8_input_gets_raw_pixels(tmp_path, images):
    sess = open_session(_identity_model(tmp_path / "u8.onnx", TensorProto.UINT8, [3, 20, 16]))
    pre = {"resize": [20, 16], "resize_mode": "fit", "pad": "bottom_right", "pad_value": 114,
           "interpolation": "lanczos", "channels": "bgr"}
    for dtype in ("auto", "uint8"):
        got = _fed(sess, images, {**pre, "dtype": dtype})
        for f, g in zip(images, got):
            want = _letterbox(Image.open(f).convert("RGB"), (20, 16), where="bottom_right", value=114,
                              interpolation="lanczos", bgr=True)
            np.testing.assert_array_equal(g, want.transpose(2, 0, 1))
    assert preprocess(Image.open(images[0]).convert("RGB"), {**pre, "dtype": "uint8"}).dtype == np.uint8
    with pytest.raises(ModelError, match=r"preprocess\.mean/std: expected mean \[0\] and std \[1\] for model input "
                                         r"'input' of type tensor\(uint8\) \(it takes raw 0\.\.255 pixels\); "
                                         r"got mean \[127\.5\], std \[127\.5\]"):
        predict(sess, images, {**pre, "mean": [127.5], "std": [127.5]}, OUTS, progress=False)


def test_unsupported_input_type(tmp_path, images):
    sess = open_session(_identity_model(tmp_path / "i64.onnx", TensorProto.INT64, [3, 16, 16]))
    with pytest.raises(ModelError, match=r"model input 'input' has type tensor\(int64\); expected tensor\(float\), "
                                         r"tensor\(float16\), tensor\(double\) or tensor\(uint8\)"):
        predict(sess, images, {"resize": [16, 16]}, OUTS, progress=False)


# --- params: errors and the cache key ----------------------------------------------------------

def _params(**pre):
    return parse_params({"name": "m", "model": "m.onnx", "data": {"root": "d"}, "preprocess": pre}, source="p.yaml")


@pytest.mark.parametrize("pre, match", [
    ({"interpolation": "cubic"}, r"p\.yaml: preprocess\.interpolation: expected one of nearest, bilinear, bicubic, "
                                 r"lanczos, area; got 'cubic'"),
    ({"channels": "brg"}, r"preprocess\.channels: expected one of rgb, bgr; got 'brg'"),
    ({"resize": 5, "resize_mode": "fill"}, r"preprocess\.resize_mode: expected one of shorter, exact, fit, text_line;"
                                           r" got 'fill'"),
    ({"resize": 5, "resize_mode": "fit", "pad": "left"},
     r"preprocess\.pad: expected one of center, bottom_right; got 'left'"),
    ({"resize": 5, "resize_mode": "fit", "pad_value": 300},
     r"preprocess\.pad_value: expected a pixel value in 0\.\.255, or one per channel; got 300"),
    ({"resize": 5, "resize_mode": "fit", "pad_value": [1, 2]},
     r"preprocess\.pad_value: expected 1 value or one per channel \(3\); got 2 values"),
    ({"crop": 5, "crop_pct": 0}, r"preprocess\.crop_pct: expected a number > 0; got 0"),
    ({"crop": 5, "crop_pct": 1.5}, r"preprocess\.crop_pct: expected a number <= 1; got 1\.5"),
    ({"scale": 255}, r"preprocess\.scale: expected one of unit, byte; got 255"),
    ({"dtype": "int8"}, r"preprocess\.dtype: expected one of auto, float32, float16, float64, uint8; got 'int8'"),
    ({"crop": 224, "crop_pct": 0.875, "resize": 256},
     r"preprocess\.crop_pct: expected no preprocess\.resize with it .*; got both crop_pct 0\.875 and resize 256"),
    ({"crop_pct": 0.875}, r"preprocess\.crop_pct: expected preprocess\.crop with it .*; got no crop"),
    ({"crop": [224, 200], "crop_pct": 0.9},
     r"preprocess\.crop_pct: expected a square preprocess\.crop with it .*; got crop \[224, 200\]"),
    ({"mode": "grayscale", "channels": "bgr"},
     r"preprocess\.channels: expected rgb with preprocess\.mode grayscale .*; got 'bgr'"),
    ({"resize_mode": "fit"}, r"preprocess\.resize_mode: expected preprocess\.resize with it; got resize_mode 'fit'"),
    ({"resize": [5, 6], "resize_mode": "shorter"},
     r"preprocess\.resize_mode: expected an integer preprocess\.resize with resize_mode 'shorter'; got resize \[5,"
     r" 6\]"),
    ({"resize": 5, "pad": "bottom_right"},
     r"preprocess\.pad: expected resize_mode 'fit' with it .*; got resize_mode 'shorter'"),
    ({"resize": [5, 6], "pad_value": 114}, r"preprocess\.pad_value: expected resize_mode 'fit' .*; got resize_mode"
                                           r" 'exact'"),
    ({"dtype": "uint8", "mean": [0.5]},
     r"preprocess\.dtype: uint8 input takes the raw 0\.\.255 pixels: expected mean \[0\] and std \[1\]; got mean"
     r" \[0\.5\]"),
    ({"dtype": "uint8", "resize": 5, "resize_mode": "fit", "pad_value": 127.5},
     r"preprocess\.pad_value: expected whole pixel values with dtype uint8; got 127\.5"),
])
def test_params_errors(pre, match):
    with pytest.raises(ParamsError, match=match):
        _params(**pre)


def test_direct_call_errors(rng):
    img = _img(rng, (20, 16))
    with pytest.raises(DataError, match=r"preprocess\.interpolation: expected one of nearest, bilinear, bicubic, "
                                        r"lanczos, area; got 'box'"):
        preprocess(img, {"resize": 8, "interpolation": "box"})
    with pytest.raises(DataError, match=r"preprocess\.channels: expected rgb for 1-channel images"):
        preprocess(img.convert("L"), {"channels": "bgr"})
    with pytest.raises(DataError, match=r"preprocess\.crop_pct: expected preprocess\.crop with it .*; got no crop"):
        preprocess(img, {"crop_pct": 0.9, "resize": 8})  # the rule of the params files, checked in one place
    with pytest.raises(DataError, match=r"preprocess\.crop_pct: expected no preprocess\.resize with it"):
        preprocess(img, {"crop_pct": 0.9, "crop": 8, "resize": 8})
    with pytest.raises(DataError, match=r"preprocess\.rezise: unknown key; expected one of batch_size, channels"):
        preprocess(img, {"rezise": 8})


def test_every_preprocess_key_is_in_the_cache_key(tmp_path, rng):
    for k in range(2):
        (tmp_path / "d" / "ab"[k]).mkdir(parents=True)
        _img(rng, (9, 7)).save(tmp_path / "d" / "ab"[k] / "x.png")
    dataset = list_images(tmp_path / "d")
    hashes = ["0" * 32] * len(dataset)

    def key(**pre):
        return predictions_key_of("0" * 64, dataset, _params(**pre), hashes)

    base = key(resize=17, crop=15)
    assert key(resize=17, crop=15, interpolation="bilinear", resize_mode="shorter", scale="unit") == base
    changed = [key(resize=17, crop=15, interpolation="bicubic"), key(resize=17, crop=15, channels="bgr"),
               key(resize=17, crop=15, scale="byte"), key(resize=17, crop=15, dtype="float16"),
               key(resize=[17, 17], crop=15, resize_mode="fit"), key(crop=15, crop_pct=0.9),
               key(resize=[17, 17], crop=15, resize_mode="fit", pad="bottom_right"),
               key(resize=[17, 17], crop=15, resize_mode="fit", pad_value=114)]
    assert len({base, *changed}) == len(changed) + 1


@pytest.mark.parametrize("pre, top", [({"channels": "bgr", "scale": "byte", "mean": [127.5], "std": [127.5]}, 255.0),
                                      ({"channels": "bgr", "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.1]}, 1.0),
                                      ({"dtype": "uint8"}, 255.0)])
def test_display_undoes_the_preprocessing(rng, pre, top):
    from evallib.cam import to_display

    img = _img(rng, (15, 11))
    x = preprocess(img, {"resize": [11, 15], **pre})
    shown = to_display(x[0], pre.get("mean", [0.0]), pre.get("std", [1.0]), top=top, bgr=pre.get("channels") == "bgr")
    np.testing.assert_allclose(shown, np.asarray(img, np.float32) / 255, atol=1e-5)  # RGB again, in 0..1
