"""Cheap properties of a decoded image, for slicing a dataset where no metadata says how images differ.

Brightness, contrast, blur, size and aspect ratio are computed from the decoded 8-bit pixels in a few
vectorised passes, so the decoder can record them for every image at little cost. Binned with
:func:`evallib.slicing.bin_properties`, they become slices (dark images, blurred images, small images)
for :func:`evallib.metrics.slices.metrics_by_slice`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

# ITU-R BT.601 luma weights, as PIL's ``convert("L")`` uses
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class ImageProperties:
    """Properties of one decoded image.

    Attributes
    ----------
    brightness : float
        Mean luma (BT.601) divided by 255, in [0, 1].
    contrast : float
        RMS contrast: the standard deviation of luma divided by 255, in [0, 0.5].
    blur : float
        Variance of the Laplacian of luma in 8-bit units (Pech-Pacheco et al., ICPR 2000); *low* values
        mean a blurred or flat image. The 4-neighbour kernel with reflected borders, as
        ``scipy.ndimage.laplace`` computes it.
    height, width : int
        Pixels.
    aspect_ratio : float
        ``width / height``.
    """

    brightness: float
    contrast: float
    blur: float
    height: int
    width: int
    aspect_ratio: float

    def as_dict(self):
        """``{name: value}`` in field order."""
        return asdict(self)


PROPERTY_NAMES = tuple(f.name for f in fields(ImageProperties))


def _luma(image):
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image: expected a numpy array of dtype uint8; got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image: expected dtype uint8 (decoded 8-bit pixels); got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        gray = image.astype(np.float32) @ _LUMA
    elif image.ndim == 2:
        gray = image.astype(np.float32)
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

    Returns
    -------
    ndarray of shape (height, width), float32
    """
    p = np.pad(np.asarray(gray, dtype=np.float32), 1, mode="symmetric")
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]


def image_properties(image):
    """Brightness, contrast, blur, size and aspect ratio of one decoded image.

    Call it on the decoded pixels, before resizing (blur and size describe the file, not the model's input).

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
    >>> (p.brightness, p.contrast, p.blur, p.aspect_ratio)
    (1.0, 0.0, 0.0, 1.5)
    """
    gray = _luma(image)
    h, w = gray.shape
    mean = float(gray.mean(dtype=np.float64))
    contrast = float(gray.std(dtype=np.float64))
    blur = float(laplacian(gray).var(dtype=np.float64))
    return ImageProperties(brightness=mean / 255.0, contrast=contrast / 255.0, blur=blur,
                           height=int(h), width=int(w), aspect_ratio=w / h)


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
                           dtype=np.int64 if name in ("height", "width") else np.float64)
            for name in PROPERTY_NAMES}
