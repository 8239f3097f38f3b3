"""The Grad-CAM explorer: in JupyterLab, pick an image (by index or among the mistakes) and see its
heat maps for the predicted and the true class. Live only: a static page has no explorer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._base import Display, new_figure


class CamExplorer(Display):
    """Pick an image and see its heat maps.

    Parameters
    ----------
    y_true, y_pred : ndarray of int, shape (n_samples,)
    classes : list
    names : list of str
        A name (file) per image.
    cam : callable
        ``cam(indices, targets) -> list of arrays``: each image with its heat map for the target.
    images : callable
        ``images(indices) -> list of arrays``: the images alone.
    """

    live = True
    title = "Grad-CAM explorer"
    figsize = (7.5, 2.9)

    def __init__(self, y_true, y_pred, classes, names, *, cam: Callable, images: Callable, method: str = ""):
        self.y, self.pred, self.classes, self.names = np.asarray(y_true), np.asarray(y_pred), list(classes), list(names)
        self.cam, self.images, self.method = cam, images, method
        wrong = np.nonzero(self.pred != self.y)[0]
        self.index = int(wrong[0]) if len(wrong) else 0

    @property
    def n_axes(self) -> int:
        return 3

    def _axes_meaning(self):
        return "the image, the heat map for the prediction, the heat map for the true class"

    def _new_axes(self):
        return new_figure(self.figsize, 3)

    def _draw(self, ax, index=None, **kwargs):
        i = self.index if index is None else int(index)
        shown = self.images([i])[0]
        heat = self.cam([i, i], [int(self.pred[i]), int(self.y[i])])
        for a, img, cap in zip(np.asarray(ax, dtype=object).ravel(), (shown, heat[0], heat[1]),
                               (self.names[i], f"predicted {self.classes[self.pred[i]]}",
                                f"true {self.classes[self.y[i]]}")):
            a.imshow(img, interpolation="nearest")
            a.set_xticks([])
            a.set_yticks([])
            a.set_xlabel(cap, fontsize=8)
        np.asarray(ax, dtype=object).ravel()[0].figure.suptitle(self.method, fontsize=10)

    def _parts(self):
        return []  # a static page has no explorer

    def _live(self):
        import ipywidgets as w
        from IPython.display import display

        from .html import figure_image

        wrong = [int(i) for i in np.nonzero(self.pred != self.y)[0]]
        options = [(f"#{i}: {self.classes[self.y[i]]} → {self.classes[self.pred[i]]}", i) for i in wrong]
        index = w.BoundedIntText(value=self.index, min=0, max=len(self.y) - 1, description="image #")
        pick = w.Dropdown(options=options or [("no mistakes", 0)], description="mistakes")
        out = w.Output()

        def show(*_):
            ax = self._new_axes()
            self._draw(ax, index=index.value)
            out.clear_output(wait=True)
            with out:
                display(figure_image(ax[0].figure))

        pick.observe(lambda ch: setattr(index, "value", ch["new"]), names="value")
        index.observe(show, names="value")
        show()
        return w.VBox([w.HBox([index, pick]), out])
