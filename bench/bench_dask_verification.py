"""All-pairs verification sharded on a Dask LocalCluster against the local pass, in the same run.

Synthetic clustered identities, d = 512 (as bench_verification.py). Local: ``threads`` threads in
this process. Sharded: a LocalCluster of ``workers`` processes with one thread each, on the same
machine, started (and warmed up) before the timing. Block sizes are the automatic ones. The results
must be identical field by field.

    PYTHONPATH=. python bench/bench_dask_verification.py --sizes 50000

(the workers import evallib from PYTHONPATH, or the installed package; the script checks they import
the same one as this process.)
"""

import argparse
import time

import numpy as np
from bench_verification import identities

from _util import max_rss_mb, report, timed
from evallib.metrics import VerificationMetrics


def run(e, labels, **kwargs):
    m = VerificationMetrics(**kwargs)
    m.update(e, labels)
    return m.compute(), m.block


def numbers(r):
    return {"counts": (r.n_genuine, r.n_impostor), "auc": (r.auc, r.auc_bound), "eer": (r.eer, r.eer_threshold),
            "tar_at_far": r.tar_at_far, "table": {k: np.asarray(v) for k, v in r.table.items()},
            "policies": {k: v.to_dict() for k, v in r.policies.items()}, "histogram": r.histogram,
            "sweep": (r.sweep.thresholds, r.sweep.tp, r.sweep.fp), "notes": r.notes}


def same(a, b):
    """Every reported number equal (NaN equals NaN)."""
    try:
        np.testing.assert_equal(numbers(a), numbers(b))
    except AssertionError:
        return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="threads of the local pass")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    import evallib

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    client = Client(cluster)
    imported = set(client.run(lambda: __import__("evallib").__file__).values())
    run(*identities(200, d=8), client=client)  # the workers import evallib's modules once
    start_s = time.perf_counter() - t0
    try:
        for n in args.sizes:
            e, labels = identities(n)
            t_local, (r_local, block_local) = timed(lambda: run(e, labels, threads=args.threads), args.repeat)  # noqa: B023 (called in this iteration)
            t_dask, (r_dask, block_dask) = timed(lambda: run(e, labels, client=client), args.repeat)  # noqa: B023 (called in this iteration)
            identical = same(r_dask, r_local)
            figures = {"N": n, "pairs": n * (n - 1) // 2, "local_s": t_local, "local_threads": args.threads,
                       "dask_s": t_dask, "dask_workers": f"{args.workers} x 1 thread",
                       "dask_vs_local": t_dask / t_local, "cluster_start_s": start_s, "block_local": block_local,
                       "block_dask": block_dask, "identical_results": identical,
                       "workers_import_this_evallib": imported == {evallib.__file__}, "auc": r_dask.auc,
                       "tar_at_far_1e-3": r_dask.tar_at_far[1e-3]["tar"], "max_rss_MiB": max_rss_mb()}
            report(f"10. sharded verification N={n:,} (Dask, 2 workers)", met=identical, **figures)
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
