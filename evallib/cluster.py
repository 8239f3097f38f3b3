"""Batch runs on a Dask distributed cluster: each model's job is a task.

``evallib run params/ --cluster local:2`` starts a local cluster of 2 worker processes;
``--cluster tcp://scheduler:8786`` connects to a running one. Every model's predictions and
metrics are one task, then its report another, so that each report ranks among all the models.

The output folder must be one that the client and every worker reach at the same path (a shared
file system): workers write each model's folder themselves, through the same staging folder, lock
and one-step swap as a local run (:func:`evallib.outputs.publish`). A task that a lost worker was
running is run again elsewhere by Dask; its half-made staging folder is removed by the next writer,
and since the tasks are deterministic the result is the same. Workers need evallib installed, and
the params files, models and images at the same paths as the client.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import EvallibError

_SPEC = re.compile(r"local(?::(\d+))?|tcp://[^\s]+")


def parse_cluster(spec: str | None) -> tuple[str, int | str | None]:
    """``("local", n_workers or None)`` or ``("address", "tcp://...")`` from ``--cluster``'s value."""
    m = _SPEC.fullmatch(spec or "")
    if not m:
        raise EvallibError(f"--cluster: expected local, local:N (N worker processes) or tcp://HOST:PORT; got {spec!r}")
    if m.group(0).startswith("local"):
        n = m.group(1)
        if n is not None and int(n) < 1:
            raise EvallibError(f"--cluster: expected at least 1 worker in local:N; got {n}")
        return "local", int(n) if n else None
    return "address", spec


def connect(spec: str) -> tuple[Any, Any]:
    """``(client, cluster or None)`` for ``--cluster``'s value; the caller closes both."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise EvallibError("--cluster: expected dask distributed to be installed (pip install 'evallib[dask]'); "
                           "got no module named dask.distributed") from None
    kind, value = parse_cluster(spec)
    if kind == "local":
        cores = os.cpu_count() or 1
        n = value or cores
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0")
        return Client(cluster), cluster
    try:
        return Client(value, timeout="20s"), None
    except OSError as exc:
        raise EvallibError(f"--cluster: expected a Dask scheduler at {value}; got no answer ({exc})") from None


def host_share(cores: int, slots_on_host: int) -> int:
    """A task's share of a machine's ``cores`` when ``slots_on_host`` tasks may run on it at once (the
    thread slots of every worker on that host): ``max(1, cores // slots_on_host)``."""
    return max(1, cores // max(1, slots_on_host))


def _worker_threads():
    """A task's share of the cores of the machine its worker runs on (:func:`host_share`): onnxruntime,
    the verification pass and BLAS get that many threads. The workers on the same host, and the
    tasks each runs at once, share its cores; outside a worker, None (no cap)."""
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        worker = get_worker()
    except ValueError:
        return None
    slots = worker.state.nthreads
    try:
        host = worker.address.rsplit(":", 1)[0]
        info = worker.client.scheduler_info(n_workers=-1)["workers"]
        slots = sum(w["nthreads"] for a, w in info.items() if a.rsplit(":", 1)[0] == host) or slots
    except Exception:  # noqa: BLE001 -- the scheduler's view is a refinement: without it, this worker's slots
        pass
    return host_share(os.cpu_count() or 1, slots)


def _evaluate_task(path, out_root):
    from .run import _evaluate_one

    return _evaluate_one(path, out_root, _worker_threads(), False)


def _render_task(path, out_root, show_code, verbose):
    from .run import _render_one

    return _render_one(path, out_root, show_code, verbose)


def _key(step, path):
    return f"evallib-{step}-{Path(path).stem}-{uuid.uuid4().hex[:12]}"


def run_on_cluster(paths: Sequence[str | Path], out_root: str | Path, client: Any, *, render: bool = False,
                   show_code: bool = False, verbose: bool = False, progress: bool = True) -> list[dict]:
    """Each model's job as tasks on ``client``'s cluster; returns their run facts in order, as
    :func:`evallib.run.run_many` does (a failed model's facts say why; the others go on).

    Parameters
    ----------
    paths : list of str or Path
        Params files, at the same paths on the workers.
    out_root : str or Path
        The output folder, shared by the client and the workers.
    client : dask.distributed.Client
    render : bool, default False
        Render each model's report too (on a worker; its kernel starts there).
    show_code, verbose : bool
        As for :func:`evallib.run.run_many`.
    progress : bool, default True
        One bar of the cluster's tasks.
    """
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    from .run import check_label_overrides, check_unique_names, in_two_steps

    check_unique_names(paths)
    check_label_overrides(paths)
    paths = [str(Path(p).resolve()) for p in paths]
    out_root = str(Path(out_root).resolve())
    results: list[Any] = [None] * len(paths)  # each filled in as its task finishes
    with tqdm(total=len(paths) * (2 if render else 1), desc="cluster tasks", unit="task", disable=not progress,
              dynamic_ncols=True) as bar:
        in_two_steps(lambda p: client.submit(_evaluate_task, p, out_root, key=_key("evaluate", p)),
                     (lambda p: client.submit(_render_task, p, out_root, show_code, verbose, key=_key("report", p)))
                     if render else None, as_completed, paths, out_root, results, bar)
    return results
