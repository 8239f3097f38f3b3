"""t-SNE maps of embeddings (openTSNE), with image thumbnails placed so that none overlap."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

TRUST_SAMPLE = 5000  # trustworthiness needs all pairwise distances: measured on a sample above this
MAX_LEGEND = 20  # a legend lists at most this many classes; above it, the caption says how many there are


@dataclass(frozen=True)
class TSNEMap:
    """2-d coordinates of each sample and how far to trust them."""

    coords: np.ndarray
    trustworthiness: float
    trust_sample: int
    method: str
    seed: int


def tsne(embeddings, *, seed=0, perplexity=30.0, n_jobs=None):
    """openTSNE map of ``embeddings``; returns ``(coords, description)``.

    Up to 1,000 points: exact neighbours and Barnes-Hut gradients, 250 + 500 iterations, on one
    thread unless ``n_jobs`` says otherwise. Above:
    embeddings of more than 50 dimensions are first reduced to 50 with PCA (the usual practice),
    neighbours are exact up to 20,000 points and Annoy's above, gradients use the FFT
    interpolation (4 points per interval), 125 + 250 iterations. Deterministic for a seed.
    """
    from openTSNE import TSNE

    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    if n < 5:
        raise ValueError(f"embeddings: expected at least 5 samples for a t-SNE map; got {n}")
    perplexity = float(min(perplexity, (n - 1) / 3))
    # threads only pay above a thousand points: below, their start-up and spinning cost more than the
    # gradient they share (several times slower on a busy machine)
    jobs = n_jobs or (1 if n <= 1000 else os.cpu_count() or 1)
    if n <= 1000:
        model = TSNE(perplexity=perplexity, n_iter=500, random_state=seed, negative_gradient_method="bh",
                     n_jobs=jobs, neighbors="exact", initialization="pca", verbose=False)
        return np.asarray(model.fit(x)), "Barnes-Hut, exact neighbours"
    how = []
    if x.shape[1] > 50:
        from sklearn.decomposition import PCA

        x = PCA(50, random_state=seed, svd_solver="randomized").fit_transform(x)
        how.append("PCA to 50 dimensions")
    neighbors = "exact" if n <= 20_000 else "annoy"
    model = TSNE(perplexity=perplexity, early_exaggeration_iter=125, n_iter=250, random_state=seed,
                 negative_gradient_method="fft", ints_in_interval=4, n_jobs=jobs, neighbors=neighbors,
                 initialization="pca", verbose=False)
    how += ["FFT gradients", f"{neighbors} neighbours"]
    return np.asarray(model.fit(x)), ", ".join(how)


def trustworthiness(embeddings, coords, *, k=10, seed=0, sample=TRUST_SAMPLE):
    """scikit-learn's trustworthiness (k neighbours), on a random sample when there are many points."""
    from sklearn.manifold import trustworthiness as sk_trust

    x, y = np.asarray(embeddings), np.asarray(coords)
    idx = np.arange(len(x))
    if len(x) > sample:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), sample, replace=False))
    k = min(k, len(idx) // 2 - 1)
    return float(sk_trust(x[idx], y[idx], n_neighbors=k)), len(idx)


def tsne_map(embeddings, *, seed=0, perplexity=30.0, n_jobs=None):
    """A :class:`TSNEMap`: coordinates, trustworthiness (k = 10) and the gradient method used."""
    coords, method = tsne(embeddings, seed=seed, perplexity=perplexity, n_jobs=n_jobs)
    trust, m = trustworthiness(embeddings, coords, seed=seed)
    return TSNEMap(coords, trust, m, method, seed)


def spread_subset(coords, *, cell, max_items=None, priority=None):
    """Indices of points no two of which lie closer than ``cell`` in both x and y (no overlap of
    ``cell``-sized squares centred on them). Points with higher ``priority`` are placed first."""
    xy = np.asarray(coords, dtype=np.float64)
    order = np.argsort(-np.asarray(priority), kind="stable") if priority is not None else np.arange(len(xy))
    taken = {}
    chosen = []
    for i in order:
        gx, gy = int(np.floor(xy[i, 0] / cell)), int(np.floor(xy[i, 1] / cell))
        ok = True
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for j in taken.get((gx + dx, gy + dy), ()):
                    if abs(xy[j, 0] - xy[i, 0]) < cell and abs(xy[j, 1] - xy[i, 1]) < cell:
                        ok = False
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            taken.setdefault((gx, gy), []).append(i)
            chosen.append(int(i))
            if max_items and len(chosen) >= max_items:
                break
    return np.array(chosen, dtype=int)


def class_colours(n_classes):
    """RGBA colours, ndarray of shape (n_classes, 4): tab10 or tab20 up to 20 classes, beyond that
    hues spread by the golden ratio so that classes with neighbouring indices differ."""
    import matplotlib
    from matplotlib.colors import hsv_to_rgb

    if n_classes <= 20:
        cmap = matplotlib.colormaps["tab10" if n_classes <= 10 else "tab20"]
        return np.array([cmap(k) for k in range(n_classes)])
    k = np.arange(n_classes)
    hsv = np.stack([(k * 0.618034) % 1.0, 0.55 + 0.35 * (k % 3) / 2, 0.95 - 0.3 * (k % 2)], axis=1)
    return np.c_[hsv_to_rgb(hsv), np.ones(n_classes)]


def plot_tsne(tmap, labels, classes, *, thumbnails=None, mistakes=None, ax=None, max_thumbnails=150,
              thumb_size=0.045, title="t-SNE map of the embeddings", seed=0):
    """Points coloured by class (mistakes ringed in black) and thumbnails on a spread-out subset
    (framed in their class colour, or thick black for a mistake).

    ``thumbnails(i)`` returns the image of sample ``i`` as an array in [0, 1]; ``thumb_size``
    is a thumbnail's side as a fraction of the axes. The legend names the classes when there are
    at most ``MAX_LEGEND``; above that it shows only the ring for mistakes.
    """
    from matplotlib.lines import Line2D
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(11, 9), layout="constrained").add_subplot()
    xy = tmap.coords
    labels = np.asarray(labels)
    colours = class_colours(len(classes))
    ax.scatter(xy[:, 0], xy[:, 1], s=10 if len(xy) <= 5000 else 4, c=colours[labels], alpha=0.8, linewidths=0)
    handles = []
    if len(classes) <= MAX_LEGEND:
        handles = [Line2D([], [], ls="", marker="o", ms=6, color=colours[k], label=str(name))
                   for k, name in enumerate(classes) if np.any(labels == k)]
    if mistakes is not None and np.any(mistakes):
        mk = np.asarray(mistakes, bool)
        ring = ax.scatter(xy[mk, 0], xy[mk, 1], s=40, facecolors="none", edgecolors="black", linewidths=1.0,
                          label="misclassified (thumbnail: black frame)")
        handles.append(ring)
    ax.set_title(f"{title} (trustworthiness {tmap.trustworthiness:.3f})")
    ax.set_xlabel("t-SNE 1 (no units: only neighbourhoods matter)")
    ax.set_ylabel("t-SNE 2")
    if handles:
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    ax.set_xticks([])
    ax.set_yticks([])
    placed = 0
    if thumbnails is not None and max_thumbnails:
        fig = ax.figure
        fig.draw_without_rendering()  # settle the layout, then work in display pixels
        px = ax.transData.transform(xy)
        side = thumb_size * ax.get_window_extent().width
        rng = np.random.default_rng(seed)
        wrong = np.zeros(len(xy), bool) if mistakes is None else np.asarray(mistakes, bool)
        prio = rng.random(len(xy)) + 0.3 * wrong
        subset = spread_subset(px, cell=side * 1.1, max_items=max_thumbnails, priority=prio)
        for i in subset:
            img = thumbnails(int(i))
            box = OffsetImage(img, zoom=side / (max(img.shape[:2]) * fig.dpi / 72),
                              cmap="gray" if img.ndim == 2 else None)
            frame = {"edgecolor": "black", "linewidth": 3.0} if wrong[i] else \
                {"edgecolor": colours[int(labels[i])], "linewidth": 1.5}
            ax.add_artist(AnnotationBbox(box, xy[i], frameon=True, pad=0.0, bboxprops=frame))
        placed = len(subset)
    return ax, placed
