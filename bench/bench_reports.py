"""Target 5: wall time of `evallib run` on the demo per model, a second run with nothing changed, HTML sizes.

The budget: each demo report renders in at most 10 s (the report step alone; predictions and metrics
are steps of their own, timed beside it).
"""

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import report

REPO = Path(__file__).resolve().parent.parent
MODELS = len(list((REPO / "params").glob("*.yaml")))  # the demo's params files


def run(out):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "evallib.cli", "run", str(REPO / "params"), "--out", str(out), "--quiet"],
                   check=True, cwd=REPO, capture_output=True)
    return time.perf_counter() - t0


def main():
    from evallib.demo import build_demo

    build_demo(REPO / "build" / "demo", log=lambda *a: None)
    out = Path(tempfile.mkdtemp()) / "outputs"
    try:
        first = run(out)
        per_model = {}
        for d in sorted(p for p in out.iterdir() if p.is_dir()):
            r = json.loads((d / "run.json").read_text())
            per_model[d.name] = {"inference_s": round(r["inference"]["seconds"], 2),
                                 "metrics_s": round(r["metrics_seconds"], 1),
                                 "report_s": round(r["report_seconds"], 1),
                                 "html_MB": round((d / "report.html").stat().st_size / 1e6, 2)}
        second = run(out)
        report(f"5. reports (demo, {MODELS} models)", met=first / second >= 3
               and all(m["html_MB"] < 5 and m["report_s"] <= 10 for m in per_model.values()),
               first_run_s=first, second_run_s=second, speedup=first / second,
               index_MB=round((out / "index.html").stat().st_size / 1e6, 2), per_model=per_model)
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
