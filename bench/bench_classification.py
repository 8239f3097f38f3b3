"""Target 2: the classification suite on 50,000 x 1,000 logits against the same scikit-learn calls."""

import argparse

import numpy as np

from _util import peak_bytes, report, timed
from evallib.metrics import evaluate_classification


def sklearn_suite(y, logits):
    from scipy.special import softmax
    from sklearn import metrics as m

    p = softmax(logits, axis=1)
    pred = p.argmax(1)
    labels = np.arange(logits.shape[1])
    prf = m.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    return {"accuracy": m.accuracy_score(y, pred), "top_5": m.top_k_accuracy_score(y, p, k=5, labels=labels),
            "confusion": m.confusion_matrix(y, pred, labels=labels), "precision": prf[0], "recall": prf[1],
            "f1": prf[2], "roc_auc_macro": m.roc_auc_score(y, p, multi_class="ovr", labels=labels),
            "log_loss": m.log_loss(y, p, labels=labels)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--classes", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    y = rng.integers(0, args.classes, args.n)
    logits = rng.normal(size=(args.n, args.classes))
    logits[np.arange(args.n), y] += 3.0
    t, r = timed(lambda: evaluate_classification(y, logits), args.repeat)
    peak = peak_bytes(lambda: evaluate_classification(y, logits)) / 2**30
    ts, ref = timed(lambda: sklearn_suite(y, logits), 2)
    diffs = {
        "accuracy": abs(r.accuracy - ref["accuracy"]), "top_5": abs(r.top_k[5] - ref["top_5"]),
        "confusion": int(np.abs(r.confusion - ref["confusion"]).max()),
        "precision": float(np.abs(r.precision - ref["precision"]).max()),
        "recall": float(np.abs(r.recall - ref["recall"]).max()), "f1": float(np.abs(r.f1 - ref["f1"]).max()),
        "roc_auc_macro": abs(r.roc_auc_macro - ref["roc_auc_macro"]), "log_loss": abs(r.log_loss - ref["log_loss"]),
    }
    worst = max(diffs.values())
    report(f"2. classification {args.n:,} x {args.classes:,}", met=ts / t >= 10 and worst <= 1e-9,
           evallib_s=t, sklearn_s=ts, ratio=ts / t, evallib_peak_GiB=peak, largest_difference=worst,
           accuracy=r.accuracy, roc_auc_macro=r.roc_auc_macro)


if __name__ == "__main__":
    main()
