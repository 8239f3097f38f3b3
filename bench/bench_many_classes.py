"""Report budgets at many classes: `evallib run` on 1,000 classes x 5 tiny images, and on 100,000 images.

Builds a synthetic data set (classes in groups of five with similar patterns, so the model
confuses classes within a group) and a tiny nearest-centroid ONNX model with an embedding
output, runs ``evallib run`` on it, and prints the time of the steps after inference (metrics and
report; the report alone too), report.html's size and metrics.json's against the budgets:
1,000 x 5: 60 s, 5 MB, 2 MB; 100,000 images: 3 min, 5 MB.

    python bench/bench_many_classes.py                      # 1,000 classes x 5 images
    python bench/bench_many_classes.py --per-class 100 --task classification   # 100,000 images
    python bench/bench_many_classes.py --classes 10 --per-class 20 --keep build/many10
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _util import report

REPO = Path(__file__).resolve().parent.parent
SIZE = 16
DIM = 32
AMP, NOISE = 20, 2.0  # about 70% top-1 accuracy, most mistakes within a group of five classes


def build(root, *, classes, per_class, task="both", seed=0):
    """Images under ``root/data/<class>/`` and ``root/model.onnx``; returns the params file's path."""
    import torch
    from PIL import Image
    from torch import nn

    rng = np.random.default_rng(seed)
    group = rng.normal(size=(classes // 5 + 1, SIZE * SIZE))
    proto = group[np.arange(classes) // 5] + 0.6 * rng.normal(size=(classes, SIZE * SIZE))
    names = [f"class_{k:04d}" for k in range(classes)]
    data = root / "data"
    for k, name in enumerate(names):
        (data / name).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            pix = np.clip(128 + AMP * (proto[k] + NOISE * rng.normal(size=SIZE * SIZE)), 0, 255).astype(np.uint8)
            Image.fromarray(pix.reshape(SIZE, SIZE), "L").save(data / name / f"{name}_{j}.png")
    # the model: a linear embedding (the prototypes' leading principal directions), then nearest centroid
    x_proto = ((128 + AMP * proto) / 255 - 0.5) / 0.25
    centered = x_proto - x_proto.mean(0)
    basis = np.linalg.svd(centered, full_matrices=False)[2][:DIM]  # fewer rows when there are few classes
    centroids = x_proto @ basis.T
    emb = nn.Linear(SIZE * SIZE, len(basis), bias=False)
    head = nn.Linear(len(basis), classes)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(basis, dtype=torch.float32))
        head.weight.copy_(torch.tensor(centroids, dtype=torch.float32))
        head.bias.copy_(torch.tensor(-0.5 * (centroids ** 2).sum(1), dtype=torch.float32))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = emb, head

        def forward(self, x):
            e = self.emb(x.flatten(1))
            return self.head(e), e

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Model().eval(), (torch.zeros(1, 1, SIZE, SIZE),), str(root / "model.onnx"), dynamo=False,
                          input_names=["input"], output_names=["logits", "embedding"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}})
    params = root / f"many_{classes}.yaml"
    params.write_text(json.dumps({
        "name": f"many_{classes}", "model": "model.onnx", "task": task,
        "data": {"root": "data", "labels": "folder"},
        "preprocess": {"mean": [0.5], "std": [0.25], "mode": "grayscale"},
        "outputs": {"scores": "logits", "scores_are": "logits", "embedding": "embedding"},
    }, indent=2))
    return params


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--task", default="both", help="both, or classification (no all-pairs verification)")
    ap.add_argument("--keep", default=None, help="build and render here and keep it (default: a temporary folder)")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp()) / "many"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    try:
        params = build(root, classes=args.classes, per_class=args.per_class, task=args.task)
        out = root / "outputs"
        t0 = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run([sys.executable, "-m", "evallib.cli", "run", str(params), "--out", str(out), "--quiet"],
                              cwd=REPO, capture_output=True, text=True, env=env)  # the notebook's kernel too
        total = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, sep="\n")
            raise SystemExit(proc.returncode)
        d = out / params.stem
        run = json.loads((d / "run.json").read_text())
        html_mb = (d / "report.html").stat().st_size / 1e6
        metrics_mb = (d / "metrics.json").stat().st_size / 1e6
        npz = d / "metrics.npz"
        n = args.classes * args.per_class
        budget = 60 if n <= 10_000 else 180
        after = run["metrics_seconds"] + run["report_seconds"]
        report(f"6. report at many classes ({args.classes:,} classes x {args.per_class} images = {n:,}, "
               f"task {args.task})",
               met=after <= budget and html_mb <= 5 and (metrics_mb <= 2 or n > 10_000),
               budget_s=budget, metrics_and_report_s=round(after, 1), metrics_s=round(run["metrics_seconds"], 1),
               report_s=round(run["report_seconds"], 1), inference_s=round(run["inference"]["seconds"], 2),
               run_total_s=round(total, 1), report_html_MB=round(html_mb, 2), metrics_json_MB=round(metrics_mb, 3),
               metrics_npz_MB=round(npz.stat().st_size / 1e6, 3) if npz.exists() else 0,
               accuracy=round(json.loads((d / "metrics.json").read_text())["headline"]["accuracy"]["value"], 4))
    finally:
        if not args.keep:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
