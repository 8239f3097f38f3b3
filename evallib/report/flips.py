"""Version comparison views: what a new model breaks.

The regression table (negative and positive flips with intervals and tests per class and slice),
the candidate's NFR against the noise floor of two runs of one recipe, the negative-flip gallery,
the heat map of old prediction -> new prediction over the flips, the verification pairs that
flipped, and BCT's cross-model compatibility for embedding models. The numbers come from
:mod:`evallib.metrics.flips`; each view is built from plain arrays (``from_predictions``,
``from_embeddings``) or from those results (``from_result``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..metrics.classification import infer_score_type
from ..metrics.flips import (
    CompatibilityResult,
    NoiseFloor,
    PairFlips,
    VersionRegression,
    cross_model_compatibility,
    nfr_against_floor,
    pair_flips,
    version_regression,
)
from ..metrics.stats import format_interval
from ._base import Display
from .gallery import TileDisplay, _image_source
from .html import folded_table, guide, html_table

TABLE_ROWS = 25  # a regression table longer than this shows its worst rows and folds the rest
HEATMAP_CLASSES = 25  # above this many classes the heat map shows the classes the flips involve most
GALLERY_FLIPS = 24  # flips shown in the gallery unless asked otherwise


def _kind(scores, scores_are):
    return infer_score_type(scores)[0] if scores_are == "auto" else scores_are


def _regression(y_true, scores_old, scores_new, *, classes, groups, scores_are, **kw):
    return version_regression(y_true, scores_old, scores_new, scores_are=_kind(scores_old, scores_are),
                              scores_are_new=_kind(scores_new, scores_are), classes=classes, groups=groups, **kw)


def worst_rows(rows):
    """Class and group rows, regressions first: flagged, then by adjusted p (untested last), then NFR - PFR."""
    def key(r):
        p = r.p_adjusted if np.isfinite(r.p_adjusted) else 2.0
        return (not r.flagged, p, -(r.nfr - r.pfr), r.kind, r.name)
    return sorted(rows, key=key)


# ---------------------------------------------------------------------------------------------- table
@dataclass(repr=False)
class RegressionTableDisplay(Display):
    """The regression table: NFR, PFR, net gain, relative NFR, BTC, BEC and churn with n, intervals and tests.

    One row for all images, then the class and slice rows with regressions first; above 25 rows the
    worst are shown and the rest folded. ``plot`` draws NFR and PFR with their 95% intervals for the
    rows the table shows first.
    """

    result: VersionRegression
    old_name: str = "old"
    new_name: str = "new"
    title: str = "What the new model breaks"

    @classmethod
    def from_predictions(cls, y_true, scores_old, scores_new, *, classes: Sequence | None = None, groups=None,
                         scores_are: str = "auto", n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                         old_name: str = "old", new_name: str = "new"):
        """From class indices and both models' scores on the same images (see :func:`version_regression`)."""
        r = _regression(y_true, scores_old, scores_new, classes=classes, groups=groups, scores_are=scores_are,
                        n_boot=n_boot, seed=seed, alpha=alpha)
        return cls(r, old_name=old_name, new_name=new_name)

    @classmethod
    def from_result(cls, result: VersionRegression, *, old_name: str = "old", new_name: str = "new"):
        return cls(result, old_name=old_name, new_name=new_name)

    @property
    def rows(self) -> list:
        """The rows in the order shown: overall, then classes and slices, regressions first."""
        return [self.result.overall, *worst_rows([*self.result.classes, *self.result.groups])]

    @property
    def figsize(self):
        return (7.5, 1.4 + 0.32 * min(len(self.rows), TABLE_ROWS))

    def _draw(self, ax, **kwargs):
        rows = self.rows[:TABLE_ROWS]
        ypos = np.arange(len(rows))[::-1].astype(float)
        for metric, shift, colour, marker, label in (("nfr", 0.15, "#c44e52", "o", "negative flip rate"),
                                                     ("pfr", -0.15, "#55a868", "s", "positive flip rate")):
            v = np.array([getattr(r, metric) for r in rows])
            lo = np.array([r.intervals[metric][0] for r in rows])
            hi = np.array([r.intervals[metric][1] for r in rows])
            err = np.vstack([np.where(np.isfinite(lo), v - lo, 0), np.where(np.isfinite(hi), hi - v, 0)])
            ax.errorbar(v, ypos + shift, xerr=np.maximum(err, 0), fmt=marker, color=colour, capsize=3, ms=5,
                        label=label)
        names = [("* " if r.flagged else "") + (f"{r.kind} {r.name}" if r.kind != "overall" else "all images")
                 for r in rows]
        ax.set_yticks(ypos, names, fontsize=8)
        ax.set_xlim(left=0)
        ax.set_xlabel(f"share of images, {self.old_name} → {self.new_name}, with 95% intervals")
        more = len(self.rows) - len(rows)
        worst = f" (worst {len(rows) - 1} of {len(self.rows) - 1:,} rows)" if more else ""
        ax.set_title(f"Flips from {self.old_name} to {self.new_name}{worst}")
        ax.legend(fontsize="small", loc="lower right")

    def _table_rows(self):
        out = []
        for r in self.rows:
            name = "all images" if r.kind == "overall" else f"{r.kind}: {r.name}"
            out.append([name, "regression" if r.flagged else "", r.n, r.nfr, format_interval(*r.intervals["nfr"]),
                        r.nfr_upper(), r.pfr, format_interval(*r.intervals["pfr"]), r.net_gain,
                        format_interval(*r.intervals["net_gain"]), r.relative_nfr, r.btc, r.bec, r.churn,
                        r.negative_flips, r.positive_flips, r.p_value, r.p_adjusted])
        return out

    def _parts(self):
        res = self.result
        head = ["rows", "verdict", "images", "NFR", "95% interval", "NFR upper bound", "PFR", "95% interval",
                "net gain", "95% interval", "relative NFR", "BTC", "BEC", "churn", "negative flips", "positive flips",
                "p", "BH-adjusted p"]
        rows = self._table_rows()
        table = html_table(rows, head) if len(rows) <= TABLE_ROWS else folded_table(rows, head, shown=TABLE_ROWS,
                                                                                    what="rows")
        o = res.overall
        parts = [guide(
            f"A negative flip is an image {self.old_name} got right and {self.new_name} gets wrong; a positive flip "
            f"the reverse. NFR and PFR are their shares of the images; net gain = PFR − NFR is the accuracy change. "
            "Relative NFR is NFR over what independent errors would give (below 1: the new model errs where the old "
            "one did). BTC: share of the old model's right answers the new one keeps; BEC: share of the new "
            "model's errors the old one also made; churn: share of images whose prediction changed. 'regression' "
            "marks rows where NFR > PFR survives the exact McNemar test and Benjamini–Hochberg."),
            self._figure_html(),
            f"<p>{o.negative_flips:,} negative and {o.positive_flips:,} positive flips in {o.n:,} images: NFR "
            f"{o.nfr:.4f} {format_interval(*o.intervals['nfr'])}, PFR {o.pfr:.4f} "
            f"{format_interval(*o.intervals['pfr'])}; McNemar p {res.mcnemar['p_value']:.3g} (two-sided).</p>",
            table, f'<p class="evallib-guide">{_esc(res.method)}. NFR upper bound: the larger of the bootstrap and '
                   f'Wilson upper bounds.</p>']
        parts += [f'<p class="evallib-guide">{_esc(n)}</p>' for n in res.notes]
        return parts


def _esc(text):
    import html

    return html.escape(str(text))


# ---------------------------------------------------------------------------------------------- heat map
@dataclass(repr=False)
class FlipTransitionsDisplay(Display):
    """Heat map of old prediction → new prediction over the negative flips.

    Rows are what the old model said (rightly: the true class), columns what the new model says.
    Above 25 classes it shows the 24 classes that lose the most images, the 24 classes they flip to
    most, and the rest of each row in an "other classes" column. The table lists the largest cells.
    """

    transitions: np.ndarray
    classes: list
    title: str = "Negative flips: old prediction → new prediction"

    def __post_init__(self):
        self.transitions = np.asarray(self.transitions)
        n = len(self.classes)
        if self.transitions.shape != (n, n):
            raise ValueError(f"transitions: expected shape ({n}, {n}) for {n} classes; got {self.transitions.shape}")

    @classmethod
    def from_predictions(cls, y_true, scores_old, scores_new, *, classes: Sequence | None = None,
                         scores_are: str = "auto"):
        r = _regression(y_true, scores_old, scores_new, classes=None, groups=None, scores_are=scores_are, n_boot=0)
        return cls.from_result(r, classes=classes)

    @classmethod
    def from_result(cls, result: VersionRegression, *, classes: Sequence | None = None):
        n = result.transitions.shape[0]
        classes = list(classes) if classes is not None else list(range(n))
        return cls(result.transitions, classes)

    @property
    def shown(self) -> np.ndarray:
        """The rows (old predictions, the true classes) the heat map shows: all up to 25 classes, else the 24
        classes that lose the most images."""
        n = len(self.classes)
        if n <= HEATMAP_CLASSES:
            return np.arange(n)
        lost = self.transitions.sum(axis=1)
        order = np.lexsort((np.arange(n), -lost))
        return np.sort(order[:HEATMAP_CLASSES - 1][lost[order[:HEATMAP_CLASSES - 1]] > 0])

    def _matrix(self):
        """``(counts, row names, column names)`` of the heat map. Up to 25 classes, the whole matrix; above,
        the rows of :attr:`shown`, the 24 columns they flip to most, and a last column "other classes"
        holding the rest of each row, so that every negative flip of the rows shown is counted."""
        rows = self.shown
        names = [str(c) for c in self.classes]
        if len(self.classes) <= HEATMAP_CLASSES:
            return self.transitions[np.ix_(rows, rows)].astype(float), [names[i] for i in rows], \
                [names[i] for i in rows]
        sub = self.transitions[rows]
        went = sub.sum(axis=0)
        order = np.lexsort((np.arange(len(went)), -went))
        cols = np.sort(order[:HEATMAP_CLASSES - 1][went[order[:HEATMAP_CLASSES - 1]] > 0])
        m = np.column_stack([sub[:, cols], sub.sum(axis=1) - sub[:, cols].sum(axis=1)]).astype(float)
        return m, [names[i] for i in rows], [names[i] for i in cols] + ["other classes"]

    @property
    def figsize(self):
        k = max(len(self.shown) + (len(self.classes) > HEATMAP_CLASSES), 2)
        size = min(9.0, max(4.5, 0.34 * k + 2.4))
        return (size + 1.0, size)

    def _draw(self, ax, **kwargs):
        total = int(self.transitions.sum())
        m, rows, cols = self._matrix()
        if len(rows) < 1 or total == 0 or (len(self.classes) <= HEATMAP_CLASSES and len(rows) < 2):
            ax.set_axis_off()
            ax.set_title("No negative flips")
            return
        other = len(self.classes) > HEATMAP_CLASSES  # the last column sums many classes: grey, off the scale
        shade = np.where(m > 0, m, np.nan)
        if other:
            shade[:, -1] = np.nan
            ax.axvspan(len(cols) - 1.5, len(cols) - 0.5, color="#e8e8e8")
        top = max(np.nanmax(shade, initial=0), 1)
        im = ax.imshow(shade, cmap="Reds", vmin=0, vmax=top, aspect="auto")
        for (i, j), v in np.ndenumerate(m):
            if v:
                ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 * top and not (other and j == len(cols) - 1) else "black")
        ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_xlabel("new model's prediction (wrong)")
        ax.set_ylabel("old model's prediction (right: the true class)")
        n = len(self.classes)
        if n <= HEATMAP_CLASSES:
            ax.set_title(f"{total:,} negative flips")
        else:
            ax.set_title(f"{int(m.sum()):,} of {total:,} negative flips: the {len(rows)} classes (of {n:,}) that lose "
                         f"the most images,\nand where they go (the {len(cols) - 1} commonest; the rest in "
                         f"'other classes')", fontsize=9)
        from matplotlib.ticker import MaxNLocator

        ax.figure.colorbar(im, ax=ax, label="negative flips", ticks=MaxNLocator(integer=True), shrink=0.8)

    def top(self, k=20) -> list:
        """The ``k`` largest cells: ``{"old", "new", "count", "share"}`` (share of all negative flips)."""
        t = self.transitions
        total = t.sum()
        flat = np.flatnonzero(t)
        flat = flat[np.argsort(-t.flat[flat], kind="stable")][:k]
        n = t.shape[0]
        return [{"old": self.classes[f // n], "new": self.classes[f % n], "count": int(t.flat[f]),
                 "share": float(t.flat[f] / total)} for f in flat]

    def _parts(self):
        if self.transitions.sum() == 0:
            return ["<p><i>No negative flips: the new model gets right every image the old one got right.</i></p>"]
        rows = [[c["old"], c["new"], c["count"], c["share"]] for c in self.top()]
        return [guide("Each cell counts images the old model classified rightly as the row's class and the new "
                      "model now calls the column's class: dark cells are the confusions the update introduced."),
                self._figure_html(), "<h4>Largest transitions</h4>",
                html_table(rows, ["old prediction (true class)", "new prediction", "negative flips",
                                  "share of negative flips"])]


# ---------------------------------------------------------------------------------------------- gallery
class FlipGalleryDisplay(TileDisplay):
    """The negative flips, most striking first: the old model's view beside the new model's.

    Ranked by the old model's probability of the true class times the new model's probability of its
    wrong prediction. With Grad-CAM routes, each flip shows the old model's heat map for the true class
    beside the new model's for its prediction; without them, the image once.
    """

    @classmethod
    def from_predictions(cls, y_true, scores_old, scores_new, *, images, classes: Sequence | None = None,
                         scores_are: str = "auto", cam_old: Callable | None = None, cam_new: Callable | None = None,
                         only_classes: Sequence | None = None, max_flips: int | None = GALLERY_FLIPS,
                         per_row: int = 4):
        """From class indices and both models' scores; see :meth:`from_result` for the rest."""
        r = _regression(y_true, scores_old, scores_new, classes=None, groups=None, scores_are=scores_are, n_boot=0)
        return cls.from_result(r, y_true, images=images, classes=classes, cam_old=cam_old, cam_new=cam_new,
                               only_classes=only_classes, max_flips=max_flips, per_row=per_row)

    @classmethod
    def from_result(cls, result: VersionRegression, y_true, *, images, classes: Sequence | None = None,
                    cam_old: Callable | None = None, cam_new: Callable | None = None,
                    only_classes: Sequence | None = None, max_flips: int | None = GALLERY_FLIPS, per_row: int = 4):
        """The gallery of a :class:`VersionRegression`.

        Parameters
        ----------
        y_true : array-like of int, shape (n_samples,)
        images : ndarray of shape (n_samples, H, W[, 3]) in [0, 1], or a function ``images(indices)``
            returning a list of arrays (so only the shown images are loaded).
        classes : sequence, optional
            Class names for the captions.
        cam_old, cam_new : callable, optional
            ``cam(indices, target_classes) -> list of arrays``: each image with that model's heat map for
            the target over it. Given both, each flip is two tiles (old for the true class, new for its
            prediction).
        only_classes : sequence, optional
            Show the flips of these true classes only (names or indices): the filter by class.
        max_flips : int or None
            How many flips to show; None shows every one.
        per_row : int
            Flips per gallery row.
        """
        y = np.asarray(y_true, dtype=np.int64)
        n_classes = result.transitions.shape[0]
        names = list(classes) if classes is not None else list(range(n_classes))
        idx, conf = result.negative_flips, result.negative_flip_confidence
        if only_classes is not None:
            want = set()
            for c in only_classes:
                if c in names:
                    want.add(names.index(c))
                elif isinstance(c, (int, np.integer)) and 0 <= c < n_classes:
                    want.add(int(c))
                else:
                    raise ValueError(f"only_classes: expected class names or indices of the {n_classes} classes; "
                                     f"got {c!r}")
            keep = np.isin(y[idx], sorted(want))
            idx, conf = idx[keep], conf[keep]
        total = len(idx)
        if max_flips is not None:
            idx, conf = idx[:max_flips], conf[:max_flips]
        pred_new = result.pred_new
        sel = [int(i) for i in idx]
        two = cam_old is not None and cam_new is not None
        if cam_old is not None and cam_new is not None:
            old_tiles = cam_old(sel, [int(y[i]) for i in sel])
            new_tiles = cam_new(sel, [int(pred_new[i]) for i in sel])
        else:
            old_tiles = _image_source(images)(sel)
        tiles, row = [], []
        for k, i in enumerate(sel):
            t, p = _short(names[y[i]]), _short(names[pred_new[i]])
            if two:  # the name, then the probability: a caption stays under its tile
                row += [(old_tiles[k], f"#{k + 1} old: {t}\n({conf[k, 0]:.2f})"),
                        (new_tiles[k], f"new: {p}\n({conf[k, 1]:.2f})")]
            else:
                row.append((old_tiles[k], f"#{k + 1} {t} →\n{p}\nold {conf[k, 0]:.2f}, new {conf[k, 1]:.2f}"))
            if (k + 1) % per_row == 0:
                tiles.append(row)
                row = []
        if row:
            tiles.append(row)
        which = "" if only_classes is None else \
            f" of the class{'es' if len(want) > 1 else ''} {', '.join(str(names[c]) for c in sorted(want))}"
        shown = f"the {len(sel):,} most striking of {total:,}" if len(sel) < total else f"all {total:,}"
        how = (f"Negative flips{which}: images the old model got right and the new one gets wrong; {shown}, ranked "
               "by the old model's probability of the true class times the new model's probability of its wrong "
               "prediction. " + ("Each flip: the old model's heat map for the true class, then the new model's for "
                                 "its prediction (probabilities in brackets)." if two else
                                 "Captions read true → new prediction, with old and new probabilities."))
        if not sel:
            how = f"No negative flips{which}: the new model gets right every such image the old one got right."
        facts = [("old model", "heat map for the true class"), ("new model", "heat map for its prediction")] if two \
            else []
        return cls([list(r) for r in tiles], title="Negative flips", how_to_read=how, facts=facts)


def _short(name, limit=16):
    """A class name cut to ``limit`` characters for a tile's caption (the tables keep it whole)."""
    name = str(name)
    return name if len(name) <= limit else name[:limit - 1] + "…"


# ---------------------------------------------------------------------------------------------- noise floor
@dataclass(repr=False)
class NoiseFloorDisplay(Display):
    """The candidate update's NFR against the noise floor: the NFR of two runs of one recipe.

    ``plot`` draws both NFRs with their 95% intervals, the floor's interval as a band; the page adds
    the ratio and the difference with their paired intervals and the exact McNemar test.
    """

    result: NoiseFloor
    candidate: str = "old → new"
    floor: str = "run A → run B"
    nfr_interval: tuple | None = None
    floor_interval: tuple | None = None
    title: str = "Against the noise floor"
    figsize: tuple = (7.0, 2.4)

    @classmethod
    def from_predictions(cls, y_true, scores_old, scores_new, floor_scores_a, floor_scores_b, *, n_boot: int = 1000,
                         seed: int = 0, alpha: float = 0.05, candidate: str = "old → new",
                         floor: str = "run A → run B"):
        """From class indices and four models' scores on the same images: the candidate pair (old, new) and two
        runs of one recipe (a, b). Only the top-1 predictions matter; the bootstrap resamples within each class.

        Parameters
        ----------
        y_true : array-like of int, shape (n_samples,)
        scores_old, scores_new, floor_scores_a, floor_scores_b : array-like of shape (n_samples, n_classes)
        n_boot, seed, alpha : see :func:`nfr_against_floor`
        candidate, floor : str
            Names of the two comparisons.
        """
        y = np.asarray(y_true)
        flips = [(np.argmax(a, axis=1) == y) & (np.argmax(b, axis=1) != y)
                 for a, b in ((np.asarray(scores_old), np.asarray(scores_new)),
                              (np.asarray(floor_scores_a), np.asarray(floor_scores_b)))]
        r = nfr_against_floor(flips[0], flips[1], strata=y, n_boot=n_boot, seed=seed, alpha=alpha)
        return cls(r, candidate=candidate, floor=floor)

    @classmethod
    def from_result(cls, result: NoiseFloor, *, candidate: str = "old → new", floor: str = "run A → run B",
                    nfr_interval=None, floor_interval=None):
        """From a :class:`NoiseFloor`; ``nfr_interval`` and ``floor_interval`` replace the two NFRs' intervals
        (the comparison page passes each regression table's own, so one NFR reads the same everywhere)."""
        return cls(result, candidate=candidate, floor=floor, nfr_interval=nfr_interval, floor_interval=floor_interval)

    @property
    def intervals(self) -> dict:
        """The intervals shown: ``nfr`` and ``floor_nfr`` (given, else the result's), ``difference``, ``ratio``."""
        iv = dict(self.result.intervals)
        if self.nfr_interval is not None:
            iv["nfr"] = tuple(self.nfr_interval)
        if self.floor_interval is not None:
            iv["floor_nfr"] = tuple(self.floor_interval)
        return iv

    def verdict(self) -> str:
        """The finding in one sentence."""
        r = self.result
        if r.intervals["difference"][1] < 0:
            return (f"{self.candidate} flips fewer images than retraining does: NFR {ratio_words(r.ratio)} the noise "
                    f"floor (the interval of the difference is below 0).")
        if r.above_floor:
            return (f"{self.candidate} flips more images than retraining does: NFR {ratio_words(r.ratio)} the noise "
                    f"floor, significantly (exact McNemar p {_fmt_p(r.p_value)}).")
        return (f"{self.candidate} does not flip significantly more images than retraining does (NFR "
                f"{ratio_words(r.ratio)} the noise floor; exact McNemar p {_fmt_p(r.p_value)}).")

    def _draw(self, ax, **kwargs):
        r, iv = self.result, self.intervals
        rows = [(self.candidate, r.nfr, iv["nfr"], "#c44e52"), (f"noise floor: {self.floor}", r.floor_nfr,
                                                               iv["floor_nfr"], "#8c8c8c")]
        lo, hi = iv["floor_nfr"]
        if np.isfinite(lo) and np.isfinite(hi):
            ax.axvspan(lo, hi, color="#dddddd", zorder=0, label="floor's 95% interval")
        ax.axvline(r.floor_nfr, color="#8c8c8c", lw=1, ls="--", zorder=1)
        for k, (_, v, (a, b), colour) in enumerate(rows):
            err = [[v - a if np.isfinite(a) else 0], [b - v if np.isfinite(b) else 0]]
            ax.errorbar([v], [1 - k], xerr=np.maximum(err, 0), fmt="o", color=colour, capsize=4, ms=6)
        ax.set_yticks([1, 0], [_short(n, 40) for n, *_ in rows], fontsize=8)
        ax.set_ylim(-0.6, 1.6)
        ax.set_xlim(left=0)
        ax.set_xlabel("negative flip rate, with 95% intervals")
        ax.set_title(f"NFR {ratio_words(r.ratio)} the noise floor", fontsize=10)

    def _parts(self):
        r, iv = self.result, self.intervals
        rows = [[f"NFR of {self.candidate}", r.n, r.nfr, format_interval(*iv["nfr"])],
                [f"noise floor: NFR of {self.floor}", r.n, r.floor_nfr, format_interval(*iv["floor_nfr"])],
                ["ratio NFR / floor", "", r.ratio, format_interval(*iv["ratio"])],
                ["difference NFR − floor", "", r.difference, format_interval(*iv["difference"])],
                [f"images flipped by {self.candidate} only", r.counts["candidate_only"], "", ""],
                [f"images flipped by {self.floor} only", r.counts["floor_only"], "", ""],
                ["images flipped by both", r.counts["both"], "", ""],
                ["exact McNemar p (one-sided: more flips than the floor)", _fmt_p(r.p_value), "", ""]]
        return [guide("Two runs of one training recipe with different seeds already flip images (Srivastava et al., "
                      "KDD 2020): their NFR is the noise floor, what retraining alone breaks. The ratio and the "
                      "difference say how far the update is above it, with intervals from resampling the images "
                      "(both comparisons on the same resamples, within each class); McNemar's test on the images "
                      "only one comparison flips says whether beyond chance."),
                f"<p><b>{_esc(self.verdict())}</b></p>", self._figure_html(),
                html_table(rows, ["", "images", "value", "95% interval"]),
                f'<p class="evallib-guide">{_esc(r.method)}.</p>']


def ratio_words(ratio):
    """A ratio of NFRs in words: ``2.1x``, ``above`` (a floor without flips), ``level with`` (neither flips)."""
    if not np.isfinite(ratio):
        return "above" if ratio == np.inf else "level with"  # inf: a floor without flips; NaN: neither flips
    return f"{ratio:.1f}x"


# ---------------------------------------------------------------------------------------------- pairs
@dataclass(repr=False)
class PairFlipsDisplay(TileDisplay):
    """Verification pairs whose decision changed: genuine pairs the new model now rejects, impostor pairs it
    now accepts, as a pair gallery under a table of the counts, rates and tests."""

    summary: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    where: str = ""  # the operating point and both thresholds, in words
    empty: str = "No pair changed its decision."  # what the view says when it shows no pair

    @classmethod
    def from_predictions(cls, same, scores_old, scores_new, *, pairs, images, far: float = 1e-3, thresholds=None,
                         max_pairs: int = 6):
        """From each pair's label and both models' scores (see :func:`pair_flips`).

        ``pairs`` is an int array of shape (n_pairs, 2): the two images of each pair; ``images`` an array
        of shape (n_images, H, W[, 3]) in [0, 1] or a function ``images(indices)``.
        """
        r = pair_flips(same, scores_old, scores_new, far=far, thresholds=thresholds)
        return cls.from_result(r, scores_old, scores_new, pairs=pairs, images=images, max_pairs=max_pairs)

    @classmethod
    def from_result(cls, result: PairFlips, scores_old, scores_new, *, pairs, images, max_pairs: int = 6,
                    title: str = "Verification pairs that flipped", operating_point: str | None = None):
        """The pair gallery of a :class:`PairFlips`.

        Parameters
        ----------
        result : PairFlips
        scores_old, scores_new : array-like of shape (n_pairs,)
        pairs : array-like of int, shape (n_pairs, 2)
        images : ndarray of shape (n_images, H, W[, 3]) in [0, 1], a function ``images(indices)``, or None
            (the table only: no pair gallery).
        max_pairs : int, default 6
            Pairs shown of each kind.
        title : str
        operating_point : str, optional
            Where the models were taken, in words, with their thresholds (default: from ``result``).
        """
        pairs = np.asarray(pairs, dtype=np.int64)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) != len(scores_old):
            raise ValueError(f"pairs: expected an int array of shape ({len(scores_old)}, 2), one row per pair; got "
                             f"shape {pairs.shape}")
        so, sn = np.asarray(scores_old, float), np.asarray(scores_new, float)
        tiles = []
        if images is not None:
            load = _image_source(images)
            for label, idx in (("genuine, now rejected", result.genuine_lost[:max_pairs]),
                               ("impostor, now accepted", result.impostor_gained[:max_pairs])):
                if not len(idx):
                    continue
                imgs = load([int(v) for v in pairs[idx].ravel()])
                row = []
                for k, p in enumerate(idx):
                    row += [(imgs[2 * k], f"{label}\nold {so[p]:.3f}, new {sn[p]:.3f}"),
                            (imgs[2 * k + 1], f"pair {int(p)}")]
                tiles.append(row)
        r = result
        if operating_point is None:
            at = f"its own threshold for FAR {r.far:g}" if r.operating_point == "matched FAR" else "its given threshold"
            operating_point = f"each model at {at} (old {r.threshold_old:.4f}, new {r.threshold_new:.4f})"
        where = operating_point
        shown = ("Top row: genuine pairs the old model accepted and the new one rejects, furthest below the new "
                 "threshold first; bottom row: impostor pairs the new model newly accepts, furthest above it first. "
                 "Captions: both models' scores." if images is not None else "No pair gallery: the images could "
                 "not be loaded.")
        how = f"Pairs whose decision changed, {where}. " + shown
        summary = [[name, len(getattr(r, key)), r.n_genuine if key.startswith("genuine") else r.n_impostor,
                    r.rates[key], format_interval(*r.wilson[key])]
                   for name, key in (("genuine pairs lost", "genuine_lost"), ("genuine pairs gained", "genuine_gained"),
                                     ("impostor pairs let in", "impostor_gained"),
                                     ("impostor pairs shut out", "impostor_lost"))]
        summary.append(["exact McNemar p", f"genuine {_fmt_p(r.p_genuine)}", f"impostor {_fmt_p(r.p_impostor)}",
                        "", ""])
        changed = any(len(getattr(r, k)) for k in ("genuine_lost", "genuine_gained", "impostor_gained",
                                                   "impostor_lost"))
        empty = ("No pair changed its decision." if not changed else "No pair gallery: the images could not be "
                 "loaded." if images is None else "No genuine pair lost and no impostor pair let in (the table "
                 "counts the flips the other way).")
        return cls(tiles, title=title, how_to_read=how, summary=summary, notes=list(r.notes),
                   where=f"Pairs whose decision changed, {where}.", empty=empty)

    def _parts(self):
        table = html_table(self.summary, ["pairs", "count", "of", "rate", "95% interval (Wilson)"])
        notes = [f'<p class="evallib-guide">{_esc(n)}</p>' for n in self.notes]
        if not self.tiles:
            return [guide(self.where), table, *notes, guide(self.empty)]
        return [table, *notes, *super()._parts()]


def _fmt_p(p):
    return "n/a" if not np.isfinite(p) else f"{p:.3g}"


# ---------------------------------------------------------------------------------------------- BCT
@dataclass(repr=False)
class CompatibilityDisplay(Display):
    """BCT's cross-model test: TAR@FAR and rank-1 for old/old, new probes on the old gallery, and new/new."""

    result: CompatibilityResult
    title: str = "Backward compatibility of the embeddings"
    figsize: tuple = (7.0, 4.2)

    @classmethod
    def from_embeddings(cls, embeddings_old, embeddings_new, labels, *, probe=None, far: float = 1e-3):
        return cls(cross_model_compatibility(embeddings_old, embeddings_new, labels, probe=probe, far=far))

    @classmethod
    def from_result(cls, result: CompatibilityResult):
        return cls(result)

    def _draw(self, ax, **kwargs):
        r = self.result
        metrics = [("tar_at_far", f"TAR at FAR {r.far:g}"), ("rank1", "rank-1")]
        colours = {"old/old": "#8c8c8c", "new/old": "#dd8452", "new/new": "#4c72b0"}
        labels = {"old/old": "old probe, old gallery", "new/old": "new probe, old gallery",
                  "new/new": "new probe, new gallery"}
        x = np.arange(len(metrics))
        for k, pair in enumerate(colours):
            vals = [getattr(r, m)[pair] for m, _ in metrics]
            bars = ax.bar(x + (k - 1) * 0.26, np.nan_to_num(vals), width=0.26, color=colours[pair], label=labels[pair])
            for b, v in zip(bars, vals):
                ax.text(b.get_x() + b.get_width() / 2, b.get_height(), "n/a" if not np.isfinite(v) else f"{v:.3f}",
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, [name for _, name in metrics])
        ax.set_ylim(0, 1.3)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("rate")
        verdict = "compatible" if r.compatible["tar_at_far"] else "not compatible"
        ax.set_title(f"Cross-model test (BCT): {verdict} at FAR {r.far:g}", fontsize=10)
        ax.legend(fontsize="small", loc="upper center", ncol=3)

    def _parts(self):
        r = self.result
        rows = [[pair, r.tar_at_far[pair], r.thresholds[pair], r.rank1[pair]] for pair in ("old/old", "new/old",
                                                                                          "new/new")]
        verdicts = [[m, r.tar_at_far["new/old"] - r.tar_at_far["old/old"] if m == "tar_at_far"
                     else r.rank1["new/old"] - r.rank1["old/old"], format_interval(*r.difference_interval[m]),
                     "yes" if r.compatible[m] else "no", "yes" if r.criterion[m] else "no", r.update_gain[m]]
                    for m in ("tar_at_far", "rank1")]
        return [guide("BCT (Shen et al., CVPR 2020): can the new model's embeddings be searched against the stored "
                      "old ones? 'new/old' compares new-model probes with the old gallery; it should do at least as "
                      "well as the old model with itself ('old/old'). Update gain: the share of the re-indexing gain "
                      "('new/new') reached without re-indexing. An interval of the difference above 0 says the "
                      "criterion holds beyond chance; below 0, the update breaks the stored gallery."),
                self._figure_html(),
                html_table(rows, ["probe/gallery", f"TAR at FAR {r.far:g}", "threshold", "rank-1"]),
                html_table(verdicts, ["metric", "new/old − old/old", "95% interval (identities resampled)",
                                      "compatible: new/old ≥ old/old", "BCT criterion: new/old > old/old",
                                      "update gain"]),
                f'<p class="evallib-guide">{_esc(r.protocol)}: {r.n_probes:,} probes, {r.n_gallery:,} gallery images, '
                f'{r.n_genuine:,} genuine and {r.n_impostor:,} impostor pairs, {r.n_rank1_probes:,} probes for '
                f'rank-1.</p>', *[f'<p class="evallib-guide">{_esc(n)}</p>' for n in r.notes]]
