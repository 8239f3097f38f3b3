"""Views of label quality: suspected label errors with what they mean for the ranking, and duplicates.

:class:`LabelIssuesDisplay` shows, for the models evaluated on the same images, each model's accuracy
under "no flag is an error" and "every flag is an error", whether the ranking or a McNemar verdict
changes between the two, and the flagged images worst first (the review list). :class:`DuplicatesDisplay`
lists exact or near duplicate pairs, conflicting labels first. The numbers come from
:mod:`evallib.metrics.label_quality` and :mod:`evallib.metrics.duplicates`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from ..metrics.duplicates import DuplicatePairs, exact_duplicates, near_duplicates
from ..metrics.label_quality import LabelIssues, RankingSensitivity, label_issues, ranking_sensitivity
from ..metrics.stats import format_interval
from ._base import Display
from .html import folded_table, guide

TABLE_ROWS = 25  # longer tables show their first rows (most suspect first) and fold the rest
PLOTTED_MODELS = 40


def _label(classes, k):
    return str(classes[k]) if classes is not None else str(int(k))


@dataclass(repr=False)
class LabelIssuesDisplay(Display):
    """Suspected label errors by agreement across models, and how the ranking depends on them.

    ``plot`` draws each model's accuracy with the given labels and with the flagged labels replaced by
    the suggested ones, each with its Wilson 95% interval, joined by a line (best first by the given
    labels). The page adds the per-model table, the model pairs whose order or McNemar verdict
    changes, and the flagged images most suspect first. Flagged images are never dropped.

    Parameters
    ----------
    issues : LabelIssues
    sensitivity : RankingSensitivity
    classes : list of str or None
        Class names by index.
    names : list of str or None
        Image names (paths) by index.
    """

    issues: LabelIssues
    sensitivity: RankingSensitivity
    classes: list | None = None
    names: list | None = None
    title: str = "Can the test labels be trusted?"

    @classmethod
    def from_predictions(cls, y_true, scores, *, classes=None, names=None, min_votes=None, scores_are="auto",
                         leave_one_out=True, alpha=0.05):
        """From the given labels and each model's scores on the same images.

        Parameters
        ----------
        y_true : array-like of int, shape (n_samples,)
        scores : dict of {model name: ndarray of shape (n_samples, n_classes)}, or a sequence of such arrays
        classes, names : sequence of str, optional
        min_votes, scores_are : see :func:`~evallib.metrics.label_quality.label_issues`
        leave_one_out, alpha : see :func:`~evallib.metrics.label_quality.ranking_sensitivity`
        """
        model_names = list(scores) if isinstance(scores, dict) else None
        arrays = list(scores.values()) if isinstance(scores, dict) else scores
        issues = label_issues(y_true, arrays, min_votes=min_votes, model_names=model_names, scores_are=scores_are)
        return cls.from_result(issues, classes=classes, names=names, leave_one_out=leave_one_out, alpha=alpha)

    @classmethod
    def from_result(cls, issues, sensitivity=None, *, classes=None, names=None, leave_one_out=True, alpha=0.05):
        """From a :class:`LabelIssues` (and its :class:`RankingSensitivity`, computed when None)."""
        if not isinstance(issues, LabelIssues):
            raise TypeError(f"issues: expected a LabelIssues from label_issues(); got {type(issues).__name__}")
        if sensitivity is None:
            sensitivity = ranking_sensitivity(issues, leave_one_out=leave_one_out, alpha=alpha)
        if classes is not None:
            classes = [str(c) for c in classes]
            if len(classes) <= int(issues.given_labels.max()):
                raise ValueError(f"classes: expected a name for each class index up to "
                                 f"{int(issues.given_labels.max())}; got {len(classes)} names")
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != issues.n_samples:
                raise ValueError(f"names: expected {issues.n_samples} image names; got {len(names)}")
        return cls(issues, sensitivity, classes, names)

    @property
    def figsize(self):
        return (7.0, 1.4 + 0.45 * min(self.issues.n_models, PLOTTED_MODELS))

    def _draw(self, ax, **kwargs):
        s = self.sensitivity
        order = s.ranking_given[:PLOTTED_MODELS]
        ypos = np.arange(len(order))[::-1]
        for y, m in zip(ypos, order):
            a, c = s.accuracy[m], s.accuracy_corrected[m]
            ax.plot([a, c], [y + 0.12, y - 0.12], color="#999999", lw=1.5, zorder=1)
            ax.errorbar([a], [y + 0.12], xerr=[[a - s.accuracy_interval[m, 0]], [s.accuracy_interval[m, 1] - a]],
                        fmt="o", color="#4c72b0", capsize=3, label="given labels (no flag is an error)" if y == ypos[0]
                        else None)
            ax.errorbar([c], [y - 0.12], xerr=[[c - s.accuracy_corrected_interval[m, 0]],
                                               [s.accuracy_corrected_interval[m, 1] - c]],
                        fmt="s", color="#dd8452", capsize=3,
                        label="suggested labels on flagged images (every flag is an error)" if y == ypos[0] else None)
        ax.set_yticks(ypos, [s.model_names[m] for m in order])
        ax.set_xlabel("accuracy with its 95% interval")
        ax.grid(alpha=0.3, axis="x")
        if len(order):
            ax.legend(loc="lower left", fontsize=8, bbox_to_anchor=(0, 1.0), frameon=False)
        shown = "" if s.model_names and len(order) == len(s.model_names) else f" (the first {len(order)})"
        ax.set_title(f"Accuracy under the two readings of {self.issues.n_flagged:,} flags{shown}", fontsize=10,
                     pad=40)

    def _summary(self):
        i, s = self.issues, self.sensitivity
        out = []
        if i.circular:
            out.append('<p class="evallib-warn">One model only: the flags are that model\'s own opinion of the labels '
                       'it is evaluated on (circular). Its accuracy "if every flag is an error" is optimistic by '
                       'construction; evaluate more models on the same data for flags that can judge it.</p>')
        elif s.circular:
            out.append('<p class="evallib-warn">Each model is judged by flags it helped raise (leave_one_out=False): '
                       'its accuracy "if every flag is an error" is optimistic.</p>')
        rule = (f"at least {i.min_votes} of the {i.n_models} models" if i.n_models > 1 else "the model")
        text = (f"{i.n_flagged:,} of {i.n_samples:,} images ({i.n_flagged / i.n_samples:.1%}) are flagged: {rule} "
                f"confidently disagree with the given label (confident learning's per-class thresholds). Flags are "
                f"candidates for review, not corrections: in published audits about half were confirmed.")
        if s.pairs:
            text += (" The ranking " + ("changes" if s.ranking_changed else "does not change")
                     + " between the two readings of the flags, and "
                     + (f"{int(s.verdict_changed.sum())} McNemar verdict(s) change." if s.any_verdict_changed
                        else "no McNemar verdict changes."))
        if s.leave_one_out:
            text += " Each model is judged by the flags of the other models only, never by its own."
        out.append(f"<p>{html.escape(text)}</p>")
        return out

    def _model_table(self):
        s = self.sensitivity
        rank_g = np.empty(len(s.model_names), int)
        rank_c = np.empty(len(s.model_names), int)
        rank_g[s.ranking_given] = np.arange(1, len(s.model_names) + 1)
        rank_c[s.ranking_corrected] = np.arange(1, len(s.model_names) + 1)
        rows = [[s.model_names[m], float(s.accuracy[m]), format_interval(*s.accuracy_interval[m]),
                 int(s.n_flagged[m]), float(s.accuracy_flagged[m]), format_interval(*s.accuracy_flagged_interval[m]),
                 float(s.accuracy_corrected[m]), format_interval(*s.accuracy_corrected_interval[m]),
                 int(rank_g[m]), int(rank_c[m])] for m in s.ranking_given]
        head = ["model", "accuracy (no flag is an error)", "95% interval", "flagged images", "accuracy on them",
                "95% interval", "accuracy (every flag is an error)", "95% interval", "rank", "rank if flags are errors"]
        return folded_table(rows, head, shown=TABLE_ROWS, what="models")

    def _pair_table(self):
        s = self.sensitivity
        if not s.pairs:
            return ""
        order = sorted(range(len(s.pairs)), key=lambda k: (not s.verdict_changed[k], s.p_adjusted_given[k]))
        rows = [[s.model_names[s.pairs[k][0]], s.model_names[s.pairs[k][1]], s.verdict_given[k],
                 float(s.p_adjusted_given[k]), s.verdict_corrected[k], float(s.p_adjusted_corrected[k]),
                 "yes" if s.verdict_changed[k] else "no"] for k in order]
        head = ["model a", "model b", "verdict (no flag is an error)", "BH-adjusted p",
                "verdict (every flag is an error)", "BH-adjusted p", "changed"]
        return (guide(f"McNemar's exact test on every pair of models, Benjamini-Hochberg across pairs at "
                      f"{s.alpha:g}; pairs whose verdict changes come first.")
                + folded_table(rows, head, shown=TABLE_ROWS, what="model pairs"))

    def _flag_table(self):
        i = self.issues
        if i.n_flagged == 0:
            return "<p>No image is flagged.</p>"
        rows = []
        for r in i.rows(classes=self.classes, names=self.names):
            rows.append([r["image"], r["given_label"], r["suggested_label"], r["votes"], r["quality"],
                         *[f"{r[f'{m} top-1']} ({r[f'{m} confidence']:.2f})" for m in i.model_names]])
        head = ["image", "given label", "suggested label", "models disagreeing", "quality",
                *[f"{m}: top-1 (confidence)" for m in i.model_names]]
        return (guide("Flagged images, most suspect first (lowest quality: the mean over models of the probability of "
                      "the given label minus the highest other probability). Review them; nothing was dropped.")
                + folded_table(rows, head, shown=TABLE_ROWS, what="flagged images"))

    def _parts(self):
        return [*self._summary(),
                guide("Each model's accuracy with the given labels (circle) and with the suggested labels on "
                      "flagged images (square). If about half the flags are real errors, as in published audits, the "
                      "truth lies near the middle; lines that cross mean the ranking depends on the labels."),
                self._figure_html(), self._model_table(), self._pair_table(), self._flag_table()]


@dataclass(repr=False)
class DuplicatesDisplay(Display):
    """Duplicate pairs (exact or near, within the evaluation set or against the training data), conflicting
    labels first. A table only.

    Parameters
    ----------
    result : DuplicatePairs
    names : list of str or None
        Evaluation image names by index.
    reference_names : list of str or None
        Training image names by index (leakage).
    labels, reference_labels : list of str or None
        Labels by index, shown beside the names.
    """

    result: DuplicatePairs
    names: list | None = None
    reference_names: list | None = None
    labels: list | None = None
    reference_labels: list | None = None
    title: str = "Duplicates"

    @classmethod
    def from_embeddings(cls, embeddings, *, threshold=0.95, labels=None, names=None, reference=None,
                        reference_labels=None, reference_names=None):
        """Near duplicates by cosine similarity (:func:`~evallib.metrics.duplicates.near_duplicates`)."""
        res = near_duplicates(embeddings, threshold=threshold, labels=labels, reference=reference,
                              reference_labels=reference_labels)
        return cls.from_result(res, names=names, labels=labels, reference_names=reference_names,
                               reference_labels=reference_labels)

    @classmethod
    def from_hashes(cls, hashes, *, labels=None, names=None, reference=None, reference_labels=None,
                    reference_names=None):
        """Exact duplicates by content hash (:func:`~evallib.metrics.duplicates.exact_duplicates`)."""
        res = exact_duplicates(hashes, labels=labels, reference=reference, reference_labels=reference_labels)
        return cls.from_result(res, names=names, labels=labels, reference_names=reference_names,
                               reference_labels=reference_labels)

    @classmethod
    def from_result(cls, result, *, names=None, labels=None, reference_names=None, reference_labels=None):
        """From a :class:`DuplicatePairs`."""
        if not isinstance(result, DuplicatePairs):
            raise TypeError(f"result: expected a DuplicatePairs; got {type(result).__name__}")

        def strings(name, values, columns):
            """As str, after checking that every index the pairs use has a value."""
            if values is None:
                return None
            values = [str(v) for v in values]
            need = int(result.pairs[:, columns].max()) + 1 if result.n_pairs else 0
            if len(values) < need:
                raise ValueError(f"{name}: expected a value for every image up to index {need - 1}; "
                                 f"got {len(values)}")
            return values

        where = "against the training data" if result.against_reference else "in the evaluation set"
        title = f"{'Exact' if result.kind == 'exact' else 'Near'} duplicates {where}"
        own = [0] if result.against_reference else [0, 1]
        return cls(result, names=strings("names", names, own), labels=strings("labels", labels, own),
                   reference_names=strings("reference_names", reference_names, [1]),
                   reference_labels=strings("reference_labels", reference_labels, [1]), title=title)

    def _name(self, k, reference=False):
        names = self.reference_names if reference else self.names
        labels = self.reference_labels if reference else self.labels
        text = names[k] if names is not None else f"#{int(k)}"
        return f"{text} ({labels[k]})" if labels is not None else text

    def _parts(self):
        r = self.result
        how = ("identical file contents" if r.kind == "exact"
               else f"embeddings with cosine similarity at least {r.threshold:g}")
        if r.n_pairs == 0:
            return [f"<p>No duplicates: no two images have {html.escape(how)}.</p>"]
        other = "training image" if r.against_reference else "image"
        labelled = self.labels is not None and (self.reference_labels is not None or not r.against_reference)
        text = f"{r.n_pairs:,} pair{'s' if r.n_pairs != 1 else ''} of images with {how}"
        if labelled and r.n_conflicting:
            text += (f"; {r.n_conflicting:,} with conflicting labels, listed first (one of the two labels is wrong, "
                     f"or the class is ambiguous).")
        else:
            text += "; none with conflicting labels." if labelled else "."
        if r.against_reference:
            text += " Evaluation images that also appear in the training data measure memory, not generalization."
        rows = [[self._name(i), self._name(j, reference=r.against_reference), float(s),
                 *(["yes" if c else "no"] if labelled else [])]
                for (i, j), s, c in zip(r.pairs.tolist(), r.similarity, r.conflicting)]
        head = ["image", other, "cosine similarity" if r.kind == "near" else "similarity",
                *(["conflicting labels"] if labelled else [])]
        warn = ' class="evallib-warn"' if r.n_conflicting or r.against_reference else ""
        return [f"<p{warn}>{html.escape(text)}</p>", folded_table(rows, head, shown=TABLE_ROWS, what="pairs")]
