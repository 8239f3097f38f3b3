"""The display base: a view that holds its data, draws it on any Axes and shows itself as HTML.

Every view of a report is a :class:`Display`, in the shape of scikit-learn's
``ConfusionMatrixDisplay`` (``sklearn/metrics/_plot/confusion_matrix.py``)::

    disp = ConfusionDisplay.from_predictions(y_true, y_pred, classes=names)  # from plain arrays
    disp = ConfusionDisplay.from_result(result)                              # from evallib's results
    disp.plot(ax=ax)    # draws what the report shows; returns disp; sets disp.ax_ and disp.figure_
    disp._repr_html_()  # what the HTML report shows (JupyterLab shows it too)

A subclass holds its data as attributes and implements :meth:`Display._draw` (draw on the Axes
:meth:`Display._new_axes` makes) and, when the page shows more than its figure, :meth:`Display._parts`.
Nothing here keeps state between displays; a display's HTML is made once and kept.
"""

from __future__ import annotations

import html as _html
from typing import Any

import numpy as np

from .html import CSS, figure_png, guide

_AXES_NAMES = {1: "one Axes", 2: "two Axes (a sequence)", 3: "three Axes (a sequence)"}


def img_tag(fig: Any, *, dpi: int = 100) -> str:
    """A matplotlib Figure as an ``<img>`` with the PNG inline (no file, no network)."""
    import base64

    data = base64.b64encode(figure_png(fig, dpi=dpi)).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="" style="max-width:100%; height:auto;">'


def new_figure(figsize: tuple[float, float], n_axes: int = 1):
    """A figure (not pyplot's) with ``n_axes`` Axes side by side; one Axes or an array of them."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot() if n_axes == 1 else fig.subplots(1, n_axes)


class Display:
    """Base of every report view.

    Attributes
    ----------
    title : str
        What the view shows, as its heading reads.
    ax_ : matplotlib Axes or ndarray of Axes
        Set by :meth:`plot`: where it drew.
    figure_ : matplotlib Figure
        Set by :meth:`plot`.
    """

    title: str = ""
    how_to_read: str = ""  # the one-line reading guide above the figure
    figsize: tuple[float, float] = (7.0, 5.5)
    dpi: int = 100
    live: bool = False  # True: JupyterLab shows live widgets instead of the static HTML

    # ------------------------------------------------------------- drawing
    @property
    def n_axes(self) -> int:
        """How many Axes :meth:`plot` draws on."""
        return 1

    def _new_axes(self):
        return new_figure(self.figsize, self.n_axes)

    def _draw(self, ax, **kwargs) -> None:
        raise TypeError(f"{type(self).__name__} {self.title!r}: expected a view with a figure to plot; "
                        f"this one is text and tables only")

    def _check_axes(self, ax):
        n = self.n_axes
        if n == 1:
            if isinstance(ax, (list, tuple, np.ndarray)):
                raise TypeError(f"ax: expected one matplotlib Axes for {type(self).__name__}; got {len(ax)}")
            return ax
        axes = np.asarray(ax, dtype=object).ravel() if isinstance(ax, (list, tuple, np.ndarray)) else None
        if axes is None or len(axes) != n:
            got = "one Axes" if axes is None else f"{len(axes)} Axes"
            raise TypeError(f"ax: expected {_AXES_NAMES.get(n, f'{n} Axes')} for {type(self).__name__} "
                            f"({self._axes_meaning()}); got {got}")
        return axes

    def _axes_meaning(self) -> str:
        return "side by side"

    def plot(self, ax=None, **kwargs):
        """Draw what the report shows on ``ax`` (a new figure when None).

        Parameters
        ----------
        ax : matplotlib Axes, or a sequence of them when the view has several panels (``n_axes``)
        **kwargs
            Passed to the drawing (see the subclass).

        Returns
        -------
        self
        """
        ax = self._new_axes() if ax is None else self._check_axes(ax)
        self._draw(ax, **kwargs)
        self.ax_ = ax
        first = ax if self.n_axes == 1 else np.asarray(ax, dtype=object).ravel()[0]
        self.figure_ = first.figure
        return self

    def _figure_html(self) -> str:
        """The view's figure, drawn on a new figure (``ax_`` stays the user's)."""
        ax = self._new_axes()
        self._draw(ax)
        first = ax if self.n_axes == 1 else np.asarray(ax, dtype=object).ravel()[0]
        return img_tag(first.figure, dpi=self.dpi)

    # ------------------------------------------------------------- HTML
    def _parts(self) -> list[str]:
        """The view as the page shows it: HTML strings in order. Default: the guide, then the figure."""
        out = [guide(self.how_to_read)] if self.how_to_read else []
        return [*out, self._figure_html()]

    def _repr_html_(self) -> str:
        cached = self.__dict__.get("_html")
        if cached is None:
            cached = self.__dict__["_html"] = CSS + "".join(self._parts())
        return cached

    def _live(self):
        """A widget for a live kernel (``live`` displays); the static HTML otherwise."""
        return None

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        widget = self._live() if self.live else None
        display(widget if widget is not None else HTML(self._repr_html_()))

    def __repr__(self) -> str:
        figure = f", plot(ax=...) on {_AXES_NAMES.get(self.n_axes, self.n_axes)}" if self._has_figure() else ""
        return f"<{type(self).__name__} {self.title!r}{figure}>"

    def _has_figure(self) -> bool:
        return type(self)._draw is not Display._draw


class Panel(Display):
    """Several displays as one view: their figures side by side, one Axes each.

    ``Panel([RocDisplay..., PrecisionRecallDisplay...])`` is the report's "ROC and precision-recall"
    section; ``plot(ax=(ax1, ax2))`` draws each on its own Axes.
    """

    def __init__(self, displays, *, title: str = "", how_to_read: str = "", panel_size=(6.0, 5.0)):
        self.displays = list(displays)
        if not self.displays or any(d.n_axes != 1 for d in self.displays):
            raise ValueError("displays: expected one or more displays that draw on one Axes each")
        self.title, self.how_to_read = title, how_to_read
        self.figsize = (panel_size[0] * len(self.displays), panel_size[1])

    @property
    def n_axes(self) -> int:
        return len(self.displays)

    def _axes_meaning(self) -> str:
        return ", ".join(d.title or type(d).__name__ for d in self.displays)

    def _draw(self, ax, **kwargs) -> None:
        axes = [ax] if self.n_axes == 1 else np.asarray(ax, dtype=object).ravel()
        for d, a in zip(self.displays, axes):
            d._draw(a, **kwargs)

    def plot(self, ax=None, **kwargs):
        super().plot(ax, **kwargs)
        axes = [self.ax_] if self.n_axes == 1 else np.asarray(self.ax_, dtype=object).ravel()
        for d, a in zip(self.displays, axes):
            d.ax_, d.figure_ = a, a.figure
        return self

    def _parts(self) -> list[str]:
        notes = list(dict.fromkeys(n for d in self.displays for n in getattr(d, "notes", ())))
        return super()._parts() + [f'<p class="evallib-guide">{_html.escape(n)}</p>' for n in notes]


class HtmlDisplay(Display):
    """A view that is text and tables only (the summary, the model facts, the notes): no figure."""

    def __init__(self, html: str, *, title: str = ""):
        self.html, self.title = html, title

    def _parts(self) -> list[str]:
        return [self.html]


class Section(Display):
    """Several views shown one after the other under one heading (a report section).

    ``section.displays`` are the views; ``plot`` draws the first that has a figure (``main``).
    """

    def __init__(self, displays, *, title: str = ""):
        self.displays, self.title = [d for d in displays if d is not None], title

    @property
    def main(self):
        for d in self.displays:
            if d._has_figure():
                return d
        raise ValueError(f"section {self.title!r}: expected a view with a figure; this one has only text and tables")

    @property
    def n_axes(self) -> int:
        return self.main.n_axes

    def _has_figure(self) -> bool:
        return any(d._has_figure() for d in self.displays)

    def plot(self, ax=None, **kwargs):
        self.main.plot(ax, **kwargs)
        self.ax_, self.figure_ = self.main.ax_, self.main.figure_
        return self

    @property
    def live(self):
        return any(d.live for d in self.displays)

    def _parts(self) -> list[str]:
        return [d._repr_html_() for d in self.displays]

    def _ipython_display_(self) -> None:
        for d in self.displays:
            d._ipython_display_()
