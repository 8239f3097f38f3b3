"""Pipelines as their own code writes them: resizing as ``cv2.resize`` does, PaddleOCR's text-line
resize (``resize_norm_img``) and insightface's ``ArcFaceONNX.get_feat``, each re-implemented here from
its published source and compared with evallib's params recipe pixel for pixel."""

import json
import math
import sys

import cv2
import numpy as np
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from evallib.cli import main
from evallib.data import preprocess, text_line_size
from evallib.errors import DataError, ParamsError
from evallib.inference import open_session
from evallib.outputs import load_predictions
from evallib.params import PreprocessParams

CV2_FLAGS = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
             "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}
RAW = {"scale": "byte", "mean": [0.0], "std": [1.0]}  # the resized pixels themselves, as float32


def _img(rng, w, h, mode="RGB"):
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    arr[: h // 2] = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None]  # a smooth part and a noisy part
    return Image.fromarray(arr, "RGB").convert(mode)


# ----------------------------------------------------------------------------- cv2.resize

@pytest.mark.parametrize("interpolation", list(CV2_FLAGS))
@pytest.mark.parametrize("size, resize, mode", [((37, 29), [13, 17], "exact"), ((37, 29), [50, 61], "exact"),
                                                ((40, 23), 11, "shorter"), ((40, 23), [16, 16], "fit")])
@pytest.mark.parametrize("image_mode", ["RGB", "L"])
def test_opencv_backend_equals_cv2_resize(rng, interpolation, size, resize, mode, image_mode):
    img = _img(rng, *size, mode=image_mode)
    pre = {"resize": resize, "resize_mode": mode, "resize_backend": "opencv", "interpolation": interpolation,
           "mode": "grayscale" if image_mode == "L" else "rgb", **RAW}
    got = preprocess(img, pre)[0].transpose(1, 2, 0)
    src = np.asarray(img)
    w, h = size
    if mode == "shorter":  # the shorter side to 11, the longer as torchvision computes it
        new_h, new_w = (11, int(11 * w / h)) if h <= w else (int(11 * h / w), 11)
    elif mode == "fit":
        s = min(16 / h, 16 / w)
        new_h, new_w = round(h * s), round(w * s)
    else:
        new_h, new_w = resize
    want = cv2.resize(src, (new_w, new_h), interpolation=CV2_FLAGS[interpolation]).astype(np.float32)
    want = want.reshape(new_h, new_w, -1)
    if mode == "fit":  # padded to the box, centered, with 0
        box = np.zeros((16, 16, want.shape[2]), np.float32)
        top, left = (16 - new_h) // 2, (16 - new_w) // 2
        box[top:top + new_h, left:left + new_w] = want
        want = box
    np.testing.assert_array_equal(got, want)


def test_opencv_and_pillow_resize_differ_when_shrinking(rng):
    img = _img(rng, 64, 48)
    pil = preprocess(img, {"resize": [12, 16], "interpolation": "bilinear", **RAW})
    ocv = preprocess(img, {"resize": [12, 16], "interpolation": "bilinear", "resize_backend": "opencv", **RAW})
    assert np.abs(pil - ocv).max() > 10  # Pillow antialiases, cv2's INTER_LINEAR samples 4 pixels


def test_a_missing_opencv_is_a_clear_error(rng, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if it were not installed
    with pytest.raises(DataError, match=r"preprocess\.resize_backend: expected opencv-python-headless to be "
                                        r"installed for 'opencv' \(pip install 'evallib\[opencv\]'\)"):
        preprocess(_img(rng, 9, 7), {"resize": [4, 4], "resize_backend": "opencv"})
    preprocess(_img(rng, 9, 7), {"resize": [4, 4]})  # Pillow needs no OpenCV


# ----------------------------------------------------------------------------- PaddleOCR's text lines

def paddleocr_resize_norm_img(img, image_shape=(3, 48, 192)):
    """PaddleOCR's ``TextClassifier.resize_norm_img`` (tools/infer/predict_cls.py), re-implemented
    from its published source: ``img`` is a BGR uint8 image as ``cv2.imread`` gives it."""
    img_c, img_h, img_w = image_shape
    h, w = img.shape[:2]
    ratio = w / float(h)
    if math.ceil(img_h * ratio) > img_w:
        resized_w = img_w
    else:
        resized_w = int(math.ceil(img_h * ratio))
    resized = cv2.resize(img, (resized_w, img_h)).astype("float32")
    resized = resized.transpose((2, 0, 1)) / 255
    resized -= 0.5
    resized /= 0.5
    padding = np.zeros((img_c, img_h, img_w), dtype=np.float32)
    padding[:, :, 0:resized_w] = resized
    return padding


PADDLE_CLS = {"resize": [48, 192], "resize_mode": "text_line", "resize_backend": "opencv",
              "interpolation": "bilinear", "channels": "bgr", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
              "pad_value_normalized": 0}
#: the README's former OCR recipe
OLD_OCR = {"resize": [48, 192], "resize_mode": "fit", "pad": "bottom_right", "channels": "bgr",
           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def test_text_line_size_hand_worked():
    assert text_line_size(32, 100, [48, 192]) == (48, 150)  # ceil(48 * 3.125) = 150
    assert text_line_size(10, 200, [48, 192]) == (48, 192)  # ceil(960) is capped at 192
    assert text_line_size(47, 100, [48, 192]) == (48, 103)  # ceil(102.13)
    assert text_line_size(100, 1, [48, 192]) == (48, 1)  # ceil(0.48)
    assert text_line_size(96, 96, [48, 192]) == (48, 48)


@pytest.mark.parametrize("size", [(100, 32), (300, 20), (50, 60), (193, 48), (1, 5), (400, 47)])
def test_text_line_equals_paddleocr_resize_norm_img(rng, size):
    img = _img(rng, *size)
    want = paddleocr_resize_norm_img(np.asarray(img)[:, :, ::-1].copy())
    got = preprocess(img, PADDLE_CLS)[0]
    assert got.shape == want.shape == (3, 48, 192)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # (x / 255 - .5) / .5 against x / 127.5 - 1
    _, new_w = text_line_size(size[1], size[0], [48, 192])
    assert (got[:, :, new_w:] == 0).all() and (want[:, :, new_w:] == 0).all()
    # the resized pixels equal cv2's exactly (before normalization, as uint8)
    raw = preprocess(img, {**PADDLE_CLS, "mean": [0.0], "std": [1.0], "scale": "byte", "dtype": "uint8"})[0]
    ref = cv2.resize(np.asarray(img)[:, :, ::-1].copy(), (new_w, 48))
    np.testing.assert_array_equal(raw[:, :, :new_w].transpose(1, 2, 0), ref)
    if size[0] / size[1] > 192 / 48 * 1.5:  # the former recipe shrinks a long line to a few pixels high
        old = preprocess(img, OLD_OCR)[0]
        assert np.abs(old - want).max() > 0.5


def test_text_line_pads_with_the_normalized_value(rng):
    img = _img(rng, 40, 20)
    got = preprocess(img, {**PADDLE_CLS, "pad_value_normalized": [-1.0, 0.25, 2.0]})[0]
    assert got.shape == (3, 48, 192)
    pad = np.array([-1.0, 0.25, 2.0], np.float32)[:, None, None]
    np.testing.assert_array_equal(got[:, :, 96:], np.broadcast_to(pad, (3, 48, 96)))
    pil = preprocess(img, {**PADDLE_CLS, "resize_backend": "pil"})[0]  # Pillow's filter, the same geometry
    assert pil.shape == (3, 48, 192) and (pil[:, :, 96:] == 0).all()


@pytest.mark.parametrize("pre, match", [
    ({"resize": 48, "resize_mode": "text_line"}, r"preprocess\.resize: expected \[height, width\] with resize_mode "
                                                 r"'text_line'.*got 48"),
    ({"resize": [48, 192], "resize_mode": "text_line", "crop": 32}, r"preprocess\.resize_mode: expected no "
                                                                      r"preprocess\.crop.*got crop 32"),
    ({"resize": [48, 192], "resize_mode": "fit", "pad_value_normalized": 1}, r"preprocess\.pad_value_normalized: "
                                                                              r"expected resize_mode 'text_line'"),
    ({"resize": [48, 192], "resize_mode": "text_line", "pad_value_normalized": [0, 1]},
     r"preprocess\.pad_value_normalized: expected 1 value or one per channel \(3\); got 2 values"),
    ({"resize": [48, 192], "resize_mode": "text_line", "dtype": "uint8", "pad_value_normalized": 0.5},
     r"preprocess\.pad_value_normalized: expected whole pixel values in 0\.\.255 with dtype uint8"),
    ({"resize": [8, 8], "interpolation": "area"}, r"preprocess\.interpolation: expected resize_backend 'opencv' "
                                                  r"with 'area'.*got resize_backend 'pil'"),
    ({"resize_backend": "cv2"}, r"preprocess\.resize_backend: expected one of pil, opencv; got 'cv2'"),
])
def test_text_line_and_backend_params_errors(pre, match):
    with pytest.raises(ParamsError, match=match):
        PreprocessParams.from_mapping(pre)


def _line_classifier(path):
    """A small text-line direction classifier in PaddleOCR's layout: input (batch, 3, 48, 192), 2 classes."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.normal(size=(2, 4)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "cls", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           ["batch", 3, 48, 192])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
                              initializer=[w, fc])
    import onnx

    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_paddleocr_line_recipe_end_to_end(tmp_path, rng, capsys):
    model = _line_classifier(tmp_path / "cls.onnx")
    sizes = [(100, 32), (300, 20), (50, 60), (160, 24)]
    for label in ("0", "180"):
        (tmp_path / "d" / label).mkdir(parents=True)
        for k, size in enumerate(sizes):
            _img(rng, *size).save(tmp_path / "d" / label / f"line{k}.png")
    params = tmp_path / "ocr.yaml"
    params.write_text(yaml.safe_dump({"name": "ocr", "model": str(model), "data": {"root": str(tmp_path / "d")},
                                      "preprocess": PADDLE_CLS, "outputs": {"scores": "logits"}}))
    code = main(["run", str(params), "--out", str(tmp_path / "out"), "--no-report", "--quiet"])
    assert code == 0, capsys.readouterr().err
    pred = load_predictions(tmp_path / "out" / "ocr")
    assert len(pred.paths) == 8
    session = open_session(model)
    blobs = np.stack([paddleocr_resize_norm_img(cv2.imread(str(tmp_path / "d" / p))) for p in pred.paths])
    want = session.run(["logits"], {"x": blobs})[0]
    np.testing.assert_allclose(pred.scores, want, rtol=1e-5, atol=1e-5)
    run = json.loads((tmp_path / "out" / "ocr" / "run.json").read_text())
    assert run["params"]["preprocess"]["resize_mode"] == "text_line"
    old = np.stack([preprocess(Image.open(tmp_path / "d" / p).convert("RGB"), OLD_OCR)[0] for p in pred.paths])
    assert np.abs(session.run(["logits"], {"x": old})[0] - want).max() > 1e-3  # the former recipe's numbers differ


# ----------------------------------------------------------------------------- insightface's ArcFaceONNX

def insightface_get_feat_blob(imgs, input_size=(112, 112), input_mean=127.5, input_std=127.5):
    """The input ``ArcFaceONNX.get_feat`` (insightface python-package/insightface/model_zoo/arcface_onnx.py)
    gives its session, re-implemented from its published source: BGR uint8 faces in."""
    return cv2.dnn.blobFromImages(imgs, 1.0 / input_std, input_size, (input_mean, input_mean, input_mean),
                                  swapRB=True)


ARCFACE = {"resize": [112, 112], "resize_backend": "opencv", "interpolation": "bilinear", "channels": "rgb",
           "scale": "byte", "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]}
#: the README's former ArcFace recipe
OLD_ARCFACE = {"resize": [112, 112], "channels": "bgr", "scale": "byte", "mean": [127.5], "std": [127.5]}


@pytest.mark.parametrize("size", [(112, 112), (130, 150), (96, 80)])
def test_arcface_recipe_equals_insightface_get_feat(rng, size):
    faces = [_img(rng, *size) for _ in range(3)]
    want = insightface_get_feat_blob([np.asarray(f)[:, :, ::-1].copy() for f in faces])
    got = np.stack([preprocess(f, ARCFACE)[0] for f in faces])
    assert got.shape == want.shape == (3, 3, 112, 112)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # (x - 127.5) * (1 / 127.5) against x / 127.5 - 1
    old = np.stack([preprocess(f, OLD_ARCFACE)[0] for f in faces])
    assert np.abs(old - want).max() > 0.5  # the former recipe gave the model BGR
