"""The training curves view: loss on one panel, the other metrics on the other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._base import Display


@dataclass(repr=False)
class TrainingCurvesDisplay(Display):
    """Training and validation curves from a training log.

    Parameters
    ----------
    history : dict
        ``{"epoch": [...], name: [...]}``; names with "loss" go to the first panel, the rest to the second.
    name : str
        The model, for the titles.

    ``plot(ax=(loss_ax, metrics_ax))`` draws on two Axes.
    """

    history: dict
    name: str = "Training curves"
    title: str = "Training curves"
    figsize: tuple = (10.0, 3.8)
    how_to_read: str = ("Training and validation loss falling together means the model is still learning; validation "
                        "loss rising while training loss falls means over-fitting.")

    def __post_init__(self):
        if "epoch" not in self.history:
            raise ValueError(f"history: expected an 'epoch' entry; got {sorted(self.history)}")
        n = len(self.history["epoch"])
        bad = [k for k, v in self.history.items() if len(v) != n]
        if bad:
            raise ValueError(f"history: expected {n} values (one per epoch) in every entry; got other lengths in "
                             f"{', '.join(bad)}")

    @classmethod
    def from_history(cls, history: dict, *, name: str = "Training curves"):
        """From arrays: ``{"epoch": [...], "loss": [...], "val_loss": [...], "val_accuracy": [...]}``."""
        return cls({k: np.asarray(v, dtype=float) for k, v in history.items()}, name=name)

    @classmethod
    def from_log(cls, path, *, name: str = "Training curves"):
        """From a CSV log or a TensorBoard event folder (:func:`evallib.training_log.read_training_log`)."""
        from ..training_log import read_training_log

        return cls.from_history(read_training_log(path), name=name)

    from_result = from_history

    @property
    def n_axes(self) -> int:
        return 2

    def _axes_meaning(self):
        return "loss, then the other metrics"

    def _draw(self, ax, **kwargs):
        from .plots import plot_training_curves

        plot_training_curves(self.history, axes=ax, title=self.name)
