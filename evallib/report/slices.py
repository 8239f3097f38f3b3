"""Slice views: accuracy by slice, weak slices found without metadata, two models by slice, and
verification error rates by group.

Each view is a :class:`~evallib.report._base.Display` built from plain arrays (``from_predictions``) or
from the results of :mod:`evallib.metrics.slices` (``from_result``); ``plot(ax=...)`` draws what the
report shows. Every figure shows its n and 95% interval; long tables show the worst rows and fold the rest.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from ..metrics.slices import (
    GroupDetCurves,
    GroupThresholdResult,
    GroupVerificationResult,
    ModelsBySlice,
    SliceComparison,
    SliceResult,
    WeakSliceDiscovery,
    compare_by_slice,
    discover_weak_slices,
    group_det_curves,
    metrics_by_slice,
    models_by_slice,
    verification_at_group_thresholds,
    verification_by_group,
)
from ..metrics.stats import format_interval
from ._base import Display
from .gallery import TileDisplay
from .html import folded_table, guide, html_table

SHOWN = 25  # rows a figure draws and a table shows before folding the rest
TABLE_SLICES = 10  # slices whose rows (one per model) the slice × model table shows before folding the rest
NESTED_SHOWN = 3  # intersections shown under each weak slice before the others; the rest come last
_WEAK, _NESTED, _PLAIN, _UNTESTED = "#c44e52", "#e3a3a5", "#4c72b0", "#9a9a9a"


def _short(text, width=42):
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _iv(pair):
    return format_interval(pair[0], pair[1])


def _label(name, suffix, width=40):
    """``name (suffix)`` in at most ``width`` characters, the name shortened so that the suffix (its n) stays."""
    return f"{_short(name, max(8, width - len(suffix) - 3))} ({suffix})"


def _names(names, shown=3):
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more if names else "—"


def _rate(v):
    """A rate to 3 significant digits (false match rates of 1e-5 stay readable)."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


def _rate_iv(pair):
    return f"[{_rate(pair[0])}, {_rate(pair[1])}]"


def _forest(ax, labels, values, intervals, colors, *, hollow=None, reference=None, reference_interval=None,
            xlabel="", title=""):
    """One row per item from the top: a dot at the value and a bar over its interval."""
    k = len(values)
    ypos = np.arange(k)[::-1]
    hollow = np.zeros(k, bool) if hollow is None else np.asarray(hollow, bool)
    if reference_interval is not None and np.all(np.isfinite(reference_interval)):
        ax.axvspan(*reference_interval, color="#bbbbbb", alpha=0.35, lw=0)
    if reference is not None and np.isfinite(reference):
        ax.axvline(reference, color="#555555", lw=1, ls="--")
    for y, v, (lo, hi), c, h in zip(ypos, values, intervals, colors, hollow):
        if np.isfinite(lo) and np.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=c, lw=2, alpha=0.8)
        ax.plot([v], [y], "o", color=c, mfc="white" if h else c, ms=6)
    ax.set_yticks(ypos, [_short(t, 46) for t in labels], fontsize=8)
    ax.set_ylim(-0.7, k - 0.3)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)


def _status(r):
    if r.weak and r.explained_by:
        return f"weak, as its parent {r.explained_by}"
    if r.weak:
        return "weak"
    if r.significant:
        return "stronger than the rest"
    if not r.tested:
        return r.note
    return "no difference found"


# ------------------------------------------------------------------------------------- by slice
@dataclass(repr=False)
class SliceDisplay(Display):
    """Accuracy of every slice with its Wilson interval against the overall accuracy, the weakest confirmed
    slices, and the full table (macro-F1 with its delta-method interval within the slice, the gap to the rest with
    Newcombe's interval, the Benjamini–Hochberg q-value, and why a slice was not tested).

    ``plot`` draws the weak slices first, then the least accurate others, at most 25 rows; untested slices
    are hollow and grey.
    """

    result: SliceResult
    title: str = "Where the model fails: accuracy by slice"

    @classmethod
    def from_predictions(cls, y_true, scores, slices, **kwargs):
        """From labels, class scores (or predicted classes) and slicing columns; ``kwargs`` go to
        :func:`evallib.metrics.slices.metrics_by_slice`."""
        return cls(metrics_by_slice(y_true, scores, slices, **kwargs))

    @classmethod
    def from_result(cls, result: SliceResult):
        return cls(result)

    @property
    def how_to_read(self):
        r = self.result
        return (f"Each row is a slice of the images: the dot is its accuracy, the bar its 95% interval; the grey "
                f"band is the accuracy of all {r.n:,} images. Red: weaker than the rest of the images "
                f"(q < {r.alpha:g} after Benjamini–Hochberg over the {r.n_tests:,} slices tested); pale red with an "
                f"arrow: an intersection that is weak only as much as the slice above it. Hollow grey: below "
                f"{r.min_slice_size} images (or with too few left outside it), shown but not tested.")

    @property
    def order(self) -> np.ndarray:
        """Rows to show first: weak slices (largest gap first), each with the least accurate few
        (``NESTED_SHOWN``) of the intersections folded under it; then the others from the least accurate; the
        other folded intersections last (they say nothing their weak slice does not)."""
        rows = self.result.rows
        weak = [i for i, r in enumerate(rows) if r.weak and not r.explained_by]
        weak.sort(key=lambda i: (rows[i].gap, rows[i].q_value))
        first, folded = [], []
        for i in weak:  # each weak slice, then the intersections folded under it
            first.append(i)
            nested = sorted((j for j, r in enumerate(rows) if r.explained_by == rows[i].name),
                            key=lambda j: rows[j].accuracy)
            first += nested[:NESTED_SHOWN]
            folded += nested[NESTED_SHOWN:]
        taken = set(first) | set(folded)
        rest = [i for i in range(len(rows)) if i not in taken]
        rest.sort(key=lambda i: (not rows[i].tested, rows[i].accuracy, -rows[i].n))
        return np.array(first + rest + folded, dtype=np.int64)

    @property
    def figsize(self):
        return (7.5, 1.4 + 0.28 * min(len(self.result.rows), SHOWN))

    def _draw(self, ax, **kwargs):
        rows = [self.result.rows[i] for i in self.order[:SHOWN]]
        _forest(ax, [("↳ " if r.explained_by else "") + _label(r.name, f"n={r.n:,}") for r in rows],
                [r.accuracy for r in rows], [r.accuracy_interval for r in rows],
                [_NESTED if r.explained_by else _WEAK if r.weak else (_PLAIN if r.tested else _UNTESTED)
                 for r in rows],
                hollow=[not r.tested or bool(r.explained_by) for r in rows], reference=self.result.accuracy,
                reference_interval=self.result.accuracy_interval, xlabel="accuracy (95% Wilson interval)",
                title=("Accuracy by slice" if len(self.result.rows) <= SHOWN else
                       f"The weakest {len(rows)} of {len(self.result.rows):,} slices"))

    def _parts(self):
        r = self.result
        parts = [guide(self.how_to_read), self._figure_html()]
        weak = r.weakest(10)
        if weak:
            parts.append("<h4>Weakest confirmed slices</h4>")
            parts.append(html_table(
                [[w.name, w.n, w.accuracy, _iv(w.accuracy_interval), w.rest_accuracy, w.gap, _iv(w.gap_interval),
                  w.q_value, _names(x.name for x in r.nested(w.name))] for w in weak],
                ["slice", "images", "accuracy", "95% interval", "rest", "gap", "95% interval", "q",
                 "intersections it explains"]))
        else:
            parts.append(f'<p class="evallib-guide">No slice is weaker than the rest of the images at a false '
                         f"discovery rate of {r.alpha:g} ({r.n_tests:,} slices tested, "
                         f"{sum(not x.tested for x in r.rows):,} too small to test).</p>")
        table = [[x.name, x.n, x.accuracy, _iv(x.accuracy_interval), x.macro_f1, _iv(x.macro_f1_interval), x.gap,
                  _iv(x.gap_interval), x.q_value, _status(x) + (f"; same images as {', '.join(x.same_as)}"
                                                                 if x.same_as else "")]
                 for x in (r.rows[i] for i in self.order)]
        head = ["slice", "images", "accuracy", "95% interval", "macro-F1", "95% interval", "gap to rest",
                "95% interval", "q", "status"]
        parts.append("<h4>All slices</h4>")
        parts.append(folded_table(table, head, shown=SHOWN, what="slices"))
        return parts


# ------------------------------------------------------------------------- found without metadata
@dataclass(repr=False)
class WeakSliceDiscoveryDisplay(Display):
    """Candidate weak slices chosen on one half of the images, and what the other half says: held-out
    accuracy with its Wilson interval (red when confirmed), the accuracy where it was found (hollow), and the
    held-out rest of the images (a cross)."""

    result: WeakSliceDiscovery
    title: str = "Weak slices found without metadata, confirmed on held-out images"

    @classmethod
    def from_predictions(cls, y_true, scores, *, embeddings=None, slices=None, **kwargs):
        """From labels, class scores and embeddings and/or slicing columns; ``kwargs`` go to
        :func:`evallib.metrics.slices.discover_weak_slices`."""
        return cls(discover_weak_slices(y_true, scores, embeddings=embeddings, slices=slices, **kwargs))

    @classmethod
    def from_result(cls, result: WeakSliceDiscovery):
        return cls(result)

    @property
    def how_to_read(self):
        r = self.result
        return (f"Candidates were chosen on {int((~r.holdout).sum()):,} images and tested on the other "
                f"{int(r.holdout.sum()):,}. Hollow dot: accuracy where the slice was found (optimistic); filled dot "
                f"and bar: accuracy on the held-out images with its 95% interval; cross: the held-out rest. "
                f"Red: confirmed (q < {r.alpha:g} over the candidates).")

    @property
    def figsize(self):
        return (7.5, 1.4 + 0.35 * max(1, min(len(self.result.candidates), SHOWN)))

    def _draw(self, ax, **kwargs):
        cands = self.result.candidates[:SHOWN]
        if not cands:
            ax.text(0.5, 0.5, "no candidate slice on the discovery half", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
            return
        _forest(ax, [_label(c.name, f"held-out n={c.holdout_n:,}") for c in cands], [c.holdout_accuracy for c in cands],
                [c.holdout_interval for c in cands], [_WEAK if c.confirmed else _UNTESTED for c in cands],
                xlabel="held-out accuracy (95% Wilson interval)", title="Candidates and their held-out test")
        ypos = np.arange(len(cands))[::-1]
        ax.plot([c.discovery_accuracy for c in cands], ypos, "o", mfc="none", color="#333333", ms=6,
                label="where it was found")
        ax.plot([c.holdout_rest_accuracy for c in cands], ypos, "x", color="#333333", ms=6, label="held-out rest")
        ax.legend(fontsize="small", loc="best")

    def _parts(self):
        r = self.result
        parts = [guide(self.how_to_read), self._figure_html()]
        rows = [[c.name, c.discovery_n, c.discovery_accuracy, c.holdout_n, c.holdout_accuracy, _iv(c.holdout_interval),
                 c.holdout_rest_accuracy, c.holdout_gap, _iv(c.holdout_gap_interval), c.holdout_q,
                 "confirmed" if c.confirmed else "not confirmed"] for c in r.candidates]
        if rows:
            parts.append(folded_table(rows, ["slice", "found on", "accuracy there", "held out", "held-out accuracy",
                                             "95% interval", "held-out rest", "gap", "95% interval", "q", "verdict"],
                                      shown=SHOWN, what="candidates"))
        confirmed = len(r.confirmed)
        parts.append(f'<p class="evallib-guide">{confirmed} of {len(r.candidates)} candidate(s) confirmed on the '
                     f"held-out images.</p>")
        return parts


# --------------------------------------------------------------------------- two models by slice
@dataclass(repr=False)
class SliceComparisonDisplay(Display):
    """Accuracy difference between two models on each slice of the same images, with Newcombe's paired
    interval; red where McNemar's test finds a difference after Benjamini–Hochberg."""

    result: SliceComparison
    title: str = "Two models, slice by slice"

    @classmethod
    def from_predictions(cls, y_true, scores_a, scores_b, slices, **kwargs):
        """From labels, both models' class scores (or predicted classes) and slicing columns; ``kwargs`` go to
        :func:`evallib.metrics.slices.compare_by_slice`."""
        return cls(compare_by_slice(y_true, scores_a, scores_b, slices, **kwargs))

    @classmethod
    def from_result(cls, result: SliceComparison):
        return cls(result)

    @property
    def how_to_read(self):
        a, b = self.result.names
        return (f"Accuracy of {a} minus accuracy of {b} on the same images of each slice, with its 95% interval. "
                f"Red: McNemar's test finds a difference (q < {self.result.alpha:g} after Benjamini–Hochberg).")

    @property
    def order(self):
        rows = self.result.rows
        return np.array([0] + sorted(range(1, len(rows)), key=lambda i: (not rows[i].significant,
                                                                         rows[i].difference)), dtype=np.int64)

    @property
    def figsize(self):
        return (7.5, 1.4 + 0.28 * min(len(self.result.rows), SHOWN))

    def _draw(self, ax, **kwargs):
        rows = [self.result.rows[i] for i in self.order[:SHOWN]]
        a, b = self.result.names
        _forest(ax, [f"{r.name} (n={r.n:,})" for r in rows], [r.difference for r in rows],
                [r.difference_interval for r in rows],
                [_WEAK if r.significant else (_PLAIN if np.isfinite(r.p_value) else _UNTESTED) for r in rows],
                hollow=[not np.isfinite(r.p_value) for r in rows], reference=0.0,
                xlabel=f"accuracy {a} − accuracy {b} (95% interval)", title="Difference by slice")

    def _parts(self):
        a, b = self.result.names
        rows = [[r.name, r.n, r.accuracy_a, _iv(r.interval_a), r.accuracy_b, _iv(r.interval_b), r.difference,
                 _iv(r.difference_interval), r.only_a_correct, r.only_b_correct, r.q_value, r.note or "—"]
                for r in (self.result.rows[i] for i in self.order)]
        head = ["slice", "images", f"accuracy {a}", "95% interval", f"accuracy {b}", "95% interval", "difference",
                "95% interval", f"only {a} right", f"only {b} right", "q", "note"]
        return [guide(self.how_to_read), self._figure_html(), folded_table(rows, head, shown=SHOWN, what="slices")]


# --------------------------------------------------------------------------- verification by group
def _group_rate_panels(ax, rows, far, n_groups, which, *, more_fmr=()):
    """Each group's FNMR (left) and same-group FMR (right) with their intervals, one row per group, the
    FMR axis logarithmic when every value on it is positive; ``more_fmr``: other FMR values drawn there."""
    from matplotlib.ticker import MaxNLocator, NullFormatter

    _forest(ax[0], [_label(r.group, f"n={r.n_genuine:,}", width=30) for r in rows], [r.fnmr for r in rows],
            [r.fnmr_interval for r in rows], [_PLAIN] * len(rows), xlabel="false non-match rate (FNMR)",
            title="Genuine pairs rejected")
    _forest(ax[1], [_label(r.group, f"n={r.n_impostor:,}", width=30) for r in rows], [r.fmr for r in rows],
            [r.fmr_interval for r in rows], [_WEAK] * len(rows), reference=far if np.isfinite(far) else None,
            xlabel="false match rate (FMR), same-group impostors", title="Impostor pairs accepted")
    values = [v for r in rows for v in (r.fmr, *r.fmr_interval) if np.isfinite(v)]
    values += [v for v in more_fmr if np.isfinite(v)]
    if values and min(values) > 0:
        ax[1].set_xscale("log")
        ax[1].xaxis.set_minor_formatter(NullFormatter())
    else:
        ax[1].xaxis.set_major_locator(MaxNLocator(5))
        ax[1].ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    if n_groups > SHOWN:
        for a in ax:
            a.set_title(a.get_title() + f" ({which} {SHOWN} of {n_groups} groups)", fontsize=10)


@dataclass(repr=False)
class GroupVerificationDisplay(Display):
    """False non-match and false match rates of each group at one global threshold, with intervals, as
    NISTIR 8280 reports them; the table adds TAR at each group's own FAR and the between-group false match
    rates."""

    result: GroupVerificationResult
    title: str = "Verification by group"

    @classmethod
    def from_predictions(cls, scores, same, group_a, group_b, **kwargs):
        """From pair scores, same-identity flags and the group of each side; ``kwargs`` go to
        :func:`evallib.metrics.slices.verification_by_group`."""
        return cls(verification_by_group(scores, same, group_a, group_b, **kwargs))

    @classmethod
    def from_result(cls, result: GroupVerificationResult):
        return cls(result)

    @property
    def n_axes(self):
        return 2

    def _axes_meaning(self):
        return "false non-match rate, false match rate"

    @property
    def figsize(self):
        return (11.0, 2.0 + 0.3 * min(len(self.result.rows), SHOWN))

    @property
    def how_to_read(self):
        r = self.result
        at = f"set at FAR {r.far:g} over all impostor pairs" if np.isfinite(r.far) else "given"
        ratio = ("" if not np.isfinite(r.fmr_ratio) else
                 f" The highest same-group false match rate is {r.fmr_ratio:.3g} times the lowest.")
        return (f"One threshold for everyone ({r.threshold:.4g}, {at}). Left: genuine pairs of each group rejected; "
                f"right: impostor pairs within each group accepted; bars are 95% intervals "
                f"({r.method.split(' (')[0].split(';')[0]}).{ratio}")

    @property
    def order(self) -> np.ndarray:
        """Groups worst first: the highest same-group false match rate, then the highest false non-match rate."""
        rows = self.result.rows

        def worst(v):
            return -v if np.isfinite(v) else np.inf

        return np.array(sorted(range(len(rows)), key=lambda i: (worst(rows[i].fmr), worst(rows[i].fnmr),
                                                                 rows[i].group)), dtype=np.int64)

    def _draw(self, ax, **kwargs):
        _group_rate_panels(ax, [self.result.rows[i] for i in self.order[:SHOWN]], self.result.far,
                           len(self.result.rows), "worst")

    def _parts(self):
        r = self.result
        shown = [r.rows[i] for i in self.order]
        notes = {g.note for g in shown}
        common = notes.pop() if len(notes) == 1 else None
        rows = [[g.group, g.n_genuine, g.fnmr, _iv(g.fnmr_interval), g.n_impostor, _rate(g.fmr),
                 _rate_iv(g.fmr_interval), g.tar_at_own_far, _iv(g.tar_at_own_far_interval)]
                + ([] if common is not None else [g.note or "—"])
                for g in shown]
        head = ["group", "genuine pairs", "FNMR", "95% interval", "same-group impostor pairs", "FMR", "95% interval",
                "TAR at own FAR", "95% interval"] + ([] if common is not None else ["note"])
        parts = [guide(self.how_to_read), self._figure_html(), folded_table(rows, head, shown=SHOWN, what="groups")]
        if common:
            parts.append(f'<p class="evallib-guide">Every group: {html.escape(common)}.</p>')
        if 1 < len(r.groups) <= 20:
            parts.append("<h4>False match rate between groups</h4>")
            parts.append(html_table([[g] + [f"{r.between_fmr[i, j]:.3g} (n={r.between_n[i, j]:,})"
                                            if r.between_n[i, j] else "—" for j in range(len(r.groups))]
                                     for i, g in enumerate(r.groups)], ["impostor side 1 \\ side 2", *r.groups]))
        parts.append(f'<p class="evallib-guide">Intervals: {r.method}.</p>')
        return parts



MAX_GROUP_CURVES = 10  # DET curves drawn on one plot (a legend stays readable)


@dataclass(repr=False)
class GroupDetDisplay(Display):
    """Every group's DET curve on one plot: the false non-match rate of its genuine pairs against the false
    match rate of its same-group impostors, at every threshold; a dot marks where the global threshold puts
    each group. Above ``MAX_GROUP_CURVES`` groups, the groups with the most impostor pairs are drawn."""

    result: GroupDetCurves
    threshold: float = float("nan")
    title: str = "DET curves by group"

    @classmethod
    def from_predictions(cls, scores, same, group_a, group_b, *, threshold=None, **kwargs):
        """From pair scores, same-identity flags and the group of each side; ``threshold`` (the global one) is
        marked on each curve; ``kwargs`` go to :func:`evallib.metrics.slices.group_det_curves`."""
        return cls(group_det_curves(scores, same, group_a, group_b, **kwargs),
                   threshold=float("nan") if threshold is None else float(threshold))

    @classmethod
    def from_result(cls, result: GroupDetCurves, *, threshold=None):
        return cls(result, threshold=float("nan") if threshold is None else float(threshold))

    @property
    def figsize(self):
        return (7.0, 5.5)

    @property
    def drawn(self):
        """Indices of the groups drawn: those with a curve, the most impostor pairs first."""
        r = self.result
        ok = [g for g in range(len(r.groups)) if len(r.fmr[g])]
        ok.sort(key=lambda g: (-r.n_impostor[g], r.groups[g]))
        return ok[:MAX_GROUP_CURVES]

    @property
    def how_to_read(self):
        r = self.result
        shown = len(self.drawn)
        more = (f" The {shown} groups with the most impostor pairs of {len(r.groups)} are drawn."
                if shown < sum(len(f) > 0 for f in r.fmr) else "")
        mark = (f" A dot marks each group at the global threshold ({self.threshold:.4g}): dots spread left to right "
                f"are false match rates that differ between groups at one threshold." if np.isfinite(self.threshold)
                else "")
        return ("Each line is one group: lower and further left is better. The x axis is the false match rate of "
                "the group's own impostor pairs, the y axis the false non-match rate of its genuine pairs, both on "
                "log scales." + mark + more)

    def _draw(self, ax, **kwargs):
        r = self.result
        floor = 1.0  # a rate of 0 is drawn at half the smallest rate the pairs can show
        for g in self.drawn:
            floor = min(floor, 0.5 / max(r.n_impostor[g], 1), 0.5 / max(r.n_genuine[g], 1))

        def low(values):  # the axis starts just below the smallest rate a curve reaches
            v = np.concatenate([np.asarray(x) for x in values] + [np.zeros(0)])
            v = v[v > 0]
            return max(floor, v.min() / 2) if len(v) else floor
        colors = [f"C{k}" for k in range(10)]
        for k, g in enumerate(self.drawn):
            x, y = np.maximum(r.fmr[g], floor), np.maximum(r.fnmr[g], floor)
            ax.step(x, y, where="post", color=colors[k % 10], lw=1.5,
                    label=_label(r.groups[g], f"{r.n_genuine[g]:,} gen., {r.n_impostor[g]:,} imp.", width=44))
            if np.isfinite(self.threshold) and len(r.thresholds[g]):
                j = min(int(np.searchsorted(-r.thresholds[g], -self.threshold, side="right")) - 1, len(x) - 1)
                j = max(j, 0)
                ax.plot([x[j]], [y[j]], "o", color=colors[k % 10], ms=6, mec="black", mew=0.6)
        if not self.drawn:
            ax.text(0.5, 0.5, "no group has both genuine and impostor pairs", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
            return
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(low(r.fmr[g] for g in self.drawn), 1.05)
        ax.set_ylim(low(r.fnmr[g] for g in self.drawn), 1.05)
        ax.set_xlabel("false match rate (same-group impostors)")
        ax.set_ylabel("false non-match rate")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small", loc="upper right")
        ax.set_title("DET curves by group" + (f" ({len(self.drawn)} of {len(r.groups)})"
                                               if len(self.drawn) < len(r.groups) else ""), fontsize=10)

    def _parts(self):
        r = self.result
        parts = [guide(self.how_to_read), self._figure_html()]
        left = [g for g in range(len(r.groups)) if not len(r.fmr[g])]
        if left:
            parts.append(f'<p class="evallib-guide">No curve (no genuine or no same-group impostor pair): '
                         f"{html.escape(_names([r.groups[g] for g in left], shown=10))}.</p>")
        return parts


@dataclass(repr=False)
class GroupThresholdDisplay(Display):
    """What one threshold per group would do: each group's FNMR and FMR at its own threshold (filled dots,
    95% intervals), beside the one global threshold (hollow dots). By default every group's threshold is set
    so that its own impostors match at the same target FMR; ``from_predictions(..., thresholds={...})`` asks
    what any other choice would do."""

    result: GroupThresholdResult
    title: str = "What if each group had its own threshold"

    @classmethod
    def from_predictions(cls, scores, same, group_a, group_b, *, thresholds=None, **kwargs):
        """From pair scores, same-identity flags, each side's group and optional ``{group: threshold}``;
        ``kwargs`` go to :func:`evallib.metrics.slices.verification_at_group_thresholds`."""
        return cls(verification_at_group_thresholds(scores, same, group_a, group_b, thresholds=thresholds, **kwargs))

    @classmethod
    def from_result(cls, result: GroupThresholdResult):
        return cls(result)

    @property
    def n_axes(self):
        return 2

    def _axes_meaning(self):
        return "false non-match rate, false match rate"

    @property
    def figsize(self):
        return (11.0, 2.0 + 0.3 * min(len(self.result.rows), SHOWN))

    @property
    def order(self) -> np.ndarray:
        """Groups by the FNMR their own threshold costs them, highest first."""
        rows = self.result.rows
        return np.array(sorted(range(len(rows)), key=lambda i: (-rows[i].fnmr if np.isfinite(rows[i].fnmr)
                                                                 else np.inf, rows[i].group)), dtype=np.int64)

    @property
    def how_to_read(self):
        r = self.result
        target = (f"set so that each group's own impostor pairs match at FMR {r.far:g}" if np.isfinite(r.far)
                  else "as given")
        ratio = ""
        if np.isfinite(r.global_fmr_ratio) or np.isfinite(r.fmr_ratio):
            ratio = (f" The highest same-group FMR over the lowest: {_rate(r.global_fmr_ratio)} at the global "
                     f"threshold, {_rate(r.fmr_ratio)} at the groups' own.")
        return (f"Filled dots and bars: each group at its own threshold ({target}), with 95% intervals; hollow "
                f"dots: the same group at the global threshold ({r.global_threshold:.4g}). Left: genuine pairs "
                f"rejected; right: same-group impostor pairs accepted.{ratio}")

    def _draw(self, ax, **kwargs):
        rows = [self.result.rows[i] for i in self.order[:SHOWN]]
        ypos = np.arange(len(rows))[::-1]
        ax[0].plot([r.global_fnmr for r in rows], ypos, "o", mfc="white", color="#333333", ms=6)
        ax[1].plot([r.global_fmr for r in rows], ypos, "o", mfc="white", color="#333333", ms=6,
                   label="at the global threshold")
        ax[1].legend(fontsize="small", loc="best")
        _group_rate_panels(ax, rows, self.result.far, len(self.result.rows), "first",
                           more_fmr=[r.global_fmr for r in rows])

    def _parts(self):
        r = self.result
        shown = [r.rows[i] for i in self.order]
        rows = [[g.group, f"{g.threshold:.4g}", g.n_genuine, g.fnmr, _iv(g.fnmr_interval), g.global_fnmr,
                 g.n_impostor, _rate(g.fmr), _rate_iv(g.fmr_interval), _rate(g.global_fmr), g.note or "—"]
                for g in shown]
        head = ["group", "own threshold", "genuine pairs", "FNMR", "95% interval", "FNMR at global",
                "same-group impostor pairs", "FMR", "95% interval", "FMR at global", "note"]
        return [guide(self.how_to_read), self._figure_html(), folded_table(rows, head, shown=SHOWN, what="groups"),
                f'<p class="evallib-guide">Intervals: {html.escape(r.method)}. In JupyterLab, '
                f"<code>GroupThresholdDisplay.from_predictions(scores, same, group_a, group_b, "
                f"thresholds={{...}})</code> shows any other choice of thresholds.</p>"]

# ------------------------------------------------------------------------- the mistakes of weak slices
def _spread(idx, y, confidence):
    """``idx`` reordered: the most confident mistake of each true class, then each class's second, and so on
    (so a strip shows several classes, not the first class's mistakes only); ties keep the data's order."""
    idx = np.asarray(idx, dtype=np.int64)
    if not len(idx):
        return idx
    order = idx[np.lexsort((idx, -confidence[idx]))]
    rank = np.zeros(len(order), dtype=np.int64)
    seen = {}
    for k, i in enumerate(order):
        rank[k] = seen.get(int(y[i]), 0)
        seen[int(y[i])] = rank[k] + 1
    return order[np.lexsort((np.arange(len(order)), rank))]


@dataclass(repr=False)
class SliceMistakesDisplay(TileDisplay):
    """For each weak slice, a strip of its mistakes (true → predicted class under each) and, below it, a strip
    of the same images with the Grad-CAM heat map of the predicted class over each; when no heat map can be
    drawn, the reason stands above the strips.

    ``row_labels`` name each row on its left (the slice, then "heat maps").
    """

    row_labels: list = field(default_factory=list)
    slices: list = field(default_factory=list)

    @classmethod
    def from_predictions(cls, y_true, scores, masks, *, images, cam=None, classes=None, per_slice=6,
                         cam_reason=None, title="Mistakes in the weakest slices"):
        """From labels, class scores (or predicted classes) and the slices to show.

        Parameters
        ----------
        y_true : array-like of int, shape (n_samples,)
        scores : array-like of shape (n_samples, n_classes), or of shape (n_samples,) (predicted classes)
        masks : dict of str to array-like of bool, shape (n_samples,)
            The slices, in the order shown (weakest first): name to membership of each image.
        images : ndarray of shape (n_samples, H, W[, 3]) in [0, 1], or a function
            ``images(indices) -> list of arrays`` (only the shown images are loaded).
        cam : callable, optional
            ``cam(indices, target_classes) -> list of arrays``: each image with its heat map for the target
            over it (:meth:`evallib.report.report.Report.heat_maps`). Without it the strips show the images
            alone and ``cam_reason`` says why.
        classes : sequence of str, optional
        per_slice : int, default 6
            Mistakes shown per slice, among those an earlier slice did not show (slices of the same images show
            their mistakes once): the most confident mistake of each true class, then the second of each, and
            so on.
        cam_reason : str, optional
        title : str
        """
        from .gallery import _image_source

        y = np.asarray(y_true)
        s = np.asarray(scores)
        if y.ndim != 1:
            raise ValueError(f"y_true: expected a 1-d array of class indices; got shape {y.shape}")
        pred = s.argmax(1) if s.ndim == 2 else s.astype(np.int64)
        confidence = s.max(1) if s.ndim == 2 else np.zeros(len(pred))
        if pred.shape != y.shape:
            raise ValueError(f"scores: expected {len(y)} rows, one per label; got shape {s.shape}")
        if not hasattr(masks, "items"):
            raise TypeError(f"masks: expected a mapping of slice name to a boolean mask; got {type(masks).__name__}")
        if per_slice < 1:
            raise ValueError(f"per_slice: expected 1 or more; got {per_slice!r}")
        names = list(classes) if classes is not None else [str(k) for k in range(int(max(y.max(), pred.max())) + 1)]
        load = _image_source(images)
        wrong = pred != y
        seen = np.zeros(len(y), dtype=bool)
        tiles, labels, shown = [], [], []
        for name, m in masks.items():
            m = np.asarray(m, dtype=bool)
            if m.shape != y.shape:
                raise ValueError(f"masks[{name!r}]: expected {len(y)} booleans, one per image; got shape {m.shape}")
            idx = _spread(np.flatnonzero(m & wrong & ~seen), y, confidence)[:per_slice]
            seen |= m & wrong
            if not len(idx):
                continue
            caps = [f"{_short(names[y[i]], 14)} → {_short(names[pred[i]], 14)}" for i in idx]
            tiles.append(list(zip(load(idx.tolist()), caps)))
            labels.append(_short(name, 28))
            shown.append(str(name))
            if cam is not None:
                heat = cam(idx.tolist(), pred[idx].tolist())
                tiles.append(list(zip(heat, [f"heat map: {_short(names[pred[i]], 14)}" for i in idx])))
                labels.append("heat maps")
        read = ("Each weak slice (weakest first) has a row of its mistakes, under each image its true class → the "
                "predicted class")
        read += (", and under it the same images with the Grad-CAM heat map of the predicted class: where the "
                 "model looked for the class it wrongly gave." if cam is not None else ".")
        if shown:
            read += f" Rows, from the top: {', '.join(shown)}."
        facts = [] if cam is not None else [["no heat maps", cam_reason or "no Grad-CAM route was given"]]
        return cls(tiles, title=title, how_to_read=read if tiles else "No mistakes in the weak slices.",
                   facts=facts, row_labels=labels, slices=shown)

    def _draw(self, ax, **kwargs):
        super()._draw(ax, **kwargs)
        axes = np.asarray(ax, dtype=object).reshape(max(1, len(self.tiles)), self.ncols)
        for r, text in enumerate(self.row_labels[:axes.shape[0]]):
            axes[r, 0].set_ylabel(text, fontsize=8, rotation=0, ha="right", va="center")


# ------------------------------------------------------------------------------- models by slice
@dataclass(repr=False)
class ModelsBySliceDisplay(Display):
    """Several models on each slice of the same images: a slice × model table of accuracy with 95% intervals,
    and each model against the reference by McNemar's test per slice, after Benjamini–Hochberg over every
    test. ``plot`` draws the table as a heat map (at most 25 slices, those where models differ first); a
    triangle marks a cell that differs from the reference (q < alpha)."""

    result: ModelsBySlice
    title: str = "Models by slice"
    heading: str = ""

    @classmethod
    def from_predictions(cls, y_true, scores, slices, **kwargs):
        """From labels, ``{model: class scores or predicted classes}`` on the same images, and slicing columns;
        ``kwargs`` go to :func:`evallib.metrics.slices.models_by_slice`."""
        return cls(models_by_slice(y_true, scores, slices, **kwargs))

    @classmethod
    def from_result(cls, result, *, heading=""):
        return cls(result, heading=heading)

    @property
    def order(self) -> np.ndarray:
        """Slices to show first: ``all``, then the slices where some model differs from the reference (smallest
        q first), then the others by their lowest accuracy."""
        r = self.result
        q = np.where(np.isfinite(r.q_value), r.q_value, np.inf).min(axis=1)
        low = np.nan_to_num(r.accuracy, nan=np.inf).min(axis=1)
        sig = np.count_nonzero(r.significant, axis=1) > 0
        rest = sorted(range(1, len(r.slices)), key=lambda i: (not sig[i], q[i] if sig[i] else low[i], r.slices[i]))
        return np.array([0] + rest, dtype=np.int64)

    @property
    def how_to_read(self):
        r = self.result
        return (f"Accuracy of each model on each slice of the same {int(r.n[0]):,} images, with its 95% Wilson "
                f"interval. Each other model is compared with the reference, {r.reference}, by McNemar's exact "
                f"test on the images only one of the two gets right; "
                f"Benjamini–Hochberg runs over all {r.n_tests:,} tests (slices × models). ▲/▼: better/worse than "
                f"{r.reference} at q < {r.alpha:g}. Slices below {r.min_slice_size} images are shown, not tested.")

    @property
    def figsize(self):
        r = self.result
        return (2.4 + 1.25 * len(r.models), 1.3 + 0.3 * min(len(r.slices), SHOWN))

    def _draw(self, ax, **kwargs):
        r = self.result
        rows = self.order[:SHOWN]
        acc = r.accuracy[rows]
        im = ax.imshow(acc, cmap="RdYlGn", vmin=np.nanmin(acc) if np.isfinite(acc).any() else 0, vmax=1,
                       aspect="auto")
        for a, i in enumerate(rows):
            for m in range(len(r.models)):
                mark = ""
                if r.significant[i, m]:
                    mark = " ▲" if r.difference[i, m] > 0 else " ▼"
                ax.text(m, a, f"{acc[a, m]:.3f}{mark}", ha="center", va="center", fontsize=7,
                        fontweight="bold" if mark else "normal")
        ax.set_xticks(range(len(r.models)), [_short(m, 16) + (" (ref.)" if m == r.reference else "")
                                             for m in r.models], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), [_label(r.slices[i], f"n={r.n[i]:,}", width=36) for i in rows], fontsize=8)
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label="accuracy")
        ax.set_title("Accuracy by slice and model" + (f" ({len(rows)} of {len(r.slices):,} slices)"
                                                      if len(rows) < len(r.slices) else ""), fontsize=10)

    def _parts(self):
        # one row per slice and model (the reference first), so the table keeps eight columns at any number
        # of models; the heat map above is the wide view
        r = self.result
        head = ["slice", "images", "model", "accuracy", "95% interval", f"− {r.reference}", "95% interval", "q"]
        rows = []
        for i in self.order:
            for m, name in enumerate(r.models):
                acc = [r.slices[i], int(r.n[i]), name, r.accuracy[i, m],
                       _iv((r.accuracy_low[i, m], r.accuracy_high[i, m]))]
                if m == 0:
                    rows.append(acc + ["reference", "", float("nan")])
                    continue
                d = r.difference[i, m]
                mark = (" ▲" if d > 0 else " ▼") if r.significant[i, m] else ""
                rows.append(acc + [f"{d:+.4f}{mark}", _iv((r.difference_low[i, m], r.difference_high[i, m])),
                                   r.q_value[i, m]])
        found = int(r.significant[1:].sum())
        line = (f"{found} slice × model difference(s) from {r.reference} at q < {r.alpha:g}." if found else
                f"No slice where a model differs from {r.reference} at q < {r.alpha:g}.")
        return [self.heading, guide(self.how_to_read), self._figure_html(),
                folded_table(rows, head, shown=TABLE_SLICES * len(r.models), what="rows (slice × model)"),
                f'<p class="evallib-guide">{line}</p>']
