"""Where inference runs: runtime.device and runtime.providers, the CPU fallback in run.json and the
report, I/O binding, and the predictions handed to the metrics step in memory."""

import json

import numpy as np
import pytest
import yaml

import evallib.inference as inference
from conftest import export_tiny_model, write_image_tree
from evallib.errors import ParamsError
from evallib.inference import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    DeviceChoice,
    DeviceError,
    confirm_providers,
    decode_pool_size,
    open_session,
    run_bound,
    select_providers,
    session_device,
)
from evallib.params import RuntimeParams

TRT = "TensorrtExecutionProvider"
GPU_MACHINE = [TRT, CUDA_PROVIDER, CPU_PROVIDER]
CPU_MACHINE = ["AzureExecutionProvider", CPU_PROVIDER]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


def _reference(device, providers, available):
    """The rule written out case by case: what a session should ask for, and whether it runs on the CPU."""
    if device == "cpu":
        return (CPU_PROVIDER,)
    asked = list(providers or [CUDA_PROVIDER])
    out = []
    for p in asked + [CPU_PROVIDER]:
        if p in available and p not in out:
            out.append(p)
    return tuple(out)


@pytest.mark.parametrize("available", [GPU_MACHINE, [CUDA_PROVIDER, CPU_PROVIDER], CPU_MACHINE, [CPU_PROVIDER]])
@pytest.mark.parametrize("providers", [None, [TRT, CUDA_PROVIDER], ["OpenVINOExecutionProvider"],
                                       [CUDA_PROVIDER, CPU_PROVIDER]])
def test_auto_keeps_what_is_offered_and_says_what_is_not(available, providers):
    got = select_providers("auto", providers, available=available)
    want = _reference("auto", providers, available)
    assert got.providers == want and got.providers[-1] == CPU_PROVIDER
    assert got.device == {TRT: "cuda", CUDA_PROVIDER: "cuda", CPU_PROVIDER: "cpu"}.get(want[0], want[0])
    missing = [p for p in (providers or [CUDA_PROVIDER]) if p not in available]
    if missing:
        assert got.note.startswith("runtime.device auto: ") and all(p in got.note for p in missing)
        assert got.note.endswith("running on " + ", ".join(want))
    else:
        assert got.note is None


def test_cpu_and_cuda_choices():
    assert select_providers("cpu", available=GPU_MACHINE) == DeviceChoice("cpu", "cpu", (CPU_PROVIDER,))
    got = select_providers("cuda", available=GPU_MACHINE)
    assert got == DeviceChoice("cuda", "cuda", (CUDA_PROVIDER, CPU_PROVIDER))
    assert select_providers("cuda", [TRT, CUDA_PROVIDER], available=GPU_MACHINE).providers == \
        (TRT, CUDA_PROVIDER, CPU_PROVIDER)
    with pytest.raises(DeviceError, match=r"runtime\.device: expected a usable GPU for cuda; .*CUDAExecutionProvider "
                                          r"missing.*onnxruntime-gpu.*runtime\.device to auto or cpu"):
        select_providers("cuda", available=CPU_MACHINE)
    with pytest.raises(DeviceError, match="TensorrtExecutionProvider missing"):
        select_providers("cuda", [TRT, CUDA_PROVIDER], available=[CUDA_PROVIDER, CPU_PROVIDER])
    with pytest.raises(ValueError, match="device: expected one of auto, cpu, cuda; got 'gpu'"):
        select_providers("gpu", available=GPU_MACHINE)


def test_a_provider_offered_but_not_started_falls_back_or_fails():
    chosen = select_providers("auto", available=GPU_MACHINE)
    kept = confirm_providers(chosen, [CPU_PROVIDER])
    assert kept.device == "cpu" and kept.providers == (CPU_PROVIDER,)
    assert "did not start" in kept.note and "TensorrtExecutionProvider" not in kept.note
    assert confirm_providers(chosen, list(chosen.providers)) is chosen
    with pytest.raises(DeviceError, match=r"runtime\.device: expected a usable GPU for cuda; CUDAExecutionProvider "
                                          r"is installed but did not start"):
        confirm_providers(select_providers("cuda", available=GPU_MACHINE), [CPU_PROVIDER])


def test_open_session_through_the_public_seam(model, monkeypatch):
    """A machine whose onnxruntime lists the CUDA provider, which cannot start here (no GPU)."""
    monkeypatch.setattr(inference, "available_providers", lambda: [CUDA_PROVIDER, CPU_PROVIDER])
    with pytest.warns(UserWarning) if CUDA_PROVIDER not in __import__("onnxruntime").get_available_providers() \
            else _nothing():
        sess = open_session(model, threads=1, device="auto")
    facts = session_device(sess)
    assert sess.get_providers() == [CPU_PROVIDER]
    assert facts.device == "cpu" and facts.providers == (CPU_PROVIDER,) and "CUDAExecutionProvider did not start" \
        in facts.note
    monkeypatch.setattr(inference, "available_providers", lambda: list(CPU_MACHINE))
    facts = session_device(open_session(model, threads=1, device="auto"))
    assert facts.to_dict() == {"device": "cpu", "providers": [CPU_PROVIDER], "device_note": (
        "runtime.device auto: CUDAExecutionProvider not offered by this onnxruntime (AzureExecutionProvider, "
        "CPUExecutionProvider); running on CPUExecutionProvider")}
    with pytest.raises(DeviceError, match=r"runtime\.device: expected a usable GPU for cuda"):
        open_session(model, threads=1, device="cuda")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_session_opened_elsewhere_is_described_from_its_providers(model):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=[CPU_PROVIDER])
    assert session_device(sess) == DeviceChoice("cpu", "cpu", (CPU_PROVIDER,))
    assert session_device(open_session(model, threads=1)).note is None  # the default: cpu, as asked


@pytest.mark.parametrize("n", [1, 5])
def test_io_binding_gives_what_session_run_gives(model, n):
    sess = open_session(model, threads=1)
    x = np.random.default_rng(n).normal(size=(n, 1, 16, 16)).astype(np.float32)
    want = sess.run(["logits", "embedding"], {"input": x})
    got = run_bound(sess, ["logits", "embedding"], "input", x)
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    [emb] = run_bound(sess, ["embedding"], "input", x[:, :, ::-1])  # a view that is not contiguous
    np.testing.assert_array_equal(emb, sess.run(["embedding"], {"input": np.ascontiguousarray(x[:, :, ::-1])})[0])


def test_runtime_params():
    assert RuntimeParams().device == "auto" and RuntimeParams().providers is None
    assert RuntimeParams(device="cuda", providers=[TRT, CUDA_PROVIDER]).providers == (TRT, CUDA_PROVIDER)
    with pytest.raises(ParamsError, match="runtime.device: expected one of auto, cpu, cuda; got 'gpu'"):
        RuntimeParams(device="gpu")
    with pytest.raises(ParamsError, match="runtime.providers: expected no list with runtime.device cpu"):
        RuntimeParams(device="cpu", providers=[CUDA_PROVIDER])
    with pytest.raises(ParamsError, match="runtime.providers: expected CUDAExecutionProvider in the list"):
        RuntimeParams(device="cuda", providers=[TRT])
    with pytest.raises(ParamsError, match="runtime.providers"):
        RuntimeParams(providers=["cuda"])


def test_decode_pool_size():
    import os

    cores = len(os.sched_getaffinity(0))
    assert decode_pool_size(0) == cores and decode_pool_size(3) == 3
    with pytest.raises(ValueError, match="workers: expected 0"):
        decode_pool_size(-1)


@pytest.mark.slow
def test_pipeline_records_the_cpu_fallback_and_hands_predictions_over(tmp_path, rng, model, monkeypatch, evaluated):
    """One small run: run.json and the report say where inference ran; the metrics step never re-reads the file."""
    from evallib import run as run_mod
    from evallib.outputs import load_predictions

    data = write_image_tree(tmp_path / "data", rng, per_class=4, size=(16, 16))
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({
        "name": "dev", "model": str(model), "data": {"root": str(data)},
        "preprocess": {"crop": 16, "mode": "grayscale", "mean": [0.5], "std": [0.25]},
        "outputs": {"scores": "logits", "embedding": "embedding"},
        "report": {"bootstrap": 20}, "runtime": {"threads": 1}}))
    monkeypatch.setattr(inference, "available_providers", lambda: list(CPU_MACHINE))

    def no_reads(model_dir):
        raise AssertionError(f"predictions re-read from {model_dir}")

    monkeypatch.setattr(run_mod, "load_predictions", no_reads)
    rep = evaluated(p, tmp_path / "out")
    run = json.loads((tmp_path / "out" / "dev" / "run.json").read_text())
    inf = run["inference"]
    assert inf["device"] == "cpu" and inf["providers"] == [CPU_PROVIDER]
    assert "CUDAExecutionProvider not offered" in inf["device_note"]
    from evallib.peers import load_peers

    assert (tmp_path / "out" / "dev" / "summary.json").exists() and (tmp_path / "out" / "peers.json").exists()
    assert load_peers(tmp_path / "out")["dev"]["headline"] == json.loads(
        (tmp_path / "out" / "dev" / "metrics.json").read_text())["headline"]
    html = rep.header._repr_html_()
    assert "execution providers" in html and "CUDAExecutionProvider not offered" in html
    # the metrics from memory are those the file gives
    monkeypatch.undo()
    from evallib.evaluation import evaluate
    from evallib.params import load_params

    again = evaluate(load_params(p), run, load_predictions(tmp_path / "out" / "dev"))
    stored = json.loads((tmp_path / "out" / "dev" / "metrics.json").read_text())
    assert json.loads(json.dumps(again.metrics["headline"])) == stored["headline"]
