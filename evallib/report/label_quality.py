"""Views of label and data quality: suspected label errors with what they mean for the ranking, the review
cards, duplicates and image quality.

:class:`LabelIssuesDisplay` shows, for the models evaluated on the same images, each model's accuracy
under "no flag is an error" and "every flag is an error", whether the ranking or a McNemar verdict
changes between the two, and the flagged images worst first (the review list). :class:`LabelReviewDisplay`
is one card per flagged image with a filter by class. :class:`DuplicatesDisplay` lists exact, perceptual or
embedding duplicate pairs, conflicting labels first. :class:`ImageIssuesDisplay` lists the images that
are nearly black or white, blurry, low in information or of an odd size. The numbers come from
:mod:`evallib.metrics.label_quality`, :mod:`evallib.metrics.duplicates` and
:mod:`evallib.metrics.data_quality`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from ..metrics.data_quality import ISSUE_NAMES, ImageIssues, image_issues
from ..metrics.duplicates import (
    DuplicatePairs,
    exact_duplicates,
    near_duplicates,
    perceptual_duplicates,
    perceptual_hash,
)
from ..metrics.label_quality import LabelIssues, RankingSensitivity, label_issues, ranking_sensitivity
from ..metrics.stats import format_interval
from ._base import Display
from .gallery import TileDisplay, _image_source
from .html import Markup, class_filter, folded_table, guide, render_template, thumbnail_html

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
    def from_images(cls, images, *, max_distance=3, labels=None, names=None, embeddings=None, threshold=0.99,
                    reference=None, reference_labels=None, reference_names=None):
        """Near duplicates by perceptual hash (:func:`~evallib.metrics.duplicates.perceptual_duplicates`).

        ``images`` and ``reference`` are sequences of arrays (H, W) or (H, W, 3), uint8 or floats in [0, 1].
        """
        hashes = [perceptual_hash(im) for im in images]
        ref = [perceptual_hash(im) for im in reference] if reference is not None else None
        res = perceptual_duplicates(hashes, max_distance=max_distance, labels=labels, reference=ref,
                                    reference_labels=reference_labels, embeddings=embeddings, threshold=threshold)
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
        if result.kind == "perceptual":
            title += " (perceptual hash)"
        own = [0] if result.against_reference else [0, 1]
        return cls(result, names=strings("names", names, own), labels=strings("labels", labels, own),
                   reference_names=strings("reference_names", reference_names, [1]),
                   reference_labels=strings("reference_labels", reference_labels, [1]), title=title)

    def _name(self, k, reference=False):
        names = self.reference_names if reference else self.names
        labels = self.reference_labels if reference else self.labels
        text = names[k] if names is not None else f"#{int(k)}"
        return f"{text} ({labels[k]})" if labels is not None else text

    def _how(self):
        r = self.result
        if r.kind == "exact":
            return "identical file contents"
        if r.kind == "near":
            return f"embeddings with cosine similarity at least {r.threshold:g}"
        how = f"perceptual hashes at most {r.max_distance} bits (of 64) apart"
        if r.confirm_distance is not None and r.confirm_distance > r.max_distance:
            how += (f", or up to {r.confirm_distance} bits apart with embeddings of cosine similarity at least "
                    f"{r.cosine_threshold:g}")
        return how

    def _parts(self):
        r = self.result
        how = self._how()
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
        if r.kind == "perceptual":
            cos = r.cosine if r.cosine is not None else None
            rows = [[self._name(i), self._name(j, reference=r.against_reference), int(d),
                     *([float(cos[k])] if cos is not None else []), *(["yes" if c else "no"] if labelled else [])]
                    for k, ((i, j), d, c) in enumerate(zip(r.pairs.tolist(), r.distance, r.conflicting))]
            head = ["image", other, "hash distance (bits)", *(["embedding cosine"] if cos is not None else []),
                    *(["conflicting labels"] if labelled else [])]
        else:
            rows = [[self._name(i), self._name(j, reference=r.against_reference), float(s),
                     *(["yes" if c else "no"] if labelled else [])]
                    for (i, j), s, c in zip(r.pairs.tolist(), r.similarity, r.conflicting)]
            head = ["image", other, "cosine similarity" if r.kind == "near" else "similarity",
                    *(["conflicting labels"] if labelled else [])]
        warn = ' class="evallib-warn"' if r.n_conflicting or r.against_reference else ""
        return [f"<p{warn}>{html.escape(text)}</p>", folded_table(rows, head, shown=TABLE_ROWS, what="pairs")]


# ----------------------------------------------------------------------------------------- the review cards

CARDS = 200  # flagged images shown as cards (most suspect first); the rest in a table below them
THUMB = 96  # pixels of a card's longer image side
PLOTTED_CARDS = 24  # cards drawn by plot(): the most suspect
_PER_ROW = 6

_CARDS_CSS = """<style>
.lr-cards {display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 10px; margin-top: 10px;}
.lr-card {border: 1px solid #ddd; border-radius: 6px; padding: 8px; font-size: 13px; background: #fcfcfc;
           min-width: 0; overflow: hidden;}
.lr-card[hidden], tr[hidden] {display: none;}
.lr-imgs {display: flex; gap: 6px; align-items: flex-start;}
.lr-imgs figure {margin: 0; text-align: center; font-size: 11px; color: #666;}
.lr-imgs img, .dq-thumbs img {image-rendering: pixelated; border: 1px solid #ccc; background: #eee;}
.lr-path {font-family: monospace; font-size: 12px; word-break: break-all; margin: 4px 0;}
.lr-labels {margin: 4px 0;}
.lr-given {color: #b00020; font-weight: 600;} .lr-suggested {color: #1b6e20; font-weight: 600;}
.lr-card table {border-collapse: collapse; width: 100%; font-size: 12px; table-layout: fixed;}
.lr-card td {padding: 1px 4px; border-top: 1px solid #eee; overflow: hidden; text-overflow: ellipsis;
             white-space: nowrap;}
.lr-card td.num {text-align: right; font-variant-numeric: tabular-nums; width: 3.2em;}
.lr-labels span {overflow-wrap: anywhere;}
.evallib-filter-controls {position: sticky; top: 0; background: #fff; padding: 8px 0; z-index: 2;
                          border-bottom: 1px solid #eee;}
.evallib-filter-controls select {font-size: 14px; padding: 2px 4px; max-width: 260px;}
.evallib-filter-count {margin-left: 12px; color: #555;}
.lr-rest td {font-size: 12px;}
.lr-scroll {max-height: 640px; overflow: auto; border: 1px solid #eee;}
.lr-scroll .evallib-table {margin: 0;}
.dq-thumbs {display: flex; flex-wrap: wrap; gap: 8px; margin: 6px 0;}
.dq-thumbs figure {margin: 0; text-align: center; font-size: 11px; color: #555; max-width: 120px;}
</style>"""

_CARDS = """<div class="lr-cards">
{% for c in cards %}<div class="lr-card lr-item evallib-filter-item" data-given="{{ c.given }}" \
data-suggested="{{ c.suggested }}">
<div class="lr-imgs">{% if c.thumb %}<figure>{{ c.thumb }}<figcaption>image</figcaption></figure>{% endif %}
{% if c.cam %}<figure>{{ c.cam }}<figcaption>Grad-CAM</figcaption></figure>{% endif %}</div>
<div class="lr-path" title="{{ c.image }}">#{{ c.rank }} {{ c.image }}</div>
<div class="lr-labels">given <span class="lr-given">{{ c.given }}</span> &rarr; suggested
<span class="lr-suggested">{{ c.suggested }}</span></div>
<div>quality {{ c.quality }}; {{ c.votes }}</div>
<table title="each model's top-1 class and its probability">{% for m in c.models %}<tr>
<td title="{{ m.name }}">{{ m.name }}</td><td title="{{ m.top1 }}">{{ m.top1 }}</td>
<td class="num">{{ m.confidence }}</td></tr>{% endfor %}</table>
</div>
{% endfor %}
</div>
{% if rest %}
<p>The other {{ "{:,}".format(rest | length) }} flagged images, most suspect first{% if csv_name %} (all of them are \
in <a href="{{ csv_name }}">{{ csv_name }}</a>){% endif %}:</p>
<div class="lr-scroll"><table class="evallib-table lr-rest">
<thead><tr>{% for h in rest_head %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for r in rest %}<tr class="lr-item evallib-filter-item" data-given="{{ r.given }}" \
data-suggested="{{ r.suggested }}">
{% for v in r.cells %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
{% endif %}"""


def _fmt_votes(votes, n_models):
    return f"{votes} of {n_models} models disagree" if n_models > 1 else "the model disagrees"


@dataclass(repr=False)
class LabelReviewDisplay(TileDisplay):
    """One card per flagged image, most suspect first, with a filter by class: what a reviewer goes through.

    A card shows the image, its Grad-CAM for the suggested label (when a ``cam`` is given), the given and
    the suggested label, the quality score, how many models disagree, and each model's top-1 with its
    probability. The first ``cards`` flagged images are cards, the others rows of a table below them;
    the filter shows those whose given label, suggested label or either is the class chosen.
    ``plot`` draws the most suspect images (up to 24) as tiles captioned given → suggested.

    Build it with :meth:`from_predictions` (labels and each model's scores) or :meth:`from_result`
    (a :class:`~evallib.metrics.label_quality.LabelIssues`).
    """

    issues: LabelIssues | None = None
    cards: list = field(default_factory=list)
    rest: list = field(default_factory=list)
    rest_head: list = field(default_factory=list)
    filter_classes: list = field(default_factory=list)
    intro: str = ""
    csv_name: str | None = None

    @classmethod
    def from_predictions(cls, y_true, scores, *, images=None, cam=None, classes=None, names=None, min_votes=None,
                         scores_are="auto", cards=CARDS, cam_caption="", csv_name=None):
        """From the given labels and each model's scores on the same images.

        Parameters
        ----------
        y_true : array-like of int, shape (n_samples,)
        scores : dict of {model name: ndarray of shape (n_samples, n_classes)}, or a sequence of such arrays
        images : ndarray of shape (n_samples, H, W[, 3]) in [0, 1], or a function ``images(indices)``
            returning a list of arrays (only the cards' images are loaded), optional.
        cam : callable, optional
            ``cam(indices, target_classes) -> list of arrays`` (an entry may be None): each image with
            its heat map for the suggested label over it.
        classes, names : sequence of str, optional
        min_votes, scores_are : see :func:`~evallib.metrics.label_quality.label_issues`
        cards : int
            Flagged images shown as cards; the others follow in a table.
        cam_caption : str
            How the heat maps were drawn (said in the introduction).
        csv_name : str, optional
            The export every flag is in (linked).
        """
        model_names = list(scores) if isinstance(scores, dict) else None
        arrays = list(scores.values()) if isinstance(scores, dict) else scores
        issues = label_issues(y_true, arrays, min_votes=min_votes, model_names=model_names, scores_are=scores_are)
        return cls.from_result(issues, images=images, cam=cam, classes=classes, names=names, cards=cards,
                               cam_caption=cam_caption, csv_name=csv_name)

    @classmethod
    def from_result(cls, issues, *, images=None, cam=None, classes=None, names=None, cards=CARDS, cam_caption="",
                    csv_name=None):
        """From a :class:`LabelIssues`; see :meth:`from_predictions` for the rest."""
        if not isinstance(issues, LabelIssues):
            raise TypeError(f"issues: expected a LabelIssues from label_issues(); got {type(issues).__name__}")
        if isinstance(cards, bool) or not isinstance(cards, (int, np.integer)) or cards < 0:
            raise ValueError(f"cards: expected an integer >= 0; got {cards!r}")
        if names is not None and len(names) != issues.n_samples:
            raise ValueError(f"names: expected {issues.n_samples} image names; got {len(names)}")
        rows = issues.rows(classes=classes, names=names)
        shown = [r["index"] for r in rows[:cards]]
        load = _image_source(images) if images is not None else None
        pics = list(load(shown)) if load is not None and shown else [None] * len(shown)
        heat = list(cam(shown, [int(issues.suggested_labels[i]) for i in shown])) if cam is not None and shown \
            else [None] * len(shown)
        model_names = issues.model_names
        items, tiles, row = [], [], []
        for rank, (r, pic, hm) in enumerate(zip(rows[:cards], pics, heat), 1):
            models = [{"name": m, "top1": r[f"{m} top-1"], "confidence": f"{r[f'{m} confidence']:.2f}"}
                      for m in model_names]
            items.append({"rank": rank, "image": r["image"], "given": r["given_label"],
                          "suggested": r["suggested_label"], "quality": f"{r['quality']:+.2f}",
                          "votes": _fmt_votes(r["votes"], len(model_names)), "models": models,
                          "thumb": _markup(thumbnail_html(pic, side=THUMB)) if pic is not None else None,
                          "cam": _markup(thumbnail_html(hm, side=THUMB)) if hm is not None else None})
            if pic is not None and rank <= PLOTTED_CARDS:
                row.append((pic, f"#{rank} {r['given_label']} → {r['suggested_label']}"))
                if len(row) == _PER_ROW:
                    tiles.append(row)
                    row = []
        if row:
            tiles.append(row)
        rest = [{"given": r["given_label"], "suggested": r["suggested_label"],
                 "cells": [r["image"], r["given_label"], r["suggested_label"], r["votes"], f"{r['quality']:+.3f}",
                           *[f"{r[f'{m} top-1']} ({r[f'{m} confidence']:.2f})" for m in model_names]]}
                for r in rows[cards:]]
        rest_head = ["image", "given", "suggested", "models disagreeing", "quality",
                     *[f"{m}: top-1" for m in model_names]]
        counts = {}
        for r in rows:
            counts[r["given_label"]] = counts.get(r["given_label"], 0) + 1
            if r["suggested_label"] != r["given_label"]:
                counts[r["suggested_label"]] = counts.get(r["suggested_label"], 0) + 1
        filter_classes = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        if issues.circular:
            intro = ("One model only: the quality score is that model's own margin on the labels it is evaluated "
                     "on, so it is circular; it finds the model's confident mistakes as well as wrong labels.")
        else:
            intro = (f"An image is flagged when at least {issues.min_votes} of the {issues.n_models} models "
                     f"confidently disagree with its label (confident learning's per-class thresholds); the "
                     f"suggested label is the class they vote for.")
        intro += (" Quality is the mean over models of the probability of the given label minus the highest other "
                  "probability (from -1: surely wrong, to +1: surely right). Flags are candidates for review: "
                  "nothing was dropped or corrected.")
        if cam_caption:
            intro += f" Heat maps: {cam_caption}."
        if len(rows) > cards:
            intro += (f" The {cards:,} most suspect are shown as cards, the other {len(rows) - cards:,} in a table "
                      f"below.")
        how = "Flagged images, most suspect first; captions read given → suggested label."
        return cls(tiles, title="Suspected label errors", how_to_read=how, issues=issues, cards=items, rest=rest,
                   rest_head=rest_head, filter_classes=filter_classes, intro=intro, csv_name=csv_name)

    def _parts(self):
        export = (f' Export: <a href="{html.escape(self.csv_name)}">{html.escape(self.csv_name)}</a>.'
                  if self.csv_name else "")
        out = [_CARDS_CSS, f"<p>{html.escape(self.intro)}{export}</p>"]
        if not self.cards and not self.rest:
            return [*out, "<p>No image is flagged.</p>"]
        body = render_template(_CARDS, cards=self.cards, rest=self.rest, rest_head=self.rest_head,
                               csv_name=self.csv_name)
        out.append(class_filter([(c, f"{c} ({k})") for c, k in self.filter_classes], Markup(body),
                                sides=("given", "suggested"), label="Class", all_label="all classes",
                                side_names=[("any", "given or suggested"), ("given", "given"),
                                            ("suggested", "suggested")], group="lr", cls="lr-filter"))
        return out


def _markup(value):
    """Markup inside a template's nested values (``render_template`` marks the top-level ones only)."""
    import markupsafe

    return markupsafe.Markup(value) if isinstance(value, Markup) else value


# ----------------------------------------------------------------------------------------- image quality

QUALITY_THUMBS = 12  # flagged images shown as thumbnails above the table


@dataclass(repr=False)
class ImageIssuesDisplay(Display):
    """Images that are nearly black or white, blurry, low in information, or of an odd size or aspect ratio.

    The page lists each flagged image with the value its rule read and the rule itself
    (:func:`~evallib.metrics.data_quality.image_issues`), most extreme first, under thumbnails of the
    first ones; ``plot`` draws how many images each rule flags.
    """

    result: ImageIssues
    names: list | None = None
    thumbs: list = field(default_factory=list)
    title: str = "Image quality"
    figsize: tuple = (6.0, 2.8)

    @classmethod
    def from_properties(cls, properties, *, names=None, images=None, **rules):
        """From the image properties measured while decoding (``Predictions.image_properties``).

        ``images`` (an array of shape (n, H, W[, 3]) in [0, 1], or a function ``images(indices)``) gives
        the thumbnails; ``rules`` are :func:`~evallib.metrics.data_quality.image_issues`' thresholds.
        """
        return cls.from_result(image_issues(properties, **rules), names=names, images=images)

    @classmethod
    def from_result(cls, result, *, names=None, images=None):
        """From an :class:`~evallib.metrics.data_quality.ImageIssues`."""
        if not isinstance(result, ImageIssues):
            raise TypeError(f"result: expected an ImageIssues from image_issues(); got {type(result).__name__}")
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != result.n_samples:
                raise ValueError(f"names: expected {result.n_samples} image names; got {len(names)}")
        thumbs = []
        if images is not None:
            first = list(dict.fromkeys(r["index"] for r in result.rows()))[:QUALITY_THUMBS]
            issues = {}
            for r in result.rows():
                issues.setdefault(r["index"], []).append(r["issue"])
            pics = _image_source(images)(first) if first else []
            for i, pic in zip(first, pics):
                if pic is not None:
                    thumbs.append((thumbnail_html(pic, side=THUMB), names[i] if names else f"#{i}",
                                   ", ".join(issues[i])))
        return cls(result, names=names, thumbs=thumbs)

    def _draw(self, ax, **kwargs):
        counts = self.result.counts()
        keys = list(counts)
        ax.barh(np.arange(len(keys))[::-1], [counts[k] for k in keys], color="#c44e52")
        ax.set_yticks(np.arange(len(keys))[::-1], [ISSUE_NAMES[k] for k in keys])
        ax.set_xlabel(f"images flagged (of {self.result.n_samples:,})")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title("Image quality checks", fontsize=10)

    def _parts(self):
        r = self.result
        counts = r.counts()
        n_bad = int(r.flagged.sum())
        notes = [f'<p class="evallib-guide">{html.escape(n)}</p>' for n in r.notes]
        if n_bad == 0:
            checked = ", ".join(ISSUE_NAMES[k] for k in counts)
            text = (f"No image is flagged ({checked} checked): every one of the {r.n_samples:,} images passes."
                    if counts else "No image quality check could run.")
            return [f"<p>{html.escape(text)}</p>", *notes]
        found = "; ".join(f"{counts[k]:,} {ISSUE_NAMES[k]}" for k in counts if counts[k])
        text = (f"{n_bad:,} of {r.n_samples:,} images have a quality issue ({found}). They stay in every metric; "
                f"look at them: a nearly black, constant or blurred image says little about a model, and an image "
                f"of an odd size may come from another source.")
        pixels = ISSUE_NAMES["odd_size"]
        rows = [[x["image"], x["issue"], int(x["value"]) if x["issue"] == pixels else float(x["value"]), x["rule"]]
                for x in r.rows(names=self.names)]
        out = [f'<p class="evallib-warn">{html.escape(text)}</p>']
        if self.thumbs:
            out.append('<div class="dq-thumbs">' + "".join(
                f'<figure>{t}<figcaption>{html.escape(name)}<br>{html.escape(what)}</figcaption></figure>'
                for t, name, what in self.thumbs) + "</div>")
        out.append(folded_table(rows, ["image", "issue", "value", "rule"], shown=TABLE_ROWS, what="image issues"))
        return [_CARDS_CSS, *out, *notes]
