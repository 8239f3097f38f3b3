"""The comparison page: a leaderboard of every model in an output folder, paired comparisons, ROC overlay."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .display import CSS, Markup, figure_image, guide, html_table
from .report import METRICS, PRIMARY, _display
from .run import RUN, load_predictions

@dataclass
class Comparison:
    """Models found under ``out_root``: ``ok`` (name -> metrics dict) and ``failed`` (name -> error)."""

    out_root: Path
    primary_metric: str
    ok: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)

    @classmethod
    def load(cls, out_root="outputs", *, primary_metric=None):
        out_root = Path(out_root)
        ok, failed = {}, {}
        for d in sorted(p for p in out_root.iterdir() if p.is_dir()) if out_root.is_dir() else []:
            run_file, metrics_file = d / RUN, d / METRICS
            if not run_file.exists():
                continue
            run = json.loads(run_file.read_text())
            if run.get("status") != "ok":
                failed[run.get("name", d.name)] = run.get("error", "unknown error")
            elif metrics_file.exists():
                ok[run["name"]] = json.loads(metrics_file.read_text())
            else:
                failed[run["name"]] = "no metrics.json: the report was not rendered"
        if primary_metric is None:
            tasks = [m["task"] for m in ok.values()]
            primary_metric = "macro_f1" if any("classification" in t for t in tasks) else "auc"
        if primary_metric not in PRIMARY:
            raise ValueError(f"primary_metric: expected one of {', '.join(PRIMARY)}; got {primary_metric!r}")
        return cls(out_root, primary_metric, ok, failed)

    def _value(self, name, metric=None):
        h = self.ok[name]["headline"].get(metric or self.primary_metric)
        return (h["value"], h.get("interval")) if h else (float("nan"), None)

    def ranking(self):
        """Model names, best first by the primary metric (models without it last)."""
        def key(n):
            v = self._value(n)[0]
            return (1, 0.0) if v is None or (isinstance(v, float) and math.isnan(v)) else (0, -v)
        return sorted(self.ok, key=key)

    def leaderboard(self):
        """The ranked table with intervals, speed, size and links to each report."""
        pm = self.primary_metric
        head = ["rank", "model", f"{pm} (primary)", "95% interval"]
        others = [m for m in ("accuracy", "macro_f1", "top_5", "roc_auc_macro", "auc", "tar_at_far", "lfw_accuracy")
                  if m != pm and any(m in x["headline"] for x in self.ok.values())]
        head += others + ["images/s", "model MB", "report"]
        rows = []
        for rank, name in enumerate(self.ranking(), 1):
            m = self.ok[name]
            v, iv = self._value(name)
            inf = m["run"]["inference"]
            link = Markup(f'<a href="{html.escape(name)}/report.html">{html.escape(name)} report</a>')
            cells = [rank, name, v, f"[{iv[0]:.4f}, {iv[1]:.4f}]" if iv else "n/a"]
            cells += [self._value(name, o)[0] if o in m["headline"] else None for o in others]
            speed = inf.get("images_per_second")
            cells += [f"{speed:.0f}" if speed else "n/a", f"{m['run']['model']['size_bytes'] / 1e6:.2f}", link]
            rows.append(cells)
        table = html_table(rows, head)
        speed_note = ("images/s is measured on the machine that ran the evaluation, per model, including "
                      "decoding and test-time augmentation.")
        _display(CSS + guide(f"Models sorted by {pm}, best first. Overlapping 95% intervals mean the ranking "
                             f"between those models is not settled by this data. {speed_note}") + table)

    def paired(self, n_boot=1000, seed=0):
        """Each model against the best, on the images both evaluated: differences with paired intervals."""
        from .metrics import paired_comparison

        ranked = [n for n in self.ranking() if "classification" in self.ok[n]]
        if len(ranked) < 2:
            _display("<p><i>Paired comparison needs at least two classification models.</i></p>")
            return
        best = ranked[0]
        pb = load_predictions(self.out_root / best)
        rows = []
        for name in ranked[1:]:
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
        _display(CSS + guide(f"Difference = {best} minus the other model, on the same images, with a paired "
                             "bootstrap interval; an interval that excludes 0 is a real difference. McNemar's p "
                             "below 0.05 says the accuracy difference is unlikely to be chance.")
                 + html_table(rows, ["model", "metric", f"{best} minus model", "95% interval", "McNemar p",
                                     "images compared"]))

    def roc_overlay(self):
        """ROC curves of every model: micro-average for classification, TAR/FAR for verification."""
        from matplotlib.figure import Figure

        from .plots import plot_roc

        cls = {n: (m["classification"]["roc_micro"]["fpr"], m["classification"]["roc_micro"]["tpr"])
               for n, m in self.ok.items() if "classification" in m}
        ver = {n: (m["verification"]["roc"]["fpr"], m["verification"]["roc"]["tpr"])
               for n, m in self.ok.items() if "verification" in m}
        panels = [(c, t, log) for c, t, log in ((cls, "Classification ROC (micro-average)", False),
                                                (ver, "Verification ROC (TAR against FAR)", True)) if c]
        if not panels:
            _display("<p><i>No curves to show.</i></p>")
            return
        fig = Figure(figsize=(6 * len(panels), 4.5), layout="constrained")
        for ax, (curves, title, log) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels):
            plot_roc(curves, ax=ax, title=title, log_far=log)
        _display(guide("Each line is one model; the higher the curve, the better at every operating point."),
                 figure_image(fig))

    def failures(self):
        if not self.failed:
            _display("<p>Every model evaluated and rendered.</p>")
            return
        _display(CSS + '<p class="evallib-warn">These models failed; their error is below, the others are ranked '
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
