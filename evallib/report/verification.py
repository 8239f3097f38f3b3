"""Verification views: genuine and impostor score histograms, metrics against threshold, and the
verification section (ROC with log FAR, the policies' thresholds, TAR at FAR, the threshold table)."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from ..metrics.stats import format_interval
from ..metrics.sweep import ThresholdSweep
from ..metrics.verification import VerificationResult, evaluate_verification
from ._base import Display, Panel
from .classification import RocDisplay
from .html import guide, html_table


def _threshold(result: VerificationResult, policy: str) -> float:
    chosen = result.policies.get(policy)
    return chosen.threshold if chosen else float("nan")


@dataclass(repr=False)
class ScoreHistogramDisplay(Display):
    """Similarity of genuine and impostor pairs as two densities, with the chosen threshold.

    Parameters
    ----------
    histogram : dict
        ``{"edges", "genuine", "impostor"}``: bin edges and the pair counts in each bin.
    threshold : float, optional
    """

    histogram: dict
    threshold: float = float("nan")
    title: str = "Similarity of genuine and impostor pairs"
    figsize: tuple = (6.0, 4.2)

    @classmethod
    def from_predictions(cls, genuine_scores, impostor_scores, *, threshold: float = float("nan"), bins: int = 100):
        """From the scores of genuine and impostor pairs (any similarity)."""
        g = np.asarray(genuine_scores, dtype=np.float64)
        i = np.asarray(impostor_scores, dtype=np.float64)
        both = np.concatenate([g, i])
        if not len(both):
            raise ValueError("genuine_scores, impostor_scores: expected at least one score; got none")
        edges = np.linspace(both.min(), both.max(), bins + 1) if both.max() > both.min() else \
            np.array([both.min() - 0.5, both.min() + 0.5])
        return cls({"edges": edges.tolist(), "genuine": np.histogram(g, edges)[0].tolist(),
                    "impostor": np.histogram(i, edges)[0].tolist()}, threshold)

    @classmethod
    def from_embeddings(cls, embeddings, labels, *, policy: str = "max_f1", **kwargs):
        """Every pair of ``embeddings`` scored; pairs with the same label are genuine."""
        return cls.from_result(evaluate_verification(embeddings, labels, **kwargs), policy=policy)

    @classmethod
    def from_result(cls, result: VerificationResult, *, policy: str = "max_f1"):
        return cls(result.histogram, _threshold(result, policy))

    def _draw(self, ax, **kwargs):
        from .plots import plot_score_histograms

        plot_score_histograms(self.histogram, ax=ax, threshold=self.threshold)


@dataclass(repr=False)
class ThresholdMetricsDisplay(Display):
    """Accuracy, precision, recall and F1 of the accept/reject decision at every threshold."""

    sweep: ThresholdSweep
    threshold: float = float("nan")
    title: str = "Metrics against threshold"
    figsize: tuple = (7.0, 4.0)
    how_to_read: str = ("Accuracy, precision, recall and F1 of the accept/reject decision at every threshold; the "
                        "dashed line is the recommended threshold.")

    @classmethod
    def from_predictions(cls, y_true, scores, *, threshold: float = float("nan")):
        """From binary labels (same identity or not) and scores, higher meaning more alike."""
        from ..metrics.sweep import threshold_sweep

        return cls(threshold_sweep(np.asarray(y_true, dtype=bool), np.asarray(scores, dtype=np.float64)), threshold)

    @classmethod
    def from_result(cls, result: VerificationResult, *, policy: str = "max_f1"):
        return cls(result.sweep, _threshold(result, policy))

    def _draw(self, ax, **kwargs):
        from .plots import plot_threshold_metrics

        plot_threshold_metrics(self.sweep, ax=ax, threshold=self.threshold)


@dataclass(repr=False)
class VerificationDisplay(Display):
    """The verification section: score histograms and ROC (TAR against FAR, log scale) side by side,
    then the metrics against threshold and the tables of policies, TAR at FAR and thresholds.

    ``plot`` draws the two panels the section opens with (``ax``: two Axes).
    """

    result: VerificationResult
    name: str = "model"
    policy: str = "max_f1"
    far_target: float = 1e-3
    center: VerificationResult | None = None
    title: str = "Verification"

    @classmethod
    def from_embeddings(cls, embeddings, labels, *, policy: str = "max_f1", far_target: float = 1e-3,
                        name: str = "model", n_bootstrap: int = 200, **kwargs):
        """All pairs of ``embeddings`` (cosine similarity); pairs with the same label are genuine."""
        r = evaluate_verification(embeddings, labels, policy_far=far_target, n_bootstrap=n_bootstrap, **kwargs)
        return cls(r, name=name, policy=policy, far_target=far_target)

    @classmethod
    def from_result(cls, result: VerificationResult, *, policy: str = "max_f1", far_target: float = 1e-3,
                    name: str = "model", center: VerificationResult | None = None):
        return cls(result, name=name, policy=policy, far_target=far_target, center=center)

    @property
    def n_axes(self) -> int:
        return 2

    def _axes_meaning(self):
        return "score histograms, ROC"

    @property
    def figsize(self):
        return (12.0, 4.2)

    @property
    def roc(self) -> RocDisplay:
        v = self.result
        chosen = v.policies.get(self.policy)
        sweeps = {f"{self.name} (AUC {v.auc:.4f})": v.sweep}
        if self.center is not None:
            sweeps[f"center crop only (AUC {self.center.auc:.4f})"] = self.center.sweep
        return RocDisplay.from_sweeps(sweeps, log_x=True, title="ROC (TAR against FAR)",
                                      marker=(chosen.far, chosen.tar) if chosen else None)

    def _panel(self):
        return Panel([ScoreHistogramDisplay.from_result(self.result, policy=self.policy), self.roc],
                     panel_size=(6.0, 4.2))

    def _draw(self, ax, **kwargs):
        self._panel()._draw(ax)

    def _parts(self):
        v, far, policy = self.result, self.far_target, self.policy
        iv = v.intervals
        auc = f"{v.auc:.5f}" + (f"  {format_interval(*iv['auc'])}" if "auc" in iv else "")
        head = [["pairs", f"{v.n_genuine:,} genuine, {v.n_impostor:,} impostor ({v.protocol}, "
                          f"{v.n_identities} identities)"],
                ["ROC AUC", auc + (f"  (within {v.auc_bound:.1e} of exact)" if not v.exact else "")],
                ["equal error rate", f"{v.eer:.4f} at threshold {v.eer_threshold:.4f}"]]
        key = f"tar_at_far_{far:g}"
        if key in iv:
            head.append([f"TAR at FAR {far:g}, 95% interval", format_interval(*iv[key])])
        tar_rows = [[f"{f:g}", x["tar"] if x["supported"] else "not enough impostor pairs", x["threshold"]]
                    for f, x in v.tar_at_far.items()]
        pol_rows = [[("→ " if p == policy else "") + p, c.threshold, c.accuracy, c.precision, c.recall, c.f1, c.far]
                    for p, c in v.policies.items()]
        tab = v.table
        table_rows = [[tab["threshold"][i], int(tab["tp"][i]), int(tab["fp"][i]), int(tab["tn"][i]), int(tab["fn"][i]),
                       tab["accuracy"][i], tab["precision"][i], tab["recall"][i], tab["f1"][i]]
                      for i in range(len(tab["threshold"]))]
        metrics = ThresholdMetricsDisplay.from_result(v, policy=policy)
        return [html_table(head, ["verification", ""]),
                *[f'<p class="evallib-warn">{html.escape(n)}</p>' for n in v.notes],
                guide("Left: similarity of pairs of the same identity (green) and of different identities (red); the "
                      "less they overlap the better. Right: share of genuine pairs accepted (TAR) at each rate of "
                      "impostors accepted (FAR), FAR on a log scale."),
                self._figure_html(), *metrics._parts(),
                f"<h4>Thresholds chosen by each policy (recommended: {html.escape(policy)})</h4>"
                + html_table(pol_rows, ["policy", "threshold", "accuracy", "precision", "recall (TAR)", "F1", "FAR"])
                + "<h4>TAR at FAR</h4>" + html_table(tar_rows, ["FAR", "TAR", "threshold"])
                + "<h4>Threshold table</h4>" + html_table(
                    table_rows, ["threshold", "TP", "FP", "TN", "FN", "accuracy", "precision", "recall", "F1"])]


@dataclass(repr=False)
class PairListDisplay(Display):
    """The pair-list protocol's numbers (``data.pairs``): pairs, AUC, EER and the LFW 10-fold accuracy."""

    result: VerificationResult
    title: str = "Pair list protocol"

    @classmethod
    def from_result(cls, result: VerificationResult):
        return cls(result)

    def _parts(self):
        vp = self.result
        rows = [["pairs", f"{vp.n_genuine} genuine, {vp.n_impostor} impostor"], ["ROC AUC", vp.auc], ["EER", vp.eer]]
        if vp.lfw:
            rows.append(["10-fold accuracy", f"{vp.lfw['mean']:.4f} ± {vp.lfw['std']:.4f}"])
        return ["<h4>Pair list protocol</h4>",
                guide("Accuracy on each fold uses the threshold that was best on the other nine folds (the LFW "
                      "protocol)."),
                html_table(rows, ["pair list", ""])]


__all__ = ["PairListDisplay", "ScoreHistogramDisplay", "ThresholdMetricsDisplay", "VerificationDisplay"]
