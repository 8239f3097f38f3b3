"""Cheap properties of a decoded image, for slicing a dataset where no metadata says how images differ.

Brightness, contrast, blur, entropy, size and aspect ratio are computed from the decoded 8-bit pixels in a few
vectorised passes, so the decoder can record them for every image at little cost. Binned with
:func:`evallib.data.slicing.bin_properties`, they become slices (dark images, blurred images, small images)
for :func:`evallib.metrics.slices.metrics_by_slice`; :func:`evallib.metrics.data_quality.image_issues` lists
the images that are nearly black or white, blurred, nearly constant or of an odd size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

# ITU-R BT.601 luma in 16-bit fixed point, as PIL's ``convert("L")`` computes it:
# (R 19595 + G 38470 + B 7471 + 2^15) >> 16
_LUMA_FIXED = (19595, 38470, 7471)


@dataclass(frozen=True)
class ImageProperties:
    """Properties of one decoded image.

    Attributes
    ----------
    brightness : float
        Mean 8-bit luma divided by 255, in [0, 1]. Luma is ITU-R BT.601 (0.299 R + 0.587 G + 0.114 B) rounded
        to 8 bits exactly as PIL's ``Image.convert("L")`` does.
    contrast : float
        RMS contrast: the standard deviation of luma divided by 255, in [0, 0.5].
    blur : float
        Variance of the Laplacian of luma in 8-bit units (Pech-Pacheco et al., ICPR 2000); *low* values
        mean a blurred or flat image. The 4-neighbour kernel with reflected borders, as
        ``scipy.ndimage.laplace`` computes it.
    height, width : int
        Pixels.
    pixels : int
        ``height * width``.
    aspect_ratio : float
        ``width / height``.
    entropy : float
        Shannon entropy of the 256-bin luma histogram, in bits (0 for a constant image, 8 at most):
        how much information the grey levels carry.
    """

    brightness: float
    contrast: float
    blur: float
    height: int
    width: int
    pixels: int
    aspect_ratio: float
    entropy: float = float("nan")

    def as_dict(self):
        """``{name: value}`` in field order."""
        return asdict(self)


PROPERTY_NAMES = tuple(f.name for f in fields(ImageProperties))


def _luma(image):
    """8-bit luma of an RGB or grayscale uint8 image (PIL's ``convert("L")``)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image: expected a numpy array of dtype uint8; got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image: expected dtype uint8 (decoded 8-bit pixels); got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        r, g, b = (image[..., i].astype(np.uint32) for i in range(3))
        gray = ((r * _LUMA_FIXED[0] + g * _LUMA_FIXED[1] + b * _LUMA_FIXED[2] + (1 << 15)) >> 16).astype(np.uint8)
    elif image.ndim == 2:
        gray = image
    else:
        raise ValueError(f"image: expected shape (height, width, 3) or (height, width); got {image.shape}")
    if gray.shape[0] == 0 or gray.shape[1] == 0:
        raise ValueError(f"image: expected at least one pixel; got shape {image.shape}")
    return gray


def laplacian(gray):
    """4-neighbour Laplacian with reflected borders (``scipy.ndimage.laplace``'s default mode).

    Parameters
    ----------
    gray : ndarray of shape (height, width)
        uint8 gives an exact int16 result; other dtypes are computed in float32.

    Returns
    -------
    ndarray of shape (height, width), int16 for uint8 input, else float32
    """
    gray = np.asarray(gray)
    p = np.pad(gray.astype(np.int16 if gray.dtype == np.uint8 else np.float32), 1, mode="symmetric")
    out = p[:-2, 1:-1] + p[2:, 1:-1]
    out += p[1:-1, :-2]
    out += p[1:-1, 2:]
    out -= 4 * p[1:-1, 1:-1]
    return out


def _mean_var_of_ints(x):
    """Mean and population variance of an integer array, from exact sums.

    The sums run in float64, which is exact while they stay below 2**53: up to about 8e9 pixels of a
    Laplacian (|value| <= 1020), far beyond any image. ``einsum`` rather than a BLAS dot product: it runs in
    the calling thread (the decoding threads), where BLAS threads would compete for the cores.
    """
    v = np.asarray(x, dtype=np.float64).ravel()
    n = v.size
    s = float(v.sum())
    s2 = float(np.einsum("i,i->", v, v))
    mean = s / n
    return mean, max(0.0, (s2 - s * s / n) / n)


def image_properties(image):
    """Brightness, contrast, blur, size, aspect ratio and entropy of one decoded image.

    Call it on the decoded pixels, before resizing (blur and size describe the file, not the model's input).
    Luma and the Laplacian are integer arithmetic, their moments exact sums. Given the luma itself (a
    grayscale array, e.g. ``np.asarray(img.convert("L"))``, which is the same luma computed in C), a
    1024 x 768 image costs a few milliseconds, less than decoding it.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3) or (height, width), dtype uint8
        RGB pixels as decoded (``np.asarray(evallib.data.load_image(path))``), or grayscale.

    Returns
    -------
    ImageProperties

    Examples
    --------
    >>> import numpy as np
    >>> p = image_properties(np.full((4, 6, 3), 255, dtype=np.uint8))
    >>> (p.brightness, p.contrast, p.blur, p.aspect_ratio, p.entropy)
    (1.0, 0.0, 0.0, 1.5, 0.0)
    """
    gray = _luma(image)
    h, w = gray.shape
    mean, var = _mean_var_of_ints(gray)
    _, blur = _mean_var_of_ints(laplacian(gray))
    return ImageProperties(brightness=mean / 255.0, contrast=float(np.sqrt(var)) / 255.0, blur=float(blur),
                           height=int(h), width=int(w), pixels=int(h) * int(w), aspect_ratio=w / h,
                           entropy=histogram_entropy(gray))


def histogram_entropy(gray):
    """Shannon entropy in bits of the grey-level histogram of a uint8 image: ``-sum p_k log2 p_k``.

    Parameters
    ----------
    gray : ndarray of shape (height, width), dtype uint8

    Returns
    -------
    float
        0 for a constant image; 8 for one with every grey level equally often.
    """
    counts = np.bincount(np.asarray(gray, dtype=np.uint8).ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(max(0.0, -(p * np.log2(p)).sum()))


def properties_table(properties):
    """Columns from a sequence of :class:`ImageProperties`, one row per image.

    Parameters
    ----------
    properties : sequence of ImageProperties, length n_images

    Returns
    -------
    dict of str to ndarray of shape (n_images,)
        One array per name in :data:`PROPERTY_NAMES`.
    """
    props = list(properties)
    bad = [i for i, p in enumerate(props) if not isinstance(p, ImageProperties)]
    if bad:
        raise TypeError(f"properties: expected ImageProperties; item {bad[0]} is {type(props[bad[0]]).__name__}")
    return {name: np.array([getattr(p, name) for p in props],
                           dtype=np.int64 if name in ("height", "width", "pixels") else np.float64)
            for name in PROPERTY_NAMES}
