"""Slices in the metrics step: what they add to it, at 100,000 images and 50 metadata slices.

:func:`evallib.steps_slices.evaluate_slices` (5 metadata columns of ``--slices / 5`` values: 50 slices and
1,000 two-way intersections at the default, the five binned image properties and their intersections, and
weak-slice discovery from the slices and a 64-dimensional embedding) is timed against the metrics step
without slices on the same predictions (:func:`evallib.evaluation.evaluate` with no metadata and no image
properties: the headline metrics, their bootstrap at ``report.bootstrap`` resamples, the curves and their
bands, and the t-SNE map). The step's classification part alone (no t-SNE map) is timed too and the ratio to
it printed beside. The target: slices add at most 20% to the metrics step.

    python bench/bench_slices.py                         # 100,000 images, 50 slices: the target
    python bench/bench_slices.py --n 5000 --slices 50    # a quick check

``bench/run_all.py --only bench_slices.py`` records the figure in bench/results.json.
"""

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from _util import report, timed
from evallib.evaluation import evaluate, probabilities
from evallib.metrics import bootstrap_classification, evaluate_classification
from evallib.metrics.curves import class_curves
from evallib.params import parse_params
from evallib.records import Predictions
from evallib.steps_slices import evaluate_slices

COLUMNS = 5  # metadata columns the slices are spread over


def data(n, slices=50, classes=100, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), y] += 3
    paths = [f"c{k}/{i}.png" for i, k in enumerate(y)]
    per = max(2, slices // COLUMNS)
    meta = {f"col{c}": rng.integers(0, per, n) for c in range(COLUMNS)}
    weak = meta["col0"] == 3
    logits[weak] = rng.normal(size=(weak.sum(), classes))  # one weak slice
    props = {"brightness": rng.random(n), "contrast": rng.random(n) * 0.3, "blur": rng.gamma(2, 300, n),
             "pixels": rng.choice([50_176, 90_000, 150_528], n).astype(float), "aspect_ratio": rng.choice([1, 1.33], n)}
    emb = rng.normal(size=(n, 64))
    pred = Predictions(scores=logits, scores_are="logits", embeddings=emb, paths=paths, labels=y,
                       classes=[f"c{k}" for k in range(classes)], root="/data", image_properties=props)
    return pred, meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000, help="images")
    ap.add_argument("--slices", type=int, default=50, help=f"metadata slices, over {COLUMNS} columns")
    ap.add_argument("--bootstrap", type=int, default=1000, help="report.bootstrap of the metrics step")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    if args.n < 100 or args.slices < COLUMNS:
        ap.error(f"--n: expected at least 100 images and --slices at least {COLUMNS}; got {args.n}, {args.slices}")
    pred, meta = data(args.n, args.slices)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "meta.csv"
        cols = list(meta)
        lines = ["path," + ",".join(cols)] + [p + "," + ",".join(str(meta[c][i]) for c in cols)
                                              for i, p in enumerate(pred.paths)]
        csv.write_text("\n".join(lines) + "\n")
        params = parse_params({"name": "b", "model": "m.onnx", "data": {"root": "/data", "metadata": str(csv)},
                               "report": {"bootstrap": args.bootstrap}}, base_dir=tmp)
        rep = params.report

        def step():
            names = np.asarray(pred.classes)[pred.labels]
            evaluate_classification(names, pred.scores, scores_are="logits", classes=pred.classes,
                                    top_k=(1, rep.top_k))
            bootstrap_classification(pred.labels, pred.scores, scores_are="logits", n_boot=rep.bootstrap,
                                     seed=rep.seed, ks=(rep.top_k,))
            class_curves(pred.labels, probabilities(pred), per_class=False, n_boot=min(rep.bootstrap, 200),
                         seed=rep.seed, bands=rep.bootstrap > 0)

        import scipy.stats  # noqa: F401  imports are paid once per process, not by either part
        import sklearn.cluster  # noqa: F401

        plain = dataclasses.replace(params, data=dataclasses.replace(params.data, metadata=None))
        unsliced = dataclasses.replace(pred, image_properties=None)
        run = {"dataset": {"skipped": []}, "warnings": []}
        t_core, _ = timed(step, args.repeat)
        t_step, ev = timed(lambda: evaluate(plain, run, unsliced), args.repeat)
        assert ev.slices is None, "the reference step computed slices"
        t_slices, found = timed(lambda: evaluate_slices(params, pred), args.repeat)
    r = found.by_slice
    metadata = COLUMNS * max(2, args.slices // COLUMNS)
    report(f"17. slices: {args.n:,} images, {metadata} metadata slices (+ properties, intersections, discovery)",
           met=t_slices <= 0.2 * t_step, images=args.n, metadata_slices=metadata, step_s=t_step, slices_s=t_slices,
           added=t_slices / t_step, step_without_tsne_s=t_core, added_to_step_without_tsne=t_slices / t_core,
           tsne_points=ev.tsne.get("points", 0), slices=len(r.rows), tested=r.n_tests,
           weak=[w.name for w in r.weak[:3]], bootstrap=args.bootstrap)


if __name__ == "__main__":
    main()
