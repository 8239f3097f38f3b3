"""Run every benchmark (each in its own process) and record the figures in docs/benchmarks.md.

    python bench/run_all.py            # all targets
    python bench/run_all.py --only bench_inference.py   # rerun one; the others keep their last figures
    python bench/run_all.py --record log.txt            # record the RESULT lines of a script run by hand

The figures are also kept in bench/results.json.
"""

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# one process per entry, so that each peak memory figure is its own
SCRIPTS = [("bench_verification.py", "--sizes", "10000"), ("bench_verification.py", "--sizes", "50000"),
           ("bench_classification.py",), ("bench_tsne.py",), ("bench_inference.py",), ("bench_reports.py",),
           ("bench_many_classes.py",), ("bench_many_classes.py", "--per-class", "100", "--task", "classification"),
           ("bench_dask_verification.py", "--sizes", "50000"), ("bench_cluster.py",), ("bench_cache_keys.py",),
           ("bench_cache_keys.py", "--images", "100000", "--pixels", "160x120"),
           ("bench_curves.py",), ("bench_identification.py",), ("bench_templates.py",),
           ("bench_many_models.py",), ("bench_slices.py", "--n", "100000", "--slices", "50"),
           # a small run: this 2-core machine is shared; --images 50000 --infer-images 50000 for the full figure
           ("bench_photos.py", "--images", "2000", "--infer-images", "64", "--tencrop-images", "16")]


def run(script, extra=()):
    proc = subprocess.Popen([sys.executable, "-u", str(HERE / script), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=HERE)
    results = []
    for line in proc.stdout:
        if line.startswith("RESULT "):
            results.append(json.loads(line[7:]))
        else:
            print(line, end="")
    if proc.wait() != 0:
        results.append({"target": script, "status": f"failed (exit {proc.returncode})"})
    return results


def write_doc(results, path):
    sys.path.insert(0, str(HERE))
    from _util import machine

    lines = ["# Benchmarks", "",
             f"Latest figures from `python bench/run_all.py`, {datetime.date.today().isoformat()}, on {machine()}, "
             "NumPy backend. Each benchmark measures evallib and its reference in the same run on the same input. "
             "evallib's times are medians of 3 to 5 runs (one run for the 70,000-point t-SNE); the scikit-learn "
             "references, which take 20 to 40 s each, are timed once (verification, t-SNE) or as the median of "
             "two runs (classification). Peak memory is the largest allocation total traced by tracemalloc "
             "(NumPy's arrays included) during one call; max_rss_MiB is the whole process's peak resident "
             "memory, data generation and the reference included.", ""]
    for r in results:
        lines.append(f"## {r['target']}: {r['status']}")
        lines.append("")
        lines.append("| figure | value |")
        lines.append("|---|---|")
        for k, v in r.items():
            if k in ("target", "status"):
                continue
            if isinstance(v, float):
                v = f"{v:.4g}"
            elif isinstance(v, dict):
                v = "; ".join(f"{a}: {b}" for a, b in v.items())
            lines.append(f"| {k} | {v} |")
        lines.append("")
    path.write_text("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--record", nargs="*", default=None, help="output files of bench scripts run by hand (sizes "
                    "too long for a full run): their RESULT lines replace or add those targets")
    ap.add_argument("--doc", default=str(HERE.parent / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    store = HERE / "results.json"
    results = []
    if args.record is not None:
        results = [json.loads(line[7:]) for f in args.record for line in Path(f).read_text().splitlines()
                   if line.startswith("RESULT ")]
        args.only = []
    else:
        for entry in [e for e in SCRIPTS if e[0] in args.only] if args.only else SCRIPTS:  # each variant of a script
            results += run(entry[0], entry[1:])
    if args.only is not None and store.exists():  # replace those targets in the last full run's figures
        new = {r["target"]: r for r in results}
        # "6." and the like: a renamed target replaces its old name (a recorded size is kept beside the others)
        numbers = {t.split(" ", 1)[0] for t in new} if args.record is None else set()
        # a failure is named by its script
        old = [r for r in json.loads(store.read_text()) if r["target"] in new or (
            r["target"].split(" ", 1)[0] not in numbers and r["target"] not in args.only)]
        results = [new.pop(r["target"], r) for r in old] + list(new.values())
    store.write_text(json.dumps(results, indent=1) + "\n")
    write_doc(results, Path(args.doc))
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
