"""Target 13: ROC and precision-recall curves with their bootstrap bands, against the curves alone and
scikit-learn's roc_curve on the same micro-average problem.

The metrics step computes every curve the report draws (micro and macro averages, each class's up to
10 classes) and pointwise 95% bootstrap bands. Target: the bands cost at most 2x the curves themselves
(so at most 3x with them), at 10 and at 1,000 classes, and the band holds the curve of the data.
"""

import argparse
import time

import numpy as np

from _util import report
from evallib.metrics.curves import class_curves


def data(n, c, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    s = rng.normal(size=(n, c)).astype(np.float32)
    s[np.arange(n), y] += 2.5
    p = np.exp(s - s.max(1, keepdims=True))
    return y, p / p.sum(1, keepdims=True)


def cpu(fn):
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", default=["100000x10", "20000x1000"])
    ap.add_argument("--boot", type=int, default=200)
    args = ap.parse_args()
    from sklearn.metrics import roc_curve

    for size in args.sizes:
        n, c = (int(v) for v in size.split("x"))
        y, p = data(n, c)
        onehot = np.eye(c, dtype=bool)[y]
        t_sk, (fpr, tpr, _) = cpu(lambda: roc_curve(onehot.ravel(), p.ravel()))  # noqa: B023 (called in this iteration)
        t_curves, _ = cpu(lambda: class_curves(y, p, per_class=c <= 10, bands=False))  # noqa: B023 (called in this iteration)
        t_bands, out = cpu(lambda: class_curves(y, p, per_class=c <= 10, bands=True, n_boot=args.boot))  # noqa: B023 (called in this iteration)
        band = out["roc_micro_band"]
        truth = np.interp(band["x"], fpr, tpr)
        inside = float(np.mean((band["lower"] - 1e-9 <= truth) & (truth <= band["upper"] + 1e-9)))
        extra = (t_bands - t_curves) / t_curves
        report(f"13. curves with bootstrap bands, {n:,} images x {c:,} classes", met=extra <= 2.0 and inside >= 0.9,
               curves_cpu_s=t_curves, with_bands_cpu_s=t_bands, bands_over_curves=extra, sklearn_roc_cpu_s=t_sk,
               resamples=band["n_boot"], how=band["reason"] or "exact", curve_inside_band=inside,
               note="CPU seconds (process time), so that other load on the machine does not count")


if __name__ == "__main__":
    main()
