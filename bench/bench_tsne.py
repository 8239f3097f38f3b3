"""Target 3: t-SNE of 10,000 x 512 embeddings against scikit-learn's TSNE; 70,000 points."""

import argparse

import numpy as np

from _util import report, timed
from evallib.tsne import trustworthiness, tsne


def data(n, d=512, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 100, n)
    centers = rng.normal(size=(100, d))
    return (centers[labels] * 0.5 + rng.normal(size=(n, d))).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--large", type=int, default=70_000)
    args = ap.parse_args()
    x = data(10_000)
    t, (coords, how) = timed(lambda: tsne(x, seed=0), args.repeat)
    trust, m = trustworthiness(x, coords)
    from sklearn.manifold import TSNE

    ts, ref = timed(lambda: TSNE(random_state=0, init="pca").fit_transform(x), 1)
    trust_ref, _ = trustworthiness(x, ref)
    report("3a. t-SNE 10,000 x 512", met=t < 10 and abs(trust - trust_ref) <= 0.01, evallib_s=t, sklearn_s=ts,
           ratio=ts / t, trustworthiness=trust, trustworthiness_sklearn=trust_ref, trust_sample=m, method=how)
    if args.large:
        xl = data(args.large, seed=1)
        tl, (cl, how) = timed(lambda: tsne(xl, seed=0), 1)
        trust_l, m = trustworthiness(xl, cl)
        report(f"3b. t-SNE {args.large:,} x 512", met=tl < 180, evallib_s=tl, trustworthiness=trust_l,
               trust_sample=m, method=how)


if __name__ == "__main__":
    main()
