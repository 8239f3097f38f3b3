"""Plots of metric results. Each takes a result and an optional ``ax``, and returns the Axes.

A figure is created only when no ``ax`` is given; nothing here calls ``plt.show()`` or draws
on pyplot's current figure.
"""

from __future__ import annotations

import numpy as np

from ..metrics.curves import thin_indices


def _ax(ax, size=(5.0, 4.0)):
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained").add_subplot()


def plot_roc(curves, *, ax=None, log_far=False, title="ROC curve", marker=None):
    """ROC curves.

    Parameters
    ----------
    curves : dict
        ``{label: (fpr, tpr)}`` or ``{label: ThresholdSweep}``.
    log_far : bool
        Log-scale false-accept axis (verification).
    marker : tuple (fpr, tpr), optional
        A point to mark (the chosen threshold).
    """
    ax = _ax(ax)
    for label, c in curves.items():
        fpr, tpr = (c.roc()[:2] if hasattr(c, "roc") else c)
        fpr, tpr = np.asarray(fpr), np.asarray(tpr)
        if log_far:
            keep = fpr > 0
            fpr, tpr = fpr[keep], tpr[keep]
        keep = thin_indices(fpr, tpr, log_x=log_far)
        fpr, tpr = fpr[keep], tpr[keep]
        ax.plot(fpr, tpr, label=label, lw=1.5, drawstyle="steps-post" if log_far else "default")
    if marker is not None and np.all(np.isfinite(marker)):
        ax.plot(*marker, "o", color="black", ms=6, label="chosen threshold")
    if log_far:
        ax.set_xscale("log")
        ax.set_xlabel("false accept rate (FAR, log scale)")
        ax.set_ylabel("true accept rate (TAR)")
    else:
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="chance")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate (recall)")
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_pr(curves, *, ax=None, title="Precision-recall curve"):
    """Precision-recall curves: ``{label: ThresholdSweep}`` or ``{label: (precision, recall)}``."""
    ax = _ax(ax)
    for label, c in curves.items():
        p, r = (c.pr()[:2] if hasattr(c, "pr") else c)
        keep = thin_indices(r, p)
        ax.plot(np.r_[0.0, np.asarray(r)[keep]], np.r_[1.0, np.asarray(p)[keep]], label=label, lw=1.5,
                drawstyle="steps-post")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    return ax


def _row_rates(cm, row_totals=None):
    totals = cm.sum(axis=1) if row_totals is None else np.asarray(row_totals, dtype=np.float64)
    if totals.shape != (len(cm),):
        raise ValueError(f"row_totals: expected one total per row ({len(cm)}); got shape {totals.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(cm / totals[:, None])


def confusion_figsize(n_classes):
    """The size of a confusion heat map of ``n_classes`` classes: big enough to read every cell."""
    size = min(14.0, max(4.5, 0.45 * n_classes + 2.0))
    return (size + 1.2, size)


def plot_confusion(confusion, classes, *, ax=None, normalize=True, max_annotated=30, row_totals=None,
                   title="Confusion matrix"):
    """Confusion heat map: colour is the row-normalized rate; cells show count and percent.

    Above ``max_annotated`` classes the cell text is dropped and tick labels thinned so the
    plot stays readable; the colour still shows every cell.

    ``row_totals`` (ndarray of shape (n_classes,)) are the true classes' image counts when
    ``confusion`` is a submatrix of a larger one, so that rates are shares of the whole row.
    """
    import seaborn as sns

    cm = np.asarray(confusion, dtype=np.float64)
    c = len(classes)
    ax = _ax(ax, confusion_figsize(c))
    rate = _row_rates(cm, row_totals)
    annot = False
    if c <= max_annotated:
        annot = np.array([[f"{int(n)}\n{r:.0%}" if n else "" for n, r in zip(rn, rr)] for rn, rr in zip(cm, rate)])
    labels = [str(x) for x in classes]
    step = max(1, int(np.ceil(c / 40)))
    ticks = [lab if i % step == 0 else "" for i, lab in enumerate(labels)]
    sns.heatmap(rate if normalize else cm, ax=ax, cmap="Blues", vmin=0, vmax=1 if normalize else None,
                annot=annot, fmt="", annot_kws={"fontsize": 7 if c > 12 else 8}, square=True,
                xticklabels=ticks, yticklabels=ticks, cbar_kws={"label": "share of the true class (row)"},
                linewidths=0.5 if c <= 50 else 0, linecolor="white")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=90 if max(map(len, labels)) > 3 else 0)
    ax.tick_params(axis="y", rotation=0)
    return ax


def plot_confusion_image(confusion, *, order=None, ax=None, title="Confusion matrix"):
    """A confusion matrix of many classes as one image: one pixel per cell, no class labels.

    Colour is the share of the true class (row), on a square-root scale, and empty cells are
    white, so that rare confusions stay visible. ``order`` (ndarray of shape (n_classes,)) permutes rows and
    columns alike, e.g. :func:`evallib.metrics.cluster_order`.
    """
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, PowerNorm

    cm = np.asarray(confusion, dtype=np.float64)
    if order is not None:
        order = np.asarray(order)
        if sorted(order.tolist()) != list(range(len(cm))):
            raise ValueError(f"order: expected a permutation of the {len(cm)} classes; got {len(order)} indices")
        cm = cm[np.ix_(order, order)]
    ax = _ax(ax, (10.0, 10.8))
    # empty cells white, any count at least a clear blue, so that single confusions show
    blues = ListedColormap(colormaps["Blues"](np.linspace(0.3, 1.0, 256)))
    blues.set_bad("white")
    rate = np.ma.masked_equal(_row_rates(cm), 0.0)
    # a cell per pixel when the figure is saved at dpi >= n_classes / 9 (up to about 2,000 classes)
    image = ax.imshow(rate, cmap=blues, norm=PowerNorm(0.5, vmin=0, vmax=1), aspect="equal",
                      interpolation="nearest" if len(cm) <= 2000 else "antialiased")
    ax.figure.colorbar(image, ax=ax, label="share of the true class (row), square-root scale", shrink=0.6,
                       location="bottom", pad=0.02)
    ax.set_xticks([])
    ax.set_yticks([])
    how = "clustered order" if order is not None else "class order"
    ax.set_xlabel(f"predicted class ({how})")
    ax.set_ylabel(f"true class ({how})")
    ax.set_title(title)
    return ax


def plot_reliability(reliability, *, ax=None, ece=None, title="Reliability diagram"):
    """Accuracy against mean confidence per confidence bin, with the diagonal of perfect calibration."""
    ax = _ax(ax)
    edges = np.asarray(reliability["bin_edges"])
    acc = np.asarray(reliability["accuracy"], dtype=float)
    conf = np.asarray(reliability["confidence"], dtype=float)
    count = np.asarray(reliability["count"])
    centers = (edges[:-1] + edges[1:]) / 2
    width = np.diff(edges)
    ok = count > 0
    ax.bar(centers[ok], acc[ok], width=width[ok] * 0.9, color="#4c72b0", alpha=0.8, label="accuracy in bin")
    ax.plot(conf[ok], conf[ok], "_", color="#c44e52", ms=14, mew=2.5, label="mean confidence in bin")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (highest class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title + (f" (ECE {ece:.3f})" if ece is not None else ""))
    ax.legend(loc="upper left", fontsize="small")
    for x, n in zip(centers[ok], count[ok]):
        ax.text(x, 0.01, str(int(n)), ha="center", va="bottom", fontsize=6, rotation=90, color="white")
    return ax


def plot_score_histograms(histogram, *, ax=None, threshold=None, title="Similarity of genuine and impostor pairs"):
    """Genuine and impostor score densities from ``{"edges", "genuine", "impostor"}`` counts."""
    ax = _ax(ax)
    edges = np.asarray(histogram["edges"])
    for key, colour in (("impostor", "#c44e52"), ("genuine", "#55a868")):
        counts = np.asarray(histogram[key], dtype=float)
        total = counts.sum()
        if total:
            ax.stairs(counts / total / np.diff(edges), edges, fill=True, alpha=0.45, color=colour,
                      label=f"{key} pairs ({int(total):,})")
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    nz = np.nonzero(np.asarray(histogram["genuine"]) + np.asarray(histogram["impostor"]))[0]
    if len(nz):
        ax.set_xlim(edges[max(nz[0] - 1, 0)], edges[min(nz[-1] + 2, len(edges) - 1)])
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def plot_threshold_metrics(sweep, *, ax=None, threshold=None, title="Metrics against threshold", max_points=2000):
    """Accuracy, precision, recall and F1 against the threshold, on one axes."""
    ax = _ax(ax)
    idx = np.arange(len(sweep.thresholds))
    if len(idx) > max_points:
        idx = np.unique(np.linspace(0, len(idx) - 1, max_points).round().astype(int))
    t = sweep.thresholds[idx]
    for name, values in (("accuracy", sweep.accuracy), ("precision", sweep.precision), ("recall", sweep.recall),
                         ("F1", sweep.f1)):
        ax.plot(t, np.asarray(values)[idx], label=name, lw=1.5)
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="black", ls="--", lw=1, label=f"chosen {threshold:.3f}")
    ax.set_xlabel("threshold (accept when score >= threshold)")
    ax.set_ylabel("value")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def plot_training_curves(log, *, axes=None, title="Training curves"):
    """Loss curves on the first axes, other metrics on the second, from ``{"epoch": [...], name: [...]}``."""
    if axes is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 3.8), layout="constrained")
        axes = fig.subplots(1, 2)
    x = np.asarray(log["epoch"], dtype=float)
    loss_ax, metric_ax = axes
    for name, values in log.items():
        if name == "epoch":
            continue
        target = loss_ax if "loss" in name else metric_ax
        v = np.asarray(values, dtype=float)
        ok = np.isfinite(v)
        target.plot(x[ok], v[ok], marker="o", ms=3, label=name, ls="--" if name.startswith("val") else "-")
    loss_ax.set_title(f"{title}: loss")
    loss_ax.set_ylabel("loss")
    metric_ax.set_title(f"{title}: metrics")
    metric_ax.set_ylabel("value")
    for a in axes:
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize="small")
    return axes
