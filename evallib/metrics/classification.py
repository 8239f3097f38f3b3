"""Classification metrics, streamed: additive counts are summed over batches, scores derived at the end.

``ClassificationMetrics.update`` takes a batch; ``compute`` returns a
:class:`ClassificationResult`. ``evaluate_classification`` is one ``update`` plus ``compute``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EvallibError
from .confusion import most_confused_pairs
from .sweep import _warn, check_labels, check_scores
from .transforms import softmax

ECE_BINS = 15


def to_probabilities(scores, scores_are):
    """Class probabilities from logits (softmax) or from probabilities (as given)."""
    return softmax(scores, axis=1) if scores_are == "logits" else scores


def infer_score_type(scores, *, atol=1e-3):
    """Whether class scores are probabilities or logits, with the evidence in words.

    Scores are probabilities when every value is in [0, 1] and every row sums to 1, both within
    ``atol``; anything else is logits. One-hot rows are probabilities; values in [0, 1] whose
    rows do not sum to 1 (independent sigmoids, or logits that happen to be small) are logits.

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes)
    atol : float
        Tolerance on the range and on the row sums (1e-3 covers float16 rounding of a softmax).

    Returns
    -------
    kind : {"probabilities", "logits"}
    evidence : str
        The row-sum and value ranges that decided, e.g.
        ``"every row is in [0, 1] and sums to 1 (row sums 0.9999–1.0001)"``.

    Examples
    --------
    >>> infer_score_type([[0.2, 0.8], [0.5, 0.5]])[0]
    'probabilities'
    >>> infer_score_type([[-1.0, 2.5], [0.3, 0.1]])
    ('logits', 'values from -1 to 2.5, outside [0, 1] (row sums 0.4000–1.5000)')
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] == 0:
        raise EvallibError(f"scores: expected a 2-d array of shape (n_samples, n_classes) with at least one row; "
                           f"got shape {s.shape}")
    sums = s.sum(axis=1)
    lo, hi, s_lo, s_hi = float(s.min()), float(s.max()), float(sums.min()), float(sums.max())
    row_sums = "row sums " + "–".join(f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}" for v in (s_lo, s_hi))
    if not (lo >= -atol and hi <= 1 + atol):
        return "logits", f"values from {lo:.4g} to {hi:.4g}, outside [0, 1] ({row_sums})"
    if not (abs(s_lo - 1) <= atol and abs(s_hi - 1) <= atol):
        return "logits", f"values from {lo:.4g} to {hi:.4g}, within [0, 1], but rows do not sum to 1 ({row_sums})"
    return "probabilities", f"every row is in [0, 1] and sums to 1 ({row_sums})"


def true_class_rank(scores, y):
    """How many classes rank above the true class, with scikit-learn's tie order (among equal
    scores the higher class index ranks first)."""
    t = scores[np.arange(len(y)), y][:, None]
    above = np.count_nonzero(scores > t, axis=1)
    tied = np.count_nonzero(scores >= t, axis=1) - above - 1  # other classes with the same score
    rows = np.nonzero(tied)[0]
    if len(rows):
        s, yt = scores[rows], y[rows]
        cols = np.arange(scores.shape[1])[None, :]
        above[rows] += np.count_nonzero((s == s[np.arange(len(rows)), yt][:, None]) & (cols > yt[:, None]), axis=1)
    return above


def topk_hit(scores, y, k):
    """Boolean top-k hit per sample (see :func:`true_class_rank`)."""
    return true_class_rank(scores, y) < k


def ovr_ranking(y, probs_t):
    """One-vs-rest ROC AUC and average precision per class, exactly as scikit-learn defines them.

    ``probs_t`` is the probabilities transposed: ndarray of shape (n_classes, n_samples), one
    contiguous row per class.

    For class ``c`` only the scores at or above its lowest positive score matter to both
    metrics, so just those are sorted; a confident model leaves a few hundred of them. A class
    absent from ``y`` (or alone in it) gets NaN.

    Returns
    -------
    auc, ap : ndarray of shape (n_classes,)
    """
    c, n = probs_t.shape
    cols = probs_t
    order = np.argsort(y, kind="stable")
    starts = np.searchsorted(y[order], np.arange(c + 1))
    auc, ap = np.full(c, np.nan), np.full(c, np.nan)
    for k in range(c):
        members = order[starts[k]:starts[k + 1]]
        n_pos = len(members)
        if n_pos == 0:
            continue
        col = cols[k]
        pos = np.sort(col[members])  # ascending
        high = np.sort(col[col >= pos[0]])  # everything that can outrank a positive
        # distinct positive scores v: samples >= v, > v, and positives >= v
        v, first = np.unique(pos, return_index=True)
        all_ge = len(high) - np.searchsorted(high, v, side="left")
        all_gt = len(high) - np.searchsorted(high, v, side="right")
        pos_ge = n_pos - first
        pos_eq = np.diff(np.r_[first, n_pos])
        neg_ge = all_ge - pos_ge
        neg_eq = neg_ge - (all_gt - (pos_ge - pos_eq))
        n_neg = n - n_pos
        if n_neg > 0:
            # each positive beats the negatives below it and ties half of the equal ones
            auc[k] = float(np.sum(pos_eq * (n_neg - neg_ge + 0.5 * neg_eq))) / (n_pos * n_neg)
        ap[k] = float(np.sum(pos_eq / n_pos * pos_ge / all_ge))
    return auc, ap


@dataclass(frozen=True)
class ClassificationResult:
    """Every classification metric, computed from summed counts (and the kept scores for ranking metrics).

    Per-class arrays follow ``classes``. ``undefined`` lists what was 0/0 (set to 0 as
    scikit-learn does with ``zero_division=0``) or NaN, with the reason.
    """

    classes: list
    n_samples: int
    accuracy: float
    top_k: dict
    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    averages: dict
    log_loss: float
    roc_auc: np.ndarray
    roc_auc_macro: float
    average_precision: np.ndarray
    average_precision_macro: float
    ece: float
    reliability: dict
    most_confused: list
    undefined: list = field(default_factory=list)

    @property
    def macro_f1(self):
        return self.averages["macro"]["f1"]

    def to_dict(self):
        return {
            "classes": [str(c) for c in self.classes], "n_samples": self.n_samples, "accuracy": self.accuracy,
            "top_k": {str(k): v for k, v in self.top_k.items()}, "confusion": self.confusion.tolist(),
            "per_class": {"precision": self.precision.tolist(), "recall": self.recall.tolist(),
                          "f1": self.f1.tolist(), "support": self.support.tolist(),
                          "roc_auc": self.roc_auc.tolist(), "average_precision": self.average_precision.tolist()},
            "averages": self.averages, "macro_f1": self.macro_f1, "log_loss": self.log_loss,
            "roc_auc_macro": self.roc_auc_macro, "average_precision_macro": self.average_precision_macro,
            "ece": self.ece, "reliability": self.reliability, "most_confused": self.most_confused,
            "undefined": self.undefined,
        }


class ClassificationMetrics:
    """Streaming classification metrics.

    Parameters
    ----------
    classes : sequence, optional
        Class labels in score-column order. Without it, labels must be integers
        ``0..n_classes-1``.
    scores_are : {"logits", "probabilities"}
    top_k : int or sequence of int
        Top-k accuracies to report (1 is always included). Default (1, 5).
    keep_scores : bool
        Keep probabilities for ROC AUC and average precision (the only metrics that are not
        sums of counts). Without it those are NaN.

    Examples
    --------
    >>> m = ClassificationMetrics(scores_are="probabilities")
    >>> m.update([0, 1], [[0.9, 0.1], [0.2, 0.8]])
    >>> m.update([1], [[0.6, 0.4]])
    >>> round(m.compute().accuracy, 3)
    0.667
    """

    def __init__(self, *, classes=None, scores_are="logits", top_k=(1, 5), keep_scores=True):
        if scores_are not in ("logits", "probabilities"):
            raise EvallibError(f"scores_are: expected one of logits, probabilities; got {scores_are!r}")
        self.classes = None if classes is None else list(classes)
        self.scores_are = scores_are
        ks = [top_k] if isinstance(top_k, int) else list(top_k)
        self.ks = sorted({1, *ks})
        self.keep_scores = keep_scores
        self.reset()

    def reset(self):
        self.n_classes = None if self.classes is None else len(self.classes)
        self.confusion = None
        self.topk = {k: 0 for k in self.ks}
        self.loss_sum = 0.0
        self.ece_count = np.zeros(ECE_BINS)
        self.ece_conf = np.zeros(ECE_BINS)
        self.ece_correct = np.zeros(ECE_BINS)
        self._labels, self._probs = [], []

    def _encode(self, y_true, n):
        y = check_labels("y_true", y_true, n, per="row of scores")
        if self.classes is not None:
            index = {c: i for i, c in enumerate(self.classes)}
            try:
                return np.fromiter((index[v] for v in y.tolist()), dtype=np.int64, count=len(y))
            except KeyError as exc:
                raise EvallibError(f"y_true: expected labels among classes {self.classes[:10]}"
                                   f"{'...' if len(self.classes) > 10 else ''}; got {exc.args[0]!r}") from None
        if not np.issubdtype(y.dtype, np.integer):
            raise EvallibError(f"y_true: expected integer class indices 0..{self.n_classes - 1} (or pass classes=); "
                               f"got dtype {y.dtype}")
        if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
            bad = y[(y < 0) | (y >= self.n_classes)][0]
            raise EvallibError(f"y_true: expected class indices 0..{self.n_classes - 1}; got {int(bad)}")
        return y.astype(np.int64)

    def update(self, y_true, scores):
        """Add a batch: ``y_true`` of shape (n,), ``scores`` of shape (n, n_classes)."""
        s = check_scores("scores", scores, ndim=2)
        if self.n_classes is None:
            self.n_classes = s.shape[1]
        if s.shape[1] != self.n_classes:
            raise EvallibError(f"scores: expected {self.n_classes} columns (one per class); got {s.shape[1]}")
        if s.shape[1] < 2:
            raise EvallibError(f"scores: expected at least 2 class columns; got {s.shape[1]}")
        y = self._encode(y_true, len(s))
        c = self.n_classes
        if self.confusion is None:
            self.confusion = np.zeros((c, c), dtype=np.int64)
        pred = s.argmax(axis=1)
        self.confusion += np.bincount(y * c + pred, minlength=c * c).reshape(c, c)
        rank = true_class_rank(s, y)
        for k in self.ks:
            self.topk[k] += int(np.count_nonzero(rank < k))
        rows = np.arange(len(y))
        if self.scores_are == "logits":
            # softmax written straight into the (n_classes, n_samples) layout the ranking metrics read
            top = s.max(axis=1)
            probs_t = np.empty((s.shape[1], s.shape[0]))
            np.subtract(s.T, top, out=probs_t)
            np.exp(probs_t, out=probs_t)
            total = probs_t.sum(axis=0)
            probs_t /= total
            conf = 1.0 / total  # the top class's probability, exp(0) / total
            p_true = s[rows, y] - top - np.log(total)  # log-probability of the true class
        else:
            if (s < 0).any() or (s > 1).any():
                raise EvallibError("scores: expected probabilities in [0, 1] (scores_are='probabilities'); "
                                   f"got values from {s.min():.4g} to {s.max():.4g}")
            probs_t = np.ascontiguousarray(s.T) if self.keep_scores else None
            conf = s.max(axis=1)
            with np.errstate(divide="ignore"):
                p_true = np.log(s[rows, y])
        eps = np.finfo(np.float64).eps
        self.loss_sum += float(-np.clip(p_true, np.log(eps), np.log1p(-eps)).sum())
        b = np.clip(np.ceil(conf * ECE_BINS).astype(np.int64) - 1, 0, ECE_BINS - 1)
        self.ece_count += np.bincount(b, minlength=ECE_BINS)
        self.ece_conf += np.bincount(b, weights=conf, minlength=ECE_BINS)
        self.ece_correct += np.bincount(b, weights=(pred == y).astype(float), minlength=ECE_BINS)
        if self.keep_scores:
            self._labels.append(y)
            self._probs.append(probs_t)

    def compute(self):
        """Derive every metric from the summed state."""
        if self.confusion is None or self.confusion.sum() == 0:
            raise EvallibError("y_true: expected at least one sample; got none (call update() first)")
        cm = self.confusion
        c = cm.shape[0]
        n = int(cm.sum())
        classes = self.classes if self.classes is not None else list(range(c))
        undefined = []
        tp = np.diag(cm).astype(np.float64)
        pred_n = cm.sum(axis=0).astype(np.float64)
        true_n = cm.sum(axis=1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(pred_n > 0, tp / pred_n, 0.0)
            recall = np.where(true_n > 0, tp / true_n, 0.0)
            f1 = np.where(pred_n + true_n > 0, 2 * tp / (pred_n + true_n), 0.0)
        for name, mask in (("precision", pred_n == 0), ("recall", true_n == 0), ("f1", pred_n + true_n == 0)):
            if mask.any():
                undefined.append({"metric": name, "classes": [str(classes[i]) for i in np.nonzero(mask)[0]],
                                  "reason": "0/0 (never predicted)" if name == "precision" else "0/0 (no true samples)",
                                  "value": 0.0})
        acc = float(tp.sum() / n)
        averages = {
            "micro": {"precision": acc, "recall": acc, "f1": acc},
            "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
            "weighted": {m: float(np.dot(v, true_n) / n) for m, v in
                         (("precision", precision), ("recall", recall), ("f1", f1))},
        }
        if self.keep_scores and self._probs:
            y = np.concatenate(self._labels) if len(self._labels) > 1 else self._labels[0]
            probs_t = np.concatenate(self._probs, axis=1) if len(self._probs) > 1 else self._probs[0]
            auc, ap = ovr_ranking(y, probs_t)
        else:
            auc = ap = np.full(c, np.nan)
        absent = np.nonzero(true_n == 0)[0]
        if len(absent):
            names = [str(classes[i]) for i in absent]
            _warn(f"ROC AUC and average precision are undefined for classes absent from y_true: {names[:10]}; "
                  f"they are NaN and left out of the macro averages")
            undefined.append({"metric": "roc_auc", "classes": names, "reason": "class absent from y_true",
                              "value": None})
        if absent.size == c - 1 or np.isnan(auc).all():
            _warn("ROC AUC is undefined: y_true holds a single class; macro AUC is NaN")
            auc_macro = ap_macro = float("nan")
        else:
            auc_macro, ap_macro = float(np.nanmean(auc)), float(np.nanmean(ap))
        with np.errstate(invalid="ignore"):
            rel_conf = np.where(self.ece_count > 0, self.ece_conf / np.maximum(self.ece_count, 1), np.nan)
            rel_acc = np.where(self.ece_count > 0, self.ece_correct / np.maximum(self.ece_count, 1), np.nan)
        ece = float(np.nansum(np.abs(rel_acc - rel_conf) * self.ece_count) / n)
        confused = most_confused_pairs(cm, classes)
        top_k = {k: self.topk[k] / n for k in self.ks if k <= c}
        return ClassificationResult(
            classes=classes, n_samples=n, accuracy=acc, top_k=top_k, confusion=cm.copy(),
            precision=precision, recall=recall, f1=f1, support=true_n.astype(np.int64), averages=averages,
            log_loss=self.loss_sum / n, roc_auc=auc, roc_auc_macro=auc_macro, average_precision=ap,
            average_precision_macro=ap_macro, ece=ece,
            reliability={"bin_edges": np.linspace(0, 1, ECE_BINS + 1).tolist(), "confidence": rel_conf.tolist(),
                         "accuracy": rel_acc.tolist(), "count": self.ece_count.astype(int).tolist()},
            most_confused=confused, undefined=undefined)


def evaluate_classification(y_true, scores, *, classes=None, scores_are="logits", top_k=(1, 5)):
    """All classification metrics in one call (``update`` once, then ``compute``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels: members of ``classes``, or class indices when ``classes`` is None.
    scores : array-like of shape (n_samples, n_classes)
        Logits or probabilities, one column per class.
    classes : sequence, optional
    scores_are : {"logits", "probabilities"}
    top_k : int or sequence of int

    Returns
    -------
    ClassificationResult
    """
    m = ClassificationMetrics(classes=classes, scores_are=scores_are, top_k=top_k)
    m.update(y_true, scores)
    return m.compute()


def confusion_from_counts(counts):
    """F1 and friends from summed binary counts ``(tn, fn, fp, tp)``: the streaming rule in its smallest form."""
    tn, fn, fp, tp = (float(v) for v in counts)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"accuracy": (tp + tn) / (tp + tn + fp + fn), "precision": precision, "recall": recall, "f1": f1}
