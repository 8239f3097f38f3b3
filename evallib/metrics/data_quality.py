"""Images that say little about a model: nearly black or white, blurred, nearly constant, or of an odd size.

The rules read the properties measured while each image was decoded
(:func:`evallib.data.image_properties.image_properties`: brightness, RMS contrast, the variance of the
Laplacian, the entropy of the grey levels, the size), so they cost nothing more than the run. They
follow the checks of image-data audits such as cleanvision's (dark, light, blurry, low information,
odd size, odd aspect ratio; written here on NumPy, cleanvision being AGPL):

- **dark**: mean brightness <= 0.05 (of 1); the value shown is the brightness;
- **bright**: mean brightness >= 0.95;
- **low_information**: entropy of the grey levels <= 0.5 bits (one grey level covers about 94% of the
  pixels or more); the value is the entropy;
- **blurry**: sharpness <= 0.2 x the median sharpness and robust z <= -3.5, among images of the usual
  size; the value is the sharpness;
- **odd_size**: pixel count at least 2 x above or below the median and robust |z| >= 3.5; the value is
  the pixel count;
- **odd_aspect**: aspect ratio (width / height) at least 1.5 x above or below the median and robust
  |z| >= 3.5.

*Sharpness* is the variance of the Laplacian (Pech-Pacheco et al., ICPR 2000) divided by the variance
of the luma, so that a sharp image of low contrast is not taken for a blurred one; an image with no
contrast has none (it is low in information, not blurred), and an image of an odd size is not judged
(the Laplacian's response depends on the scale: an enlarged image looks blurred at its own size).

The relative rules compare an image with the data set's own typical value: the robust z-score ``(x -
median) / (1.4826 MAD)`` of the logarithm (Iglewicz and Hoaglin, "How to Detect and Handle Outliers",
1993, whose cut is 3.5), and a minimum factor away from the median, so that a data set of one size (MAD
0) flags only images that really differ. Nothing is dropped: the result lists every flagged image with
its value and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import EvallibError

ISSUES = ("dark", "bright", "low_information", "blurry", "odd_size", "odd_aspect")
ISSUE_NAMES = {"dark": "nearly black", "bright": "nearly white", "low_information": "low in information",
               "blurry": "blurry", "odd_size": "odd size", "odd_aspect": "odd aspect ratio"}
_MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): the MAD of a normal sample estimates sigma after this factor


@dataclass(frozen=True)
class ImageIssues:
    """Which images break which data-quality rule, with the value each rule read.

    Attributes
    ----------
    flags : dict of str to ndarray of bool, shape (n_samples,)
        One mask per issue checked, in :data:`ISSUES` order.
    values : dict of str to ndarray of shape (n_samples,)
        The value each rule reads (brightness, entropy, sharpness, pixels, aspect ratio).
    rules : dict of str to str
        Each rule in words, with its thresholds on this data.
    notes : tuple of str
        Rules that could not be checked, and why.
    """

    flags: dict
    values: dict
    rules: dict
    notes: tuple = ()

    @property
    def n_samples(self):
        return int(len(next(iter(self.values.values())))) if self.values else 0

    @property
    def flagged(self):
        """ndarray of bool, shape (n_samples,): images with at least one issue."""
        out = np.zeros(self.n_samples, dtype=bool)
        for f in self.flags.values():
            out |= f
        return out

    def counts(self):
        """``{issue: number of images}``, in :data:`ISSUES` order."""
        return {k: int(f.sum()) for k, f in self.flags.items()}

    def rows(self, *, names=None):
        """One record per image and issue, issues in :data:`ISSUES` order, the most extreme value first.

        Parameters
        ----------
        names : sequence of str, shape (n_samples,), optional
            Image names; default the indices.

        Returns
        -------
        list of dict
            Keys ``index``, ``image``, ``issue`` (its words), ``value``, ``rule``.
        """
        if names is not None and len(names) != self.n_samples:
            raise EvallibError(f"names: expected {self.n_samples} image names; got {len(names)}")
        out = []
        for k, f in self.flags.items():
            idx = np.nonzero(f)[0]
            v = self.values[k][idx]
            if k in ("dark", "low_information", "blurry"):
                idx = idx[np.argsort(v, kind="stable")]
            elif k == "bright":
                idx = idx[np.argsort(-v, kind="stable")]
            else:  # furthest from the median first
                med = np.median(self.values[k])
                idx = idx[np.argsort(-np.abs(np.log(v / med)), kind="stable")]
            for i in idx:
                out.append({"index": int(i), "image": str(names[i]) if names is not None else int(i),
                            "issue": ISSUE_NAMES[k], "value": float(self.values[k][i]), "rule": self.rules[k]})
        return out


def robust_z(values):
    """``(x - median) / (1.4826 MAD)``: the robust z-score (Iglewicz and Hoaglin 1993).

    With a MAD of 0 (more than half the values equal) the score is 0 at the median and infinite elsewhere.

    Parameters
    ----------
    values : array-like of shape (n,)

    Returns
    -------
    ndarray of shape (n,)
    """
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return np.full_like(x, np.nan)
    med = np.median(x[finite])
    mad = _MAD_TO_SIGMA * np.median(np.abs(x[finite] - med))
    dev = x - med
    if mad > 0:
        return dev / mad
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dev == 0, 0.0, np.sign(dev) * np.inf)


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise EvallibError(f"{name}: expected a positive number; got {value!r}")
    return float(value)


def image_issues(properties, *, dark=0.05, bright=0.95, min_entropy=0.5, blur_factor=0.2, size_factor=2.0,
                 aspect_factor=1.5, z=3.5):
    """The images that are nearly black or white, blurred, nearly constant, or of an odd size or aspect.

    Parameters
    ----------
    properties : dict of str to array-like of shape (n_samples,)
        As :func:`evallib.data.image_properties.properties_table` gives them
        (``Predictions.image_properties``): ``brightness``, ``contrast``, ``blur``, ``pixels``,
        ``aspect_ratio`` and ``entropy``. A rule whose property is missing is left out with a note.
    dark, bright : float
        Mean brightness (0 black, 1 white) at or below which an image is nearly black, at or above
        which it is nearly white.
    min_entropy : float
        Entropy of the grey levels, in bits, at or below which an image is low in information.
    blur_factor : float
        An image is blurred when its sharpness is at most this share of the median sharpness and its
        robust z-score (of the logarithm) is at most ``-z``.
    size_factor, aspect_factor : float
        An image is of an odd size (aspect ratio) when its pixel count (width / height) is at least this
        factor above or below the median and the robust z-score of the logarithm is at least ``z`` in size.
    z : float
        The robust z-score cut (3.5, Iglewicz and Hoaglin).

    Returns
    -------
    ImageIssues

    Examples
    --------
    >>> props = {"brightness": [0.3, 0.31, 0.01, 0.29], "contrast": [0.3, 0.3, 0.01, 0.3]}
    >>> image_issues(props).counts()["dark"]
    1
    """
    if not isinstance(properties, Mapping):
        raise TypeError(f"properties: expected a mapping of property name to values; got {type(properties).__name__}")
    if not 0 <= dark < bright <= 1:
        raise EvallibError(f"dark, bright: expected 0 <= dark < bright <= 1; got dark {dark!r}, bright {bright!r}")
    min_entropy = float(min_entropy)
    blur_factor = _positive("blur_factor", blur_factor)
    size_factor = _positive("size_factor", size_factor)
    aspect_factor = _positive("aspect_factor", aspect_factor)
    z = _positive("z", z)
    cols = {k: np.asarray(v, dtype=np.float64) for k, v in properties.items()}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise EvallibError(f"properties: expected one value per image in every column; got lengths "
                           f"{ {k: len(v) for k, v in cols.items()} }")
    flags, values, rules, notes = {}, {}, {}, []

    def missing(issue, *keys):
        gone = [k for k in keys if k not in cols or not np.isfinite(cols[k]).any()]
        if gone:
            notes.append(f"{ISSUE_NAMES[issue]}: not checked: no {', '.join(gone)} measured (predictions made "
                         f"by an earlier evallib; run again with a changed data listing to measure it)")
        return bool(gone)

    if not missing("dark", "brightness"):
        b = cols["brightness"]
        flags["dark"], values["dark"], rules["dark"] = b <= dark, b, f"mean brightness <= {dark:g}"
        flags["bright"], values["bright"], rules["bright"] = b >= bright, b, f"mean brightness >= {bright:g}"
    low = None
    if not missing("low_information", "entropy"):
        e = cols["entropy"]
        low = e <= min_entropy
        flags["low_information"], values["low_information"] = low, e
        rules["low_information"] = f"entropy of the grey levels <= {min_entropy:g} bits"
    for issue, key, factor, what in (("odd_size", "pixels", size_factor, "pixel count"),
                                     ("odd_aspect", "aspect_ratio", aspect_factor, "aspect ratio (width / height)")):
        if missing(issue, key):
            continue
        v = cols[key]
        ok = np.isfinite(v) & (v > 0)
        med = float(np.median(v[ok])) if ok.any() else float("nan")
        zz = np.full(len(v), np.nan)
        if ok.any():
            zz[ok] = robust_z(np.log(v[ok]))
        with np.errstate(divide="ignore", invalid="ignore"):
            far = np.abs(np.log(v / med)) >= np.log(factor) if factor > 1 else np.ones(len(v), bool)
        flags[issue] = ok & far & (np.abs(zz) >= z)
        values[issue] = v
        rules[issue] = (f"{what} at least {factor:g} x above or below the median ({med:,.4g}) and robust "
                        f"|z| >= {z:g}")
    if not missing("blurry", "blur", "contrast"):
        var = (cols["contrast"] * 255.0) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            sharp = np.where(var > 0, cols["blur"] / var, np.nan)
        judged = np.isfinite(sharp) & (sharp > 0) & ~(low if low is not None else np.zeros(len(sharp), bool))
        if "odd_size" in flags:  # sharpness per pixel depends on the scale: judged among images of the usual size
            judged &= ~flags["odd_size"]
        med = float(np.median(sharp[judged])) if judged.any() else float("nan")
        zz = np.full(len(sharp), np.nan)
        if judged.any():
            zz[judged] = robust_z(np.log(sharp[judged]))
        flags["blurry"] = judged & (sharp <= blur_factor * med) & (zz <= -z)
        values["blurry"] = sharp
        rules["blurry"] = (f"sharpness (variance of the Laplacian / variance of the luma) <= {blur_factor:g} x the "
                           f"median ({med:.3g}) and robust z <= -{z:g}")
    return ImageIssues(flags=flags, values=values, rules=rules, notes=tuple(notes))
