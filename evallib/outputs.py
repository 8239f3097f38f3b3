"""The output folder: its file names, loading, atomic writes and the scan for models.

``out_root/<name>/`` holds one model's ``predictions.npz`` (scores, embeddings, labels, files),
``run.json`` (run facts, or the error), ``metrics.json``, ``report.ipynb`` and ``report.html``;
``out_root/index.html`` compares the models. Every file is written atomically (a temporary file
beside it, then a rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._io import write_json, write_npz

PREDICTIONS = "predictions.npz"
RUN = "run.json"
METRICS = "metrics.json"
REPORT_NOTEBOOK = "report.ipynb"
REPORT_HTML = "report.html"
INDEX_NOTEBOOK = "index.ipynb"
INDEX_HTML = "index.html"
INDEX_KEY = ".index_key"


def load_run(model_dir):
    """The run facts in ``model_dir/run.json`` as a dict, or None when there is no such file."""
    f = Path(model_dir) / RUN
    return json.loads(f.read_text()) if f.exists() else None


def write_run(model_dir, facts):
    """Write the run facts to ``model_dir/run.json``."""
    write_json(Path(model_dir) / RUN, facts)


def load_metrics(model_dir):
    """The metrics in ``model_dir/metrics.json`` as a dict, or None when there is no such file."""
    f = Path(model_dir) / METRICS
    return json.loads(f.read_text()) if f.exists() else None


def load_predictions(model_dir):
    """Read ``predictions.npz`` from a model's output folder into a dict of arrays/values.

    Returns
    -------
    dict
        ``scores`` (ndarray of shape (n_samples, n_classes)), ``embeddings`` (ndarray of shape
        (n_samples, dim)), ``labels`` (ndarray of shape (n_samples,)), where present; ``paths``,
        ``classes``, ``skipped_paths``, ``skipped_reasons`` and ``file_hashes`` as lists of str;
        ``scores_are``, ``cache_key``, ``root`` and ``data_fingerprint`` as str.
    """
    with np.load(Path(model_dir) / PREDICTIONS, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    for k in ("paths", "classes", "skipped_paths", "skipped_reasons", "file_hashes"):
        if k in d:
            d[k] = d[k].tolist()
    for k in ("scores_are", "raw_scores_are", "cache_key", "root", "data_fingerprint"):
        if k in d:
            d[k] = str(d[k])
    if "checks" in d:
        d["checks"] = json.loads(str(d["checks"]))
    return d


def write_predictions(model_dir, **arrays):
    """Write ``arrays`` to ``model_dir/predictions.npz`` (uncompressed)."""
    write_npz(Path(model_dir) / PREDICTIONS, **arrays)


def cached_predictions(model_dir, key):
    """What a run reuses of predictions made under cache key ``key``, or None when there are none.

    Reads only the key, the skipped-file arrays and the data fingerprint of ``predictions.npz``
    (predictions written without a fingerprint or checks count as none).

    Returns
    -------
    dict or None
        ``skipped`` (list of dict, each ``{"path", "reason"}``), ``data_fingerprint`` (str) and
        ``checks`` (the score-type and class-order findings, a dict).
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
                    "checks": json.loads(str(z["checks"]))}
    except (OSError, ValueError, KeyError):
        return None


def data_key(run):
    """What identifies a model's evaluation data in its run facts: models are compared when it is equal.

    The data fingerprint (``run.json`` ``data_fingerprint``), else, for runs that predate it, the data folder.
    """
    return run.get("data_fingerprint") or f"folder {run.get('dataset', {}).get('root')}"


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
    def status(self):
        """``"ok"`` or ``"failed"``, as ``run.json`` says."""
        return self.run.get("status", "unknown")

    def metrics(self):
        """The contents of ``metrics.json``, or None when the metrics were not written."""
        return load_metrics(self.path)


def scan(out_root):
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
    for d in sorted(p for p in out_root.iterdir() if p.is_dir()):
        run = load_run(d)
        if run is not None:
            found.append(ModelOutput(run.get("name", d.name), d, run))
    return found
