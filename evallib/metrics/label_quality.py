"""Can the test labels be trusted: suspected label errors by agreement across models, and what they mean for a ranking.

Every model evaluated on the same images scores each image's given label with the two quantities of
the label-quality literature (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty
in Dataset Labels", JAIR 70, 2021; Kuan and Mueller, "Model-agnostic label quality scoring to detect
real-world label errors", ICML DataPerf workshop 2022):

- **self-confidence**: the probability the model gives to the given label, ``p[i, y_i]``;
- **normalized margin**: ``p[i, y_i] - max_{k != y_i} p[i, k]``, in ``[-1, 1]``; negative when the model
  prefers another class. (Some implementations map it to ``[0, 1]`` by ``(margin + 1) / 2``, which
  ranks images identically.)

**Confident disagreement** (one model). Confident learning's per-class threshold is the model's mean
self-confidence over the images given that class,
``t_j = mean{p[i, j] : y_i = j}`` (JAIR 2021, section 3.1). An image's *confident class* is the most
probable class among those whose probability reaches its class threshold,
``argmax{p[i, j] : p[i, j] >= t_j}``; the image lies off the diagonal of the *confident joint* when that
class exists and is not the given label, and the model then confidently disagrees with the label (the
paper's simplest way to find label errors: the off-diagonal entries of the confident joint). The
per-class thresholds, rather than one global cut such as ``p >= 0.5``, are used because they absorb
each model's class-dependent over- or under-confidence: a class the model is shy about still gets
confident votes. A class that no image is given has no threshold and is never a confident class. The
test images were not used to train the models, so the probabilities are out of sample, as the method
requires.

**Consensus.** An image is flagged when at least ``min_votes`` of the ``m`` models confidently disagree
with its label (default: a strict majority, ``m // 2 + 1``: 2 of 3). The suggested label is the class the
most disagreeing models voted for, ties broken by the larger summed probability those models give it.
The per-image quality score is the mean normalized margin across models (lowest first for review).
With one model the flags are that model's own opinion of the labels it is judged on; the result says
``circular=True`` and a report must say so.

Nothing here drops an image: results hold flags and scores for every image given. Northcutt, Athalye
and Mueller ("Pervasive Label Errors in Test Sets Destabilize Machine Learning Benchmarks", NeurIPS
Datasets and Benchmarks 2021) found only about half of the algorithmically flagged test labels
confirmed by reviewers, and that corrected labels can reverse a ranking. :func:`ranking_sensitivity`
says how much the ranking depends on the flags: accuracy with the given labels ("no flag is an
error") and with the suggested labels on flagged images ("every flag is an error"). Because flags
fall mostly on the mistakes of the models that raised them, dropping or correcting flagged images
inflates those models' scores (cleanlab issues #1158 and #46); by default each model is therefore
judged by the flags of the *other* models only (leave one model out).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..errors import EvallibError
from .bootstrap import mcnemar_p
from .classification import infer_score_type
from .stats import benjamini_hochberg, wilson_interval
from .sweep import check_labels, check_scores
from .transforms import softmax

_CHUNK_ELEMENTS = 4_000_000  # rows x classes held at once per model
_SCORE_TYPES = ("auto", "logits", "probabilities")


@dataclass(frozen=True)
class LabelIssues:
    """Per-image label-quality scores from every model, and the consensus flags.

    Arrays with a leading ``n_models`` axis hold one row per model, in ``model_names`` order.

    Attributes
    ----------
    given_labels : ndarray of shape (n_samples,)
        The labels as given (int64 class indices).
    flagged : ndarray of bool, shape (n_samples,)
        At least ``min_votes`` models confidently disagree with the given label.
    suggested_labels : ndarray of shape (n_samples,)
        The most voted disagreeing class on flagged images; the given label elsewhere.
    votes : ndarray of shape (n_samples,)
        How many models confidently disagree with the given label.
    quality : ndarray of shape (n_samples,)
        Mean normalized margin across models, in ``[-1, 1]``; low means suspect.
    self_confidence, normalized_margin : ndarray of shape (n_models, n_samples)
    confident_class : ndarray of shape (n_models, n_samples)
        Each model's confident class (``-1`` where no class reaches its threshold).
    confident_probability : ndarray of shape (n_models, n_samples)
        The probability of the confident class (0 where there is none).
    disagrees : ndarray of bool, shape (n_models, n_samples)
        The confident class exists and differs from the given label.
    predictions : ndarray of shape (n_models, n_samples)
        Each model's top-1 class.
    top_probability : ndarray of shape (n_models, n_samples)
        The probability of that class.
    thresholds : ndarray of shape (n_models, n_classes)
        Per-model per-class thresholds (mean self-confidence of each class's images; ``inf`` for a
        class no image is given).
    model_names : tuple of str
    min_votes : int
    majority_rule : bool
        ``min_votes`` was left to its default, a strict majority of the voting models (sub-panels
        that leave models out then use a majority of their own size).
    circular : bool
        One model only: the flags judge labels with the model that is evaluated on them.
    """

    given_labels: np.ndarray
    flagged: np.ndarray
    suggested_labels: np.ndarray
    votes: np.ndarray
    quality: np.ndarray
    self_confidence: np.ndarray
    normalized_margin: np.ndarray
    confident_class: np.ndarray
    confident_probability: np.ndarray
    disagrees: np.ndarray
    predictions: np.ndarray
    top_probability: np.ndarray
    thresholds: np.ndarray
    model_names: tuple
    min_votes: int
    majority_rule: bool
    circular: bool

    @property
    def n_samples(self):
        return int(len(self.given_labels))

    @property
    def n_models(self):
        return int(len(self.model_names))

    @property
    def n_flagged(self):
        return int(self.flagged.sum())

    def review_order(self):
        """Indices of the flagged images, most suspect first (lowest quality, then most votes, then index).

        Returns
        -------
        ndarray of shape (n_flagged,)
        """
        idx = np.nonzero(self.flagged)[0]
        order = np.lexsort((idx, -self.votes[idx], self.quality[idx]))
        return idx[order]

    def quality_order(self):
        """Every image, lowest quality first (ties by index): the ranking for precision at k.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return np.argsort(self.quality, kind="mergesort")

    def rows(self, *, classes=None, names=None):
        """One record per flagged image, most suspect first: what a review page and ``suspected_labels.csv`` show.

        Parameters
        ----------
        classes : sequence of str, optional
            Class names by index; default the indices.
        names : sequence of str, shape (n_samples,), optional
            Image names (paths); default the indices.

        Returns
        -------
        list of dict
            Keys ``index``, ``image``, ``given_label``, ``suggested_label``, ``votes``, ``quality``, then
            ``<model> top-1`` and ``<model> confidence`` for each model.
        """
        def label(k):
            return str(classes[k]) if classes is not None else int(k)

        if names is not None and len(names) != self.n_samples:
            raise EvallibError(f"names: expected {self.n_samples} image names; got {len(names)}")
        out = []
        for i in self.review_order():
            row = {"index": int(i), "image": str(names[i]) if names is not None else int(i),
                   "given_label": label(self.given_labels[i]), "suggested_label": label(self.suggested_labels[i]),
                   "votes": int(self.votes[i]), "quality": float(self.quality[i])}
            for m, name in enumerate(self.model_names):
                row[f"{name} top-1"] = label(self.predictions[m, i])
                row[f"{name} confidence"] = float(self.top_probability[m, i])
            out.append(row)
        return out

    def flags_without(self, exclude):
        """Consensus flags and suggested labels from the models not in ``exclude``.

        Parameters
        ----------
        exclude : iterable of int
            Model indices to leave out of the vote.

        Returns
        -------
        flagged : ndarray of bool, shape (n_samples,)
        suggested_labels : ndarray of shape (n_samples,)
        """
        keep = np.setdiff1d(np.arange(self.n_models), np.asarray(list(exclude), dtype=np.int64))
        if len(keep) == 0:
            raise EvallibError(f"exclude: expected to leave at least one of {self.n_models} models voting; "
                               f"got {sorted(int(e) for e in exclude)}")
        k = len(keep) // 2 + 1 if self.majority_rule else min(self.min_votes, len(keep))
        return _consensus(self.given_labels, self.disagrees[keep], self.confident_class[keep],
                          self.confident_probability[keep], k)


def _check_scores_are(scores_are, m):
    kinds = [scores_are] * m if isinstance(scores_are, str) else list(scores_are)
    if len(kinds) != m:
        raise EvallibError(f"scores_are: expected one value or one per model ({m}); got {len(kinds)}")
    for s in kinds:
        if s not in _SCORE_TYPES:
            raise EvallibError(f"scores_are: expected one of {', '.join(_SCORE_TYPES)}; got {s!r}")
    return kinds


def _model_pass(y, scores, kind, n_classes):
    """Self-confidence, margin, thresholds, confident class and top-1 of one model, in row chunks."""
    n = len(y)
    if kind == "auto":
        kind = infer_score_type(scores)[0]
    step = max(1, _CHUNK_ELEMENTS // max(n_classes, 1))

    def probs(lo, hi):
        block = np.array(scores[lo:hi], dtype=np.float64)  # a copy: the caller's array is never written
        return softmax(block, axis=1) if kind == "logits" else block

    self_conf = np.empty(n)
    margin = np.empty(n)
    pred = np.empty(n, dtype=np.int64)
    top = np.empty(n)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        p = probs(lo, hi)
        rows = np.arange(hi - lo)
        yy = y[lo:hi]
        own = p[rows, yy]
        pred[lo:hi] = p.argmax(axis=1)
        top[lo:hi] = p[rows, pred[lo:hi]]
        p[rows, yy] = -np.inf
        self_conf[lo:hi] = own
        margin[lo:hi] = own - p.max(axis=1) if n_classes > 1 else own
    counts = np.bincount(y, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        thresholds = np.bincount(y, weights=self_conf, minlength=n_classes) / counts
    thresholds[counts == 0] = np.inf
    conf_class = np.empty(n, dtype=np.int64)
    conf_prob = np.empty(n)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        p = probs(lo, hi)
        masked = np.where(p >= thresholds, p, -1.0)
        j = masked.argmax(axis=1)
        best = masked[np.arange(hi - lo), j]
        conf_class[lo:hi] = np.where(best >= 0, j, -1)
        conf_prob[lo:hi] = np.where(best >= 0, best, 0.0)
    return self_conf, margin, thresholds, conf_class, conf_prob, pred, top


def _consensus(y, disagrees, conf_class, conf_prob, min_votes):
    """Flags and suggested labels from ``(m, n)`` per-model votes; only flagged rows are tallied per class."""
    votes = disagrees.sum(axis=0)
    flagged = votes >= min_votes
    suggested = y.copy()
    rows = np.nonzero(flagged)[0]
    if len(rows):
        m = disagrees.shape[0]
        d = disagrees[:, rows]
        cls = conf_class[:, rows]
        classes, inv = np.unique(cls[d], return_inverse=True)
        model_idx, col = np.nonzero(d)
        tally = np.zeros((len(rows), len(classes)))
        # votes dominate; the summed probability of the voters (< m, scaled below 1) breaks ties
        np.add.at(tally, (col, inv), 1.0 + conf_prob[:, rows][model_idx, col] / (m + 1))
        suggested[rows] = classes[tally.argmax(axis=1)]
    return flagged, suggested


def label_issues(y_true, scores, *, min_votes=None, model_names=None, scores_are="auto"):
    """Suspected label errors: confident disagreement of each model, and the consensus across models.

    Parameters
    ----------
    y_true : array-like of int, shape (n_samples,)
        The given labels, as class indices.
    scores : sequence of m array-likes of shape (n_samples, n_classes), or ndarray of shape (m, n_samples, n_classes)
        Each model's class scores on the same images in the same order. A single 2-d array is one model.
    min_votes : int, optional
        How many models must confidently disagree to flag an image (``k`` of ``m``); default a strict
        majority, ``m // 2 + 1``.
    model_names : sequence of str, optional
        Default ``model 0``, ``model 1``, ...
    scores_are : {"auto", "logits", "probabilities"} or a sequence of them, one per model
        ``"auto"`` decides per model with :func:`~evallib.metrics.infer_score_type`.

    Returns
    -------
    LabelIssues

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1])
    >>> p = np.array([[.9, .1], [.8, .2], [.1, .9], [.95, .05]])   # the last image looks like a 0
    >>> res = label_issues(y, [p, p, p])
    >>> res.flagged.tolist(), res.suggested_labels.tolist()
    ([False, False, False, True], [0, 0, 1, 0])
    """
    if isinstance(scores, np.ndarray) and scores.ndim == 2:
        scores = [scores]
    elif isinstance(scores, np.ndarray) and scores.ndim == 3:
        scores = list(scores)
    elif isinstance(scores, np.ndarray):
        raise EvallibError(f"scores: expected a 2-d array (one model) or a 3-d array (n_models, n_samples, "
                           f"n_classes); got shape {scores.shape}")
    scores = [check_scores(f"scores[{i}]", s, ndim=2) for i, s in enumerate(scores)]
    m = len(scores)
    if m == 0:
        raise EvallibError("scores: expected at least one model's scores; got none")
    n, c = scores[0].shape
    for i, s in enumerate(scores):
        if s.shape != (n, c):
            raise EvallibError(f"scores[{i}]: expected shape {(n, c)} like scores[0]; got {s.shape}")
    y = check_labels("y_true", y_true, n)
    if n == 0:
        raise EvallibError("y_true: expected at least one image; got none")
    if not np.issubdtype(y.dtype, np.integer):
        raise EvallibError(f"y_true: expected integer class indices; got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= c:
        raise EvallibError(f"y_true: expected class indices in [0, {c}); got values from {y.min()} to {y.max()}")
    names = tuple(f"model {i}" for i in range(m)) if model_names is None else tuple(str(s) for s in model_names)
    if len(names) != m:
        raise EvallibError(f"model_names: expected {m} names, one per model; got {len(names)}")
    majority = min_votes is None
    k = m // 2 + 1 if majority else min_votes
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= m:
        raise EvallibError(f"min_votes: expected an integer from 1 to the number of models ({m}); got {min_votes!r}")
    kinds = _check_scores_are(scores_are, m)

    per_model = [_model_pass(y, s, kind, c) for s, kind in zip(scores, kinds)]
    self_conf, margin, thresholds, conf_class, conf_prob, pred, top = (np.stack(a) for a in zip(*per_model))
    disagrees = (conf_class >= 0) & (conf_class != y)
    flagged, suggested = _consensus(y, disagrees, conf_class, conf_prob, int(k))
    return LabelIssues(
        given_labels=y, flagged=flagged, suggested_labels=suggested, votes=disagrees.sum(axis=0),
        quality=margin.mean(axis=0), self_confidence=self_conf, normalized_margin=margin,
        confident_class=conf_class, confident_probability=conf_prob, disagrees=disagrees, predictions=pred,
        top_probability=top, thresholds=thresholds, model_names=names, min_votes=int(k), majority_rule=majority,
        circular=m == 1)


@dataclass(frozen=True)
class RankingSensitivity:
    """How each model's accuracy, the ranking and the pairwise verdicts depend on the label flags.

    Two scenarios bracket the truth on the flagged images: **given** ("no flag is an error": the labels
    as they are) and **corrected** ("every flag is an error": on each flagged image the suggested label
    replaces the given one, so a model is right there exactly when it predicts the suggested label).
    Neither is a strict bound of the true accuracy (a flagged image's true class may be a third one);
    they are the two readings of the flags.

    Attributes
    ----------
    model_names : tuple of str
    n_samples : int
    accuracy : ndarray of shape (n_models,)
        Accuracy on all images with the given labels (the "no flag is an error" scenario).
    accuracy_interval : ndarray of shape (n_models, 2)
        Wilson 95% interval.
    n_flagged : ndarray of shape (n_models,)
        How many images are flagged by the flags that judge each model.
    accuracy_flagged : ndarray of shape (n_models,)
        Accuracy on those flagged images with their given labels (NaN when none is flagged).
    accuracy_flagged_interval : ndarray of shape (n_models, 2)
    accuracy_corrected : ndarray of shape (n_models,)
        Accuracy on all images with the suggested labels on flagged images (the "every flag is an
        error" scenario).
    accuracy_corrected_interval : ndarray of shape (n_models, 2)
    ranking_given, ranking_corrected : ndarray of shape (n_models,)
        Model indices, best accuracy first (ties keep model order).
    swapped_pairs : tuple of (int, int)
        Model pairs whose order (better, tied or worse) differs between the two scenarios.
    pairs : tuple of (int, int)
        Every model pair ``(a, b)`` with ``a < b``, in the order of the per-pair arrays.
    p_given, p_corrected : ndarray of shape (n_pairs,)
        McNemar exact p-values (:func:`~evallib.metrics.mcnemar`) on paired correctness in each scenario.
    p_adjusted_given, p_adjusted_corrected : ndarray of shape (n_pairs,)
        Benjamini–Hochberg adjusted across the pairs, within each scenario.
    verdict_given, verdict_corrected : tuple of str
        ``"a better"``, ``"b better"`` or ``"no difference"`` at false discovery rate ``alpha``.
    verdict_changed : ndarray of bool, shape (n_pairs,)
    leave_one_out : bool
        Each model was judged by the flags of the other models only.
    circular : bool
        Some model was judged by flags it helped raise (one model, or ``leave_one_out=False``).
    alpha : float
    """

    model_names: tuple
    n_samples: int
    accuracy: np.ndarray
    accuracy_interval: np.ndarray
    n_flagged: np.ndarray
    accuracy_flagged: np.ndarray
    accuracy_flagged_interval: np.ndarray
    accuracy_corrected: np.ndarray
    accuracy_corrected_interval: np.ndarray
    ranking_given: np.ndarray
    ranking_corrected: np.ndarray
    swapped_pairs: tuple
    pairs: tuple
    p_given: np.ndarray
    p_corrected: np.ndarray
    p_adjusted_given: np.ndarray
    p_adjusted_corrected: np.ndarray
    verdict_given: tuple
    verdict_corrected: tuple
    verdict_changed: np.ndarray
    leave_one_out: bool
    circular: bool
    alpha: float

    @property
    def ranking_changed(self):
        return bool(self.swapped_pairs)

    @property
    def any_verdict_changed(self):
        return bool(self.verdict_changed.any())

    def to_dict(self):
        """Plain lists and numbers (NaN stays NaN), for JSON."""
        out = {}
        for key, value in self.__dict__.items():
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[key] = value
        out["ranking_changed"], out["any_verdict_changed"] = self.ranking_changed, self.any_verdict_changed
        return out


def _ranking(acc):
    return np.argsort(-acc, kind="mergesort")


def _verdicts(correct, pairs, alpha):
    # McNemar's exact test for every pair at once: discordant counts from one matrix product
    c = np.asarray(correct, dtype=np.float64)
    only = c @ (1.0 - c).T  # only[a, b]: images a gets right and b gets wrong
    ia = np.array([a for a, _ in pairs], dtype=np.int64)
    ib = np.array([b for _, b in pairs], dtype=np.int64)
    only_a, only_b = only[ia, ib], only[ib, ia]
    p = mcnemar_p(only_a, only_b).astype(np.float64)
    reject, adjusted = benjamini_hochberg(p, alpha=alpha) if len(p) else (np.zeros(0, bool), np.zeros(0))
    verdict = tuple(("a better" if x > y else "b better") if r else "no difference"
                    for x, y, r in zip(only_a, only_b, reject))
    return p, adjusted, verdict


def ranking_sensitivity(issues, *, leave_one_out=True, alpha=0.05):
    """Accuracy of each model under "no flag is an error" and "every flag is an error", and whether the
    ranking or any McNemar verdict changes between the two.

    Parameters
    ----------
    issues : LabelIssues
        From :func:`label_issues` on every model to compare.
    leave_one_out : bool, default True
        Judge each model by the consensus of the other models only (``min_votes`` capped at their
        number, or their majority when ``min_votes`` was the default), so that no model is scored on
        flags it raised (cleanlab #1158). With one model there is no other; its own flags are used and
        the result says ``circular=True``.
    alpha : float, default 0.05
        False discovery rate for the McNemar verdicts (Benjamini–Hochberg across pairs).

    Returns
    -------
    RankingSensitivity

    Notes
    -----
    In the corrected scenario a pair's McNemar test compares each model's correctness against the labels
    that judge it (with ``leave_one_out`` these differ between the two models on images only one panel
    flags); the discordant counts then agree in sign with the accuracy difference, so verdicts and
    ranking never contradict each other.
    """
    if not isinstance(issues, LabelIssues):
        raise EvallibError(f"issues: expected a LabelIssues from label_issues(); got {type(issues).__name__}")
    if not 0 < alpha < 1:
        raise EvallibError(f"alpha: expected a number in (0, 1); got {alpha!r}")
    y, pred, m, n = issues.given_labels, issues.predictions, issues.n_models, issues.n_samples
    lomo = bool(leave_one_out) and m > 1
    correct_given = pred == y
    correct_corr = np.empty_like(correct_given)
    n_flag = np.empty(m, dtype=np.int64)
    flag_hits = np.empty(m, dtype=np.int64)
    for a in range(m):
        flagged, suggested = issues.flags_without([a]) if lomo else (issues.flagged, issues.suggested_labels)
        correct_corr[a] = pred[a] == suggested
        n_flag[a] = flagged.sum()
        flag_hits[a] = correct_given[a][flagged].sum()
    hits_given, hits_corr = correct_given.sum(axis=1), correct_corr.sum(axis=1)
    acc, acc_corr = hits_given / n, hits_corr / n
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_flag = np.where(n_flag > 0, flag_hits / np.maximum(n_flag, 1), np.nan)
    pairs = tuple(combinations(range(m), 2))
    p_g, adj_g, v_g = _verdicts(correct_given, pairs, alpha)
    p_c, adj_c, v_c = _verdicts(correct_corr, pairs, alpha)
    swapped = tuple((a, b) for a, b in pairs
                    if np.sign(hits_given[a] - hits_given[b]) != np.sign(hits_corr[a] - hits_corr[b]))
    return RankingSensitivity(
        model_names=issues.model_names, n_samples=n,
        accuracy=acc, accuracy_interval=np.column_stack(wilson_interval(hits_given, n)),
        n_flagged=n_flag, accuracy_flagged=acc_flag,
        accuracy_flagged_interval=np.column_stack(wilson_interval(flag_hits, n_flag)),
        accuracy_corrected=acc_corr, accuracy_corrected_interval=np.column_stack(wilson_interval(hits_corr, n)),
        ranking_given=_ranking(acc), ranking_corrected=_ranking(acc_corr), swapped_pairs=swapped, pairs=pairs,
        p_given=p_g, p_corrected=p_c, p_adjusted_given=adj_g, p_adjusted_corrected=adj_c,
        verdict_given=v_g, verdict_corrected=v_c, verdict_changed=np.array([a != b for a, b in zip(v_g, v_c)], bool),
        leave_one_out=lomo, circular=not lomo, alpha=float(alpha))
