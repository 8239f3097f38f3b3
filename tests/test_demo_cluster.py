"""The embedded demo's first three models as tasks on a real Dask LocalCluster, against the local run."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from evallib.run import load_predictions

pytestmark = pytest.mark.slow  # starts a cluster

FIRST = ("linear", "cnn_small", "cnn_wide")


def test_cluster_batch_run_with_a_worker_killed_equals_the_local_run(demo, tmp_path, monkeypatch, request):
    """The demo's first three models as tasks on a real LocalCluster (2 worker processes); the worker that is
    writing a model's folder is killed; Dask runs its task again elsewhere and the outputs equal the local run's.

    The local run (conftest's ``local_outputs``) is asked for after the cluster's: another worker of the suite
    can be making it meanwhile."""
    from dask.distributed import Client, LocalCluster

    from evallib.cluster import run_on_cluster

    monkeypatch.chdir(demo)
    out = tmp_path / "cluster_out"
    killed = []

    def kill_a_writer():
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            for stage in out.glob(".*.staging-*"):
                pid = int(stage.name.rsplit("-", 1)[1])
                os.kill(pid, signal.SIGKILL)  # the worker process writing this model's folder
                killed.append((stage.name, pid))
                return
            time.sleep(0.01)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        before = set(client.run(os.getpid).values())
        killer = threading.Thread(target=kill_a_writer)
        killer.start()
        results = run_on_cluster(sorted(Path("params") / f"{n}.yaml" for n in FIRST), out, client, progress=False)
        killer.join()
        after = set(client.run(os.getpid).values())
    local_outputs = request.getfixturevalue("local_outputs")
    assert killed and killed[0][1] in before and killed[0][1] not in after  # killed mid-task, and replaced
    assert [r["status"] for r in results] == ["ok"] * 3
    assert not list(out.glob(".*.staging-*"))  # what the killed worker left was tidied by the rerun
    for name in ("linear", "cnn_small", "cnn_wide"):
        here, there = load_predictions(local_outputs / name), load_predictions(out / name)
        assert here["paths"] == there["paths"] and np.array_equal(here["labels"], there["labels"])
        np.testing.assert_allclose(there["scores"], here["scores"], rtol=1e-5, atol=1e-6)  # 1 thread vs 2
        m_here = json.loads((local_outputs / name / "metrics.json").read_text())
        m_there = json.loads((out / name / "metrics.json").read_text())
        assert m_there["headline"].keys() == m_here["headline"].keys()
        for k, h in m_here["headline"].items():
            got = m_there["headline"][k]
            assert got["value"] == pytest.approx(h["value"], rel=1e-9, nan_ok=True), (name, k)
            assert (got["interval"] is None) == (h["interval"] is None), (name, k)
            if h["interval"] is not None:
                assert got["interval"] == pytest.approx(h["interval"], rel=1e-9), (name, k)
        assert m_there["classification"]["confusion"] == m_here["classification"]["confusion"]
        assert m_there["verification"]["auc"] == pytest.approx(m_here["verification"]["auc"], abs=1e-12)
