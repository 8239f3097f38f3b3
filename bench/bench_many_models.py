"""Target 15: 300 models on one data set: the index renders in at most 30 s, each report's ranking in O(1) reads.

Synthetic output folders (no inference): each model's predictions are logits with its own signal
strength on the same images (the first evaluated by the metrics step, the others its copies with
their own headline numbers), then the
models' table is gathered once (``evallib.peers.write_peers``) and ``index.html`` is rendered from
the packaged ``compare.ipynb``.

    python bench/bench_many_models.py                  # 300 models
    python bench/bench_many_models.py --models 20      # quick look
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _util import report


def build(out_root, n_models, *, n_images=500, n_classes=10, seed=0):
    """``n_models`` model folders on the same images; returns the seconds it took.

    The first model is evaluated by the metrics step; the others are its copies with their own
    predictions and headline metrics (the metrics step takes about a second per model on a quiet
    machine, and is not what is measured here).
    """
    from evallib import __version__
    from evallib.evaluation import evaluate, write_evaluation
    from evallib.outputs import write_predictions, write_run
    from evallib.params import parse_params
    from evallib.peers import write_model_summary
    from evallib.records import DatasetFacts, InferenceFacts, Predictions, RunFacts

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_images)
    classes = [f"class{k}" for k in range(n_classes)]
    paths = [f"{classes[y]}/img{i:05d}.jpg" for i, y in enumerate(labels)]
    hashes = [f"{i:032x}" for i in range(n_images)]
    fingerprint = "f" * 64
    model_file = Path(out_root).parent / "model.onnx"
    model_file.write_bytes(b"synthetic")
    t0 = time.perf_counter()
    base = None
    for i in range(n_models):
        name = f"model{i:03d}"
        params = parse_params({"name": name, "model": str(model_file), "data": {"root": str(out_root.parent)},
                               "report": {"bootstrap": 50}})
        signal = rng.uniform(0.5, 3.0)
        logits = rng.normal(size=(n_images, n_classes))
        logits[np.arange(n_images), labels] += signal
        pred = Predictions(scores=logits, scores_are="logits", raw_scores_are="logits", paths=paths, labels=labels,
                           classes=classes, root=str(out_root.parent), file_hashes=hashes, cache_key="k" * 64,
                           data_fingerprint=fingerprint, checks={"score_type": None, "class_order": None})
        run = RunFacts(name=name, evallib=__version__, params=params.to_dict(),
                       model={"path": str(model_file), "size_bytes": 25_000_000 + i, "sha256": "0" * 64, "inputs": [],
                              "outputs": [], "opset": {"ai.onnx": 17}, "ir_version": 8, "producer": "bench",
                              "metadata": {}},
                       dataset=DatasetFacts(root=str(out_root.parent), images=n_images, classes=classes,
                                            class_order="sorted label names", counts={}, skipped=[]),
                       data_fingerprint=fingerprint,
                       inference=InferenceFacts(cached=False, seconds=10.0, images=n_images, images_per_second=50.0,
                                                tta="none", device="cpu", providers=["CPUExecutionProvider"]),
                       score_type=None, class_order_check=None, warnings=[], predictions_key="k" * 64,
                       seconds_total=12.0).to_dict()
        run.update(metrics_key=f"m{i}", metrics_cached=False, metrics_seconds=0.1)
        d = Path(out_root) / name
        d.mkdir(parents=True)
        write_predictions(d, pred)
        if base is None:
            ev = evaluate(params, run, pred)
            write_evaluation(d, ev, metrics_key=f"m{i}")
            base = d
            metrics = ev.metrics
        else:
            for f in ("metrics.json", "metrics.npz"):
                if (base / f).exists():
                    shutil.copy(base / f, d / f)
            metrics = json.loads((d / "metrics.json").read_text())
            acc = float((logits.argmax(1) == labels).mean())
            shift = acc - metrics["headline"].get("accuracy", {}).get("value", acc)
            for h in metrics["headline"].values():
                if isinstance(h, dict) and isinstance(h.get("value"), (int, float)):
                    h["value"] = h["value"] + shift
                    h["interval"] = [v + shift for v in h["interval"]] if h.get("interval") else h.get("interval")
            metrics.update(name=name, run=run, metrics_key=f"m{i}")
            (d / "metrics.json").write_text(json.dumps(metrics))
        write_run(d, run)
        write_model_summary(d, run, metrics)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=300)
    args = ap.parse_args()
    from evallib._keys import peers_digest
    from evallib.peers import load_peers, read_count, write_peers
    from evallib.report.summary import rank_among
    from evallib.run import render_index

    tmp = Path(tempfile.mkdtemp())
    out = tmp / "outputs"
    try:
        build_s = build(out, args.models)
        t0 = time.perf_counter()
        before = read_count()
        write_peers(out)
        gather_s, gather_reads = time.perf_counter() - t0, read_count() - before
        # one report's ranking and report key, as the report and the render step compute them
        me = json.loads((out / "model000" / "metrics.json").read_text())
        before = read_count()
        t0 = time.perf_counter()
        ranking = rank_among("model000", {**load_peers(out), "model000": me}, "macro_f1")
        peers_digest(out, me["run"], "model000")
        rank_s, rank_reads = time.perf_counter() - t0, read_count() - before
        t0 = time.perf_counter()
        index = render_index(out)
        index_s = time.perf_counter() - t0
        report(f"15. many models ({args.models} on one data set)", met=index_s <= 30 and rank_reads <= 2,
               models=args.models, index_render_s=index_s, index_MB=round(index.stat().st_size / 1e6, 2),
               table_gather_s=gather_s, table_gather_reads=gather_reads, one_ranking_s=rank_s,
               one_ranking_reads=rank_reads, ranked=len(ranking or []), build_s=build_s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
