"""1:N identification views: the CMC curve, the DET curve (FNIR against FPIR), the identification
section (both curves, rank-k and FNIR at FPIR tables, the threshold slider) and the gallery of the
hardest misses (the probe, the gallery image wrongly ranked first, and the true mate)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from ..metrics.identification import IdentificationResult, evaluate_identification
from ..metrics.stats import format_interval
from ._base import Display, Panel
from .gallery import TileDisplay, _image_source
from .html import guide, html_table
from .slider import ThresholdSliderDisplay

_MARKED_RANKS = (1, 5, 10)


@dataclass(repr=False)
class CmcDisplay(Display):
    """The cumulative match characteristic: the share of mated searches whose mate is at rank k or better.

    Parameters
    ----------
    cmc : ndarray of shape (max_rank,)
        ``cmc[k - 1]`` is rank-k accuracy.
    n_mated : int
    intervals : dict
        ``{"rank_{k}": [low, high]}`` drawn as error bars at those ranks.
    """

    cmc: np.ndarray
    n_mated: int = 0
    intervals: dict = field(default_factory=dict)
    title: str = "CMC (closed set)"
    figsize: tuple = (6.0, 4.2)

    @classmethod
    def from_ranks(cls, ranks, *, max_rank: int = 100):
        """From the rank of each search's mate (0 marks a non-mated search, which is left out)."""
        r = np.asarray(ranks, dtype=np.int64)
        if r.ndim != 1 or (r < 0).any():
            raise ValueError(f"ranks: expected a 1-d array of ranks >= 1 (0: no mate); got shape {r.shape}, "
                             f"minimum {r.min() if r.size else 'none'}")
        mated = r[r > 0]
        if not len(mated):
            raise ValueError("ranks: expected at least one mated search (rank >= 1); got none")
        m = int(min(max_rank, mated.max()))
        cmc = np.cumsum(np.bincount(mated, minlength=m + 1)[1:m + 1]) / len(mated)
        return cls(cmc, len(mated))

    @classmethod
    def from_result(cls, result: IdentificationResult):
        return cls(np.asarray(result.cmc), result.n_mated, dict(result.intervals))

    @classmethod
    def from_embeddings(cls, probes, probe_labels, gallery, gallery_labels, **kwargs):
        """Probes searched against the gallery (see :func:`~evallib.metrics.evaluate_identification`)."""
        return cls.from_result(evaluate_identification(probes, probe_labels, gallery, gallery_labels, **kwargs))

    def _draw(self, ax, **kwargs):
        k = np.arange(1, len(self.cmc) + 1)
        ax.step(k, self.cmc, where="post", label=f"rank-k accuracy ({self.n_mated:,} mated searches)")
        for r in _MARKED_RANKS:
            if r <= len(self.cmc) and np.isfinite(self.cmc[r - 1]):
                iv = self.intervals.get(f"rank_{r}")
                yerr = None if iv is None else [[self.cmc[r - 1] - iv[0]], [iv[1] - self.cmc[r - 1]]]
                ax.errorbar([r], [self.cmc[r - 1]], yerr=yerr, fmt="o", color="C3", capsize=3)
                ax.annotate(f"rank {r}: {self.cmc[r - 1]:.3f}", (r, self.cmc[r - 1]), textcoords="offset points",
                            xytext=(6, -12), fontsize=8)
        from matplotlib.ticker import FormatStrFormatter, MaxNLocator

        if len(self.cmc) > 20:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        else:  # ranks are whole numbers
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("rank k")
        ax.set_ylabel("rank-k accuracy")
        lows = [float(np.nanmin(self.cmc))] if np.isfinite(self.cmc).any() else [0.0]
        lows += [iv[0] for k, iv in self.intervals.items() if k.startswith("rank_") and np.isfinite(iv[0])]
        ax.set_ylim(max(0.0, min(lows) - 0.05), 1.005)  # the intervals' lower ends in view
        ax.set_title(self.title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")


@dataclass(repr=False)
class DetDisplay(Display):
    """The open-set DET curve: FNIR against FPIR over thresholds (FPIR on a log scale), with the
    FNIR at each FPIR target marked.

    Parameters
    ----------
    fpir, fnir : ndarray of shape (n_thresholds,)
    fnir_at_fpir : dict
        ``{fpir_target: {"fnir", "threshold", "supported"}}``.
    fnir_rank : int
    """

    fpir: np.ndarray
    fnir: np.ndarray
    fnir_at_fpir: dict = field(default_factory=dict)
    fnir_rank: int = 1
    title: str = "DET (open set)"
    figsize: tuple = (6.0, 4.2)

    @classmethod
    def from_result(cls, result: IdentificationResult):
        fpir, fnir, _ = result.det()
        return cls(np.asarray(fpir), np.asarray(fnir), dict(result.fnir_at_fpir), result.fnir_rank)

    @classmethod
    def from_embeddings(cls, probes, probe_labels, gallery, gallery_labels, **kwargs):
        """Probes searched against the gallery; probes without a mate are the non-mated searches."""
        return cls.from_result(evaluate_identification(probes, probe_labels, gallery, gallery_labels, **kwargs))

    def _draw(self, ax, **kwargs):
        ok = np.isfinite(self.fpir) & np.isfinite(self.fnir) & (self.fpir > 0)
        if ok.any():
            ax.step(self.fpir[ok], self.fnir[ok], where="post", label=f"FNIR at rank {self.fnir_rank}")
            ax.set_xscale("log")
        for f, v in self.fnir_at_fpir.items():
            if v.get("supported"):
                ax.plot([f], [v["fnir"]], "o", color="C3")
                ax.annotate(f"FPIR {f:g}: FNIR {v['fnir']:.3f}", (f, v["fnir"]), textcoords="offset points",
                            xytext=(4, -13), fontsize=8)
        if not ok.any():
            ax.text(0.5, 0.5, "no non-mated searches: FPIR is undefined", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xlabel("FPIR (non-mated searches raising an alarm)")
        ax.set_ylabel("FNIR (mated searches missed)")
        ax.set_ylim(0, 1.005)
        ax.set_title(self.title)
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="lower left")


@dataclass(repr=False)
class IdentificationDisplay(Display):
    """The identification section: CMC and DET side by side, the rank-k and FNIR at FPIR tables and the
    threshold slider of the open-set decision.

    ``plot`` draws the two curves (``ax``: two Axes).
    """

    result: IdentificationResult
    name: str = "model"
    title: str = "Identification (1:N)"

    @classmethod
    def from_result(cls, result: IdentificationResult, *, name: str = "model"):
        return cls(result, name=name)

    @classmethod
    def from_embeddings(cls, probes, probe_labels, gallery, gallery_labels, *, name: str = "model",
                        n_bootstrap: int = 200, **kwargs):
        """Probes searched against the gallery, with identity-level intervals."""
        return cls(evaluate_identification(probes, probe_labels, gallery, gallery_labels, n_bootstrap=n_bootstrap,
                                           **kwargs), name=name)

    @property
    def n_axes(self) -> int:
        return 2

    def _axes_meaning(self):
        return "CMC, DET"

    @property
    def figsize(self):
        return (12.0, 4.2)

    def _panel(self):
        return Panel([CmcDisplay.from_result(self.result), DetDisplay.from_result(self.result)], panel_size=(6.0, 4.2))

    def _draw(self, ax, **kwargs):
        self._panel()._draw(ax)

    @property
    def slider(self) -> ThresholdSliderDisplay | None:
        """The threshold slider of the open-set decision (None without mated or non-mated searches)."""
        r = self.result
        if not r.n_mated or not r.n_nonmated:
            return None
        start = next((v["threshold"] for v in r.fnir_at_fpir.values() if v["supported"]), 0.5)
        return ThresholdSliderDisplay(
            {"searches": r.sweep}, threshold=start, positive="mated (mate found)", negative="non-mated",
            title=f"Identification threshold (a candidate at or above it is an alarm; mate at rank <= {r.fnir_rank})",
            how_to_read="Move the slider: mated searches whose mate is found at or above the threshold are hits (the "
                        "rest are misses, FNIR); non-mated searches with any candidate at or above it are false "
                        "alarms (FPIR).")

    def _parts(self):
        r = self.result
        iv = r.intervals
        head = [["searches", f"{r.n_probes:,}: {r.n_mated:,} mated, {r.n_nonmated:,} non-mated"],
                ["gallery", f"{r.n_gallery:,} samples of {r.n_gallery_identities:,} identities"]]
        for k, v in r.rank_accuracy.items():
            cell = f"{v:.4f}" + (f"  {format_interval(*iv[f'rank_{k}'])}" if f"rank_{k}" in iv else "")
            head.append([f"rank-{k} accuracy", cell])
        fnir_rows = []
        for f, v in r.fnir_at_fpir.items():
            cell = v["fnir"] if v["supported"] else "not enough non-mated searches"
            interval = iv.get(f"fnir_at_fpir_{f:g}")
            fnir_rows.append([f"{f:g}", cell, format_interval(*interval) if interval else "", v["threshold"]])
        slider = self.slider
        return [html_table(head, ["identification", ""]),
                *[f'<p class="evallib-warn">{html.escape(n)}</p>' for n in r.notes],
                guide("Left: share of mated searches whose true identity is among the top k candidates. Right: share "
                      "of mated searches missed (FNIR) against the share of searches of unenrolled people that raise "
                      "an alarm (FPIR), as the threshold moves; FPIR on a log scale."),
                self._figure_html(),
                f"<h4>FNIR at FPIR (mate at rank &le; {r.fnir_rank} and at or above the threshold)</h4>"
                + html_table(fnir_rows, ["FPIR", "FNIR", "95% interval", "threshold"]),
                *(slider._parts() if slider is not None else [])]


class IdentificationMissesDisplay(TileDisplay):
    """The hardest misses: per row the probe, the gallery image wrongly ranked first, and the true mate."""

    @classmethod
    def from_result(cls, result: IdentificationResult, *, probe_images, gallery_images, probe_names=None,
                    k: int = 8):
        """The ``k`` mated searches missed at rank 1 by the widest margin.

        Parameters
        ----------
        probe_images, gallery_images : ndarray of shape (n, H, W[, 3]) in [0, 1], or a function
            ``images(indices) -> list of arrays`` (only the shown images are loaded).
        probe_names : sequence, optional
            A caption for each probe (its identity, by default the row).
        """
        misses = result.hardest_misses(k)
        title = "Identification: the hardest misses"
        if not misses:
            return cls([], title=title, how_to_read="No mated search was missed at rank 1.")
        probes = _image_source(probe_images)([m["probe"] for m in misses])
        gallery = _image_source(gallery_images)([m["wrong"] for m in misses] + [m["mate"] for m in misses])
        n = len(misses)
        tiles = []
        for j, m in enumerate(misses):
            name = m["probe"] if probe_names is None else probe_names[m["probe"]]
            tiles.append([(probes[j], f"probe {name}"),
                          (gallery[j], f"1st: {m['wrong_label']} ({m['wrong_score']:.3f})"),
                          (gallery[n + j], f"mate, rank {m['rank']} ({m['mate_score']:.3f})")])
        return cls(tiles, title=title, how_to_read=(
            "Each row is a search the model got wrong with the most confidence: the probe, the gallery image of the "
            "identity it ranked first (1st) and the gallery image of the true identity (mate, with its rank), with "
            "their similarities to the probe."))

    @classmethod
    def from_embeddings(cls, probes, probe_labels, gallery, gallery_labels, *, probe_images, gallery_images,
                        k: int = 8, **kwargs):
        result = evaluate_identification(probes, probe_labels, gallery, gallery_labels, **kwargs)
        return cls.from_result(result, probe_images=probe_images, gallery_images=gallery_images,
                               probe_names=np.asarray(probe_labels), k=k)


class TemplatePairGalleryDisplay(TileDisplay):
    """The hardest template pairs: genuine pairs scored lowest and impostor pairs scored highest, each
    template shown by a few of its images."""

    @classmethod
    def from_templates(cls, templates, t1, t2, same, *, template_images, k: int = 4, per_template: int = 2):
        """The ``k`` lowest-scoring genuine and ``k`` highest-scoring impostor pairs of a pair list.

        Parameters
        ----------
        templates : TemplateFeatures
            From :func:`~evallib.metrics.templates.pool_templates`.
        t1, t2, same : array-like of shape (n_pairs,)
            The pair list (template ids, 1 for a genuine pair).
        template_images : callable
            ``template_images(template_id) -> list of arrays`` in [0, 1]: the images of a template (the first
            ``per_template`` are shown).
        """
        from ..metrics.templates import template_pair_scores

        t1, t2 = np.asarray(t1), np.asarray(t2)
        y = np.asarray(same).astype(bool)
        s = template_pair_scores(templates, t1, t2)
        gen, imp = np.flatnonzero(y), np.flatnonzero(~y)
        picks = [(i, "genuine") for i in gen[np.lexsort((gen, s[gen]))][:k]]
        picks += [(i, "impostor") for i in imp[np.lexsort((imp, -s[imp]))][:k]]
        title = "Templates: the hardest pairs"
        if not picks:
            return cls([], title=title, how_to_read="No pairs to show.")
        tiles = []
        for i, kind in picks:
            row = []
            for side, t in (("A", t1[i]), ("B", t2[i])):
                imgs = list(template_images(t.item()))[:per_template]
                row += [(img, f"{side}: template {t} ({j + 1}/{len(imgs)})") for j, img in enumerate(imgs)]
            row[0] = (row[0][0], f"{kind} {s[i]:.3f}, A={t1[i]}")  # short: a caption is as wide as its tile
            tiles.append(row)
        return cls(tiles, title=title, how_to_read=(
            "Top rows: pairs of templates of the same person that the model scores lowest (false rejects at a high "
            "threshold); bottom rows: templates of different people it scores highest (false accepts). Each template "
            f"is shown by up to {per_template} of its images, template A first."))


__all__ = ["CmcDisplay", "DetDisplay", "IdentificationDisplay", "IdentificationMissesDisplay",
           "TemplatePairGalleryDisplay"]
