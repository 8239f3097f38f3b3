"""``evallib run``: evaluate params files into ``outputs/<name>/``.

Per model this writes ``predictions.npz`` (scores, embeddings, labels, files) and ``run.json``
(timings, images/s, skipped files, model facts, or the error). Predictions are cached: a run
whose model file, data listing and preprocessing are unchanged does no inference.

The class names of the score columns come from the params (``data.classes``), else from the
model's metadata (:func:`evallib.data.classes_from_metadata`), else from the sorted label names;
``run.json`` records which (``dataset.class_order``). After inference two checks run once and
their findings go to ``run.json`` ``warnings``: a declared score type the scores contradict, and
a confusion matrix that becomes far better with the columns renamed
(:func:`evallib.metrics.class_order_check`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from . import __version__
from ._io import write_json, write_npz, write_text
from .data import classes_from_metadata, list_images
from .errors import DataError, EvallibError
from .inference import model_facts, open_session, predict, score_type_warning
from .metrics.class_order import class_order_check
from .params import load_params

PREDICTIONS = "predictions.npz"
RUN = "run.json"
_CACHE_VERSION = 3


def _cache_key(facts, dataset, params):
    listing = []
    for p in dataset.paths:
        st = os.stat(dataset.root / p)
        listing.append((p, st.st_size, st.st_mtime_ns))
    blob = json.dumps({
        "v": _CACHE_VERSION, "model": facts["sha256"], "root": str(dataset.root), "listing": listing,
        "labels": dataset.labels.tolist(), "classes": dataset.classes, "pre": params.preprocess,
        "outputs": params.outputs,
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_predictions(out_dir):
    """Read ``predictions.npz`` from a model's output folder into a dict of arrays/values."""
    with np.load(Path(out_dir) / PREDICTIONS, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    for k in ("paths", "classes", "skipped_paths", "skipped_reasons", "file_hashes"):
        if k in d:
            d[k] = d[k].tolist()
    for k in ("scores_are", "raw_scores_are", "cache_key", "root"):
        if k in d:
            d[k] = str(d[k])
    if "checks" in d:
        d["checks"] = json.loads(str(d["checks"]))
    return d


def _cached(out_dir, key):
    """The skipped-file lists and checks of cached predictions made under ``key``, or None (reads only those)."""
    f = Path(out_dir) / PREDICTIONS
    if not f.exists():
        return None
    try:
        with np.load(f, allow_pickle=False) as z:
            if str(z["cache_key"]) != key:
                return None
            return {"skipped_paths": z["skipped_paths"].tolist(), "skipped_reasons": z["skipped_reasons"].tolist(),
                    "checks": json.loads(str(z["checks"]))}
    except (OSError, ValueError, KeyError):
        return None


def _score_columns(facts, output):
    """The number of columns of ``output`` when the model file fixes it, else None."""
    for o in facts["outputs"]:
        if o["name"] == output and o["shape"]:
            last = o["shape"][-1]
            return last if isinstance(last, int) and last > 0 else None
    return None


def _check_columns(n_columns, names, source, output):
    if n_columns is not None and n_columns != len(names):
        raise DataError(f"{source}: expected one class name per column of output {output!r} ({n_columns} columns); "
                        f"got {len(names)} names (set data.classes in the params to give the model's column order)")


def _class_names(params, facts):
    """``(names, source)``: the score-column names from the params or the model's metadata, else ``(None, None)``."""
    if params.data.get("classes") is not None:
        return params.data["classes"], "params data.classes"
    output = params.outputs.get("scores")
    if "classification" not in params.tasks or not output:
        return None, None  # identities of an embedding model: the model's class names do not apply
    found = classes_from_metadata(facts["metadata"])
    if found is None:
        return None, None
    key, names = found
    source = f"model metadata key {key!r}"
    _check_columns(_score_columns(facts, output), names, source, output)
    return names, source


def _checks(params, labels, scores, classes, score_type):
    """What run.json reports about the scores: how their type was decided, and a likely better class order."""
    order = None
    if "classification" in params.tasks and scores is not None and scores.shape[1] == len(classes):
        found = class_order_check(labels, scores.argmax(axis=1), classes)
        order = found.to_dict() if found is not None else None
    return {"score_type": score_type, "class_order": order}


def _class_order_warning(check, source, *, limit=10):
    a, b = check["accuracy"], check["assigned_accuracy"]
    likely = check["likely_order"]
    if len(likely) <= limit:
        renamed = "in the order " + ", ".join(likely)
    else:
        moved = check["moved"]
        renamed = "with " + "; ".join(f"column {j} ({named}) as {new}" for j, named, new in moved[:limit]) + \
                  (f"; and {len(moved) - limit:,} more columns renamed" if len(moved) > limit else "")
    return (f"class order: accuracy is {a:.3f} with the score columns named from {source}, but would be "
            f"{b:.3f} {renamed}; the model's classes are likely in that order (give it in data.classes)")


def _warnings(checks, source):
    out = []
    if checks.get("score_type"):
        w = score_type_warning(checks["score_type"])
        if w:
            out.append(w)
    if checks.get("class_order"):
        out.append(_class_order_warning(checks["class_order"], source))
    return out


def run_model(params, out_root="outputs", *, progress=True, threads=None):
    """Evaluate one model: predictions and run facts into ``out_root/<name>/``.

    Parameters
    ----------
    params : Params or str or Path
    out_root : str or Path
    threads : int, optional
        onnxruntime intra-op threads (default: the params' ``runtime.threads``, 0 = all cores).

    Returns
    -------
    dict
        The run facts, as written to ``run.json``.
    """
    if not hasattr(params, "tasks"):
        params = load_params(params)
    out_dir = Path(out_root) / params.name
    t0 = time.perf_counter()
    facts = model_facts(params.model)
    d = params.data
    names, source = _class_names(params, facts)
    dataset = list_images(d["root"], labels=d["labels"], csv_path=d.get("csv"), classes=names,
                          classes_source=source or "params data.classes", extensions=d["extensions"])
    key = _cache_key(facts, dataset, params)
    cached = _cached(out_dir, key)
    if cached is not None:
        previous = json.loads((out_dir / RUN).read_text()) if (out_dir / RUN).exists() else {}
        inference = previous.get("inference", {})
        inference["cached"] = True
        skipped = [{"path": p, "reason": r} for p, r in zip(cached["skipped_paths"], cached["skipped_reasons"])]
        checks = cached["checks"]
    else:
        session = open_session(params.model, threads=params.runtime["threads"] if threads is None else threads)
        pred = predict(session, [dataset.file(i) for i in range(len(dataset))], params.preprocess, params.outputs,
                       batch_size=params.preprocess["batch_size"], decode_workers=params.runtime["decode_workers"],
                       max_cpu_temp=params.runtime["max_cpu_temp"], progress=progress, desc=params.name)
        if len(pred.kept) == 0:
            raise EvallibError(f"data.root: no image of {len(dataset)} could be decoded; "
                               f"first reason: {pred.failed[0]['reason'] if pred.failed else 'none'}")
        if pred.scores is not None and source and source != "params data.classes":
            _check_columns(pred.scores.shape[1], dataset.classes, source, params.outputs["scores"])
        checks = _checks(params, dataset.labels[pred.kept], pred.scores, dataset.classes, pred.score_type)
        root = str(dataset.root)
        skipped = list(dataset.skipped) + [
            {"path": os.path.relpath(f["path"], root), "reason": f["reason"]} for f in pred.failed]
        arrays = {
            "paths": np.array([dataset.paths[i] for i in pred.kept], dtype=str),
            "labels": dataset.labels[pred.kept],
            "classes": np.array(dataset.classes, dtype=str),
            "root": np.array(root),
            "skipped_paths": np.array([s["path"] for s in skipped], dtype=str),
            "skipped_reasons": np.array([s["reason"] for s in skipped], dtype=str),
            "cache_key": np.array(key),
            "file_hashes": np.array(pred.file_hashes, dtype=str),
        }
        for name in ("scores", "embeddings", "scores_center", "embeddings_center"):
            value = getattr(pred, name)
            if value is not None:
                arrays[name] = value
        if pred.scores_are:
            arrays["scores_are"] = np.array(pred.scores_are)
            arrays["raw_scores_are"] = np.array(pred.raw_scores_are)
        arrays["checks"] = np.array(json.dumps(checks))
        write_npz(out_dir / PREDICTIONS, **arrays)
        n = len(pred.kept)
        inference = {"cached": False, "seconds": pred.seconds, "images": n,
                     "images_per_second": n / pred.seconds if pred.seconds > 0 else None,
                     "tta": params.preprocess["tta"]}
    facts_out = {
        "status": "ok", "name": params.name, "evallib": __version__,
        "params": params.to_dict(), "model": facts,
        "dataset": {"root": str(dataset.root), "images": len(dataset), "classes": dataset.classes,
                    "class_order": dataset.class_order, "counts": dataset.counts(), "skipped": skipped},
        "inference": inference, "score_type": checks["score_type"], "class_order_check": checks["class_order"],
        "warnings": _warnings(checks, dataset.class_order),
        "predictions_key": key, "seconds_total": time.perf_counter() - t0,
    }
    write_json(out_dir / RUN, facts_out)
    return facts_out


_CODE_DIGEST = None


def code_digest():
    """A digest of evallib's own source and templates and of the notebooks: a change re-renders reports."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        from .render import notebook_dir

        h = hashlib.sha256()
        here = Path(__file__).parent
        files = sorted([*here.rglob("*.py"), *here.rglob("*.j2"), *here.rglob("*.json"),
                        *notebook_dir().glob("*.ipynb")])
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
        _CODE_DIGEST = h.hexdigest()
    return _CODE_DIGEST


def _report_key(params, cache_key, show_code):
    blob = json.dumps({"params": params.to_dict(), "predictions": cache_key, "code": code_digest(),
                       "show_code": show_code}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def render_report(params_path, out_root="outputs", *, show_code=False):
    """Execute ``notebooks/report.ipynb`` for one model and render ``report.html`` (metrics.json comes with it)."""
    from .render import execute, notebook_dir, to_html

    params = load_params(params_path)
    out_dir = Path(out_root) / params.name
    nb = out_dir / "report.ipynb"
    execute(notebook_dir() / "report.ipynb", nb,
            {"params_path": str(Path(params_path).resolve()), "out_root": str(Path(out_root).resolve()),
             "interactive": False}, cwd=notebook_dir())
    return to_html(nb, out_dir / "report.html", show_code=show_code, title=f"{params.name}: evaluation report")


def render_index(out_root="outputs", *, primary_metric=None, show_code=False):
    """Execute ``notebooks/compare.ipynb`` into ``out_root/index.html``."""
    from .render import execute, notebook_dir, to_html

    out_root = Path(out_root)
    h = hashlib.sha256(json.dumps([code_digest(), primary_metric, show_code]).encode())
    for d in sorted(p for p in out_root.iterdir() if p.is_dir()):
        if (d / RUN).exists():  # what the page shows of a run: its status and error, and its metrics
            run = json.loads((d / RUN).read_text())
            h.update(json.dumps([d.name, run.get("status"), run.get("error")]).encode())
        if (d / "metrics.json").exists():
            h.update((d / "metrics.json").read_bytes())
    key_file, index = out_root / ".index_key", out_root / "index.html"
    if index.exists() and key_file.exists() and key_file.read_text() == h.hexdigest():
        return index
    nb = out_root / "index.ipynb"
    execute(notebook_dir() / "compare.ipynb", nb,
            {"out_root": str(out_root.resolve()), "primary_metric": primary_metric}, cwd=notebook_dir())
    to_html(nb, index, show_code=show_code, title="Model comparison")
    write_text(key_file, h.hexdigest())
    return index


def _run_one(path, out_root, threads, progress, render=False, show_code=False):
    """Run one params file (and render its report); never raises (the error goes into run.json)."""
    try:
        previous = {}
        params = load_params(path)
        run_file = Path(out_root) / params.name / RUN
        if run_file.exists():
            previous = json.loads(run_file.read_text())
        facts = run_model(params, out_root, progress=progress, threads=threads)
        if render:
            out_dir = Path(out_root) / params.name
            key = _report_key(params, facts["predictions_key"], show_code)
            if previous.get("report_key") == key and (out_dir / "report.html").exists() \
                    and (out_dir / "metrics.json").exists():
                facts["report_cached"] = True
                facts["report_seconds"] = previous.get("report_seconds")
            else:
                t0 = time.perf_counter()
                render_report(path, out_root, show_code=show_code)
                facts["report_seconds"] = time.perf_counter() - t0
                facts["report_cached"] = False
            facts["report_key"] = key
            write_json(out_dir / RUN, facts)
        return facts
    except Exception as exc:  # noqa: BLE001 -- one model's failure must not stop the others
        name = Path(path).stem
        try:
            name = load_params(path).name
        except Exception:  # noqa: BLE001
            pass
        facts = {"status": "failed", "name": name, "params_file": str(path),
                 "error": f"{type(exc).__name__}: {exc}",
                 "expected": isinstance(exc, EvallibError), "traceback": traceback.format_exc()}
        write_json(Path(out_root) / name / RUN, facts)
        return facts


def run_many(paths, out_root="outputs", *, jobs=1, progress=True, render=False, show_code=False):
    """Run several params files, ``jobs`` at a time; returns their run facts in order.

    With ``render`` each model's report is rendered too.
    """
    paths = list(paths)
    jobs = max(1, min(jobs, len(paths) or 1))
    if jobs == 1:
        return [_run_one(p, out_root, None, progress, render, show_code) for p in paths]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    n = len(paths)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_run_one, paths, [out_root] * n, [threads] * n, [False] * n, [render] * n,
                             [show_code] * n))
