"""Evaluation data: listing labelled images, pair lists, decoding, and preprocessing into model inputs.

The subpackage has one module per step:

* :mod:`~evallib.data.listing`: :func:`list_images` (class folders, file-name prefixes or a manifest)
  into a :class:`Dataset`, and the order of the classes (:func:`sort_labels`,
  :func:`classes_from_metadata`);
* :mod:`~evallib.data.pairs`: LFW-style pair lists (:func:`read_pairs`);
* :mod:`~evallib.data.decoding`: :func:`load_image` with Pillow, refusing decompression bombs;
* :mod:`~evallib.data.preprocessing`: :func:`preprocess` (resize, pad, normalize, crop, test-time
  views) and :func:`load_views` (decode and preprocess one file, or the reason it cannot be used;
  :func:`decode_views` also measures the decoded image's properties).

A file that cannot be used is left out with a reason (``Dataset.skipped``, or the decoding reason of
:func:`load_views`): empty, truncated or not an image, larger than Pillow's decompression-bomb limit,
or a link that leads nowhere. EXIF orientation is applied.
"""

from ..params import PADS, RESIZE_MODES
from .decoding import load_image
from .listing import METADATA_CLASS_KEYS, Dataset, classes_from_metadata, describe_class_order, list_images, sort_labels
from .pairs import Pairs, read_pairs
from .preprocessing import (
    CENTER_VIEW,
    DTYPES,
    INTERPOLATIONS,
    N_VIEWS,
    OPENCV_INTERPOLATIONS,
    center_crop,
    crop_pct_size,
    decode_views,
    fit_size,
    five_crop,
    load_views,
    pad_to_box,
    preprocess,
    resize,
    resize_opencv,
    text_line_size,
    views,
)

__all__ = [
    "Dataset", "list_images", "sort_labels", "classes_from_metadata", "describe_class_order", "METADATA_CLASS_KEYS",
    "Pairs", "read_pairs",
    "load_image",
    "preprocess", "load_views", "decode_views", "resize", "pad_to_box", "center_crop", "five_crop", "views", "fit_size",
    "crop_pct_size", "CENTER_VIEW", "N_VIEWS", "INTERPOLATIONS", "RESIZE_MODES", "PADS", "DTYPES",
    "resize_opencv", "text_line_size", "OPENCV_INTERPOLATIONS",
]
