"""Slice views: accuracy by slice, weak slices found without metadata, two models by slice, and
verification error rates by group.

Each view is a :class:`~evallib.report._base.Display` built from plain arrays (``from_predictions``) or
from the results of :mod:`evallib.metrics.slices` (``from_result``); ``plot(ax=...)`` draws what the
report shows. Every figure shows its n and 95% interval; long tables show the worst rows and fold the rest.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from ..metrics.slices import (
    GroupVerificationResult,
    SliceComparison,
    SliceResult,
    WeakSliceDiscovery,
    compare_by_slice,
    discover_weak_slices,
    metrics_by_slice,
    verification_by_group,
)
from ..metrics.stats import format_interval
from ._base import Display
from .html import folded_table, guide, html_table

SHOWN = 25  # rows a figure draws and a table shows before folding the rest
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
    slices, and the full table (macro-F1 with its within-slice bootstrap interval, the gap to the rest with
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
        from matplotlib.ticker import MaxNLocator

        rows = [self.result.rows[i] for i in self.order[:SHOWN]]
        labels = [_label(r.group, f"n={r.n_genuine:,}", width=30) for r in rows]
        _forest(ax[0], labels, [r.fnmr for r in rows], [r.fnmr_interval for r in rows], [_PLAIN] * len(rows),
                xlabel="false non-match rate (FNMR)", title="Genuine pairs rejected")
        labels = [_label(r.group, f"n={r.n_impostor:,}", width=30) for r in rows]
        _forest(ax[1], labels, [r.fmr for r in rows], [r.fmr_interval for r in rows], [_WEAK] * len(rows),
                reference=self.result.far if np.isfinite(self.result.far) else None,
                xlabel="false match rate (FMR), same-group impostors", title="Impostor pairs accepted")
        values = [v for r in rows for v in (r.fmr, *r.fmr_interval) if np.isfinite(v)]
        if values and min(values) > 0:
            from matplotlib.ticker import NullFormatter

            ax[1].set_xscale("log")
            ax[1].xaxis.set_minor_formatter(NullFormatter())
        else:
            ax[1].xaxis.set_major_locator(MaxNLocator(5))
            ax[1].ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
        if len(self.result.rows) > SHOWN:
            for a in ax:
                a.set_title(a.get_title() + f" (worst {SHOWN} of {len(self.result.rows)} groups)", fontsize=10)

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
