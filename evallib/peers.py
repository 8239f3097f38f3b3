"""The models of an output folder in one small table: what each report's ranking and key read.

Ranking a model among the others on the same data needs, per model, only its status, its data and
its headline metrics. Each model's folder holds them in ``summary.json`` (a few hundred bytes,
written with ``run.json`` by the metrics step); once per run, after every model's metrics,
:func:`write_peers` gathers them into ``out_root/peers.json``. A report's ranking and its cache key
then read that one file (:func:`load_peers`): the cost of a report does not grow with the number of
models, and a run of ``n`` models reads ``n`` small files once instead of ``n`` full ``run.json`` and
``metrics.json`` per report.

Folders written before these files existed are read from their ``run.json`` and ``metrics.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._io import write_json
from .outputs import METRICS, MODEL_SUMMARY, PEERS, RUN, data_key, load_metrics

__all__ = ["load_peers", "model_summary", "read_count", "write_model_summary", "write_peers"]

PEERS_FORMAT_VERSION = 1

_READS = {"files": 0}


def read_count() -> int:
    """How many files this module has read in this process (summaries, ``run.json``, ``metrics.json``, tables).

    The number of reads a ranking costs is the difference of two calls.
    """
    return _READS["files"]


def _read_json(path: Path) -> Any:
    _READS["files"] += 1
    return json.loads(path.read_text())


def model_summary(run: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A model's entry in the table: status, error, data, headline metrics, speed and size.

    Parameters
    ----------
    run : dict
        The model's run facts (``run.json``), of a successful or a failed run.
    metrics : dict, optional
        Its metrics (``metrics.json``); without them the model has no headline.

    Returns
    -------
    dict
        ``name``, ``status``, ``error``, ``data_key`` (:func:`evallib.outputs.data_key`),
        ``data_folder``, ``images``, ``task``, ``primary_metric``, ``headline`` (``{key: {"value",
        "interval", ...}}``), ``images_per_second``, ``model_mb`` and ``metrics_key``.
    """
    ok = run.get("status", "ok") == "ok"
    ds, inf, model = run.get("dataset") or {}, run.get("inference") or {}, run.get("model") or {}
    m = metrics or {}
    return {"name": run.get("name"), "status": run.get("status", "unknown"), "error": run.get("error"),
            "data_key": data_key(run) if ok else None, "data_folder": Path(str(ds.get("root", ""))).name,
            "images": inf.get("images", ds.get("images")), "task": m.get("task"),
            "primary_metric": m.get("primary_metric"), "headline": m.get("headline") or {},
            "images_per_second": inf.get("images_per_second"),
            "model_mb": model["size_bytes"] / 1e6 if "size_bytes" in model else None,
            "metrics_key": run.get("metrics_key") if metrics is not None else None}


def write_model_summary(model_dir: str | Path, run: Mapping[str, Any], metrics: Mapping[str, Any] | None) -> None:
    """Write ``model_dir/summary.json`` (:func:`model_summary`)."""
    write_json(Path(model_dir) / MODEL_SUMMARY, model_summary(run, metrics))


def _entry(model_dir: Path) -> dict | None:
    f = model_dir / MODEL_SUMMARY
    if f.exists():
        return _read_json(f)
    if not (model_dir / RUN).exists():
        return None
    run = _read_json(model_dir / RUN)  # a folder written before summaries existed
    metrics = None
    if run.get("status") == "ok" and (model_dir / METRICS).exists():
        _READS["files"] += 1
        metrics = load_metrics(model_dir, arrays=False)
    return model_summary({"name": model_dir.name, **run}, metrics)


def _gather(out_root: Path) -> dict[str, dict]:
    found = {}
    if out_root.is_dir():
        for d in sorted(p for p in out_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            e = _entry(d)
            if e is not None:
                found[e.get("name") or d.name] = e
    return found


def write_peers(out_root: str | Path) -> dict[str, dict]:
    """Gather every model's summary under ``out_root`` into ``out_root/peers.json``; returns the table.

    Run once per run, after every model's metrics and before any report.
    """
    out_root = Path(out_root)
    models = _gather(out_root)
    write_json(out_root / PEERS, {"format_version": PEERS_FORMAT_VERSION, "models": models})
    return models


def load_peers(out_root: str | Path) -> dict[str, dict]:
    """Every model's summary under ``out_root``: ``{name: summary}`` (:func:`model_summary`).

    One read of ``peers.json`` where a run wrote it; else each folder's summary (or, for older
    folders, its ``run.json`` and ``metrics.json``).
    """
    out_root = Path(out_root)
    f = out_root / PEERS
    if f.exists():
        try:
            table = _read_json(f)
            if table.get("format_version") == PEERS_FORMAT_VERSION:
                return table["models"]
        except (OSError, ValueError, KeyError, AttributeError):
            pass
    return _gather(out_root)
