"""The demo's models, reports included: `evallib run --cluster local:2` against `--jobs 1`.

Both runs start from an empty output folder and write everything (predictions, metrics, reports,
index). The cluster's start (two worker processes) is inside its timing, as a user sees it. The
headline metrics of both runs must be equal.

    python bench/bench_cluster.py
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import report

REPO = Path(__file__).resolve().parent.parent
MODELS = len(list((REPO / "params").glob("*.yaml")))  # the demo's params files


def run(out, *extra):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "evallib.cli", "run", str(REPO / "params"), "--out", str(out), "--quiet",
                    *extra], check=True, cwd=REPO, capture_output=True, env=env)
    return time.perf_counter() - t0


def headlines(out):
    return {d.name: json.loads((d / "metrics.json").read_text())["headline"]
            for d in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))}


def main():
    from evallib.demo import build_demo

    build_demo(REPO / "build" / "demo", log=lambda *a: None)
    tmp = Path(tempfile.mkdtemp())
    try:
        local = run(tmp / "local", "--jobs", "1")
        cluster = run(tmp / "cluster", "--cluster", "local:2")
        a, b = headlines(tmp / "local"), headlines(tmp / "cluster")
        equal = a.keys() == b.keys() and all(
            abs(a[m][k]["value"] - b[m][k]["value"]) <= 1e-9 * max(1.0, abs(a[m][k]["value"]))
            for m in a for k in a[m])
        report(f"11. demo batch on a Dask cluster ({MODELS} models, reports included)", met=equal,
               jobs_1_s=round(local, 1), cluster_local_2_s=round(cluster, 1), ratio=round(local / cluster, 2),
               same_headline_metrics=equal)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
