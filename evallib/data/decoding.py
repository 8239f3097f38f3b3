"""Decoding image files with Pillow, refusing decompression bombs, with the EXIF orientation applied."""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError

_OPEN_LOCK = threading.Lock()


def _open(path: str | Path | IO[bytes]) -> Image.Image:
    """``Image.open`` (the header only, no pixels) refusing the sizes Pillow calls a decompression bomb.

    Pillow raises ``DecompressionBombError`` above twice ``Image.MAX_IMAGE_PIXELS`` and only warns
    above it; the warning is raised as an error too. Warning filters are process-wide, so decoding
    threads open one file at a time (parsing a header is quick; decoding the pixels is not locked).
    """
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "more pixels than allowed"
        raise DataError(f"refused: the image declares {size}, more than PIL.Image.MAX_IMAGE_PIXELS "
                        f"({Image.MAX_IMAGE_PIXELS:,}); a possible decompression bomb") from None


def load_image(path: str | Path | IO[bytes], mode: str = "rgb") -> Image.Image:
    """Decode an image with Pillow into ``mode`` ("rgb" or "grayscale").

    The EXIF orientation is applied, as ``PIL.ImageOps.exif_transpose`` does (a photo taken
    sideways is seen upright). 16-bit and 32-bit integer images are scaled to 8 bits; palette and
    alpha images are converted (alpha dropped), as ``PIL.Image.convert`` does.

    Raises
    ------
    DataError
        When the header declares more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (a possible
        decompression bomb); the pixels are never allocated.
    """
    with _open(path) as img:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            arr = np.asarray(img, dtype=np.float64)
            top = 65535.0 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255.0
            img = Image.fromarray(np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8), "L")
        elif img.mode == "F":
            arr = np.asarray(img, dtype=np.float64)
            img = Image.fromarray(np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8), "L")
        elif img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        return img.convert("L" if mode == "grayscale" else "RGB")
