"""``evallib run``: evaluate params files into ``outputs/<name>/``.

Per model this writes ``predictions.npz`` (scores, embeddings, labels, files) and ``run.json``
(timings, images/s, skipped files, model facts, the data fingerprint, or the error); file names,
loading and writing are :mod:`evallib.outputs`. Predictions are cached: a run whose model file,
data listing and preprocessing are unchanged does no inference.

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
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from . import __version__
from ._io import write_text
from .data import classes_from_metadata, list_images
from .errors import DataError, EvallibError
from .inference import model_facts, open_session, predict, score_type_warning
from .metrics.class_order import class_order_check
from .outputs import (INDEX_HTML, INDEX_KEY, INDEX_NOTEBOOK, METRICS, REPORT_HTML, REPORT_NOTEBOOK,
                      cached_predictions, load_run, scan, write_predictions, write_run)
from .outputs import load_predictions  # noqa: F401 -- evallib.run.load_predictions, as before outputs.py
from .params import load_params

_CACHE_VERSION = 4


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


def data_fingerprint(file_hashes, label_names):
    """A hash of the evaluated images: each image's content hash with its label name, in any order.

    Two models evaluated on the same images with the same labels share it, whatever the folder,
    the file names, the layout (class folders, ``label_xxx.png``, a csv) or the order of
    ``classes``; an image added, removed or relabelled changes it.

    Parameters
    ----------
    file_hashes : list of str
        The content hash of each evaluated image (:attr:`Predictions.file_hashes`).
    label_names : list of str
        The label of each image, by name.

    Returns
    -------
    str
        64 hexadecimal digits (sha256).
    """
    if len(file_hashes) != len(label_names):
        raise ValueError(f"label_names: expected one per file hash ({len(file_hashes)}); got {len(label_names)}")
    rows = sorted(zip(map(str, file_hashes), map(str, label_names)))
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


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
    progress : bool or tqdm, default True
        Show a progress bar of the images; or a bar to advance instead (its total is set to the
        number of images; a cache hit advances it at once).
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
    bar = progress if hasattr(progress, "update") else None
    if bar is not None:
        bar.reset(total=len(dataset))
    cached = cached_predictions(out_dir, key)
    if cached is not None:
        inference = (load_run(out_dir) or {}).get("inference", {})
        inference["cached"] = True
        skipped, fingerprint, checks = cached["skipped"], cached["data_fingerprint"], cached["checks"]
        if bar is not None:
            bar.update(len(dataset))
            bar.set_postfix_str("cached predictions", refresh=False)
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
        fingerprint = data_fingerprint(pred.file_hashes, [dataset.classes[k] for k in dataset.labels[pred.kept]])
        arrays = {
            "paths": np.array([dataset.paths[i] for i in pred.kept], dtype=str),
            "labels": dataset.labels[pred.kept],
            "classes": np.array(dataset.classes, dtype=str),
            "root": np.array(root),
            "skipped_paths": np.array([s["path"] for s in skipped], dtype=str),
            "skipped_reasons": np.array([s["reason"] for s in skipped], dtype=str),
            "cache_key": np.array(key),
            "file_hashes": np.array(pred.file_hashes, dtype=str),
            "data_fingerprint": np.array(fingerprint),
        }
        for name in ("scores", "embeddings", "scores_center", "embeddings_center"):
            value = getattr(pred, name)
            if value is not None:
                arrays[name] = value
        if pred.scores_are:
            arrays["scores_are"] = np.array(pred.scores_are)
            arrays["raw_scores_are"] = np.array(pred.raw_scores_are)
        arrays["checks"] = np.array(json.dumps(checks))
        write_predictions(out_dir, **arrays)
        n = len(pred.kept)
        inference = {"cached": False, "seconds": pred.seconds, "images": n,
                     "images_per_second": n / pred.seconds if pred.seconds > 0 else None,
                     "tta": params.preprocess["tta"]}
    facts_out = {
        "status": "ok", "name": params.name, "evallib": __version__,
        "params": params.to_dict(), "model": facts,
        "dataset": {"root": str(dataset.root), "images": len(dataset), "classes": dataset.classes,
                    "class_order": dataset.class_order, "counts": dataset.counts(), "skipped": skipped},
        "data_fingerprint": fingerprint,
        "inference": inference, "score_type": checks["score_type"], "class_order_check": checks["class_order"],
        "warnings": _warnings(checks, dataset.class_order),
        "predictions_key": key, "seconds_total": time.perf_counter() - t0,
    }
    write_run(out_dir, facts_out)
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


def render_report(params_path, out_root="outputs", *, show_code=False, verbose=False):
    """Execute the packaged ``report.ipynb`` for one model and render ``report.html`` (metrics.json comes with it).

    ``verbose`` lets the kernel's own log messages through.
    """
    from .render import execute, notebook_dir, to_html

    params = load_params(params_path)
    out_dir = Path(out_root) / params.name
    nb = out_dir / REPORT_NOTEBOOK
    execute(notebook_dir() / "report.ipynb", nb,
            {"params_path": str(Path(params_path).resolve()), "out_root": str(Path(out_root).resolve()),
             "interactive": False}, cwd=notebook_dir(), verbose=verbose)
    return to_html(nb, out_dir / REPORT_HTML, show_code=show_code, title=f"{params.name}: evaluation report")


def render_index(out_root="outputs", *, primary_metric=None, show_code=False, verbose=False):
    """Execute the packaged ``compare.ipynb`` into ``out_root/index.html``.

    The page is rebuilt only when something it shows has changed.
    """
    from .render import execute, notebook_dir, to_html

    out_root = Path(out_root)
    h = hashlib.sha256(json.dumps([code_digest(), primary_metric, show_code]).encode())
    for m in scan(out_root):  # what the page shows of a run: status, error, data, and its metrics
        h.update(json.dumps([m.path.name, m.status, m.run.get("error"), m.run.get("data_fingerprint"),
                             m.run.get("dataset", {}).get("root")]).encode())
        if (m.path / METRICS).exists():
            h.update((m.path / METRICS).read_bytes())
    key_file, index = out_root / INDEX_KEY, out_root / INDEX_HTML
    if index.exists() and key_file.exists() and key_file.read_text() == h.hexdigest():
        return index
    nb = out_root / INDEX_NOTEBOOK
    execute(notebook_dir() / "compare.ipynb", nb,
            {"out_root": str(out_root.resolve()), "primary_metric": primary_metric}, cwd=out_root,
            verbose=verbose)  # run beside index.html, so the report links start from out_root
    to_html(nb, index, show_code=show_code, title="Model comparison")
    write_text(key_file, h.hexdigest())
    return index


def error_text(exc):
    """One line for a failure: a notebook cell's own exception, or the exception's type and message."""
    if getattr(exc, "ename", None):  # papermill's PapermillExecutionError: a cell raised
        return f"{exc.ename}: {exc.evalue} (in notebook cell {exc.exec_count})"
    return f"{type(exc).__name__}: {exc}"


def _run_one(path, out_root, threads, progress, render=False, show_code=False, verbose=False):
    """Run one params file (and render its report); never raises (the error goes into run.json).

    ``progress`` shows one bar for the model: its images, then the report.
    """
    from tqdm.auto import tqdm

    bar = tqdm(desc=Path(path).stem, unit="img", disable=not progress, leave=True, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} images [{elapsed}{postfix}]")
    try:
        params = load_params(path)
        bar.set_description_str(params.name, refresh=False)
        previous = load_run(Path(out_root) / params.name) or {}
        facts = run_model(params, out_root, progress=bar, threads=threads)
        if render:
            out_dir = Path(out_root) / params.name
            key = _report_key(params, facts["predictions_key"], show_code)
            if previous.get("report_key") == key and (out_dir / REPORT_HTML).exists() \
                    and (out_dir / METRICS).exists():
                facts["report_cached"] = True
                facts["report_seconds"] = previous.get("report_seconds")
            else:
                bar.set_postfix_str("report")
                t0 = time.perf_counter()
                render_report(path, out_root, show_code=show_code, verbose=verbose)
                facts["report_seconds"] = time.perf_counter() - t0
                facts["report_cached"] = False
            facts["report_key"] = key
            write_run(out_dir, facts)
        bar.set_postfix_str("done", refresh=False)
        return facts
    except Exception as exc:  # noqa: BLE001 -- one model's failure must not stop the others
        bar.set_postfix_str("failed", refresh=False)
        name = Path(path).stem
        try:
            name = load_params(path).name
        except Exception:  # noqa: BLE001
            pass
        facts = {"status": "failed", "name": name, "params_file": str(path),
                 "error": error_text(exc),
                 "expected": isinstance(exc, EvallibError), "traceback": traceback.format_exc()}
        write_run(Path(out_root) / name, facts)
        return facts
    finally:
        bar.close()


def run_many(paths, out_root="outputs", *, jobs=1, progress=True, render=False, show_code=False, verbose=False):
    """Run several params files, ``jobs`` at a time; returns their run facts in order.

    Parameters
    ----------
    paths : list of str or Path
        Params files.
    out_root : str or Path
    jobs : int, default 1
        Models evaluated at once, each in its own process with its share of the cores.
    progress : bool, default True
        One progress bar per model (with ``jobs > 1``: one bar of the models done).
    render : bool, default False
        Render each model's report too.
    show_code : bool, default False
        Keep the notebook's code cells in the HTML.
    verbose : bool, default False
        Let the notebook kernels' log messages through.

    Returns
    -------
    list of dict
        Each model's run facts, as in its ``run.json``.
    """
    paths = list(paths)
    jobs = max(1, min(jobs, len(paths) or 1))
    if jobs == 1:
        return [_run_one(p, out_root, None, progress, render, show_code, verbose) for p in paths]
    from tqdm.auto import tqdm

    threads = max(1, (os.cpu_count() or 1) // jobs)
    results = [None] * len(paths)
    with ProcessPoolExecutor(max_workers=jobs) as pool, \
            tqdm(total=len(paths), desc="models", unit="model", disable=not progress, dynamic_ncols=True) as bar:
        futures = {pool.submit(_run_one, p, out_root, threads, False, render, show_code, verbose): i
                   for i, p in enumerate(paths)}
        for f in as_completed(futures):
            results[futures[f]] = f.result()
            bar.update(1)
    return results
