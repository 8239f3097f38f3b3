"""From a decoded image to the model's input: resize, pad, normalize, crop and test-time views.

Preprocessing follows torchvision on PIL images: resize (shorter side, exact size, or fit inside a
box and pad) with Pillow's nearest, bilinear, bicubic or Lanczos filters, timm's ``crop_pct``, RGB or
BGR channel order, center crop, ``TenCrop`` (four corners and the center, then their horizontal
flips), and ``(x - mean) / std`` on pixels in 0..1 or 0..255; uint8 models get the raw pixels.
``resize_backend: opencv`` resizes with ``cv2.resize`` instead (no antialiasing, OpenCV's rounding),
as insightface, PaddleOCR, PaddleClas and YOLO pipelines do; ``resize_mode: text_line`` is
PaddleOCR's text-line resize (``resize_norm_img``: fixed height, width from the aspect ratio, padded
on the right after normalization).
The settings are a :class:`~evallib.params.PreprocessParams`, whose rules are checked when it is built.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from ..params import RESIZE_MODES, PreprocessParams
from .decoding import load_image
from .image_properties import ImageProperties, image_properties

CENTER_VIEW = {"none": 0, "flip": 0, "tencrop": 4}
N_VIEWS = {"none": 1, "flip": 2, "tencrop": 10}

def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
#: ``cv2.resize``'s flag for each ``interpolation`` with ``resize_backend: opencv``
OPENCV_INTERPOLATIONS = {"nearest": "INTER_NEAREST", "bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC",
                         "lanczos": "INTER_LANCZOS4", "area": "INTER_AREA"}
DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "uint8": np.uint8}


def crop_pct_size(crop: int | Sequence[int], crop_pct: float) -> int:
    """The shorter side timm resizes to before its center crop: ``floor(crop / crop_pct)``.

    As timm's ``transforms_imagenet_eval`` computes ``scale_size = math.floor(img_size / crop_pct)``,
    for a square crop (an integer or ``[n, n]``).
    """
    h, w = _pair(crop)
    if h != w:
        raise DataError(f"preprocess.crop_pct: expected a square crop (an integer or [n, n]); got crop {[h, w]}")
    return math.floor(h / crop_pct)


def fit_size(height: int, width: int, box: int | Sequence[int]) -> tuple[int, int]:
    """Size ``(new_height, new_width)`` of an image ``height x width`` scaled to fit inside ``box``.

    ``scale = min(box_h / height, box_w / width)``; each side becomes ``round(side * scale)``
    (Python's ``round``, as ultralytics' ``LetterBox`` computes it), kept within ``1..box``, so the
    limiting side equals the box exactly. Small images are scaled up.
    """
    bh, bw = _pair(box)
    scale = min(bh / height, bw / width)
    return (min(bh, max(1, int(round(height * scale)))), min(bw, max(1, int(round(width * scale)))))


def text_line_size(height: int, width: int, box: Sequence[int]) -> tuple[int, int]:
    """Size ``(box_h, new_width)`` of a text line ``height x width`` in a ``[box_h, box_w]`` input.

    As PaddleOCR's ``resize_norm_img`` computes it: ``ratio = width / height``; the new width is
    ``box_w`` when ``ceil(box_h * ratio) > box_w``, else ``ceil(box_h * ratio)`` (in floating point,
    as there). The rest of the width is padded after normalization.
    """
    bh, bw = _pair(box)
    ratio = width / float(height)
    return bh, (bw if math.ceil(bh * ratio) > bw else max(1, int(math.ceil(bh * ratio))))


def _new_size(h: int, w: int, size: int | Sequence[int], mode: str) -> tuple[int, int]:
    """``(new_height, new_width)`` of an ``h x w`` image for ``size`` and ``mode``."""
    if mode == "shorter":
        if not isinstance(size, int):
            raise DataError(f"preprocess.resize_mode: shorter expects an integer preprocess.resize; got {size}")
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        return (new_long, new_short) if w <= h else (new_short, new_long)
    if mode == "exact":
        return _pair(size)
    if mode == "fit":
        return fit_size(h, w, size)
    if mode == "text_line":
        return text_line_size(h, w, _pair(size))
    raise DataError(f"preprocess.resize_mode: expected one of {', '.join(RESIZE_MODES)}; got {mode!r}")


def _cv2():
    try:
        import cv2
    except ImportError:
        raise DataError("preprocess.resize_backend: expected opencv-python-headless to be installed for 'opencv' "
                        "(pip install 'evallib[opencv]'); got no module named cv2") from None
    return cv2


def resize_opencv(arr: np.ndarray, size: int | Sequence[int] | None, *, mode: str | None = None,
                  interpolation: str = "bilinear") -> np.ndarray:
    """Resize an ``(H, W)`` or ``(H, W, C)`` uint8 array with ``cv2.resize``, as OpenCV pipelines do.

    The new size is computed as :func:`resize` computes it (``shorter``, ``exact``, ``fit``,
    ``text_line``); the pixels are ``cv2.resize(arr, (new_w, new_h), interpolation=flag)`` with
    ``INTER_NEAREST``, ``INTER_LINEAR``, ``INTER_CUBIC``, ``INTER_LANCZOS4`` or ``INTER_AREA`` for
    ``interpolation`` nearest, bilinear, bicubic, lanczos or area. OpenCV does not antialias when
    shrinking (but for ``INTER_AREA``) and rounds to uint8 its own way, so the pixels differ from
    Pillow's.

    Returns
    -------
    ndarray of shape (new_height, new_width) or (new_height, new_width, C)

    Raises
    ------
    DataError
        When ``opencv-python-headless`` is not installed, or ``interpolation`` is unknown.
    """
    if size is None:
        return arr
    if interpolation not in OPENCV_INTERPOLATIONS:
        raise DataError(f"preprocess.interpolation: expected one of {', '.join(OPENCV_INTERPOLATIONS)}; "
                        f"got {interpolation!r}")
    cv2 = _cv2()
    mode = mode or ("shorter" if isinstance(size, int) else "exact")
    h, w = arr.shape[:2]
    new_h, new_w = _new_size(h, w, size, mode)
    if (new_h, new_w) == (h, w):
        return arr
    out = cv2.resize(np.ascontiguousarray(arr), (new_w, new_h), interpolation=getattr(cv2, OPENCV_INTERPOLATIONS[
        interpolation]))
    return out.reshape(new_h, new_w, *arr.shape[2:])  # cv2 drops a single channel axis


def resize(img: Image.Image, size: int | Sequence[int] | None, *, mode: str | None = None,
           interpolation: str = "bilinear") -> Image.Image:
    """Resize a PIL image like ``torchvision.transforms.v2.Resize(size, interpolation, antialias=True)``.

    Parameters
    ----------
    img : PIL.Image.Image
    size : int or [height, width] or None
        ``None`` returns ``img`` unchanged.
    mode : {"shorter", "exact", "fit", "text_line"}, optional
        ``shorter`` (the default for an integer) resizes the shorter side to ``size`` and the longer
        side to ``int(size * long / short)``, as torchvision does; ``exact`` (the default for a list)
        resizes to exactly ``[height, width]``; ``fit`` keeps the aspect ratio and scales the image to
        fit inside ``[height, width]`` (sides rounded as :func:`fit_size` says); the caller pads it to
        the box with :func:`pad_to_box`; ``text_line`` keeps the height of ``[height, width]`` and
        takes the width from the aspect ratio, capped at ``width`` (:func:`text_line_size`). An integer
        with ``exact`` or ``fit`` means ``[size, size]``.
    interpolation : {"nearest", "bilinear", "bicubic", "lanczos"}
        Pillow's resampling filter of that name, as torchvision uses on PIL images (Pillow's filters
        antialias when downscaling).

    Returns
    -------
    PIL.Image.Image
    """
    if size is None:
        return img
    if interpolation not in INTERPOLATIONS:
        raise DataError(f"preprocess.interpolation: expected one of {', '.join(INTERPOLATIONS)}; "
                        f"got {interpolation!r}")
    mode = mode or ("shorter" if isinstance(size, int) else "exact")
    w, h = img.size
    new_h, new_w = _new_size(h, w, size, mode)
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), INTERPOLATIONS[interpolation])


def pad_to_box(arr: np.ndarray, size: int | Sequence[int], *, where: str = "center",
               value: float | Sequence[float] | np.ndarray = 0) -> np.ndarray:
    """Pad an ``(H, W, C)`` array no larger than ``size`` to exactly ``size`` with ``value``.

    Parameters
    ----------
    arr : ndarray of shape (H, W, C)
    size : int or [height, width]
    where : {"center", "bottom_right"}
        ``center`` splits the padding, the odd pixel going to the bottom and right (``top =
        (box_h - H) // 2``, as ultralytics' letterbox and torchvision's ``CenterCrop`` pad);
        ``bottom_right`` keeps the image in the top left corner (OCR line models).
    value : float or sequence of float
        One value, or one per channel, in the units of ``arr``.

    Returns
    -------
    ndarray of shape (height, width, C)
    """
    bh, bw = _pair(size)
    h, w, c = arr.shape
    if (h, w) == (bh, bw):
        return arr
    value = np.broadcast_to(np.asarray(value, dtype=arr.dtype).reshape(-1), (c,))
    out = np.empty((bh, bw, c), dtype=arr.dtype)
    out[...] = value
    top, left = ((bh - h) // 2, (bw - w) // 2) if where == "center" else (0, 0)
    out[top:top + h, left:left + w] = arr
    return out


def _center_box(h, w, ch, cw):
    return int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))


def center_crop(arr: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Center crop of an ``(H, W, C)`` array like torchvision (zero padding when too small)."""
    ch, cw = _pair(size)
    arr = _pad_to(arr, size)
    h, w = arr.shape[:2]
    top, left = _center_box(h, w, ch, cw)
    return arr[top:top + ch, left:left + cw]


def five_crop(arr: np.ndarray, size: int | Sequence[int]) -> list[np.ndarray]:
    """Top-left, top-right, bottom-left, bottom-right and center crops, as torchvision orders them."""
    ch, cw = _pair(size)
    h, w = arr.shape[:2]
    if ch > h or cw > w:
        raise DataError(f"preprocess.crop: expected a crop no larger than the resized image ({h}x{w}); "
                        f"got {ch}x{cw}")
    return [arr[:ch, :cw], arr[:ch, w - cw:], arr[h - ch:, :cw], arr[h - ch:, w - cw:], center_crop(arr, size)]


def views(arr: np.ndarray, crop: int | Sequence[int] | None, tta: str) -> list[np.ndarray]:
    """Test-time views of one ``(H, W, C)`` image: list of arrays.

    ``none``: the center crop; ``flip``: it and its horizontal flip; ``tencrop``: torchvision's
    ``TenCrop`` (the five crops of the image, then the five crops of its mirror image).
    """
    if tta == "tencrop":
        if crop is None:
            raise DataError("preprocess.tta: expected preprocess.crop with tta 'tencrop' (the ten crops need a crop "
                            "size); got no crop")
        return five_crop(arr, crop) + five_crop(arr[:, ::-1], crop)
    base = center_crop(arr, crop) if crop is not None else arr
    return [base, base[:, ::-1]] if tta == "flip" else [base]


def preprocess(img: Image.Image, pre: PreprocessParams | Mapping[str, Any]) -> np.ndarray:
    """Views of one PIL image as ``(n_views, C, H, W)``, normalized, in the model's input type.

    ``pre`` is the params' :class:`~evallib.params.PreprocessParams`, or a mapping of its keys (a
    missing key takes its default; a mapping that breaks a rule raises :class:`DataError`). The steps:

    1. resize (:func:`resize`, or :func:`resize_opencv` with ``resize_backend: opencv``):
       ``resize``, ``resize_mode`` (shorter | exact | fit | text_line) and ``interpolation``; with
       ``crop_pct`` and no ``resize``, the shorter side goes to ``floor(crop / crop_pct)`` as timm does;
    2. ``channels: bgr`` reverses the channel order (the model reads BGR, as OpenCV decodes);
    3. ``resize_mode: fit`` pads to exactly ``resize`` (:func:`pad_to_box`, ``pad`` and
       ``pad_value`` in 0..255 pixel units, in the model's channel order);
    4. ``(x / s - mean) / std`` with ``s = 255`` for ``scale: unit`` (pixels in 0..1) and ``s = 1``
       for ``scale: byte`` (pixels in 0..255); ``mean`` and ``std`` are in the model's channel
       order (BGR when ``channels`` is bgr), as the model's own pipeline lists them;
    5. ``resize_mode: text_line`` pads the normalized line on the right to the width of ``resize``
       with ``pad_value_normalized`` (in the model's input units: PaddleOCR pads with 0 after
       ``(x / 255 - 0.5) / 0.5``);
    6. the test-time views (:func:`views`: ``crop`` and ``tta``).

    ``dtype`` float32 (also for ``auto``), float16 or float64 gives that type; ``uint8`` gives the
    raw 0..255 pixels (``scale`` has no effect).

    Returns
    -------
    ndarray of shape (n_views, C, H, W)
    """
    pre = PreprocessParams.coerce(pre, error=DataError)
    crop, tta = pre.crop, pre.tta
    size, mode = pre.resize, pre.resize_mode
    if pre.crop_pct is not None:
        assert crop is not None  # PreprocessParams requires crop with crop_pct
        size, mode = crop_pct_size(crop, pre.crop_pct), "shorter"
    if pre.resize_backend == "opencv":
        arr = resize_opencv(np.asarray(img), size, mode=mode, interpolation=pre.interpolation)
    else:
        arr = np.asarray(resize(img, size, mode=mode, interpolation=pre.interpolation))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    c = arr.shape[-1]
    if pre.channels == "bgr":
        if c != 3:
            raise DataError(f"preprocess.channels: expected rgb for {c}-channel images (mode grayscale); got 'bgr'")
        arr = arr[:, :, ::-1]
    dtype = np.dtype(DTYPES.get(pre.dtype, np.float32))
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    if mean.size not in (1, c) or std.size not in (1, c):
        raise DataError(f"preprocess.mean/std: expected 1 or {c} values for {c}-channel images; "
                        f"got {mean.size} and {std.size}")
    fresh = False
    if size is not None and mode == "fit":
        value = np.asarray(pre.pad_values, dtype=np.float64)
        if value.size not in (1, c):
            raise DataError(f"preprocess.pad_value: expected 1 or {c} values for {c}-channel images; "
                            f"got {value.size}")
        if (value != np.round(value)).any():  # a fractional pad value is padded in floating point
            arr, fresh = arr.astype(np.float32), True
        arr = pad_to_box(arr, size, where=pre.pad, value=value)
    if crop is not None and tta != "tencrop":
        arr = _pad_to(arr, crop)  # torchvision pads with black before normalizing
    line = size is not None and mode == "text_line"
    if line:
        line_pad = np.asarray(pre.pad_value_normalized, dtype=np.float64).reshape(-1)
        if line_pad.size not in (1, c):
            raise DataError(f"preprocess.pad_value_normalized: expected 1 or {c} values for {c}-channel images; "
                            f"got {line_pad.size}")
    if dtype == np.uint8:
        if line:
            assert size is not None  # line implies it
            arr = pad_to_box(arr, size, where="bottom_right", value=line_pad)
        return np.stack(views(arr, crop, tta)).transpose(0, 3, 1, 2)
    # normalize the image once (one conversion, one fused scale-and-shift); the views are then
    # crops of it, copied once into the stack
    f = arr if fresh else arr.astype(np.float32)
    f *= 1.0 / ((255.0 if pre.scale == "unit" else 1.0) * std)
    f -= mean / std
    if line:  # padded after normalization, with a value in the model's input units
        assert size is not None  # line implies it
        f = pad_to_box(f, size, where="bottom_right", value=line_pad)
    out = np.stack(views(f, crop, tta)).transpose(0, 3, 1, 2)
    return out if dtype == np.float32 else out.astype(dtype)


def _pad_to(arr, size):
    ch, cw = _pair(size)
    h, w = arr.shape[:2]
    if ch <= h and cw <= w:
        return arr
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    return np.pad(arr, ((ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2), (0, 0)))


def load_views(path: str | Path | IO[bytes],
               pre: PreprocessParams | Mapping[str, Any]) -> tuple[np.ndarray | None, str | None]:
    """Decode and preprocess one file; returns ``(views, None)`` or ``(None, reason)``.

    A file that cannot be decoded (not an image, truncated, an unreadable header) or that
    :func:`load_image` refuses gives the reason; errors of the preprocessing itself concern every
    file and are raised.
    """
    views, reason, _ = decode_views(path, pre, properties=False)
    return views, reason


def decode_views(path: str | Path | IO[bytes], pre: PreprocessParams | Mapping[str, Any], *,
                 properties: bool = True) -> tuple[np.ndarray | None, str | None, ImageProperties | None]:
    """:func:`load_views`, and the decoded image's properties measured before any resizing.

    Returns
    -------
    views : ndarray of shape (n_views, C, H, W) or None
    reason : str or None
        Why the file cannot be used (then ``views`` is None).
    properties : ImageProperties or None
        :func:`evallib.data.image_properties.image_properties` of the decoded pixels (None when the file
        did not decode or ``properties`` is False).
    """
    pre = PreprocessParams.coerce(pre, error=DataError)  # a rule broken concerns every file: it is raised
    try:
        img = load_image(path, pre.mode)
    except DataError as exc:
        return None, str(exc), None
    except UnidentifiedImageError:  # its message holds the file object's repr, not the file
        return None, "cannot decode: not an image file Pillow can read", None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        return None, f"cannot decode: {type(exc).__name__}: {exc}", None
    # on the luma as Pillow computes it (the same luma image_properties would compute, in C)
    props = image_properties(np.asarray(img if img.mode == "L" else img.convert("L"))) if properties else None
    return preprocess(img, pre), None, props  # a size error here concerns every file: it propagates


def load_views_draft(path: str | Path | IO[bytes],
                     pre: PreprocessParams | Mapping[str, Any]
                     ) -> tuple[np.ndarray | None, str | None, ImageProperties | None]:
    """:func:`decode_views` with a JPEG decoded at reduced scale, as Pillow's ``Image.draft`` allows.

    libjpeg can decode at 1/2, 1/4 or 1/8 of the size from the DCT coefficients, much faster than
    decoding every pixel. The scale is the smallest that keeps both sides at least as large as the
    resize asks for (whatever the EXIF orientation), and the resize then runs from there. The
    pixels are not those of :func:`load_views` whenever the scale is reduced (libjpeg's scaled
    decoding is not Pillow's antialiased resize; they differ by a few levels of 255), so this path
    is never taken by default; where nothing is reduced (the image is less than twice the size
    asked for, as ImageNet's 500x375 photos are for a 256 resize) the two agree exactly. Other
    formats are decoded as :func:`decode_views` decodes them. The image properties are measured on
    the image as decoded (at the reduced scale, when it is reduced).
    """
    from PIL import ImageOps

    from .decoding import _open

    pre = PreprocessParams.coerce(pre, error=DataError)
    size, mode = pre.resize, pre.resize_mode
    if pre.crop_pct is not None:
        assert pre.crop is not None  # PreprocessParams requires crop with crop_pct
        size, mode = crop_pct_size(pre.crop, pre.crop_pct), "shorter"
    if size is None or mode == "fit":
        return decode_views(path, pre)
    try:
        img = _open(path)
    except DataError as exc:
        return None, str(exc), None
    except UnidentifiedImageError:
        return None, "cannot decode: not an image file Pillow can read", None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        return None, f"cannot decode: {type(exc).__name__}: {exc}", None
    if img.format != "JPEG":
        img.close()
        if hasattr(path, "seek"):
            path.seek(0)
        return decode_views(path, pre)
    # either side may become the shorter one; 'shorter' takes an integer resize (PreprocessParams checks it)
    want = max(_pair(size)) if mode == "exact" else cast(int, size)
    try:
        with img:
            img.draft(img.mode, (want, want))  # scale only: libjpeg's own colour conversion is not Pillow's
            img.load()
            img = ImageOps.exif_transpose(img)
            img = img.convert("L" if pre.mode == "grayscale" else "RGB")
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        return None, f"cannot decode: {type(exc).__name__}: {exc}", None
    props = image_properties(np.asarray(img if img.mode == "L" else img.convert("L")))
    return preprocess(img, pre), None, props
