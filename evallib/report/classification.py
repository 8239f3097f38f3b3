"""Classification views: headline metrics, per-class table, confusion, ROC, precision-recall, calibration.

Each view is a :class:`~evallib.report._base.Display`: built from plain arrays by
``from_predictions`` or from evallib's results by ``from_result``; ``plot(ax=...)`` draws what
the report shows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..metrics.classification import ClassificationResult, evaluate_classification, infer_score_type, to_probabilities
from ..metrics.confusion import cluster_order, most_confused_classes, most_confused_pairs
from ..metrics.curves import Band, class_curves
from ..metrics.stats import format_interval
from ._base import Display, img_tag, new_figure
from .html import folded_table, guide, html_table

TABLE_ROWS = 25  # a per-class table longer than this shows its worst rows and folds the rest
CONFUSION_ANNOTATED = 30  # up to this many classes the heat map shows every class with its counts
CONFUSED_CLASSES = 25  # above that: the submatrix of the most confused classes, then the whole matrix
PER_CLASS_CURVES = 10  # up to this many classes each class has its own ROC and precision-recall curve


def worst_first(f1, support):
    """Class indices from the lowest F1 up; among equal F1 the class with more images comes first.

    Parameters
    ----------
    f1 : array-like of shape (n_classes,)
        NaN sorts last.
    support : array-like of shape (n_classes,)
        Images per class.

    Returns
    -------
    ndarray of shape (n_classes,)
    """
    f1 = np.asarray(f1, dtype=np.float64)
    support = np.asarray(support)
    if f1.shape != support.shape:
        raise ValueError(f"support: expected one count per class ({f1.shape[0]}); got shape {support.shape}")
    return np.lexsort((np.arange(len(f1)), -support, np.where(np.isnan(f1), np.inf, f1)))


def _labels_and_classes(y_true, y_pred, classes):
    """Both label arrays as indices into ``classes`` (sorted union of the labels when None)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_pred: expected one prediction per label ({y_true.shape[0]}); got shape {y_pred.shape}")
    if classes is None:
        classes = np.unique(np.concatenate([y_true, y_pred])).tolist()
    elif y_true.dtype.kind in "iu" and not any(isinstance(c, (int, np.integer)) for c in classes):
        idx = [_class_indices(v, classes, len(classes))[0] for v in (y_true, y_pred)]  # indices into the names
        return idx[0], idx[1], list(classes)
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for name, v in (("y_true", y_true), ("y_pred", y_pred)):
        unknown = sorted({str(x) for x in v.tolist() if x not in index})
        if unknown:
            raise ValueError(f"{name}: expected labels among classes; got {', '.join(unknown[:5])}")
        out.append(np.array([index[x] for x in v.tolist()], dtype=np.int64))
    return out[0], out[1], list(classes)


def _probabilities(scores, scores_are):
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores: expected an array of shape (n_samples, n_classes); got shape {scores.shape}")
    kind = infer_score_type(scores)[0] if scores_are == "auto" else scores_are
    return to_probabilities(scores, kind), kind


def _class_indices(y_true, classes, n_classes):
    y = np.asarray(y_true)
    if classes is None:
        classes = list(range(n_classes))
    if len(classes) != n_classes:
        raise ValueError(f"classes: expected one name per score column ({n_classes}); got {len(classes)}")
    if y.dtype.kind in "iu" and not all(isinstance(c, (int, np.integer)) for c in classes):
        idx = y.astype(np.int64)
    else:
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({str(x) for x in y.tolist() if x not in index})
        if unknown:
            raise ValueError(f"y_true: expected labels among classes; got {', '.join(unknown[:5])}")
        idx = np.array([index[x] for x in y.tolist()], dtype=np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= n_classes):
        raise ValueError(f"y_true: expected class indices 0..{n_classes - 1}; got {idx.min()}..{idx.max()}")
    return idx, list(classes)


def _evaluate(y, probs, classes, top_k=1):
    """Every classification metric of class indices ``y`` and probabilities, reported under the class names."""
    index = list(range(len(classes)))
    result = evaluate_classification(y, probs, classes=index, scores_are="probabilities", top_k=top_k)
    names = [str(c) for c in classes]
    undefined = [{**u, "classes": [names[int(k)] for k in u["classes"]]} for u in result.undefined]
    return dataclasses.replace(result, classes=list(classes), undefined=undefined,
                               most_confused=most_confused_pairs(result.confusion, classes))


# ---------------------------------------------------------------------------------------------- confusion
@dataclass(repr=False)
class ConfusionDisplay(Display):
    """Confusion heat map with the most confused pairs.

    Up to ``CONFUSION_ANNOTATED`` classes one heat map shows every cell with its count and row
    share; above it, two panels: the submatrix of the most confused classes (confusions side by
    side) and the whole matrix as one image ordered by hierarchical clustering.

    Parameters
    ----------
    confusion : ndarray of shape (n_classes, n_classes)
        Counts; rows are the true class, columns the prediction.
    classes : list
    name : str, optional
        The model, for the titles.
    """

    confusion: np.ndarray
    classes: list
    name: str = ""
    title: str = "Confusion matrix"

    def __post_init__(self):
        self.confusion = np.asarray(self.confusion)
        n = len(self.classes)
        if self.confusion.shape != (n, n):
            raise ValueError(f"confusion: expected shape ({n}, {n}) for {n} classes; got {self.confusion.shape}")

    @classmethod
    def from_predictions(cls, y_true, y_pred, *, classes: Sequence | None = None, name: str = ""):
        """From true and predicted labels (names or indices), as ``sklearn.metrics.confusion_matrix``."""
        t, p, names = _labels_and_classes(y_true, y_pred, classes)
        n = len(names)
        cm = np.bincount(t * n + p, minlength=n * n).reshape(n, n)
        return cls(cm, names, name=name)

    @classmethod
    def from_result(cls, result: ClassificationResult, *, name: str = ""):
        return cls(result.confusion, list(result.classes), name=name)

    @property
    def pairs(self) -> list:
        """The most confused pairs (:func:`evallib.metrics.confusion.most_confused_pairs`)."""
        return most_confused_pairs(self.confusion, self.classes)

    @property
    def n_axes(self) -> int:
        return 1 if len(self.classes) <= CONFUSION_ANNOTATED else 2

    def _axes_meaning(self):
        return "the most confused classes, then the whole matrix"

    def _suffix(self):
        return f": {self.name}" if self.name else ""

    def _submatrix(self):
        return most_confused_classes(self.confusion, max_classes=CONFUSED_CLASSES)

    def _draw_sub(self, ax, idx):
        from .plots import plot_confusion

        n = len(self.classes)
        if len(idx) < 2:
            ax.set_axis_off()
            ax.set_title("No class is confused with another")
            return
        plot_confusion(self.confusion[np.ix_(idx, idx)], [self.classes[i] for i in idx], ax=ax,
                       row_totals=self.confusion.sum(axis=1)[idx],
                       title=f"The {len(idx)} most confused classes of {n:,}{self._suffix()}")

    def _draw_full(self, ax):
        from .plots import plot_confusion_image

        n = len(self.classes)
        plot_confusion_image(self.confusion, order=cluster_order(self.confusion), ax=ax,
                             title=f"All {n:,} classes, ordered by hierarchical clustering{self._suffix()}")

    def _new_axes(self):
        if self.n_axes == 1:
            from .plots import confusion_figsize

            return new_figure(confusion_figsize(len(self.classes)))
        return new_figure((22.0, 11.0), 2)

    def _draw(self, ax, **kwargs):
        from .plots import plot_confusion

        if self.n_axes == 1:
            plot_confusion(self.confusion, self.classes, ax=ax, title=f"Confusion matrix{self._suffix()}")
            return
        self._draw_sub(ax[0], self._submatrix())
        self._draw_full(ax[1])

    def _pairs_html(self):
        rows = [[m["true"], m["predicted"], m["count"], m["rate"]] for m in self.pairs]
        return "<h4>Most confused pairs</h4>" + html_table(rows, ["true", "predicted as", "images",
                                                                 "share of true class"])

    def _parts(self):
        n = len(self.classes)
        if n <= CONFUSION_ANNOTATED:
            return [guide("Rows are the true class, columns the prediction; the diagonal is correct. Each cell shows "
                          "the count and the share of its row; dark cells off the diagonal are the model's typical "
                          "mistakes."), self._figure_html(), self._pairs_html()]
        parts = []
        idx = self._submatrix()
        if len(idx) >= 2:
            from .plots import confusion_figsize

            ax = new_figure(confusion_figsize(len(idx)))
            self._draw_sub(ax, idx)
            parts += [guide(f"The {len(idx)} classes involved in the largest off-diagonal counts, of {n:,}; they are "
                            "ordered so that classes confused with each other sit side by side. Rows are the true "
                            "class, columns the prediction; each cell shows the count and the share of all of the "
                            "true class's images, so a row need not add up to 100%."), img_tag(ax.figure)]
        else:
            parts.append("<p><i>No class is confused with another: every image is classified correctly.</i></p>")
        ax = new_figure((10.0, 10.8))
        self._draw_full(ax)
        dpi = min(220, max(100, int(np.ceil(n / 9.0))))  # at least a pixel per class, up to 2,000 classes
        parts += [guide("The whole matrix, one pixel per pair of classes, rows and columns in the same order: "
                        "classes confused with each other are clustered together, so confusions appear as dark "
                        "squares along the diagonal; a dark point far from it is a confusion between otherwise "
                        "distinct groups. Colour is the share of the true class (row); empty cells are white."),
                  img_tag(ax.figure, dpi=dpi), self._pairs_html()]
        return parts


# ---------------------------------------------------------------------------------------------- curves
@dataclass(frozen=True)
class Curve:
    """One line of a ROC or precision-recall plot: ``x`` and ``y`` and, optionally, its 95% band."""

    label: str
    x: np.ndarray
    y: np.ndarray
    band: Band | None = None


def _band(d):
    return None if d is None else Band.from_dict(d)


def _curves_from(curves: dict, kind: str, *, classes=None, macro_auc=float("nan")) -> list:
    """The lines the report draws, from :func:`evallib.metrics.curves.class_curves`' dict."""
    out = []
    if kind == "roc":
        m = curves["roc_micro"]
        out.append(Curve(f"micro average (AUC {m['area']:.3f})", m["fpr"], m["tpr"],
                         _band(curves.get("roc_micro_band"))))
        macro = curves["roc_macro"]
        out.append(Curve(f"macro average (AUC {macro_auc:.3f})", macro["fpr"], macro["tpr"]))
    else:
        m = curves["pr_micro"]
        out.append(Curve(f"micro average (AP {m['area']:.3f})", m["recall"], m["precision"],
                         _band(curves.get("pr_micro_band"))))
    for k, entry in enumerate(curves.get("classes") or []):
        if entry is None:
            continue
        name = classes[k] if classes is not None else k
        if kind == "roc":
            out.append(Curve(f"class {name} ({entry['auc']:.3f})", entry["roc"]["fpr"], entry["roc"]["tpr"],
                             _band(entry.get("roc_band"))))
        else:
            out.append(Curve(f"class {name} ({entry['average_precision']:.3f})", entry["pr"]["recall"],
                             entry["pr"]["precision"], _band(entry.get("pr_band"))))
    return out


@dataclass(repr=False)
class _CurveDisplay(Display):
    curves: list = field(default_factory=list)
    title: str = ""
    log_x: bool = False
    marker: tuple | None = None
    figsize: tuple = (6.0, 5.0)
    _kind: ClassVar[str] = "roc"
    bands: str = "average"  # whose 95% band is shaded: "average" (the first curve, the micro average), "all", "none"

    def __post_init__(self):
        if self.bands not in ("average", "all", "none"):
            raise ValueError(f"bands: expected one of average, all, none; got {self.bands!r}")

    def _banded(self):
        """The curves whose band is shaded (ten overlapping bands would hide the curves)."""
        chosen = {"average": self.curves[:1], "all": self.curves, "none": []}[self.bands]
        return [c for c in chosen if c.band is not None and c.band.n_boot > 0]

    def _shade(self, ax, step=None):
        colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
        for c in self._banded():
            x = np.asarray(c.band.x)
            keep = x > 0 if self.log_x else slice(None)
            ax.fill_between(x[keep], np.asarray(c.band.lower)[keep], np.asarray(c.band.upper)[keep],
                            color=colours.get(c.label), alpha=0.2, lw=0, step=step)

    @classmethod
    def from_predictions(cls, y_true, scores, *, classes: Sequence | None = None, scores_are: str = "auto",
                         n_boot: int = 200, seed: int = 0, per_class: bool | None = None, bands: str = "average"):
        """One class against the rest: micro and macro averages, each class's curve up to 10 classes, and
        pointwise 95% bootstrap bands (around the micro average; ``bands="all"``: around every curve).

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            Class names (members of ``classes``) or indices.
        scores : array-like of shape (n_samples, n_classes)
        classes : sequence, optional
            Names in score-column order; default the column indices.
        scores_are : {"auto", "logits", "probabilities"}
        n_boot : int
            Resamples for the bands (0: no band).
        per_class : bool, optional
            Each class's own curve; default when there are at most 10 classes.
        """
        probs, _ = _probabilities(scores, scores_are)
        y, classes = _class_indices(y_true, classes, probs.shape[1])
        per = probs.shape[1] <= PER_CLASS_CURVES if per_class is None else per_class
        curves = class_curves(y, probs, per_class=per, bands=n_boot > 0 and bands != "none",
                              class_bands=n_boot > 0 and bands == "all", n_boot=max(n_boot, 1), seed=seed)
        from ..metrics.classification import ovr_ranking

        roc_auc, _ = ovr_ranking(y, probs.T.copy())
        macro = float(np.nanmean(roc_auc)) if np.isfinite(roc_auc).any() else float("nan")
        return cls(_curves_from(curves, cls._kind, classes=classes, macro_auc=macro), bands=bands)

    @classmethod
    def from_result(cls, curves: dict, result: ClassificationResult | None = None):
        """From the metrics step's curves (``Evaluation.curves``) and the classification result."""
        if result is None:
            return cls(_curves_from(curves, cls._kind))
        return cls(_curves_from(curves, cls._kind, classes=list(result.classes), macro_auc=result.roc_auc_macro))

    @classmethod
    def from_sweeps(cls, sweeps: dict, *, log_x: bool = False, marker=None, title: str | None = None):
        """From ``{label: ThresholdSweep}`` (a verification ROC: ``log_x`` puts FAR on a log axis)."""
        lines = []
        for label, s in sweeps.items():
            if cls._kind == "roc":
                fpr, tpr, _ = s.roc()
                lines.append(Curve(label, fpr, tpr))
            else:
                p, r, _ = s.pr()
                lines.append(Curve(label, r, p))
        disp = cls(lines, log_x=log_x, marker=marker)
        if title:
            disp.title = title
        return disp

    @property
    def notes(self):
        """What the shading is, and why a band is missing or has fewer resamples than asked for."""
        banded = self._banded()
        out = []
        if banded:
            names = "the " + banded[0].label.split(" (")[0] if len(banded) == 1 else "each curve"
            out.append(f"Shaded: pointwise 95% bootstrap band around {names} ({banded[0].band.n_boot} resamples of "
                       f"the images, within each class).")
        considered = {"average": self.curves[:1], "all": self.curves, "none": []}[self.bands]
        out += sorted({c.band.reason for c in considered if c.band is not None and c.band.reason})
        return out

    def _parts(self):
        return super()._parts() + [f'<p class="evallib-guide">{n}</p>' for n in self.notes]


@dataclass(repr=False)
class RocDisplay(_CurveDisplay):
    """ROC curves (one class against the rest, or TAR against FAR for verification), with 95% bands.

    Examples
    --------
    >>> disp = RocDisplay.from_predictions(y_true, scores, classes=names)   # doctest: +SKIP
    >>> disp.plot(ax=ax).ax_ is ax                                          # doctest: +SKIP
    True
    """

    title: str = "ROC, one class vs the rest"
    _kind: ClassVar[str] = "roc"

    def _draw(self, ax, **kwargs):
        from .plots import plot_roc

        plot_roc({c.label: (c.x, c.y) for c in self.curves}, ax=ax, log_far=self.log_x, title=self.title,
                 marker=self.marker)
        self._shade(ax)


@dataclass(repr=False)
class PrecisionRecallDisplay(_CurveDisplay):
    """Precision-recall curves, one class against the rest, with 95% bands."""

    title: str = "Precision-recall, one class vs the rest"
    _kind: ClassVar[str] = "pr"

    def _draw(self, ax, **kwargs):
        from .plots import plot_pr

        plot_pr({c.label: (c.y, c.x) for c in self.curves}, ax=ax, title=self.title)
        self._shade(ax, step="pre")


# ---------------------------------------------------------------------------------------------- calibration
@dataclass(repr=False)
class ReliabilityDisplay(Display):
    """Reliability diagram: accuracy against confidence per bin, with the expected calibration error."""

    reliability: dict
    ece: float
    title: str = "Calibration"
    how_to_read: str = ("Each bar is how often the model is right among images with that confidence; the red mark is "
                        "their mean confidence. A bar below its mark means over-confident, above it under-confident. "
                        "The number in a bar is its count of images.")

    @classmethod
    def from_predictions(cls, y_true, scores, *, classes: Sequence | None = None, scores_are: str = "auto"):
        probs, _ = _probabilities(scores, scores_are)
        y, classes = _class_indices(y_true, classes, probs.shape[1])
        return cls.from_result(_evaluate(y, probs, classes))

    @classmethod
    def from_result(cls, result: ClassificationResult):
        return cls(result.reliability, result.ece)

    def _draw(self, ax, **kwargs):
        from .plots import plot_reliability

        plot_reliability(self.reliability, ece=self.ece, ax=ax)


# ---------------------------------------------------------------------------------------------- tables
def _interval_cell(iv):
    return format_interval(iv[0], iv[1]) if iv else "n/a"


@dataclass(repr=False)
class PerClassDisplay(Display):
    """Precision, recall, F1, images and ROC AUC of each class; above 25 classes worst first and folded.

    ``plot`` draws the F1 of the classes the table shows first (all up to 25, else the 25 worst).
    """

    classes: list
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    roc_auc: np.ndarray
    undefined: list = field(default_factory=list)
    title: str = "Per class"

    @classmethod
    def from_predictions(cls, y_true, scores, *, classes: Sequence | None = None, scores_are: str = "auto"):
        probs, _ = _probabilities(scores, scores_are)
        y, names = _class_indices(y_true, classes, probs.shape[1])
        result = _evaluate(y, probs, names)
        return cls(names, result.precision, result.recall, result.f1, result.support, result.roc_auc,
                   result.undefined)

    @classmethod
    def from_result(cls, result: ClassificationResult):
        return cls(list(result.classes), result.precision, result.recall, result.f1, result.support, result.roc_auc,
                   result.undefined)

    @property
    def order(self) -> np.ndarray:
        n = len(self.classes)
        return np.arange(n) if n <= TABLE_ROWS else worst_first(self.f1, self.support)

    @property
    def figsize(self):
        return (7.0, 1.2 + 0.25 * min(len(self.classes), TABLE_ROWS))

    def _draw(self, ax, **kwargs):
        idx = self.order[:TABLE_ROWS]
        ypos = np.arange(len(idx))[::-1]
        ax.barh(ypos, np.asarray(self.f1)[idx], color="#4c72b0", alpha=0.8, label="F1")
        ax.plot(np.asarray(self.precision)[idx], ypos, "|", color="#c44e52", ms=10, mew=2, label="precision")
        ax.plot(np.asarray(self.recall)[idx], ypos, "|", color="#55a868", ms=10, mew=2, label="recall")
        ax.set_yticks(ypos, [str(self.classes[i]) for i in idx], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("value")
        n = len(self.classes)
        ax.set_title("F1 per class" if n <= TABLE_ROWS else f"The {len(idx)} classes with the lowest F1 of {n:,}")
        ax.legend(fontsize="small", loc="lower right")

    def _parts(self):
        c, n = self, len(self.classes)
        per = [[str(c.classes[i]), c.precision[i], c.recall[i], c.f1[i], int(c.support[i]), c.roc_auc[i]]
               for i in self.order]
        head = ["class", "precision", "recall", "F1", "images", "ROC AUC"]
        parts = ["<h4>Per class</h4>"]
        if n <= TABLE_ROWS:
            parts.append(html_table(per, head))
        else:
            parts += [guide(f"The {TABLE_ROWS} classes with the lowest F1 of {n:,}, worst first (equal F1: more "
                            f"images first). Open the full table below; a click on a column header sorts it."),
                      folded_table(per, head, shown=TABLE_ROWS, what="classes")]
        if self.undefined:
            parts.append(html_table([[u["metric"], ", ".join(u["classes"][:20])
                                      + (f" and {len(u['classes']) - 20:,} more" if len(u["classes"]) > 20 else ""),
                                      u["reason"]] for u in self.undefined], ["undefined metric", "classes", "reason"]))
        return parts


@dataclass(repr=False)
class HeadlineDisplay(Display):
    """The headline classification metrics with their 95% intervals, and the center crop against
    test-time augmentation when both were measured. ``plot`` draws each value with its interval."""

    rows: list  # [name, value, [lo, hi] or None]
    center: list = field(default_factory=list)  # [metric, center crop, augmented]
    tta: str = ""
    title: str = "Classification"

    @classmethod
    def from_predictions(cls, y_true, scores, *, classes: Sequence | None = None, scores_are: str = "auto",
                         top_k: int = 5, n_boot: int = 1000, seed: int = 0):
        from ..metrics.bootstrap import bootstrap_classification

        probs, _ = _probabilities(scores, scores_are)
        y, classes = _class_indices(y_true, classes, probs.shape[1])
        result = _evaluate(y, probs, classes, top_k=(1, top_k))
        iv = bootstrap_classification(y, probs, scores_are="probabilities", n_boot=n_boot, seed=seed, ks=(top_k,))
        return cls.from_result(result, intervals=iv, top_k=top_k)

    @classmethod
    def from_result(cls, result: ClassificationResult, *, intervals: dict | None = None,
                    center: ClassificationResult | None = None, tta: str = "", top_k: int = 5):
        iv = intervals or {}
        rows = [["accuracy (top-1)", result.accuracy, iv.get("accuracy")],
                ["macro F1", result.macro_f1, iv.get("macro_f1")]]
        if top_k in result.top_k:
            rows.append([f"top-{top_k} accuracy", result.top_k[top_k], iv.get(f"top_{top_k}")])
        rows += [["macro ROC AUC (one-vs-rest)", result.roc_auc_macro, iv.get("roc_auc_macro")],
                 ["macro average precision", result.average_precision_macro, None],
                 ["test loss (cross-entropy)", result.log_loss, None], ["expected calibration error", result.ece, None]]
        comp = []
        if center is not None:
            comp = [[m, a, b] for m, a, b in (
                ("accuracy", center.accuracy, result.accuracy), ("macro F1", center.macro_f1, result.macro_f1),
                (f"top-{top_k}", center.top_k.get(top_k, float("nan")), result.top_k.get(top_k, float("nan"))),
                ("macro ROC AUC", center.roc_auc_macro, result.roc_auc_macro),
                ("test loss", center.log_loss, result.log_loss))]
        return cls(rows, comp, tta)

    @property
    def figsize(self):
        return (6.5, 0.6 + 0.45 * sum(1 for r in self.rows if r[2]))

    def _draw(self, ax, **kwargs):
        shown = [r for r in self.rows if r[2]]
        ypos = np.arange(len(shown))[::-1]
        for y, (_name, v, iv) in zip(ypos, shown):
            ax.errorbar([v], [y], xerr=[[v - iv[0]], [iv[1] - v]], fmt="o", color="#4c72b0", capsize=4)
        ax.set_yticks(ypos, [r[0] for r in shown])
        ax.set_xlabel("value with its 95% bootstrap interval")
        ax.grid(alpha=0.3, axis="x")
        ax.set_title("Headline metrics")

    def _parts(self):
        parts = [guide("95% intervals come from resampling the images (bootstrap); when two models' intervals overlap "
                       "a lot, the difference may be noise."),
                 html_table([[n, v, _interval_cell(iv) if iv is not None else ""] for n, v, iv in self.rows],
                            ["metric", "value", "95% interval"])]
        if self.center:
            tta = self.tta
            parts += [f"<h4>Center crop vs {tta}</h4>",
                      guide(f"The same model on the single center crop and with {tta} test-time augmentation; a "
                            "positive change means augmentation helps (for loss, lower is better)."),
                      html_table([[m, a, b, b - a] for m, a, b in self.center],
                                 ["metric", "center crop", tta, "change"])]
        return parts


def curves_panel(roc: RocDisplay, pr: PrecisionRecallDisplay):
    """The report's "ROC and precision-recall" view: both side by side."""
    from ._base import Panel

    return Panel([roc, pr], title="ROC and precision-recall",
                 how_to_read="The closer a curve hugs the top-left (ROC) or top-right (precision-recall) corner, the "
                             "better the model separates that class from the others; the diagonal is guessing.")


__all__ = ["ConfusionDisplay", "Curve", "HeadlineDisplay", "PerClassDisplay", "PrecisionRecallDisplay",
           "ReliabilityDisplay", "RocDisplay", "curves_panel", "worst_first"]
