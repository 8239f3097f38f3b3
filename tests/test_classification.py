"""Classification metrics against scikit-learn, streamed and one-shot."""

import warnings

import numpy as np
import pytest
from scipy.special import softmax
from sklearn import metrics as skm

from conftest import make_classification
from evallib.errors import EvallibError
from evallib.metrics import ClassificationMetrics, DegenerateWarning, evaluate_classification

CASES = {
    "random": dict(n=500, c=6),
    "ties": dict(n=500, c=6, ties=True),
    "two_classes": dict(n=300, c=2),
    "absent_class": dict(n=400, c=5, missing_class=2),
    "weak": dict(n=400, c=8, signal=0.1),
    "many_classes": dict(n=2000, c=40),
}


def _ref(y, logits):
    c = logits.shape[1]
    labels = np.arange(c)
    pred = logits.argmax(1)
    p = softmax(logits, axis=1)
    prf = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    return p, pred, labels, prf


@pytest.mark.parametrize("case", list(CASES))
def test_against_sklearn(rng, case):
    y, logits = make_classification(rng, **CASES[case])
    c = logits.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWarning)
        r = evaluate_classification(y, logits, top_k=(1, 3, 5))
    p, pred, labels, (prec, rec, f1, sup) = _ref(y, logits)
    tol = dict(abs=1e-9)
    assert r.accuracy == pytest.approx(skm.accuracy_score(y, pred), **tol)
    for k in (3, 5):
        if k < c:
            assert r.top_k[k] == pytest.approx(skm.top_k_accuracy_score(y, logits, k=k, labels=labels), **tol)
    np.testing.assert_array_equal(r.confusion, skm.confusion_matrix(y, pred, labels=labels))
    np.testing.assert_allclose(r.precision, prec, atol=1e-9)
    np.testing.assert_allclose(r.recall, rec, atol=1e-9)
    np.testing.assert_allclose(r.f1, f1, atol=1e-9)
    np.testing.assert_array_equal(r.support, sup)
    for avg in ("micro", "macro", "weighted"):
        ref = skm.precision_recall_fscore_support(y, pred, labels=labels, average=avg, zero_division=0)
        assert [r.averages[avg][m] for m in ("precision", "recall", "f1")] == pytest.approx(ref[:3], **tol)
    assert r.log_loss == pytest.approx(skm.log_loss(y, p, labels=labels), **tol)
    present = np.isin(labels, y)
    # ranking metrics on the very same probabilities (two softmax codes may break ties differently)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWarning)
        r = evaluate_classification(y, p, scores_are="probabilities")
    for k in labels[present]:
        assert r.roc_auc[k] == pytest.approx(skm.roc_auc_score(y == k, p[:, k]), **tol)
        assert r.average_precision[k] == pytest.approx(skm.average_precision_score(y == k, p[:, k]), **tol)
    assert np.isnan(r.roc_auc[~present]).all()
    if present.all():
        ref_auc = skm.roc_auc_score(y, p, multi_class="ovr", labels=labels) if c > 2 else skm.roc_auc_score(y, p[:, 1])
        assert r.roc_auc_macro == pytest.approx(ref_auc, **tol)


def test_absent_class_is_flagged(rng):
    y, logits = make_classification(rng, n=300, c=4, missing_class=1)
    with pytest.warns(DegenerateWarning, match=r"absent from y_true: \['1'\]"):
        r = evaluate_classification(y, logits)
    flagged = {u["metric"]: u for u in r.undefined}
    assert flagged["recall"]["classes"] == ["1"] and flagged["roc_auc"]["classes"] == ["1"]


def test_one_class_only(rng):
    y = np.zeros(50, int)
    logits = rng.normal(size=(50, 3))
    with pytest.warns(DegenerateWarning, match="single class"):
        r = evaluate_classification(y, logits)
    assert np.isnan(r.roc_auc_macro)
    assert r.accuracy == skm.accuracy_score(y, logits.argmax(1))


def test_ece_and_reliability_brute_force(rng):
    y, logits = make_classification(rng, n=1000, c=5)
    r = evaluate_classification(y, logits)
    p = softmax(logits, axis=1)
    conf, correct = p.max(1), p.argmax(1) == y
    ece = 0.0
    for lo, hi in zip(np.linspace(0, 1, 16)[:-1], np.linspace(0, 1, 16)[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    assert r.ece == pytest.approx(ece, abs=1e-12)
    assert sum(r.reliability["count"]) == 1000


def test_probabilities_input_equals_logits_input(rng):
    y, logits = make_classification(rng)
    a = evaluate_classification(y, logits)
    b = evaluate_classification(y, softmax(logits, axis=1), scores_are="probabilities")
    assert a.accuracy == b.accuracy and a.log_loss == pytest.approx(b.log_loss, abs=1e-12)
    assert a.roc_auc_macro == pytest.approx(b.roc_auc_macro, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_streaming_equals_one_shot_for_any_split(seed):
    rng = np.random.default_rng(seed)
    y, logits = make_classification(rng, n=600, c=7, ties=bool(seed % 2))
    whole = evaluate_classification(y, logits).to_dict()
    cuts = np.sort(rng.choice(np.arange(1, 600), size=rng.integers(1, 12), replace=False))
    order = rng.permutation(600) if seed >= 3 else np.arange(600)  # also invariant to sample order
    m = ClassificationMetrics()
    for part in np.split(order, cuts):
        m.update(y[part], logits[part])
    streamed = m.compute().to_dict()
    for key in ("accuracy", "macro_f1", "log_loss", "roc_auc_macro", "average_precision_macro", "ece"):
        assert streamed[key] == pytest.approx(whole[key], abs=1e-12), key
    assert streamed["confusion"] == whole["confusion"] and streamed["top_k"] == whole["top_k"]


def test_class_names_map_labels(rng):
    y, logits = make_classification(rng, n=100, c=3)
    names = np.array(["cat", "dog", "<b>x</b>"])
    r = evaluate_classification(names[y], logits, classes=list(names))
    assert r.accuracy == evaluate_classification(y, logits).accuracy
    assert r.to_dict()["classes"] == ["cat", "dog", "<b>x</b>"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(y=[0, 1, 5], scores=np.zeros((3, 3))), r"y_true: expected class indices 0..2; got 5"),
    (dict(y=[0, 1], scores=np.zeros((3, 3))), r"y_true: expected 3 labels, one per row of scores; got 2"),
    (dict(y=[0, 1, 1], scores=np.zeros(3)), r"scores: expected a 2-d array of shape \(n_samples, n_classes\); got"
                                            r" shape \(3,\)"),
    (dict(y=[0, 1], scores=[[0.1, np.nan], [0, 1]]), r"scores: expected finite values; got 1 NaN.*index \(0, 1\)"),
    (dict(y=["a", "z"], scores=np.zeros((2, 2)), classes=["a", "b"]),
     r"y_true: expected labels among classes \['a', 'b'\]; got 'z'"),
    (dict(y=[0.5, 1.0], scores=np.zeros((2, 2))), r"y_true: expected integer class indices 0..1 \(or pass classes=\);"
                                                  r" got dtype float64"),
    (dict(y=[0, 1], scores=[[0.5, 1.5], [0, 1]], scores_are="probabilities"),
     r"scores: expected probabilities in \[0, 1\]"),
    (dict(y=[0, 1], scores=np.zeros((2, 2)), scores_are="softmax"), r"scores_are: expected one of logits,"
                                                                    r" probabilities; got 'softmax'"),
])
def test_errors(kwargs, match):
    y = kwargs.pop("y")
    scores = kwargs.pop("scores")
    with pytest.raises(EvallibError, match=match):
        evaluate_classification(y, scores, **kwargs)


def test_stream_rejects_changed_width(rng):
    m = ClassificationMetrics()
    m.update([0, 1], rng.normal(size=(2, 3)))
    with pytest.raises(EvallibError, match="scores: expected 3 columns .*; got 4"):
        m.update([0, 1], rng.normal(size=(2, 4)))
