"""Target 1: verification sweep from embeddings against scikit-learn's roc_curve + auc.

Synthetic clustered identities, d = 512. Our time includes the similarities; scikit-learn's
does not (it gets the pair scores and labels ready-made). evallib runs on all cores and again on
one thread (``threads=1``); the block size is the one chosen from free memory.
"""

import argparse
import os

import numpy as np

from _util import max_rss_mb, peak_bytes, report, timed
from evallib.metrics import VerificationMetrics


def identities(n, d=512, per_id=10, seed=0):
    rng = np.random.default_rng(seed)
    ids = max(2, n // per_id)
    labels = rng.integers(0, ids, n)
    centers = rng.normal(size=(ids, d)).astype(np.float32)
    return (centers[labels] * 0.25 + rng.normal(size=(n, d)).astype(np.float32)), labels


def ours(e, labels, backend="numpy", threads=0):
    m = VerificationMetrics(backend=backend, threads=threads)
    m.update(e, labels)
    r = m.compute()
    return r, m.block


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backend", default="numpy")
    args = ap.parse_args()
    for n in args.sizes:
        e, labels = identities(n)
        t, (r, block) = timed(lambda: ours(e, labels, args.backend), args.repeat)  # noqa: B023 (called in this iteration)
        peak = peak_bytes(lambda: ours(e, labels, args.backend)) / 2**30  # noqa: B023 (called in this iteration)
        t1, (r1, _) = timed(lambda: ours(e, labels, args.backend, threads=1), args.repeat)  # noqa: B023 (called in this iteration)
        figures = {"N": n, "pairs": n * (n - 1) // 2, "evallib_s": t, "evallib_peak_GiB": peak,
                   "max_rss_MiB": max_rss_mb(), "auc": r.auc, "auc_bound": r.auc_bound,
                   "tar_at_far_1e-3": r.tar_at_far[1e-3]["tar"], "backend": r.backend,
                   "threads": os.cpu_count(), "block_size": block, "evallib_1_thread_s": t1,
                   "speedup_all_threads_vs_1": t1 / t,
                   "same_numbers_on_1_thread": bool(r1.auc == r.auc and r1.eer == r.eer and all(
                       (r1.table[c] == r.table[c]).all() for c in ("tp", "fp")))}
        if n <= 20_000:
            from sklearn.metrics import auc, roc_curve

            en = e / np.linalg.norm(e, axis=1, keepdims=True)
            iu = np.triu_indices(n, 1)
            s = (en @ en.T)[iu]
            y = (labels[:, None] == labels[None, :])[iu]
            del iu
            ts, ref = timed(lambda: auc(*roc_curve(y, s)[:2]), 1)  # noqa: B023 (called in this iteration)
            figures.update(sklearn_s=ts, ratio=ts / t, auc_sklearn=ref, auc_diff=abs(ref - r.auc))
            met = ts / t >= 10 and abs(ref - r.auc) <= 1e-6
        else:
            met = t < 30 and peak < 2
            figures["per_pair_loop_estimate_min"] = figures["pairs"] * 3.5e-6 / 60
        report(f"1. verification N={n:,}", met=met, **figures)


if __name__ == "__main__":
    main()
