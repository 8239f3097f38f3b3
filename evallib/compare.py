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

from .display import CSS, Markup, figure_image, guide, html_table, show
from .outputs import REPORT_HTML, data_key, load_predictions, scan
from .evaluation import PRIMARY


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
            tasks = [m["task"] for m in ok.values()]
            primary_metric = "macro_f1" if any("classification" in t for t in tasks) else "auc"
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

    def leaderboard(self, *, links_from=None):
        """One ranked table per evaluation data, with intervals, speed, size and links to each report.

        ``links_from`` is the folder of the page or notebook that shows the table (default: the
        working directory, which for a notebook's kernel is the notebook's folder).
        """
        base = Path.cwd() if links_from is None else links_from
        pm = self.primary_metric
        others = [m for m in ("accuracy", "macro_f1", "top_5", "roc_auc_macro", "auc", "tar_at_far", "lfw_accuracy")
                  if m != pm and any(m in x["headline"] for x in self.ok.values())]
        head = ["rank", "model", f"{pm} (primary)", "95% interval", *others, "images/s", "model MB", "report"]
        parts = []
        for g in self.groups():
            rows = []
            for rank, name in enumerate(g.models, 1):
                m = self.ok[name]
                v, iv = self._value(name)
                inf = m["run"]["inference"]
                href = report_link(self.out_root / name, base)
                link = Markup(f'<a href="{html.escape(href)}">{html.escape(name)} report</a>')
                cells = [rank, name, v, f"[{iv[0]:.4f}, {iv[1]:.4f}]" if iv else "n/a"]
                cells += [self._value(name, o)[0] if o in m["headline"] else None for o in others]
                speed = inf.get("images_per_second")
                cells += [f"{speed:.0f}" if speed else "n/a", f"{m['run']['model']['size_bytes'] / 1e6:.2f}", link]
                rows.append(cells)
            parts.append(self._group_heading(g) + html_table(rows, head))
        speed_note = ("images/s is measured on the machine that ran the evaluation, per model, including "
                      "decoding and test-time augmentation.")
        show(CSS + guide(f"Models sorted by {pm}, best first, within each evaluation data set (models evaluated on "
                         f"other data are ranked in their own table). Overlapping 95% intervals mean the ranking "
                         f"between those models is not settled by this data. {speed_note}") + "".join(parts))

    def paired(self, n_boot=1000, seed=0):
        """Within each evaluation data, each model against the best, on the images both evaluated.

        Differences come with paired bootstrap intervals and McNemar's test; models evaluated on
        different data are never compared.
        """
        groups = [(g, [n for n in g.models if "classification" in self.ok[n]]) for g in self.groups()]
        groups = [(g, ranked) for g, ranked in groups if len(ranked) >= 2]
        if not groups:
            show("<p><i>Paired comparison needs at least two classification models evaluated on the same "
                 "data.</i></p>")
            return
        parts = []
        for g, ranked in groups:
            best = ranked[0]
            parts.append(self._group_heading(g) + guide(
                f"Difference = {best} minus the other model, on the same images, with a paired bootstrap "
                "interval; an interval that excludes 0 is a real difference. McNemar's p below 0.05 says the "
                "accuracy difference is unlikely to be chance.") + html_table(
                self._paired_rows(best, ranked[1:], n_boot, seed),
                ["model", "metric", f"{best} minus model", "95% interval", "McNemar p", "images compared"]))
        show(CSS + "".join(parts))

    def _paired_rows(self, best, others, n_boot, seed):
        from .metrics import paired_comparison

        pb = load_predictions(self.out_root / best)
        rows = []
        for name in others:
            po = load_predictions(self.out_root / name)
            ib, io_, n = _align(pb, po)
            if n == 0:
                rows.append([name, "no images in common with " + best, "", "", "", ""])
                continue
            r = paired_comparison(pb["labels"][ib], pb["scores"][ib], po["scores"][io_],
                                  scores_are=pb.get("scores_are", "logits"), scores_are_b=po.get("scores_are", "logits"),
                                  n_boot=n_boot, seed=seed)
            for metric in ("accuracy", "macro_f1", "roc_auc_macro"):
                d = r[metric]
                rows.append([name, metric, d["difference"], f"[{d['interval'][0]:.4f}, {d['interval'][1]:.4f}]",
                             r["mcnemar"]["p_value"] if metric == "accuracy" else "", n])
        return rows

    def roc_overlay(self):
        """ROC curves of every model: micro-average for classification, TAR/FAR for verification.

        With more than one evaluation data set, each line's label names its data.
        """
        from matplotlib.figure import Figure

        from .plots import plot_roc

        groups = self.groups()
        label = {n: f"{n} ({g.title})" if len(groups) > 1 else n for g in groups for n in g.models}
        cls = {label[n]: (m["classification"]["roc_micro"]["fpr"], m["classification"]["roc_micro"]["tpr"])
               for n, m in self.ok.items() if "classification" in m}
        ver = {label[n]: (m["verification"]["roc"]["fpr"], m["verification"]["roc"]["tpr"])
               for n, m in self.ok.items() if "verification" in m}
        panels = [(c, t, log) for c, t, log in ((cls, "Classification ROC (micro-average)", False),
                                                (ver, "Verification ROC (TAR against FAR)", True)) if c]
        if not panels:
            show("<p><i>No curves to show.</i></p>")
            return
        fig = Figure(figsize=(6 * len(panels), 4.5), layout="constrained")
        for ax, (curves, title, log) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels):
            plot_roc(curves, ax=ax, title=title, log_far=log)
        show(guide("Each line is one model; the higher the curve, the better at every operating point."),
             figure_image(fig))

    def failures(self):
        if not self.failed:
            show("<p>Every model evaluated and rendered.</p>")
            return
        show(CSS + '<p class="evallib-warn">These models failed; their error is below, the others are ranked '
             'above.</p>' + html_table([[n, e] for n, e in self.failed.items()], ["model", "error"]))


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
