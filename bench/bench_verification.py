"""Target 1: verification sweep from embeddings against scikit-learn's roc_curve + auc.

Synthetic clustered identities, d = 512. Our time includes the similarities; scikit-learn's
does not (it gets the pair scores and labels ready-made).
"""

import argparse

import numpy as np

from _util import max_rss_mb, peak_bytes, report, timed
from evallib.metrics import VerificationMetrics


def identities(n, d=512, per_id=10, seed=0):
    rng = np.random.default_rng(seed)
    ids = max(2, n // per_id)
    labels = rng.integers(0, ids, n)
    centers = rng.normal(size=(ids, d)).astype(np.float32)
    return (centers[labels] * 0.25 + rng.normal(size=(n, d)).astype(np.float32)), labels


def ours(e, labels, backend="numpy"):
    m = VerificationMetrics(backend=backend)
    m.update(e, labels)
    return m.compute()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backend", default="numpy")
    args = ap.parse_args()
    for n in args.sizes:
        e, labels = identities(n)
        t, r = timed(lambda: ours(e, labels, args.backend), args.repeat)
        peak = peak_bytes(lambda: ours(e, labels, args.backend)) / 2**30
        figures = {"N": n, "pairs": n * (n - 1) // 2, "evallib_s": t, "evallib_peak_GiB": peak,
                   "max_rss_MiB": max_rss_mb(), "auc": r.auc, "auc_bound": r.auc_bound,
                   "tar_at_far_1e-3": r.tar_at_far[1e-3]["tar"], "backend": r.backend}
        if n <= 20_000:
            from sklearn.metrics import auc, roc_curve

            en = e / np.linalg.norm(e, axis=1, keepdims=True)
            iu = np.triu_indices(n, 1)
            s = (en @ en.T)[iu]
            y = (labels[:, None] == labels[None, :])[iu]
            del iu
            ts, ref = timed(lambda: auc(*roc_curve(y, s)[:2]), 1)
            figures.update(sklearn_s=ts, ratio=ts / t, auc_sklearn=ref, auc_diff=abs(ref - r.auc))
            met = ts / t >= 10 and abs(ref - r.auc) <= 1e-6
        else:
            met = t < 30 and peak < 2
            figures["per_pair_loop_estimate_min"] = figures["pairs"] * 3.5e-6 / 60
        report(f"1. verification N={n:,}", met=met, **figures)


if __name__ == "__main__":
    main()
