"""All-pairs verification sharded over a Dask cluster equals the local computation exactly: the same
sweep, TAR@FAR, table, EER, AUC and bootstrap intervals, also when a worker is killed during the pass."""

import dataclasses
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import distributed
import numpy as np
import pytest
from distributed import Client, LocalCluster
from test_verification_parity import adversarial

import evallib
from conftest import make_embeddings
from evallib.errors import EvallibError
from evallib.metrics import DegenerateWarning, VerificationMetrics, evaluate_verification
from evallib.metrics import verification as ver

pytestmark = pytest.mark.slow  # a LocalCluster of worker processes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, which import this checkout's evallib."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as c:
            yield c


def assert_same(a, b):
    """Every field of two VerificationResults is equal (exactly; NaN equals NaN)."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "sweep":
            x, y = dataclasses.asdict(x), dataclasses.asdict(y)
        elif f.name == "policies":
            x, y = ({k: v.to_dict() for k, v in p.items()} for p in (x, y))
        np.testing.assert_equal(x, y, err_msg=f.name)


def both(e, labels, client, **kwargs):
    """``(local, sharded)``: the metric computed in this process and on the cluster."""
    out = []
    for c in (None, client):
        m = VerificationMetrics(client=c, **kwargs)
        m.update(e, labels)
        out.append((m.compute(), m))
    return out


def test_workers_import_this_checkout(client):
    assert set(client.run(lambda: __import__("evallib").__file__).values()) == {evallib.__file__}


@pytest.mark.parametrize("exact_limit", [10**9, 10], ids=["exact sweep", "binned sweep"])
def test_sharded_equals_local(client, exact_limit):
    e, labels = make_embeddings(np.random.default_rng(3), n=600, ids=30, spread=0.6)
    (local, m_local), (sharded, m_sharded) = both(e, labels, client, block_size=64, exact_limit=exact_limit)
    assert local.exact == (exact_limit > 10) and local.n_genuine > 0
    assert len(ver._blocks(600, 64)) > ver._TASKS_PER_THREAD * 2  # several blocks per task; 600 % 64 != 0
    assert_same(sharded, local)
    assert m_sharded.passes == m_local.passes == 1
    for x, y in zip(m_sharded.bootstrap_sample(), m_local.bootstrap_sample()):
        np.testing.assert_array_equal(x, y)  # in the same order, so the same resamples
    kw = dict(block_size=64, exact_limit=exact_limit, n_bootstrap=30, seed=7)
    local = evaluate_verification(e, labels, **kw)
    sharded = evaluate_verification(e, labels, client=client, **kw)
    assert local.intervals and "auc" in local.intervals
    assert_same(sharded, local)


def test_second_pass_runs_on_the_cluster(client):
    e, labels = make_embeddings(np.random.default_rng(4), n=400, ids=20, spread=0.6)
    # no presample: the first pass finds no FAR threshold, a second pass on the workers collects them
    (local, m_local), (sharded, m_sharded) = both(e, labels, client, block_size=50, exact_limit=10, presample=0)
    assert m_local.passes == m_sharded.passes == 2
    assert sum(v["supported"] for v in local.tar_at_far.values()) >= 3
    assert_same(sharded, local)


def test_the_same_data_computed_again_on_one_client(client):
    # each compute scatters under fresh keys, so releasing an earlier compute's copy loses nothing
    e, labels = make_embeddings(np.random.default_rng(7), n=300, ids=20, spread=0.6)
    [(local, _), _] = both(e, labels, None, block_size=50, exact_limit=10, presample=0)
    for block in (50, 64, 50):
        m = VerificationMetrics(client=client, block_size=block, exact_limit=10, presample=0)
        m.update(e, labels)
        assert_same(m.compute(), local)

def _ties(rng):
    e, labels = make_embeddings(rng, n=60, ids=6)
    e = np.repeat(e, 3, axis=0)  # every embedding three times: genuine and impostor scores tied
    labels = np.repeat(labels, 3)
    labels[2::3] = (labels[2::3] + 1) % 6  # the third copy under another identity
    return e, labels


CASES = {
    "thresholds and ties": lambda rng: adversarial(),
    "duplicated embeddings": _ties,
    "one identity only": lambda rng: (rng.normal(size=(70, 8)), np.zeros(70, int)),
    "no genuine pairs": lambda rng: (rng.normal(size=(70, 8)), np.arange(70)),
    "fewer samples than a block": lambda rng: (rng.normal(size=(5, 8)), np.array([0, 1, 0, 1, 1])),
    "three samples": lambda rng: (rng.normal(size=(3, 8)), np.array([0, 0, 1])),
}


@pytest.mark.parametrize("exact_limit", [10**9, 10], ids=["exact sweep", "binned sweep"])
@pytest.mark.parametrize("case", list(CASES))
def test_adversarial_inputs(client, case, exact_limit):
    e, labels = CASES[case](np.random.default_rng(5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateWarning)
        (local, _), (sharded, _) = both(e, labels, client, block_size=33, exact_limit=exact_limit)
    if case in ("one identity only", "no genuine pairs"):
        what = "impostor" if case == "one identity only" else "genuine"
        assert [str(w.message) for w in caught].count(
            f"verification metrics are undefined: there are no {what} pairs (70 samples); they are NaN") == 2
        assert np.isnan(sharded.auc) and np.isnan(sharded.eer)
    else:
        assert not caught and local.n_genuine > 0 and local.n_impostor > 0
    assert_same(sharded, local)


def test_block_size_from_the_workers_memory(client):
    e, labels = adversarial(1)
    (local, _), (sharded, m) = both(e, labels, client, exact_limit=10)
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    assert m.block == min(ver._auto_block_size(w["memory_limit"], workers=1) for w in workers)
    assert_same(sharded, local)


def test_a_worker_killed_during_the_pass(client, monkeypatch):
    e, labels = make_embeddings(np.random.default_rng(6), n=1200, ids=40, dim=32, spread=0.6)
    kw = dict(block_size=48, exact_limit=10)
    local = evaluate_verification(e, labels, **kw)
    pids = client.run(os.getpid)  # worker address -> process id
    seen = {}
    real = distributed.as_completed

    def kill_after_the_first_result(futures, **kwargs):
        results = real(futures, **kwargs)
        first = next(results)
        seen["tasks"] = len(futures)
        seen["unfinished"] = sum(not f.done() for f in futures)
        busy = [w for w, keys in client.processing().items() if keys]  # workers running a task now
        seen["victim"] = pids[busy[0]]
        os.kill(seen["victim"], signal.SIGKILL)
        yield first
        yield from results

    monkeypatch.setattr(distributed, "as_completed", kill_after_the_first_result)
    sharded = evaluate_verification(e, labels, client=client, **kw)
    # killed while it ran a task, with most of the pass still to run
    assert seen["tasks"] == ver._TASKS_PER_THREAD * 2 and seen["unfinished"] >= 2
    client.wait_for_workers(2, timeout=60)  # the nanny starts a new worker process
    after = set(client.run(os.getpid).values())
    assert seen["victim"] not in after and len(after) == 2 and len(after & set(pids.values())) == 1
    assert_same(sharded, local)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(client="tcp://127.0.0.1:8786"), TypeError, r"client: expected a dask.distributed.Client or None; got str"),
    (dict(client=object(), pairs=([0], [1], [False])), TypeError,
     r"client: expected a dask.distributed.Client or None; got object"),
])
def test_client_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        evaluate_verification(np.eye(3), [0, 1, 1], **kwargs)


def test_backend_with_a_client(client):
    with pytest.raises(EvallibError, match=r"backend: expected auto or numpy with a client .*; got 'cupy'"):
        VerificationMetrics(client=client, backend="cupy")
    assert VerificationMetrics(client=client, backend="auto").backend == "numpy"


def test_dask_is_imported_only_with_a_client():
    code = ("import sys, numpy as np; from evallib.metrics import evaluate_verification; "
            "evaluate_verification(np.eye(4) + 1, [0, 0, 1, 1], threads=1); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
