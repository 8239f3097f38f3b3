"""The comparison page: leaderboards of the models in an output folder, paired comparisons, ROC overlay.

Models are grouped by their evaluation data (the data fingerprint in ``run.json``, a hash of the
evaluated images' contents and labels) and ranked within their group: a model evaluated on other
data gets its own table.

Each model links to its report by a path relative to the folder the page is shown from: in
JupyterLab the notebook's folder (the kernel's working directory, against which JupyterLab resolves
the links of a cell's output), in ``index.html`` the output folder, where ``evallib run`` runs it.
"""

from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from ..evaluation import PRIMARY, default_primary_metric
from ..metrics.stats import format_interval
from ..outputs import REPORT_HTML, data_key, load_predictions, scan
from ._base import Display, HtmlDisplay
from .html import Markup, guide, html_table

MAX_CURVES = 20  # curves drawn in one panel of the ROC overlay


def report_link(model_dir, base):
    """The URL of a model's ``report.html`` relative to the folder ``base``.

    Parameters
    ----------
    model_dir : str or Path
        The model's output folder, ``out_root/<name>``.
    base : str or Path
        The folder the link is followed from: the one holding the page or notebook that shows it.

    Examples
    --------
    >>> report_link("outputs/linear", "outputs")
    'linear/report.html'
    >>> report_link("outputs/linear", "notebooks")
    '../outputs/linear/report.html'
    """
    return quote(Path(os.path.relpath(Path(model_dir) / REPORT_HTML, base)).as_posix())


@dataclass(frozen=True)
class DataGroup:
    """Models evaluated on the same data.

    Attributes
    ----------
    key : str
        The data fingerprint (or, for runs that predate it, the data folder's path).
    folders : tuple of str
        The names (no path) of the folders the models read the data from, sorted, without repeats.
    images : int
        Images evaluated.
    models : tuple of str
        The models that evaluated it, best first by the primary metric.
    """

    key: str
    folders: tuple
    images: int
    models: tuple

    @property
    def title(self):
        return ", ".join(self.folders) or "unknown data"


@dataclass
class Comparison:
    """Models found under ``out_root``.

    ``ok`` maps a name to its metrics dict, ``runs`` to its run facts, ``failed`` to its error.
    """

    out_root: Path
    primary_metric: str
    ok: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)

    @classmethod
    def load(cls, out_root="outputs", *, primary_metric=None):
        out_root = Path(out_root)
        ok, failed, runs = {}, {}, {}
        for m in scan(out_root):
            if m.status != "ok":
                failed[m.name] = m.run.get("error", "unknown error")
                continue
            metrics = m.metrics()
            if metrics is None:
                failed[m.name] = "no metrics.json: the report was not rendered"
            else:
                ok[m.name], runs[m.name] = metrics, m.run
        if primary_metric is None:
            primary_metric = default_primary_metric(any("classification" in m["task"] for m in ok.values()))
        if primary_metric not in PRIMARY:
            raise ValueError(f"primary_metric: expected one of {', '.join(PRIMARY)}; got {primary_metric!r}")
        return cls(out_root, primary_metric, ok, failed, runs)

    def _value(self, name, metric=None):
        h = self.ok[name]["headline"].get(metric or self.primary_metric)
        return (h["value"], h.get("interval")) if h else (float("nan"), None)

    def ranking(self, names=None):
        """Model names (default: every model), best first by the primary metric (models without it last)."""
        def key(n):
            v = self._value(n)[0]
            return (1, 0.0) if v is None or (isinstance(v, float) and math.isnan(v)) else (0, -v)
        return sorted(self.ok if names is None else names, key=key)

    def groups(self):
        """The models grouped by evaluation data, the largest group first.

        Returns
        -------
        list of DataGroup
        """
        found = {}
        for name, run in self.runs.items():
            found.setdefault(data_key(run), []).append(name)
        out = []
        for key, names in found.items():
            folders = []
            for n in names:
                folder = Path(str(self.runs[n].get("dataset", {}).get("root", ""))).name
                if folder and folder not in folders:
                    folders.append(folder)
            run = self.runs[names[0]]
            images = run.get("inference", {}).get("images", run.get("dataset", {}).get("images", 0))
            out.append(DataGroup(key, tuple(sorted(folders)), images, tuple(self.ranking(names))))
        return sorted(out, key=lambda g: (-len(g.models), g.title, g.key))

    def _group_heading(self, g):
        fp = g.key[:12] if not g.key.startswith("folder ") else "none (an earlier run)"
        return (f"<h3>Evaluation data: {html.escape(g.title)}</h3>"
                f"<p>{g.images:,} images; data fingerprint {html.escape(fp)}</p>")

    def _labels_line(self, g, base):
        """One line on the group's label review (suspected label errors, duplicates), linking its page."""
        from ..outputs import LABELS_HTML, labels_dir, load_label_summary

        folder = labels_dir(self.out_root, g.key, g.title)
        s = load_label_summary(folder)
        if s is None:
            return ""
        link = quote(Path(os.path.relpath(folder / LABELS_HTML, base)).as_posix())
        warn = ' class="evallib-warn"' if s.get("error") or s.get("ranking_changed") else ""
        text = s.get("line") or f"Label review failed: {s.get('error')}"
        more = "" if s.get("error") else f' <a href="{html.escape(link)}">Review the suspected labels</a>'
        return f"<p{warn}><b>Test labels:</b> {html.escape(text)}{more}</p>"

    def leaderboard(self, *, links_from=None):
        """One ranked table per evaluation data, with intervals, speed, size and links to each report.

        ``links_from`` is the folder of the page or notebook that shows the table (default: the
        working directory, which for a notebook's kernel is the notebook's folder).

        Returns
        -------
        LeaderboardDisplay
        """
        base = Path.cwd() if links_from is None else links_from
        pm = self.primary_metric
        others = [m for m in (*PRIMARY, "fnir_at_fpir")  # FNIR: shown, never the primary metric (lower is better)
                  if m != pm and any(m in x["headline"] for x in self.ok.values())]
        groups = []
        for g in self.groups():
            rows = []
            for name in g.models:
                m = self.ok[name]
                v, iv = self._value(name)
                inf = m["run"]["inference"]
                rows.append({"model": name, "value": v, "interval": iv,
                             "others": [self._value(name, o)[0] if o in m["headline"] else None for o in others],
                             "images_per_second": inf.get("images_per_second"),
                             "model_mb": m["run"]["model"]["size_bytes"] / 1e6,
                             "link": report_link(self.out_root / name, base)})
            groups.append((self._group_heading(g) + self._labels_line(g, base), rows))
        return LeaderboardDisplay(pm, others, groups)

    def paired(self, n_boot=1000, seed=0, *, max_others=5):
        """Within each evaluation data, each model against the best, on the images both evaluated.

        Differences come with paired bootstrap intervals and McNemar's test; models evaluated on
        different data are never compared. With many models, the best is compared with the next
        ``max_others`` by the primary metric (each comparison is a bootstrap of its own; the
        heading says how many were left out).

        Returns
        -------
        PairedComparisonDisplay
        """
        if max_others < 1:
            raise ValueError(f"max_others: expected 1 or more; got {max_others}")
        groups = [(g, [n for n in g.models if "classification" in self.ok[n]]) for g in self.groups()]
        groups = [(g, ranked) for g, ranked in groups if len(ranked) >= 2]
        out = []
        for g, ranked in groups:
            left = len(ranked) - 1 - max_others
            heading = self._group_heading(g) + (
                f"<p>The best model against the next {max_others} by {html.escape(self.primary_metric)}; "
                f"{left:,} more are ranked in the leaderboard, not compared here.</p>" if left > 0 else "")
            out.append((heading, ranked[0], self._paired_rows(ranked[0], ranked[1:1 + max_others], n_boot, seed)))
        return PairedComparisonDisplay(out)

    def _paired_rows(self, best, others, n_boot, seed):
        from ..metrics import paired_comparison

        pb = load_predictions(self.out_root / best)
        rows = []
        for name in others:
            po = load_predictions(self.out_root / name)
            ib, io_, n = _align(pb, po)
            if n == 0:
                rows.append({"model": name, "metric": None, "images": 0})
                continue
            r = paired_comparison(pb["labels"][ib], pb["scores"][ib], po["scores"][io_],
                                  scores_are=pb.get("scores_are", "logits"),
                                  scores_are_b=po.get("scores_are", "logits"),
                                  n_boot=n_boot, seed=seed)
            for metric in ("accuracy", "macro_f1", "roc_auc_macro"):
                d = r[metric]
                rows.append({"model": name, "metric": metric, "difference": d["difference"], "interval": d["interval"],
                             "p_value": r["mcnemar"]["p_value"] if metric == "accuracy" else None, "images": n})
        return rows

    def by_slice(self, *, max_others=5, alpha=0.05):
        """Within each evaluation data, a slice × model table: each model's accuracy on each slice with its 95%
        interval, and each model against the best by McNemar's test per slice after Benjamini–Hochberg.

        Models are compared only on the images they all evaluated (the same data fingerprint, then the same
        files with the same labels), on the slicing columns their metrics steps found alike on those images
        (the best model's metadata, folder slices and binned image properties). With many models, the best is
        compared with the next ``max_others``.

        Returns
        -------
        Section of ModelsBySliceDisplay (one per evaluation data), or an HtmlDisplay when no data has two
        classification models with slices
        """
        from ..evaluation import read_slices
        from ..metrics.slices import models_by_slice
        from ._base import Section
        from .slices import ModelsBySliceDisplay

        if max_others < 1:
            raise ValueError(f"max_others: expected 1 or more; got {max_others}")
        shown, why = [], []
        for g in self.groups():
            ranked = [n for n in g.models if "classification" in self.ok[n]]
            if len(ranked) < 2:
                continue
            chosen = ranked[:1 + max_others]
            ref = chosen[0]
            found = {n: read_slices(self.out_root / n) for n in chosen}
            if found[ref] is None or not found[ref].columns:
                why.append(f"{g.title}: {ref} has no slicing columns (no metadata, folder slices or varied image "
                           f"properties)")
                continue
            preds = {n: load_predictions(self.out_root / n) for n in chosen}
            pr = preds[ref]
            rows = {ref: np.arange(len(pr["labels"]))}
            for n in chosen[1:]:
                ib, io_, _ = _align(pr, preds[n])
                m = np.full(len(pr["labels"]), -1)
                m[ib] = io_
                rows[n] = m
            common = np.flatnonzero(np.all([rows[n] >= 0 for n in chosen], axis=0))
            if len(common) == 0:
                why.append(f"{g.title}: the models share no image")
                continue
            columns, left = {}, []
            for name, col in found[ref].columns.items():
                alike = all(found[n] is not None and name in found[n].columns
                            and np.array_equal(np.asarray(found[n].columns[name])[rows[n][common]],
                                               np.asarray(col)[common]) for n in chosen[1:])
                if alike:
                    columns[name] = np.asarray(col)[common]
                else:
                    left.append(name)
            if not columns:
                why.append(f"{g.title}: no slicing column is alike for every model")
                continue
            ref_index = {c: k for k, c in enumerate(pr["classes"])}
            predicted = {}
            for n in chosen:  # predicted classes in the reference's class order (models may order them otherwise)
                p = preds[n]
                names = np.asarray(p["classes"])[p["scores"][rows[n][common]].argmax(1)]
                predicted[n] = np.array([ref_index.get(c, -1) for c in names], dtype=np.int64)
            report = ((self.runs[ref].get("params") or {}).get("report") or {})
            result = models_by_slice(pr["labels"][common], predicted, columns, reference=ref,
                                     min_slice_size=int(report.get("min_slice_size", 30)), alpha=alpha)
            more = len(ranked) - len(chosen)
            heading = self._group_heading(g) + "".join(
                f"<p>{html.escape(t)}</p>" for t in (
                    [f"{ref} against the next {len(chosen) - 1} by {self.primary_metric}; {more:,} more are not "
                     f"compared here."] if more > 0 else []) + (
                    [f"Compared on the {len(common):,} images every model evaluated."]
                    if len(common) < len(pr["labels"]) else []) + (
                    [f"Left out (not alike for every model): {', '.join(left)}."] if left else []))
            shown.append(ModelsBySliceDisplay.from_result(result, heading=heading))
        if not shown:
            text = "; ".join(why) or "no evaluation data has two classification models"
            return HtmlDisplay(f"<p><i>No slice table: {html.escape(text)}.</i></p>", title="Models by slice")
        return Section(shown, title="Models by slice")

    def roc_overlay(self):
        """ROC curves of every model: micro-average for classification, TAR/FAR for verification.

        With more than one evaluation data set, each line's label names its data.

        Returns
        -------
        Panel of RocDisplay (one or two panels), or an HtmlDisplay when there is no curve
        """
        from ._base import Panel
        from .classification import Curve, RocDisplay

        groups = self.groups()
        label = {n: f"{n} ({g.title})" if len(groups) > 1 else n for g in groups for n in g.models}
        ranked = self.ranking()  # with many models, the best MAX_CURVES of each panel (a legend stays readable)
        cls = [n for n in ranked if "classification" in self.ok[n]]
        ver = [n for n in ranked if "verification" in self.ok[n]]

        def title(what, names):
            return what + (f": the best {MAX_CURVES} of {len(names)} models by {self.primary_metric}"
                           if len(names) > MAX_CURVES else "")

        panels = [RocDisplay([Curve(label[n], *(self.ok[n][part][roc][k] for k in ("fpr", "tpr")))
                              for n in names[:MAX_CURVES]], title=title(t, names), log_x=log)
                  for names, t, log, part, roc in (
                      (cls, "Classification ROC (micro-average)", False, "classification", "roc_micro"),
                      (ver, "Verification ROC (TAR against FAR)", True, "verification", "roc")) if names]
        if not panels:
            return HtmlDisplay("<p><i>No curves to show.</i></p>", title="ROC curves of all models")
        return Panel(panels, title="ROC curves of all models", how_to_read=(
            "Each line is one model; the higher the curve, the better at every operating point."))

    def versions(self, *, links_from=None):
        """The version comparisons of these models, each linked: the pages ``evallib compare`` wrote
        (``out_root/compare/<old>__<new>/compare.html``) and each report's view of its ``report.baseline``.

        ``links_from`` as for :meth:`leaderboard`. Returns an HtmlDisplay.
        """
        from ..outputs import COMPARE_HTML, scan_comparisons

        base = Path.cwd() if links_from is None else links_from

        def link(target, text, anchor=""):
            url = quote(Path(os.path.relpath(target, base)).as_posix()) + anchor
            return Markup(f'<a href="{html.escape(url)}">{html.escape(text)}</a>')

        rows = []
        for folder, c in scan_comparisons(self.out_root):
            o = (c.get("regression") or {}).get("overall") or {}
            flagged = sum(bool(r.get("flagged")) for part in ("classes", "groups")
                          for r in (c.get("regression") or {}).get(part, []))
            gate = c.get("gate")
            budgets = [] if gate is None else \
                [f"{what} {gate[key]:g}" for key, what in (("max_nfr", "max NFR"),
                                                           ("max_nfr_over_floor", "max NFR over the floor"))
                 if gate.get(key) is not None]
            rows.append([c.get("old"), c.get("new"), c.get("images"), o.get("nfr", "n/a"),
                         format_interval(*o["intervals"]["nfr"]) if o.get("intervals") else "n/a", o.get("pfr", "n/a"),
                         flagged, "" if gate is None else ("passed" if gate["passed"] else "failed") +
                         f" ({', '.join(budgets)})",
                         link(folder / COMPARE_HTML, "comparison page") if (folder / COMPARE_HTML).exists() else ""])
        for name, run in sorted(self.runs.items()):
            baseline = ((run.get("params") or {}).get("report") or {}).get("baseline")
            if baseline and baseline != name:
                rows.append([baseline, name, "", "", "", "", "", "",
                             link(self.out_root / name / REPORT_HTML, f"{name} report", "#sec-changes")
                             if (self.out_root / name / REPORT_HTML).exists() else f"{name} report (not rendered)"])
        if not rows:
            return HtmlDisplay("<p><i>No version comparisons: run <code>evallib compare OLD NEW</code>, or name a "
                               "model's report.baseline in its params.</i></p>", title="Version comparisons")
        return HtmlDisplay(guide(
            "What each new version breaks: negative flips (images the old model got right and the new one gets "
            "wrong) with their rate (NFR) and 95% interval, the positive flip rate, and the classes and slices "
            "flagged as regressions. A report link opens its 'What changed since' section.")
            + html_table(rows, ["old", "new", "images", "NFR", "95% interval", "PFR", "rows flagged",
                                "gate", "page"]), title="Version comparisons")

    def failures(self):
        """The models that failed, with their error (an HtmlDisplay)."""
        if not self.failed:
            return HtmlDisplay("<p>Every model evaluated and rendered.</p>", title="Failed models")
        return HtmlDisplay('<p class="evallib-warn">These models failed; their error is below, the others are ranked '
                           'above.</p>' + html_table([[n, e] for n, e in self.failed.items()], ["model", "error"]),
                           title="Failed models")


@dataclass(repr=False)
class LeaderboardDisplay(Display):
    """The models ranked within each evaluation data, best first, with intervals and links to their reports.

    ``plot`` draws each model's primary metric with its 95% interval (the first data group, or
    ``group=k``), best at the top.

    Parameters
    ----------
    primary_metric : str
    others : list of str
        The other headline metrics, as columns.
    groups : list of (heading HTML, rows)
        Each row: ``{"model", "value", "interval", "others", "images_per_second", "model_mb", "link"}``.
    """

    primary_metric: str
    others: list
    groups: list
    title: str = "Leaderboard"

    @classmethod
    def from_predictions(cls, values: dict, *, intervals: dict | None = None, primary_metric: str = "accuracy"):
        """From ``{model: value}`` and optional ``{model: (low, high)}``: one group, ranked best first."""
        iv = intervals or {}
        rows = [{"model": n, "value": float(v), "interval": iv.get(n), "others": [], "images_per_second": None,
                 "model_mb": None, "link": None} for n, v in values.items()]
        rows.sort(key=lambda r: (math.isnan(r["value"]), -r["value"] if not math.isnan(r["value"]) else 0.0))
        return cls(primary_metric, [], [("", rows)])

    @property
    def figsize(self):
        n = max((len(rows) for _, rows in self.groups), default=1)
        return (7.0, 1.0 + 0.4 * min(n, 40))

    def _draw(self, ax, group=0, **kwargs):
        rows = self.groups[group][1][:40] if self.groups else []
        ypos = np.arange(len(rows))[::-1]
        for y, r in zip(ypos, rows):
            v, iv = r["value"], r["interval"]
            err = [[v - iv[0]], [iv[1] - v]] if iv and all(np.isfinite(iv)) else None
            ax.errorbar([v], [y], xerr=err, fmt="o", color="#4c72b0", capsize=4)
        ax.set_yticks(ypos, [r["model"] for r in rows])
        ax.set_xlabel(f"{self.primary_metric} with its 95% interval")
        ax.grid(alpha=0.3, axis="x")
        ax.set_title("Models, best first" + (f" (the first 40 of {len(self.groups[group][1])})"
                                              if self.groups and len(self.groups[group][1]) > 40 else ""))

    def _parts(self):
        pm = self.primary_metric
        named = [f"{o} (lower is better)" if o == "fnir_at_fpir" else o for o in self.others]
        head = ["rank", "model", f"{pm} (primary)", "95% interval", *named, "images/s", "model MB", "report"]
        parts = [guide(f"Models sorted by {pm}, best first, within each evaluation data set (models evaluated on other "
                       f"data are ranked in their own table). Overlapping 95% intervals mean the ranking between those "
                       f"models is not settled by this data. images/s is measured on the machine that ran the "
                       f"evaluation, per model, including decoding and test-time augmentation.")]
        for heading, rows in self.groups:
            cells = []
            for rank, r in enumerate(rows, 1):
                link = (Markup(f'<a href="{html.escape(r["link"])}">{html.escape(r["model"])} report</a>')
                        if r["link"] else "")
                speed = r["images_per_second"]
                cells.append([rank, r["model"], r["value"], format_interval(*r["interval"]) if r["interval"] else "n/a",
                              *r["others"], f"{speed:.0f}" if speed else "n/a",
                              f"{r['model_mb']:.2f}" if r["model_mb"] is not None else "n/a", link])
            parts.append(heading + html_table(cells, head))
        return parts


@dataclass(repr=False)
class PairedComparisonDisplay(Display):
    """Each model against the best of its data group: paired differences with intervals and McNemar's p.

    ``plot`` draws the differences in ``metric`` (default accuracy) with their 95% intervals.
    """

    groups: list  # (heading HTML, best model, rows)
    title: str = "Paired comparison"

    @classmethod
    def from_predictions(cls, y_true, scores: dict, *, n_boot: int = 1000, seed: int = 0,
                         scores_are: str = "logits"):
        """From the labels and ``{model: scores}`` of models evaluated on the same images: each against the
        best by accuracy."""
        from ..metrics import paired_comparison

        y = np.asarray(y_true)
        acc = {n: float(np.mean(np.asarray(s).argmax(1) == y)) for n, s in scores.items()}
        ranked = sorted(acc, key=lambda n: -acc[n])
        rows = []
        for name in ranked[1:]:
            r = paired_comparison(y, scores[ranked[0]], scores[name], scores_are=scores_are, n_boot=n_boot, seed=seed)
            for metric in ("accuracy", "macro_f1", "roc_auc_macro"):
                d = r[metric]
                rows.append({"model": name, "metric": metric, "difference": d["difference"], "interval": d["interval"],
                             "p_value": r["mcnemar"]["p_value"] if metric == "accuracy" else None, "images": len(y)})
        return cls([("", ranked[0], rows)])

    def _draw(self, ax, metric="accuracy", group=0, **kwargs):
        heading, best, rows = self.groups[group]
        rows = [r for r in rows if r["metric"] == metric]
        ypos = np.arange(len(rows))[::-1]
        for y, r in zip(ypos, rows):
            d, iv = r["difference"], r["interval"]
            ax.errorbar([d], [y], xerr=[[d - iv[0]], [iv[1] - d]], fmt="o", color="#4c72b0", capsize=4)
        ax.axvline(0, color="grey", ls=":")
        ax.set_yticks(ypos, [r["model"] for r in rows])
        ax.set_xlabel(f"{best} minus the model: {metric}, with its paired 95% interval")
        ax.set_title(f"Against the best model, {best}")

    @property
    def figsize(self):
        n = max((len(rows) // 3 for _, _, rows in self.groups), default=1)
        return (7.0, 1.2 + 0.4 * n)

    def _parts(self):
        if not self.groups:
            return ["<p><i>Paired comparison needs at least two classification models evaluated on the same "
                    "data.</i></p>"]
        parts = []
        for heading, best, rows in self.groups:
            cells = [[r["model"], "no images in common with " + best, "", "", "", ""] if r["metric"] is None else
                     [r["model"], r["metric"], r["difference"], format_interval(*r["interval"]),
                      r["p_value"] if r["p_value"] is not None else "", r["images"]] for r in rows]
            parts.append(heading + guide(
                f"Difference = {best} minus the other model, on the same images, with a paired bootstrap interval; "
                "an interval that excludes 0 is a real difference. McNemar's p below 0.05 says the accuracy "
                "difference is unlikely to be chance.") + html_table(
                cells, ["model", "metric", f"{best} minus model", "95% interval", "McNemar p", "images compared"]))
        return parts


def _align(a, b):
    """Indices of the images both predictions hold (by file content), with matching labels."""
    ha = {h: i for i, h in enumerate(a.get("file_hashes", []))}
    ia, ib = [], []
    for j, h in enumerate(b.get("file_hashes", [])):
        i = ha.get(h)
        if i is not None and a["classes"][a["labels"][i]] == b["classes"][b["labels"][j]]:
            ia.append(i)
            ib.append(j)
    return np.array(ia, dtype=int), np.array(ib, dtype=int), len(ia)
