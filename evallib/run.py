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

import dataclasses
import errno
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from ._io import write_text
from ._keys import (
    FileIndex,
    code_digest,
    data_fingerprint,
    hash_listing,
    index_key,
    metrics_key,
    peers_digest,
    predictions_key,
    predictions_key_of,
    report_key,
)
from .data import Dataset, classes_from_metadata, list_images
from .data.overrides import LabelOverrides, read_label_overrides
from .errors import DataError, EvallibError, ParamsError
from .inference import model_facts, open_session, predict, score_type_warning, session_device
from .metrics.class_order import class_order_check
from .outputs import (
    INDEX_HTML,
    INDEX_KEY,
    INDEX_NOTEBOOK,
    METRICS,
    METRICS_ARRAYS,
    REPORT_FACTS,
    REPORT_HTML,
    REPORT_NOTEBOOK,
    OutputBusyError,
    cached_predictions,
    load_metrics,
    load_predictions,
    load_run,
    publish,
    read_file_index,
    write_predictions,
    write_run,
)
from .params import Params, load_params
from .peers import write_model_summary, write_peers
from .records import DatasetFacts, FailedRun, InferenceFacts, Predictions, RunFacts
from .steps_slices import check_slicing

# evallib.run's names before the keys had their own module: load_predictions, data_fingerprint,
# predictions_key, metrics_key, code_digest
__all__ = ["run_model", "evaluate_model", "run_many", "render_report", "render_index", "in_two_steps", "error_text",
           "load_predictions", "data_fingerprint", "predictions_key", "metrics_key", "code_digest",
           "check_unique_names", "check_label_overrides"]


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
    if params.data.classes is not None:
        return list(params.data.classes), "params data.classes"
    output = params.outputs.scores
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


@dataclass(frozen=True)
class _Prepared:
    """A params file's model facts, dataset, class-order source, predictions key and file index, as they are now."""

    facts: dict
    dataset: Dataset
    source: str | None
    key: str
    hashes: list
    index: FileIndex
    hashed: int
    overrides: LabelOverrides | None = None


def _list(params: Params, facts: dict):
    """The listed dataset and where its class order came from."""
    d = params.data
    names, source = _class_names(params, facts)
    dataset = list_images(d.root, labels=d.labels, csv_path=d.csv, classes=names,
                          classes_source=source or "params data.classes", extensions=d.extensions,
                          allow_outside_root=d.allow_outside_root)
    return dataset, source


def _overrides(params: Params, dataset: Dataset) -> LabelOverrides | None:
    f = params.data.label_overrides
    return read_label_overrides(f, dataset.paths, dataset.labels, dataset.classes) if f is not None else None


def _prepare(params: Params, *, index: FileIndex | None = None) -> _Prepared:
    """List the data, read the label corrections and hash what changed since ``index``
    (:func:`evallib._keys.hash_listing`).

    The predictions key is made from the labels as listed: a correction changes the labels and the
    metrics, never the model's outputs, so it never redoes inference. The dataset returned holds the
    corrected labels.
    """
    facts = model_facts(params.model)
    dataset, source = _list(params, facts)
    check_slicing(params, dataset.paths, root=dataset.root)  # a bad metadata file fails before inference
    overrides = _overrides(params, dataset)  # and so does a bad corrections file
    hashes, new_index, hashed = hash_listing(dataset.root, dataset.paths, index)
    key = predictions_key_of(facts["sha256"], dataset, params, hashes)
    if overrides is not None:
        dataset = dataclasses.replace(dataset, labels=overrides.apply(dataset.labels))
    return _Prepared(facts, dataset, source, key, hashes, new_index, hashed, overrides)


def check_label_overrides(paths: Sequence[str | Path]) -> None:
    """Refuse a ``data.label_overrides`` file that does not fit its data, before any model runs.

    Params files that cannot be read, data that cannot be listed and models that cannot be opened are
    left to the run, which reports each as that model's failure.

    Raises
    ------
    ParamsError
        Naming the params file, ``data.label_overrides``, the corrections file and its bad rows.
    """
    lines = []
    for p in paths:
        try:
            params = load_params(p)
            if params.data.label_overrides is None:
                continue
            dataset, _ = _list(params, model_facts(params.model))
        except EvallibError:
            continue
        try:
            _overrides(params, dataset)
        except ParamsError as exc:
            lines.append(f"{p}: {exc}")
    if lines:
        raise ParamsError("\n".join(lines))


def _relabel(out_dir, dataset, params, prep):
    """Cached predictions whose stored labels hold other corrections than now: the labels, the data
    fingerprint and the class-order check of the corrected labels, written back. Returns the predictions."""
    pred = load_predictions(out_dir)
    where = {p: i for i, p in enumerate(dataset.paths)}
    labels = np.asarray([dataset.labels[where[p]] for p in pred.paths], dtype=np.int64)
    fingerprint = data_fingerprint(pred.file_hashes, [dataset.classes[k] for k in labels])
    checks = _checks(params, labels, pred.scores, dataset.classes, (pred.checks or {}).get("score_type"))
    pred = dataclasses.replace(pred, labels=labels, data_fingerprint=fingerprint, checks=checks,
                               label_overrides=prep.overrides.facts() if prep.overrides is not None else None)
    write_predictions(out_dir, pred, file_index=prep.index)
    return Predictions.from_arrays(pred.to_arrays())


def job_threads(jobs: int, *, cores: int | None = None) -> int:
    """One job's share of the cores when ``jobs`` run at once: ``max(1, cores // jobs)``.

    ``cores`` defaults to :func:`os.cpu_count`. Each job gives that many threads to onnxruntime
    (intra-op) and to the verification pass, and caps its BLAS and OpenMP pools at it, so that
    ``jobs`` jobs run about ``cores`` threads, not ``jobs x cores``.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: expected an integer >= 1; got {jobs!r}")
    return max(1, (cores or os.cpu_count() or 1) // jobs)


def _threads_for(params: Params, share: int | None) -> int:
    """The threads a job uses: ``runtime.threads`` (0: one per core), capped at its ``share`` of the cores."""
    want = params.runtime.threads or (os.cpu_count() or 1)
    return want if share is None else max(1, min(want, share))


def _thread_limits(share: int | None):
    """BLAS and OpenMP pools capped at ``share`` threads while a job runs (nothing when ``share`` is None)."""
    import contextlib

    if share is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=share)


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})


def run_model(params: Params | str | Path, out_root: str | Path = "outputs", *, progress: Any = True,
              threads: int | None = None, out_dir: str | Path | None = None) -> dict:
    """Evaluate one model: predictions and run facts into ``out_root/<name>/``.

    Parameters
    ----------
    params : Params or str or Path
    out_root : str or Path
    progress : bool or tqdm, default True
        Show a progress bar of the images; or a bar to advance instead (its total is set to the
        number of images; a cache hit advances it at once).
    threads : int, optional
        This job's share of the cores (:func:`job_threads`): onnxruntime's intra-op threads are the
        params' ``runtime.threads`` (0 = one per core) capped at it. Default: no cap.
    out_dir : str or Path, optional
        Write here instead of ``out_root/<name>`` (the staging folder of :func:`evallib.outputs.publish`).

    Returns
    -------
    dict
        The run facts, as written to ``run.json`` (:class:`evallib.records.RunFacts`); ``runtime``
        says what the run used: ``cores``, the job's ``share`` of them (None: no cap) and
        ``onnxruntime_intra_op_threads`` (None when the predictions were reused).
    """
    return _run_model(params, out_root, progress=progress, threads=threads, out_dir=out_dir)[0]


def _run_model(params, out_root="outputs", *, progress=True, threads=None, out_dir=None):
    """:func:`run_model`, and the predictions as ``predictions.npz`` holds them (None when they were cached)."""
    handed = None
    if not isinstance(params, Params):
        params = load_params(params)
    out_dir = Path(out_dir) if out_dir is not None else Path(out_root) / params.name
    t0 = time.perf_counter()
    prep = _prepare(params, index=read_file_index(out_dir))
    facts, dataset, source, key = prep.facts, prep.dataset, prep.source, prep.key
    bar = progress if hasattr(progress, "update") else None
    if bar is not None:
        bar.reset(total=len(dataset))
    cached = cached_predictions(out_dir, key)
    runtime = {"cores": os.cpu_count(), "share": threads, "onnxruntime_intra_op_threads": None}
    overrides = prep.overrides.facts() if prep.overrides is not None else None
    if cached is not None:
        previous = (load_run(out_dir) or {}).get("inference", {})
        inference = InferenceFacts(**{**previous, "cached": True})
        skipped, fingerprint, checks = cached["skipped"], cached["data_fingerprint"], cached["checks"]
        if cached["label_overrides"] != overrides:  # other corrections: new labels, the same outputs
            handed = _relabel(out_dir, dataset, params, prep)
            fingerprint, checks = handed.data_fingerprint, handed.checks
        elif prep.hashed:  # files hashed again (touched, copied back): record their stat fields now
            write_predictions(out_dir, load_predictions(out_dir), file_index=prep.index)
        if bar is not None:
            bar.update(len(dataset))
            bar.set_postfix_str("cached predictions", refresh=False)
    else:
        rt = params.runtime
        session = open_session(params.model, threads=_threads_for(params, threads), device=rt.device,
                               providers=rt.providers)
        runtime["onnxruntime_intra_op_threads"] = session.get_session_options().intra_op_num_threads
        pred = predict(session, [dataset.file(i) for i in range(len(dataset))], params.preprocess, params.outputs,
                       batch_size=params.preprocess.batch_size, decode_workers=params.runtime.decode_workers,
                       max_cpu_temp=params.runtime.max_cpu_temp, progress=progress, desc=params.name,
                       file_hashes=prep.hashes)
        if len(pred.kept) == 0:
            raise EvallibError(f"data.root: no image of {len(dataset)} could be decoded; "
                               f"first reason: {pred.failed[0]['reason'] if pred.failed else 'none'}")
        if pred.scores is not None and source and source != "params data.classes":
            _check_columns(pred.scores.shape[1], dataset.classes, source, params.outputs.scores)
        if pred.scores is not None and "classification" in params.tasks and \
                pred.scores.shape[1] != len(dataset.classes):
            shown = ", ".join(dataset.classes[:10]) + (f" and {len(dataset.classes) - 10:,} more"
                                                        if len(dataset.classes) > 10 else "")
            raise DataError(f"data.root: expected one class per column of output {params.outputs.scores!r} "
                            f"({pred.scores.shape[1]} columns); got {len(dataset.classes)} classes ({shown}; set "
                            f"data.classes to the model's classes in column order)")
        checks = _checks(params, dataset.labels[pred.kept], pred.scores, dataset.classes, pred.score_type)
        root = str(dataset.root)
        skipped = list(dataset.skipped) + [
            {"path": os.path.relpath(f["path"], root), "reason": f["reason"]} for f in pred.failed]
        fingerprint = data_fingerprint(pred.file_hashes, [dataset.classes[k] for k in dataset.labels[pred.kept]])
        pred = dataclasses.replace(pred, paths=[dataset.paths[i] for i in pred.kept], labels=dataset.labels[pred.kept],
                                   classes=list(dataset.classes), root=root, skipped=skipped, cache_key=key,
                                   data_fingerprint=fingerprint, checks=checks, label_overrides=overrides)
        write_predictions(out_dir, pred, file_index=prep.index)
        handed = Predictions.from_arrays(pred.to_arrays())  # what the file holds, for the metrics step
        n = len(pred.kept)
        inference = InferenceFacts(cached=False, seconds=pred.seconds, images=n,
                                   images_per_second=n / pred.seconds if pred.seconds > 0 else None,
                                   tta=params.preprocess.tta, **session_device(session).to_dict())
    record = RunFacts(
        name=params.name, evallib=__version__, params=params.to_dict(), model=facts,
        dataset=DatasetFacts(root=str(dataset.root), images=len(dataset), classes=list(dataset.classes),
                             class_order=dataset.class_order, counts=dataset.counts(), skipped=skipped),
        data_fingerprint=fingerprint, inference=inference, score_type=checks["score_type"],
        class_order_check=checks["class_order"], warnings=_warnings(checks, dataset.class_order),
        predictions_key=key, seconds_total=time.perf_counter() - t0, runtime=runtime, label_overrides=overrides)
    write_run(out_dir, record)
    return record.to_dict(), handed


def evaluate_model(params: Params | str | Path, out_root: str | Path = "outputs", *, facts: dict | None = None,
                   out_dir: str | Path | None = None, threads: int | None = None,
                   predictions: Predictions | None = None) -> dict:
    """The metrics step: compute a model's metrics from its predictions and write ``metrics.json``.

    Metrics already computed from the same predictions, settings and code are reused.

    Parameters
    ----------
    params : Params or str or Path
    out_root : str or Path
    facts : dict, optional
        The run facts (default: the model's ``run.json``); ``metrics_key``, ``metrics_cached`` and
        ``metrics_seconds`` are added to them (the caller writes them).
    out_dir : str or Path, optional
        The model's folder (default ``out_root/<name>``).
    threads : int, optional
        This job's share of the cores (:func:`job_threads`): the verification pass's threads are the
        params' ``runtime.threads`` (0 = one per core) capped at it. ``facts["runtime"]`` records
        ``verification_threads`` and the ``blas_threads`` this step ran with.
    predictions : Predictions, optional
        The predictions the run just wrote, handed over in memory (default: read ``predictions.npz``).

    Returns
    -------
    dict
        The metrics, as in ``metrics.json``.
    """
    from .evaluation import evaluate, write_evaluation

    if not isinstance(params, Params):
        params = load_params(params)
    out_dir = Path(out_dir) if out_dir is not None else Path(out_root) / params.name
    facts = facts if facts is not None else load_run(out_dir)
    if not facts or facts.get("status") != "ok":
        raise EvallibError(f"{out_dir}: expected the predictions of a successful run; got "
                           f"{'none' if not facts else 'a failed run: ' + str(facts.get('error'))}")
    key = metrics_key(params, facts["predictions_key"])
    used = _threads_for(params, threads)
    facts["runtime"] = {**(facts.get("runtime") or {}), "verification_threads": used, "blas_threads": _blas_threads()}
    t0 = time.perf_counter()
    old = load_metrics(out_dir, arrays=False) if (out_dir / METRICS_ARRAYS).exists() else None
    if old is not None and old.get("metrics_key") == key:
        facts.update(metrics_key=key, metrics_cached=True)
        return old
    # runtime never changes a result (metrics_key leaves it out): the pass gets this job's threads
    ev = evaluate(dataclasses.replace(params, runtime=dataclasses.replace(params.runtime, threads=used)), facts,
                  predictions if predictions is not None else load_predictions(out_dir))
    write_evaluation(out_dir, ev, metrics_key=key)
    facts.update(metrics_key=key, metrics_cached=False, metrics_seconds=time.perf_counter() - t0)
    return ev.metrics


def render_report(model_dir: str | Path, *, show_code: bool = False, verbose: bool = False, km: Any = None) -> Path:
    """Execute the packaged ``report.ipynb`` on a model's folder and render ``report.html`` there.

    The notebook reads what the pipeline wrote (run facts, predictions, metrics) and computes nothing
    that is already there; it writes ``report.ipynb``, ``report.html`` and ``report.json``.
    ``verbose`` lets the kernel's own log messages through; ``km`` is a running kernel to use
    (:func:`evallib.report.render.shared_kernel`).
    """
    from .report.render import execute, notebook_dir, to_html

    model_dir = Path(model_dir).resolve()
    run = load_run(model_dir) or {}
    name = run.get("name", model_dir.name)
    nb = model_dir / REPORT_NOTEBOOK
    execute(notebook_dir() / "report.ipynb", nb,
            {"model_dir": str(model_dir), "params_path": None, "interactive": False, "publish": True},
            cwd=notebook_dir(), verbose=verbose, km=km)
    return to_html(nb, model_dir / REPORT_HTML, show_code=show_code, title=f"{name}: evaluation report",
                   metrics_key=run.get("metrics_key"))


def render_index(out_root: str | Path = "outputs", *, primary_metric: str | None = None, show_code: bool = False,
                 verbose: bool = False) -> Path:
    """Execute the packaged ``compare.ipynb`` into ``out_root/index.html``.

    The label review of each evaluation data (:func:`evallib.report.label_review.write_label_reviews`)
    is written first, so that the index links it. The page is rebuilt only when something it shows
    has changed.
    """
    from .report.label_review import write_label_reviews
    from .report.render import execute, notebook_dir, to_html

    out_root = Path(out_root)
    write_label_reviews(out_root)
    key = index_key(out_root, primary_metric=primary_metric, show_code=show_code)
    key_file, index = out_root / INDEX_KEY, out_root / INDEX_HTML
    if index.exists() and key_file.exists() and key_file.read_text() == key:
        return index
    nb = out_root / INDEX_NOTEBOOK
    execute(notebook_dir() / "compare.ipynb", nb,
            {"out_root": str(out_root.resolve()), "primary_metric": primary_metric}, cwd=out_root,
            verbose=verbose)  # run beside index.html, so the report links start from out_root
    to_html(nb, index, show_code=show_code, title="Model comparison")
    write_text(key_file, key)
    return index


_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.ENOTDIR}


def error_text(exc: BaseException) -> str:
    """One line for a failure: a notebook cell's own exception, a file that cannot be written, or the
    exception's type and message."""
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot write{where}: {exc.strerror} (the model's previous outputs are kept as they were)"
    if getattr(exc, "ename", None):  # papermill's PapermillExecutionError: a cell raised
        cell: Any = exc  # it carries ename, evalue and exec_count
        return f"{cell.ename}: {cell.evalue} (in notebook cell {cell.exec_count})"
    return f"{type(exc).__name__}: {exc}"


def _failure(path, out_root, exc):
    """Publish a model's failure: ``run.json`` with the error; its predictions stay as a cache for the next run.

    When the folder itself cannot be written (a full disk, a read-only folder), nothing is published
    and the previous outputs stay as they were; the error is returned all the same.
    """
    name = Path(path).stem
    try:
        name = load_params(path).name
    except Exception:  # noqa: BLE001
        pass
    facts = FailedRun(name=name, params_file=str(path), error=error_text(exc), expected=isinstance(exc, EvallibError),
                      traceback=traceback.format_exc()).to_dict()
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        return facts  # the folder cannot take a write (full, read-only): the previous outputs stay whole
    try:
        with publish(out_root, name) as stage:
            for f in (METRICS, METRICS_ARRAYS, REPORT_HTML, REPORT_NOTEBOOK, REPORT_FACTS):
                (stage / f).unlink(missing_ok=True)
            write_run(stage, facts)
            write_model_summary(stage, facts, None)
    except OutputBusyError:
        pass  # the folder belongs to the run that holds it; the error is still returned
    except OSError:
        pass  # the folder cannot be written (full or read-only): the error is still returned and printed
    return facts


def _evaluate_one(path, out_root, threads, progress):
    """Predictions and metrics of one params file, published as one set; never raises (but for Ctrl-C).

    ``progress`` shows one bar for the model: its images, then the metrics.
    """
    from tqdm.auto import tqdm

    bar = tqdm(desc=Path(path).stem, unit="img", disable=not progress, leave=True, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} images [{elapsed}{postfix}]")
    try:
        params = load_params(path)
        bar.set_description_str(params.name, refresh=False)
        with publish(out_root, params.name) as stage:
            previous = load_run(stage) or {}
            with _thread_limits(threads):
                facts, handed = _run_model(params, out_root, progress=bar, threads=threads, out_dir=stage)
                bar.set_postfix_str("metrics")
                metrics = evaluate_model(params, out_root, facts=facts, out_dir=stage, threads=threads,
                                         predictions=handed)
            if facts["metrics_cached"]:  # how long they took when they were computed
                facts["metrics_seconds"] = previous.get("metrics_seconds")
            if facts["metrics_key"] == previous.get("metrics_key"):  # the report drawn from these metrics stays
                facts.update({k: previous[k] for k in ("report_key", "report_seconds") if k in previous})
            else:  # a report of other metrics goes: the folder never shows a report of other numbers
                for f in (REPORT_HTML, REPORT_NOTEBOOK, REPORT_FACTS):
                    (stage / f).unlink(missing_ok=True)
            write_run(stage, facts)
            write_model_summary(stage, facts, metrics)
        bar.set_postfix_str("done", refresh=False)
        return facts
    except Exception as exc:  # noqa: BLE001 -- one model's failure must not stop the others
        bar.set_postfix_str("failed", refresh=False)
        return _failure(path, out_root, exc)
    finally:
        bar.close()


def _render_one(path, out_root, show_code=False, verbose=False, km=None):
    """Render one model's report from its published outputs, and publish it with them; never raises (but for Ctrl-C)."""
    try:
        params = load_params(path)
        with publish(out_root, params.name) as stage:
            facts = load_run(stage) or {}
            if facts.get("status") != "ok":
                return facts
            key = report_key(params, facts, show_code, peers_digest(out_root, facts, params.name))
            if facts.get("report_key") == key and (stage / REPORT_HTML).exists():
                facts["report_cached"] = True
            else:
                t0 = time.perf_counter()
                render_report(stage, show_code=show_code, verbose=verbose, km=km)
                facts.update(report_seconds=time.perf_counter() - t0, report_cached=False)
            facts["report_key"] = key
            write_run(stage, facts)
        return facts
    except Exception as exc:  # noqa: BLE001
        return _failure(path, out_root, exc)


def check_unique_names(paths: Sequence[str | Path]) -> None:
    """Refuse params files that name the same model: its output folder would hold only the last one's results.

    Files that cannot be read or are not valid are left to the run, which reports each as that model's
    failure.

    Raises
    ------
    ParamsError
        Naming the model and the files, e.g. ``params/a.yaml and params/b.yaml: name: expected a
        different name for each model (it names the output folder); got 'm' in both``.
    """
    by_name: dict[str, list[str]] = {}
    for p in paths:
        try:
            name = load_params(p).name
        except EvallibError:
            continue
        by_name.setdefault(name, []).append(str(p))
    clashes = [(name, files) for name, files in by_name.items() if len(files) > 1]
    if clashes:
        raise ParamsError("\n".join(
            f"{', '.join(files[:-1])} and {files[-1]}: name: expected a different name for each model (it names "
            f"the output folder); got {name!r} in {'both' if len(files) == 2 else f'all {len(files)}'}"
            for name, files in clashes))


def _with_baseline(paths):
    """The params of the models that name another model as ``report.baseline``."""
    out = []
    for path in paths:
        try:
            p = load_params(path)
        except EvallibError:  # that model's own step already failed on it, and says so
            continue
        if p.report.baseline and p.report.baseline != p.name:
            out.append(p)
    return out


def between_steps(paths, out_root, *, render):
    """After every model's metrics, before any report: the models' table that every report's ranking
    reads (once per run), and the comparison of each model with its ``report.baseline`` (its page too
    when reports are rendered), so that both models' reports link it."""
    write_peers(out_root)
    with_baseline = _with_baseline(paths)
    if with_baseline:
        from .report.versions import write_baseline_comparisons

        write_baseline_comparisons(with_baseline, out_root, page=render)


def in_two_steps(evaluate, render, completed, paths, out_root, results, bar):
    """Every model's predictions and metrics, then (when ``render`` is given) the reports of those that
    succeeded, as futures of an executor (a process pool, a Dask client).

    ``evaluate(path)`` and ``render(path)`` submit a model's step and return its future;
    ``completed(futures)`` yields futures as they finish. ``results`` (one slot per path) is filled
    with the run facts; a future that raises is that model's failure and the others go on; ``bar``
    advances once per step.
    """
    def gather(futures):
        for f in completed(futures):
            i = futures[f]
            try:
                results[i] = f.result()
            except Exception as exc:  # noqa: BLE001 -- e.g. a task the cluster gave up on
                results[i] = _failure(paths[i], out_root, exc)
            bar.update(1)

    gather({evaluate(p): i for i, p in enumerate(paths)})
    between_steps(paths, out_root, render=render is not None)
    if render is not None:
        futures = {render(p): i for i, p in enumerate(paths) if results[i].get("status") == "ok"}
        bar.update(len(paths) - len(futures))
        gather(futures)


def run_many(paths: Sequence[str | Path], out_root: str | Path = "outputs", *, jobs: int = 1, progress: bool = True,
             render: bool = False, show_code: bool = False, verbose: bool = False) -> list[dict]:
    """Run several params files, ``jobs`` at a time; returns their run facts in order.

    Every model's predictions and metrics come first, then the reports, so that each report ranks
    its model among all of them.

    Parameters
    ----------
    paths : list of str or Path
        Params files.
    out_root : str or Path
    jobs : int, default 1
        Models evaluated at once, each in its own process with its share of the cores
        (:func:`job_threads`) for onnxruntime, the verification pass and BLAS; ``run.json``
        ``runtime`` records what each used.
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

    Raises
    ------
    ParamsError
        Before anything runs, when two params files name the same model (:func:`check_unique_names`), or
        a corrections file does not fit its data (:func:`check_label_overrides`).
    """
    paths = list(paths)
    check_unique_names(paths)
    check_label_overrides(paths)
    jobs = max(1, min(jobs, len(paths) or 1))
    if jobs == 1:
        if not render:
            results = [_evaluate_one(p, out_root, None, progress) for p in paths]
            between_steps(paths, out_root, render=False)
            return results
        from .report.render import WARM_REPORT, notebook_dir, shared_kernel

        # one kernel for every report, importing what they need while the models are evaluated
        with shared_kernel(cwd=notebook_dir(), verbose=verbose, warm=WARM_REPORT) as km:
            results = [_evaluate_one(p, out_root, None, progress) for p in paths]
            between_steps(paths, out_root, render=True)
            return [_render_one(p, out_root, show_code, verbose, km) if r.get("status") == "ok" else r
                    for p, r in zip(paths, results)]
    from tqdm.auto import tqdm

    threads = job_threads(jobs)
    results = [None] * len(paths)
    # new processes, not forks: a fork of a process whose OpenMP threads have run (t-SNE) can hang
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool, \
            tqdm(total=len(paths) * (2 if render else 1), desc="models", unit="step", disable=not progress,
                 dynamic_ncols=True) as bar:
        try:
            in_two_steps(lambda p: pool.submit(_evaluate_one, p, out_root, threads, False),
                         (lambda p: pool.submit(_render_one, p, out_root, show_code, verbose)) if render else None,
                         as_completed, paths, out_root, results, bar)
        except KeyboardInterrupt:  # the workers stop too, each tidying its staging folder and kernel
            for proc in list(getattr(pool, "_processes", {}).values()):
                try:
                    os.kill(proc.pid, signal.SIGINT)
                except OSError:
                    pass
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results
