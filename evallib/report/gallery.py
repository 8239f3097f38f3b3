"""Image galleries: per class the most confident correct images and the mistakes, and the hardest
verification pairs, each image with its heat map over it when a Grad-CAM route is given."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._base import Display
from .html import guide, html_table

GALLERY_CLASSES = 10  # above this many classes the gallery has rows for the worst classes only


def _image_source(images):
    """``images`` as a function of a list of indices returning a list of arrays in [0, 1]."""
    if callable(images):
        return images
    arr = np.asarray(images)
    if arr.ndim not in (3, 4):
        raise ValueError(f"images: expected an array of shape (n, H, W) or (n, H, W, 3), or a function; "
                         f"got shape {arr.shape}")
    return lambda idx: [arr[i] for i in idx]


@dataclass(repr=False)
class TileDisplay(Display):
    """A grid of image tiles with captions: the base of every gallery.

    Parameters
    ----------
    tiles : list of rows, each a list of ``(image, caption)``
        Images are arrays in [0, 1], (H, W) or (H, W, 3).
    facts : list of (str, str)
        Shown above the gallery (how the heat maps were drawn).
    """

    tiles: list
    title: str = "Gallery"
    how_to_read: str = ""
    facts: list = field(default_factory=list)
    tile_inches: float = 1.3
    dpi: int = 80

    @property
    def ncols(self) -> int:
        return max((len(r) for r in self.tiles), default=1)

    @property
    def n_axes(self) -> int:
        return max(1, len(self.tiles)) * self.ncols

    def _axes_meaning(self):
        return f"a grid of {max(1, len(self.tiles))} rows x {self.ncols} tiles"

    def _new_axes(self):
        from matplotlib.figure import Figure

        nrows = max(1, len(self.tiles))
        fig = Figure(figsize=(self.ncols * self.tile_inches, nrows * (self.tile_inches + 0.35) + 0.4),
                     layout="constrained")
        axes = fig.subplots(nrows, self.ncols, squeeze=False)
        return axes[0, 0] if self.n_axes == 1 else axes  # one tile: one Axes, as plot(ax=...) takes it

    def _draw(self, ax, **kwargs):
        axes = np.asarray(ax, dtype=object).reshape(max(1, len(self.tiles)), self.ncols)
        for r in range(axes.shape[0]):
            row = self.tiles[r] if r < len(self.tiles) else []
            for c in range(axes.shape[1]):
                a = axes[r, c]
                a.set_xticks([])
                a.set_yticks([])
                for side in a.spines.values():
                    side.set_visible(False)
                if c < len(row):
                    img, caption = row[c]
                    a.imshow(img, interpolation="nearest", cmap="gray" if np.ndim(img) == 2 else None, vmin=0, vmax=1)
                    a.set_xlabel(caption, fontsize=7)
        axes[0, 0].figure.suptitle(self.title, fontsize=11)

    def _parts(self):
        facts = [html_table([list(f) for f in self.facts], ["Heat maps", ""])] if self.facts else []
        if not self.tiles:
            return [*facts, guide(self.how_to_read or "No images to show.")]
        return [*facts, *super()._parts()]

    @classmethod
    def from_tiles(cls, tiles, *, title="Gallery", how_to_read="", facts=()):
        """From rows of ``(image, caption)``: images are arrays in [0, 1], (H, W) or (H, W, 3)."""
        return cls([list(r) for r in tiles], title=title, how_to_read=how_to_read, facts=list(facts))


@dataclass(repr=False)
class GalleryDisplay(TileDisplay):
    """The report's Grad-CAM gallery: per class its most confident correct images and its mistakes, or the
    hardest verification pairs, each image with its heat map when a CAM is given."""

    @classmethod
    def from_predictions(cls, y_true, scores, *, images, classes: Sequence | None = None, cam: Callable | None = None,
                         size: int = 8, max_classes: int = GALLERY_CLASSES, facts=()):
        """Per true class: its most confident correct images, then its mistakes as pairs of tiles (heat
        map for the wrong prediction, then for the true class).

        Parameters
        ----------
        y_true : array-like of int, shape (n_samples,)
        scores : array-like of shape (n_samples, n_classes)
        images : ndarray of shape (n_samples, H, W[, 3]) in [0, 1], or a function
            ``images(indices) -> list of arrays`` (so only the shown images are loaded).
        cam : callable, optional
            ``cam(indices, target_classes) -> list of arrays``: each image with its heat map for the
            target over it. Without it the tiles show the images alone.
        size : int
            Tiles per class row: about half correct images, a quarter mistakes (two tiles each).
        max_classes : int
            Above this many classes only the classes with the lowest F1 have rows.
        """
        from .classification import _class_indices, _probabilities, worst_first

        probs, _ = _probabilities(scores, "auto")
        y, classes = _class_indices(y_true, classes, probs.shape[1])
        pred, conf = probs.argmax(1), probs.max(1)
        n_ok, n_bad = max(1, size // 2), max(1, size // 4)
        rows_for, which = list(range(len(classes))), "Each row is one true class"
        if len(classes) > max_classes:
            support = np.bincount(y, minlength=len(classes))
            tp = np.bincount(y[pred == y], minlength=len(classes))
            predicted = np.bincount(pred, minlength=len(classes))
            with np.errstate(invalid="ignore", divide="ignore"):
                f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
            rows_for = [k for k in worst_first(f1, support) if support[k] > 0][:max_classes]
            which = (f"Each row is one of the {max_classes} true classes with the lowest F1 (of {len(classes):,}), "
                     "worst first")
        picks = []  # rows of (index, target class, caption)
        for k in rows_for:
            k, name = int(k), classes[k]
            ok = np.nonzero((y == k) & (pred == k))[0]
            bad = np.nonzero((y == k) & (pred != k))[0]
            row = [(i, k, f"{name} → {name} ({conf[i]:.2f})") for i in ok[np.argsort(-conf[ok], kind="stable")][:n_ok]]
            for i in bad[np.argsort(-conf[bad], kind="stable")][:n_bad]:
                row.append((i, int(pred[i]), f"{name} → {classes[pred[i]]} ({conf[i]:.2f})"))
                row.append((i, k, f"true class {name}"))
            if row:
                picks.append(row)
        flat = [t for row in picks for t in row]
        idx = [int(i) for i, _, _ in flat]
        shown = cam(idx, [t for _, t, _ in flat]) if cam is not None else _image_source(images)(idx)
        tiles, j = [], 0
        for row in picks:
            tiles.append([(shown[j + m], cap) for m, (_, _, cap) in enumerate(row)])
            j += len(row)
        title = "Grad-CAM: where the model looks" if cam is not None else "Gallery (no heat maps)"
        how = (f"{which}: its most confident correct images, then its mistakes as pairs (heat map for the wrong "
               "prediction, then for the true class). Red areas drove the score; captions read true → predicted "
               "(probability).")
        return cls(tiles, title=title, how_to_read=how, facts=list(facts))

    @classmethod
    def from_embeddings(cls, embeddings, labels, *, images, classes: Sequence | None = None,
                        cam: Callable | None = None, k: int = 4, facts=()):
        """The hardest verification pairs: the ``k`` genuine pairs the model finds least similar (false
        rejects) and the ``k`` impostor pairs it finds most similar (false accepts).

        ``cam(indices, reference_indices) -> list of arrays`` draws each image's heat map for its
        similarity to the reference image.
        """
        from ..metrics.verification import extreme_pairs

        labels = np.asarray(labels)
        classes = list(range(int(labels.max()) + 1)) if classes is None else list(classes)
        rejects, accepts = extreme_pairs(np.asarray(embeddings), labels, k)
        pairs = [(i, j, s, "false reject") for i, j, s in rejects] + [(i, j, s, "false accept") for i, j, s in accepts]
        if not pairs:
            return cls([], title="Verification: the hardest pairs", how_to_read="No pairs to show.")
        first = [int(i) for i, _, _, _ in pairs]
        second = [int(j) for _, j, _, _ in pairs]
        shown = _image_source(images)(first + second)
        heat = cam(first + second, second + first) if cam is not None else shown
        n = len(pairs)
        tiles = []
        for m, (i, j, s, kind) in enumerate(pairs):
            a, b = classes[labels[i]], classes[labels[j]]
            tiles.append([(shown[m], f"{kind}: {a}"), (heat[m], f"similarity {s:.3f}"), (heat[n + m], f"{b}"),
                          (shown[n + m], f"{b}")])
        return cls(tiles, title="Verification: the hardest pairs", facts=list(facts), how_to_read=(
            "Top rows: pairs of the same identity the model finds least similar (false rejects); bottom rows: pairs "
            "of different identities it finds most similar (false accepts). The heat maps show what drives the "
            "similarity to the other image."))
