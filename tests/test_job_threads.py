"""Cores shared between jobs: with ``--jobs N`` (and on a Dask worker) each job gives onnxruntime and the
verification pass its share of the cores, and ``run.json`` records what it used."""

import json
import os

import numpy as np
import pytest
import yaml

from conftest import check_output_folder, export_tiny_model, write_image_tree
from evallib.cli import main
from evallib.cluster import _worker_threads, host_share
from evallib.params import parse_params
from evallib.run import _threads_for, job_threads


def test_job_threads_hand_worked():
    assert [job_threads(j, cores=16) for j in (1, 2, 3, 4, 16, 32)] == [16, 8, 5, 4, 1, 1]
    assert job_threads(2, cores=2) == 1 and job_threads(1, cores=1) == 1
    with pytest.raises(ValueError, match=r"jobs: expected an integer >= 1; got 0"):
        job_threads(0)
    assert [host_share(16, s) for s in (1, 4, 5, 16, 40, 0)] == [16, 4, 3, 1, 1, 16]


@pytest.mark.parametrize("threads, share, want", [(0, None, os.cpu_count()), (3, None, 3), (0, 1, 1),
                                                  (0, 4, min(4, os.cpu_count())), (3, 8, 3), (8, 3, 3)])
def test_a_job_uses_the_params_threads_capped_at_its_share(tmp_path, threads, share, want):
    params = parse_params({"name": "m", "model": "m.onnx", "data": {"root": "."}, "runtime": {"threads": threads}},
                          base_dir=tmp_path)
    assert _threads_for(params, share) == want


def test_a_dask_task_gets_its_share_of_the_host(tmp_path):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        got = client.submit(_worker_threads, pure=False).result()
    assert got == host_share(os.cpu_count() or 1, 2)  # two workers of one thread each on this host
    assert _worker_threads() is None  # outside a worker: no cap


@pytest.mark.slow
def test_jobs_2_records_each_jobs_share_of_the_cores(tmp_path, rng, capsys):
    model = export_tiny_model(tmp_path / "tiny.onnx")
    data = write_image_tree(tmp_path / "data", rng, per_class=3, size=(16, 16))
    folder = tmp_path / "params"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({
            "name": name, "model": str(model), "task": "both", "data": {"root": str(data)},
            "preprocess": {"mode": "grayscale", "mean": [0.5], "std": [0.25]},
            "outputs": {"scores": "logits", "embedding": "embedding"}, "report": {"bootstrap": 0}}))
    code = main(["run", str(folder), "--out", str(tmp_path / "out"), "--jobs", "2", "--no-report", "--quiet"])
    assert code == 0, capsys.readouterr().err
    share = max(1, (os.cpu_count() or 1) // 2)
    for name in ("a", "b"):
        check_output_folder(tmp_path / "out" / name)  # run.json and metrics.json against their schemas
        run = json.loads((tmp_path / "out" / name / "run.json").read_text())
        assert run["status"] == "ok"
        rt = run["runtime"]
        assert rt["cores"] == os.cpu_count() and rt["share"] == share
        assert rt["onnxruntime_intra_op_threads"] == share and rt["verification_threads"] == share
        assert rt["blas_threads"] and set(rt["blas_threads"]) == {share}  # BLAS capped too, not one per core
        assert run["params"]["runtime"]["threads"] == 0  # the params as written; runtime says what ran
        metrics = json.loads((tmp_path / "out" / name / "metrics.json").read_text())
        assert np.isfinite(metrics["verification"]["auc"])
