"""The output folder: its file names, loading, atomic writes and the scan for models.

``out_root/<name>/`` holds one model's ``predictions.npz`` (scores, embeddings, labels, files),
``run.json`` (run facts, or the error), ``metrics.json``, ``report.ipynb`` and ``report.html``;
``out_root/index.html`` compares the models. Every file is written atomically (a temporary file
beside it, then a rename), so a reader never sees half a file.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._io import write_json, write_npz
from ._keys import FileIndex
from .errors import EvallibError
from .records import FailedRun, Predictions, RunFacts, run_record

PREDICTIONS = "predictions.npz"
RUN = "run.json"
METRICS = "metrics.json"
METRICS_ARRAYS = "metrics.npz"  # the full results (evallib.evaluation), and arrays too bulky for metrics.json
REPORT_FACTS = "report.json"  # what the report found while drawing: the Grad-CAM route
REPORT_NOTEBOOK = "report.ipynb"
REPORT_HTML = "report.html"
INDEX_NOTEBOOK = "index.ipynb"
INDEX_HTML = "index.html"
INDEX_KEY = ".index_key"
MODEL_SUMMARY = "summary.json"  # a model's status, data and headline metrics (evallib.peers)
PEERS = "peers.json"  # every model's summary, gathered once per run (evallib.peers)
LABELS = "labels"  # out_root/labels/<data group>/: the label review of the models evaluated on that data
SUSPECTED_LABELS = "suspected_labels.csv"
LABELS_HTML = "labels.html"
LABELS_SUMMARY = "labels.json"
LABELS_KEY = ".labels_key"


def load_run(model_dir: str | Path) -> dict | None:
    """The run facts in ``model_dir/run.json`` as a dict, or None when there is no such file."""
    f = Path(model_dir) / RUN
    return json.loads(f.read_text()) if f.exists() else None


def write_run(model_dir: str | Path, facts: RunFacts | FailedRun | Mapping[str, Any]) -> None:
    """Write the run facts to ``model_dir/run.json``, from their record (a dict is read into one first).

    Raises
    ------
    ValueError
        When a dict has keys the record does not (or lacks some it needs): nothing is written.
    """
    write_json(Path(model_dir) / RUN, run_record(facts).to_dict())


def load_metrics(model_dir: str | Path, *, arrays: bool = True) -> dict | None:
    """The metrics in ``model_dir/metrics.json`` as a dict, or None when there is no such file.

    A confusion matrix kept in ``metrics.npz`` (many classes) is put back, as nested lists, unless
    ``arrays`` is False (readers of the headline numbers only).
    """
    model_dir = Path(model_dir)
    f = model_dir / METRICS
    if not f.exists():
        return None
    m = json.loads(f.read_text())
    stored = list(_array_refs(m)) if arrays else []
    if stored:
        with np.load(model_dir / METRICS_ARRAYS, allow_pickle=False) as z:
            for parent, key, ref in stored:
                parent[key] = z[ref["key"]].tolist()
    return m


def _array_refs(m):
    c = m.get("classification")
    for part in (c, (c or {}).get("center_crop")):
        if isinstance(part, dict) and isinstance(part.get("confusion"), dict) and "npz" in part["confusion"]:
            yield part, "confusion", part["confusion"]


def load_predictions(model_dir: str | Path) -> Predictions:
    """Read ``predictions.npz`` from a model's output folder.

    Returns
    -------
    Predictions
        ``scores`` (ndarray of shape (n_samples, n_classes)), ``embeddings`` (ndarray of shape
        (n_samples, dim)), ``labels`` (ndarray of shape (n_samples,)), where present; ``paths``,
        ``classes`` and ``file_hashes`` as lists of str, ``skipped`` as a list of dicts;
        ``scores_are``, ``cache_key``, ``root`` and ``data_fingerprint`` as str.
    """
    with np.load(Path(model_dir) / PREDICTIONS, allow_pickle=False) as z:
        return Predictions.from_arrays({k: z[k] for k in z.files if not k.startswith("index_")})


def write_predictions(model_dir: str | Path, pred: Predictions, *, file_index: FileIndex | None = None) -> None:
    """Write ``pred`` to ``model_dir/predictions.npz`` (uncompressed), with the data's file index when given."""
    arrays: dict[str, Any] = pred.to_arrays()  # array names only: none of them is the compressed flag
    extra: dict[str, Any] = file_index.to_arrays() if file_index is not None else {}
    write_npz(Path(model_dir) / PREDICTIONS, **arrays, **extra)


def read_file_index(model_dir: str | Path) -> FileIndex | None:
    """The file index kept with a model's predictions (:class:`evallib._keys.FileIndex`), or None."""
    f = Path(model_dir) / PREDICTIONS
    if not f.exists():
        return None
    try:
        with np.load(f, allow_pickle=False) as z:
            return FileIndex.from_arrays(z)
    except (OSError, ValueError, KeyError):
        return None


def cached_predictions(model_dir: str | Path, key: str) -> dict | None:
    """What a run reuses of predictions made under cache key ``key``, or None when there are none.

    Reads only the key, the skipped-file arrays and the data fingerprint of ``predictions.npz``
    (predictions written without a fingerprint or checks count as none).

    Returns
    -------
    dict or None
        ``skipped`` (list of dict, each ``{"path", "reason"}``), ``data_fingerprint`` (str),
        ``checks`` (the score-type and class-order findings, a dict) and ``label_overrides`` (the
        corrections the stored labels hold, or None).
    """
    f = Path(model_dir) / PREDICTIONS
    if not f.exists():
        return None
    try:
        with np.load(f, allow_pickle=False) as z:
            if str(z["cache_key"]) != key:
                return None
            skipped = [{"path": p, "reason": r} for p, r in zip(z["skipped_paths"].tolist(),
                                                                z["skipped_reasons"].tolist())]
            return {"skipped": skipped, "data_fingerprint": str(z["data_fingerprint"]),
                    "checks": json.loads(str(z["checks"])),
                    "label_overrides": json.loads(str(z["label_overrides"])) if "label_overrides" in z else None}
    except (OSError, ValueError, KeyError):
        return None


def data_key(run: Mapping[str, Any]) -> str:
    """What identifies a model's evaluation data in its run facts: models are compared when it is equal.

    The data fingerprint (``run.json`` ``data_fingerprint``), else, for runs that predate it, the data folder.
    """
    return run.get("data_fingerprint") or f"folder {run.get('dataset', {}).get('root')}"


def labels_dir(out_root: str | Path, group_key: str, title: str) -> Path:
    """The folder of a data group's label review: ``out_root/labels/<folder names>-<fingerprint[:10]>``.

    Parameters
    ----------
    group_key : str
        The group's data key (:func:`data_key`).
    title : str
        What names the data (its folders), kept to letters, digits, ``-``, ``_`` and ``.``.
    """
    import hashlib
    import re

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", title).strip("-.")[:40] or "data"
    tag = group_key[:10] if re.fullmatch(r"[0-9a-f]{10,}", group_key) else \
        hashlib.sha256(group_key.encode()).hexdigest()[:10]
    return Path(out_root) / LABELS / f"{slug}-{tag}"


def load_label_summary(folder: str | Path) -> dict | None:
    """The summary of a label review (``labels.json``), or None when there is none."""
    f = Path(folder) / LABELS_SUMMARY
    return json.loads(f.read_text()) if f.exists() else None


def write_label_review(folder: str | Path, *, csv_text: str, page: str, summary: Mapping[str, Any],
                       key: str) -> None:
    """Write a data group's label review: ``suspected_labels.csv``, ``labels.html``, then ``labels.json``
    and the key it was made under; each file atomically, the summary (which the index reads) last."""
    from ._io import write_text

    folder = Path(folder)
    write_text(folder / SUSPECTED_LABELS, csv_text)
    write_text(folder / LABELS_HTML, page)
    write_json(folder / LABELS_SUMMARY, dict(summary))
    write_text(folder / LABELS_KEY, key)


@dataclass(frozen=True)
class ModelOutput:
    """One model's folder under ``out_root``, as :func:`scan` finds it.

    Attributes
    ----------
    name : str
        The model's name (from ``run.json``; the folder name when it has none).
    path : Path
        The model's output folder.
    run : dict
        The contents of ``run.json``.
    """

    name: str
    path: Path
    run: dict

    @property
    def status(self) -> str:
        """``"ok"`` or ``"failed"``, as ``run.json`` says."""
        return self.run.get("status", "unknown")

    def metrics(self) -> dict | None:
        """The contents of ``metrics.json``, or None when the metrics were not written."""
        return load_metrics(self.path)


def scan(out_root: str | Path) -> list[ModelOutput]:
    """Every model folder under ``out_root`` that holds a ``run.json``, sorted by folder name.

    Parameters
    ----------
    out_root : str or Path
        The output folder; a missing folder holds no models.

    Returns
    -------
    list of ModelOutput
    """
    out_root = Path(out_root)
    if not out_root.is_dir():
        return []
    found = []
    for d in sorted(p for p in out_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        run = load_run(d)
        if run is not None:
            found.append(ModelOutput(run.get("name", d.name), d, run))
    return found


# ---------------------------------------------------------------- publishing a model's folder as one set
_STAGING = ".staging-"
_OLD = ".old-"
_LOCK = ".lock"


class OutputBusyError(EvallibError):
    """Another evallib process is writing the same model folder."""


def _hidden(out_root, name, kind, tag=""):
    return Path(out_root) / f".{name}{kind}{tag}"


def _exchange(a, b):
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def recover(out_root: str | Path, name: str) -> None:
    """Tidy what a killed run left of model ``name`` (call it holding the model's lock).

    Staging folders are removed; a model folder that a kill took away between the two renames of a
    swap (where one-step exchange is unavailable) is put back from its ``.old-`` copy; temporary
    files of atomic writes are removed.
    """
    out_root = Path(out_root)
    final = out_root / name
    for p in sorted(out_root.glob(f".{glob.escape(name)}{_OLD}*")):
        if not final.exists():
            os.rename(p, final)
        else:
            shutil.rmtree(p, ignore_errors=True)
    for p in out_root.glob(f".{glob.escape(name)}{_STAGING}*"):
        shutil.rmtree(p, ignore_errors=True)
    if final.is_dir():
        for p in final.glob(".*.tmp*"):
            p.unlink(missing_ok=True)


@contextmanager
def model_lock(out_root: str | Path, name: str) -> Iterator[None]:
    """Hold ``out_root/.<name>.lock`` (an advisory lock) while the block runs.

    A second process that asks for it while it is held gets :class:`OutputBusyError` naming the
    holder (its process id, host, start time and command). The lock goes with the process, so a
    killed run never leaves it held.
    """
    import fcntl
    import socket
    import sys
    import time

    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    path = _hidden(out_root, name, _LOCK)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise OutputBusyError(f"{out_root / name}: expected no other evallib run writing this model's outputs; "
                                  f"got one: {holder}. Wait for it to finish, or stop it and run again") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}, "
                 f"command: {' '.join(sys.argv[:4])}\n")
        fh.flush()
        yield
    finally:
        fh.close()  # releases the lock


@contextmanager
def publish(out_root: str | Path, name: str) -> Iterator[Path]:
    """Write a model's outputs as one set: yield a staging folder, then swap it in for ``out_root/name``.

    The staging folder starts with hard links to the current folder's files, so whatever the run
    does not redo (cached predictions, metrics, a report) carries over at no cost; files are
    replaced by atomic writes, never changed in place, so the links never alter the published set.
    When the block ends without an exception, the staging folder replaces ``out_root/name`` in one
    rename (an exchange on Linux); a reader, or a kill at any moment, sees either the whole old set
    or the whole new one. When the block raises (Ctrl-C included), the staging folder is removed and
    the published folder is left as it was. The model's lock is held throughout, and what an earlier
    killed run left behind is tidied first (:func:`recover`).
    """
    out_root = Path(out_root)
    with model_lock(out_root, name):
        recover(out_root, name)
        final = out_root / name
        staging = _hidden(out_root, name, _STAGING, str(os.getpid()))
        staging.mkdir(parents=True)
        try:
            if final.is_dir():
                for f in final.iterdir():
                    if f.is_file() and not f.name.startswith("."):
                        try:
                            os.link(f, staging / f.name)
                        except OSError:  # a file system without hard links
                            shutil.copy2(f, staging / f.name)
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if final.is_dir() and _exchange(staging, final):
            shutil.rmtree(staging, ignore_errors=True)  # now the old set
        else:
            old = _hidden(out_root, name, _OLD, str(os.getpid()))
            if final.exists():
                os.rename(final, old)
            os.rename(staging, final)
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- version comparisons (evallib compare)
COMPARE_DIR = "compare"  # out_root/compare/<old>__<new>/: one folder per compared pair
COMPARE_JSON = "compare.json"
FLIPS_CSV = "flips.csv"
COMPARE_HTML = "compare.html"
FLIPS_COLUMNS = ("flip", "rank", "index", "file", "true_class", "old_prediction", "old_probability",
                 "new_prediction", "new_probability", "score")


def comparison_dir(out_root: str | Path, old: str, new: str) -> Path:
    """The folder of the comparison of model ``old`` with model ``new``: ``out_root/compare/<old>__<new>``."""
    return Path(out_root) / COMPARE_DIR / f"{old}__{new}"


def write_comparison(out_root: str | Path, old: str, new: str, *, summary: Mapping[str, Any],
                     flips: list[dict], page: str | None = None) -> Path:
    """Publish a version comparison as one set: ``compare.json``, ``flips.csv`` and ``compare.html``.

    Parameters
    ----------
    summary : dict
        What ``compare.json`` holds (JSON values; NaN is kept).
    flips : list of dict
        One row per flipped image, with the keys of :data:`FLIPS_COLUMNS`.
    page : str, optional
        The self-contained HTML page; without it a page left by an earlier comparison is removed.

    Returns
    -------
    Path
        The comparison's folder (:func:`comparison_dir`).
    """
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FLIPS_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(flips)
    final = comparison_dir(out_root, old, new)
    with publish(final.parent, final.name) as stage:
        write_json(stage / COMPARE_JSON, summary)
        from ._io import write_text

        write_text(stage / FLIPS_CSV, buf.getvalue())
        if page is None:
            (stage / COMPARE_HTML).unlink(missing_ok=True)
        else:
            write_text(stage / COMPARE_HTML, page)
    return final


def scan_comparisons(out_root: str | Path) -> list[tuple[Path, dict]]:
    """Every comparison under ``out_root/compare`` with a readable ``compare.json``: ``(folder, its contents)``."""
    base = Path(out_root) / COMPARE_DIR
    if not base.is_dir():
        return []
    found = []
    for d in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            found.append((d, json.loads((d / COMPARE_JSON).read_text())))
        except (OSError, ValueError):
            continue
    return found
