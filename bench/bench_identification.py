"""1:N identification search against the float64 GEMM floor, measured in the same run.

Synthetic identities, d = 512: a gallery of one sample per identity and probes of which half have a
mate in the gallery (open set). evallib's exact blocked search (``evaluate_identification``, rank-20
candidate lists, CMC, FNIR at FPIR) is timed against the floor: the plain NumPy float64 product of
every probe with every gallery sample (``probes @ gallery.T``), in blocks of the same size so that the
floor holds no more memory than the search, with nothing else done. Both run on the same threads.

    python bench/bench_identification.py                         # small: 500 probes x 20,000
    python bench/bench_identification.py --probes 10000 --gallery 1000000   # the issue's size (hours on 2 cores)
    python bench/bench_identification.py --backend cupy          # on a GPU; the floor is CuPy's float64 GEMM
"""

import argparse

import numpy as np

from _util import max_rss_mb, report, timed
from evallib.metrics.identification import evaluate_identification
from evallib.metrics.verification import get_backend, normalize_embeddings


def data(n_probes, n_gallery, d=512, noise=0.6, seed=0):
    rng = np.random.default_rng(seed)
    gallery = rng.normal(size=(n_gallery, d)).astype(np.float32)
    labels = np.arange(n_gallery)
    mated = rng.integers(0, n_gallery, n_probes // 2)
    probes = np.concatenate([gallery[mated] + noise * rng.normal(size=(len(mated), d)).astype(np.float32),
                             rng.normal(size=(n_probes - len(mated), d)).astype(np.float32)])
    probe_labels = np.concatenate([mated, n_gallery + np.arange(n_probes - len(mated))])  # the rest: not enrolled
    return probes, probe_labels, gallery, labels


def floor(probes, gallery, xp, block):
    """The float64 GEMM of every probe with every gallery sample, block by block (results dropped)."""
    p = xp.asarray(normalize_embeddings(probes).astype(np.float64))
    g = xp.asarray(normalize_embeddings(gallery).astype(np.float64))
    s = 0.0
    for r0 in range(0, len(p), block):
        for c0 in range(0, len(g), block):
            s += float((p[r0:r0 + block] @ g[c0:c0 + block].T)[0, 0])  # one element read: the block is computed
    if xp is not np:
        xp.cuda.Stream.null.synchronize()
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=500)
    ap.add_argument("--gallery", type=int, default=20_000)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    xp, name = get_backend(args.backend)
    probes, pl, gallery, gl = data(args.probes, args.gallery)

    def ours():
        return evaluate_identification(probes, pl, gallery, gl, n_candidates=args.candidates, threads=args.threads,
                                       backend=name)

    t_ours, r = timed(ours, args.repeat)
    block = 2048 if name == "numpy" else 8192
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=None if args.threads == 0 else args.threads, user_api="blas"):
        t_floor, _ = timed(lambda: floor(probes, gallery, xp, block), args.repeat)
    ratio = t_ours / t_floor
    report(f"12. identification {args.probes:,} x {args.gallery:,} (d=512, rank-{args.candidates}, {name})",
           met=ratio <= 1.2, seconds=t_ours, gemm_floor_seconds=t_floor, ratio_to_floor=ratio,
           rank_1=r.rank_accuracy[1], n_mated=r.n_mated, n_nonmated=r.n_nonmated, max_rss_MiB=max_rss_mb())


if __name__ == "__main__":
    main()
