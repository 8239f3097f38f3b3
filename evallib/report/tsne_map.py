"""The t-SNE map view: images the model finds alike sit together, thumbnails on a spread-out subset."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..explain.tsne import MAX_LEGEND, TSNEMap
from ._base import Display, new_figure
from .html import figure_with_hover, guide

HOVER_POINTS = 5000  # points with a hover title in the HTML (mistakes first)


@dataclass(repr=False)
class TSNEMapDisplay(Display):
    """A t-SNE map coloured by class, mistakes ringed, with thumbnails and hover titles.

    Parameters
    ----------
    tmap : TSNEMap
        Coordinates and trustworthiness (:func:`evallib.explain.tsne.tsne_map`).
    labels : ndarray of int, shape (n_points,)
        Class of each point (index into ``classes``).
    classes : list
    predictions : ndarray of int, optional
        Predicted class of each point: mistakes are ringed and named in the hover titles.
    thumbnails : callable, optional
        ``thumbnails(i)`` returns point ``i``'s image as an array in [0, 1].
    names : list of str, optional
        A name per point (its file), for the hover titles.
    images : int, optional
        How many images the map was sampled from (the caption says so when more than the points).
    source : str
        What was mapped (for the caption).
    """

    tmap: TSNEMap
    labels: np.ndarray
    classes: list
    predictions: np.ndarray | None = None
    thumbnails: Callable | None = None
    names: list | None = None
    images: int | None = None
    source: str = "the embeddings"
    max_thumbnails: int = 150
    seed: int = 0
    title: str = "t-SNE map"
    figsize: tuple = (11.0, 9.0)
    dpi: int = 80

    @classmethod
    def from_embeddings(cls, embeddings, labels, *, classes=None, predictions=None, thumbnails=None, seed: int = 0,
                        perplexity: float = 30.0, **kwargs):
        """Compute the map of ``embeddings`` (ndarray of shape (n_samples, dim)) and show it."""
        from ..explain.tsne import tsne_map

        labels = np.asarray(labels)
        classes = list(range(int(labels.max()) + 1)) if classes is None else list(classes)
        tmap = tsne_map(np.asarray(embeddings, dtype=np.float64), seed=seed, perplexity=perplexity)
        return cls(tmap, labels, classes, predictions=predictions, thumbnails=thumbnails, seed=seed, **kwargs)

    @classmethod
    def from_result(cls, tmap: TSNEMap, labels, classes, **kwargs):
        return cls(tmap, np.asarray(labels), list(classes), **kwargs)

    @property
    def mistakes(self):
        return None if self.predictions is None else np.asarray(self.predictions) != self.labels

    def _draw(self, ax, thumbnails=True, **kwargs):
        from ..explain.tsne import plot_tsne

        _, self._placed = plot_tsne(self.tmap, self.labels, self.classes, mistakes=self.mistakes, ax=ax, seed=self.seed,
                                    thumbnails=self.thumbnails if thumbnails else None,
                                    max_thumbnails=self.max_thumbnails)

    def _parts(self):
        ax = new_figure(self.figsize)
        self._draw(ax)
        fig = ax.figure
        fig.draw_without_rendering()  # the final layout, so the hover points sit on the drawn ones
        n, m = len(self.labels), self.tmap
        wrong = np.zeros(n, bool) if self.mistakes is None else self.mistakes
        rng = np.random.default_rng(self.seed)
        hover = np.argsort(-(wrong + rng.random(n)), kind="stable")[:HOVER_POINTS]
        titles = [f"{self.classes[self.labels[i]]}"
                  + (f" → predicted {self.classes[self.predictions[i]]}" if wrong[i] else "")
                  + (f" ({self.names[i]})" if self.names is not None else "") for i in hover]
        n_cls = len(self.classes)
        colours = f"Colours by class; {n_cls:,} classes" if n_cls > MAX_LEGEND else "Colours by class (legend)"
        images = self.images or n
        sample = f" (a random sample of the {images:,} images, mistakes first)" if n < images else ""
        note = (f"{colours}; {n:,} points{sample} from {self.source}; {self._placed} thumbnails on points spread out "
                f"so none overlap; trustworthiness (k = 10) {m.trustworthiness:.3f}"
                + (f" measured on {m.trust_sample:,} random points" if m.trust_sample < n else "")
                + ": near 1 means neighbours on the map are neighbours in the embedding. Hover over a point for its "
                  "class" + (" and file" if self.names is not None else "")
                + (f" ({len(hover):,} of the points, mistakes first)." if len(hover) < n else "."))
        return [guide("Images the model finds similar sit close together; a thumbnail inside another class's cluster "
                      "is an image the model confuses. Black rings mark misclassified images."),
                figure_with_hover(fig, ax.transData.transform(m.coords[hover]), titles, dpi=self.dpi),
                f"<p>{html.escape(note)}</p>"]
