"""Batched ONNX inference with onnxruntime, decoding overlapped with the model.

Test-time views of a batch run as one ``session.run``. Class probabilities are averaged over
views (softmax first when the output is logits); embeddings are averaged, then L2-normalized.
Whether the score output is logits or probabilities is decided once, on the raw scores of every
view, before any averaging (``outputs.scores_are: auto``); a declared type the scores contradict
is kept and reported with the evidence (:func:`score_type_warning`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import time
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._keys import content_hash
from .data import CENTER_VIEW, DTYPES, decode_views
from .data.image_properties import properties_table
from .data.preprocessing import load_views_draft
from .errors import EvallibError, ModelError, ParamsError
from .metrics.classification import infer_score_type
from .metrics.transforms import l2_normalize, softmax
from .params import DEVICES, OutputsParams, PreprocessParams, takes_raw_pixels, whole_pad_values
from .records import Predictions

__all__ = ["DeviceChoice", "DeviceError", "Predictions", "available_providers", "confirm_providers", "run_bound",
           "select_providers", "session_device", "decode_pool_size",
           "input_dtype", "input_layout", "is_output_problem", "model_facts", "open_session", "predict",
           "score_type_warning", "softmax", "l2_normalize", "unusable_outputs", "wait_for_cool_cpu"]

# model input element types (onnxruntime's "tensor(float)" or onnx's "float") and the preprocess.dtype
# that feeds them
_INPUT_TYPES = {"float": "float32", "float16": "float16", "double": "float64", "uint8": "uint8"}


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file (a model file's identity in its facts and cache keys)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def model_facts(path: str | Path) -> dict[str, Any]:
    """What a report says about a model file: sha256, I/O names and shapes, opset, producer, metadata."""
    import onnx

    path = Path(path)
    try:
        m = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ModelError(f"model: expected an ONNX file; got no file at {path}") from None
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelError(f"model: {path}: expected an ONNX model; could not parse it ({exc})") from None

    def shape(vi):
        dims = vi.type.tensor_type.shape.dim
        return [d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in dims]

    def dtype(vi):
        return onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type).lower()

    inits = {i.name for i in m.graph.initializer}
    return {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "inputs": [{"name": v.name, "shape": shape(v), "type": dtype(v)} for v in m.graph.input if v.name not in inits],
        "outputs": [{"name": v.name, "shape": shape(v), "type": dtype(v)} for v in m.graph.output],
        "opset": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "ir_version": m.ir_version,
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "metadata": {p.key: p.value for p in m.metadata_props},
    }


CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
# the device each provider runs on, as run.json and the report name it
_PROVIDER_DEVICES = {CPU_PROVIDER: "cpu", CUDA_PROVIDER: "cuda", "TensorrtExecutionProvider": "cuda"}
_GPU_HINT = "install onnxruntime-gpu (pip install 'evallib[gpu]') on a machine with an NVIDIA GPU and its driver"


class DeviceError(EvallibError):
    """The device the params ask for (``runtime.device``, ``runtime.providers``) cannot be used here."""


def available_providers() -> list[str]:
    """The execution providers this onnxruntime offers, as ``onnxruntime.get_available_providers()`` lists them.

    Every choice of device reads them through this function (tests replace it to play a machine
    with or without a GPU).
    """
    import onnxruntime as ort

    return list(ort.get_available_providers())


@dataclass(frozen=True)
class DeviceChoice:
    """Where a session runs, as ``run.json`` ``inference`` and the report's "Model and data" state it.

    Attributes
    ----------
    requested : str
        ``runtime.device``: auto, cpu or cuda.
    device : str
        Where the model runs: ``"cuda"``, ``"cpu"``, or the first provider's name for another one.
    providers : tuple of str
        The execution providers the session uses, in order of preference (the CPU last).
    note : str or None
        Why ``auto`` runs on the CPU although more was asked for, or None.
    """

    requested: str
    device: str
    providers: tuple[str, ...]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "providers": list(self.providers), "device_note": self.note}


def _device_of(providers):
    return _PROVIDER_DEVICES.get(providers[0], providers[0]) if providers else "cpu"


def select_providers(device: str = "auto", providers: Sequence[str] | None = None, *,
                     available: Sequence[str] | None = None) -> DeviceChoice:
    """The execution providers to ask onnxruntime for, before a session opens.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        ``runtime.device``. ``cpu`` asks for the CPU provider only. ``cuda`` asks for
        ``providers`` (default the CUDA provider) and raises when one is missing. ``auto`` asks for
        the same but keeps only those available, running on the CPU when none is, and says so.
    providers : sequence of str, optional
        ``runtime.providers``: provider names in order of preference; the CPU provider is added last.
    available : sequence of str, optional
        The providers this onnxruntime offers (default :func:`available_providers`).

    Returns
    -------
    DeviceChoice

    Raises
    ------
    DeviceError
        When ``device`` is ``cuda`` (or ``providers`` names one) and onnxruntime does not offer it.

    Examples
    --------
    >>> select_providers("auto", available=["CPUExecutionProvider"]).device
    'cpu'
    >>> select_providers("auto", available=["CUDAExecutionProvider", "CPUExecutionProvider"]).providers
    ('CUDAExecutionProvider', 'CPUExecutionProvider')
    """
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        if providers:
            raise ValueError(f"providers: expected none with device cpu; got {list(providers)}")
        return DeviceChoice("cpu", "cpu", (CPU_PROVIDER,))
    available = available_providers() if available is None else list(available)
    wanted = [p for p in (providers or (CUDA_PROVIDER,)) if p != CPU_PROVIDER] + [CPU_PROVIDER]
    missing = [p for p in wanted if p not in available]
    usable = tuple(p for p in wanted if p in available) or (CPU_PROVIDER,)
    if device == "cuda":
        if CUDA_PROVIDER not in wanted:
            raise ValueError(f"providers: expected {CUDA_PROVIDER} in the list with device cuda; "
                             f"got {list(providers or ())}")
        if missing:
            raise DeviceError(f"runtime.device: expected a usable GPU for cuda; onnxruntime offers only "
                              f"{', '.join(available)} ({', '.join(missing)} missing): {_GPU_HINT}, or set "
                              f"runtime.device to auto or cpu")
        return DeviceChoice("cuda", _device_of(usable), usable)
    note = None
    if missing:
        note = (f"runtime.device auto: {', '.join(missing)} not offered by this onnxruntime "
                f"({', '.join(available)}); running on {', '.join(usable)}")
    return DeviceChoice("auto", _device_of(usable), usable, note)


def confirm_providers(choice: DeviceChoice, started: Sequence[str]) -> DeviceChoice:
    """The choice as the session started it: a provider offered but unable to start (no GPU, no driver) is dropped.

    onnxruntime falls back to the CPU with only a log line when the CUDA provider cannot start;
    ``started`` is ``session.get_providers()``.

    Raises
    ------
    DeviceError
        When ``runtime.device`` is cuda and a provider asked for did not start.
    """
    started = list(started)
    failed = [p for p in choice.providers if p not in started]
    if not failed:
        return choice
    if choice.requested == "cuda":
        raise DeviceError(f"runtime.device: expected a usable GPU for cuda; {', '.join(failed)} is installed but did "
                          f"not start (no GPU, or its driver or CUDA libraries are missing): {_GPU_HINT}, or set "
                          f"runtime.device to auto or cpu")
    kept = tuple(p for p in choice.providers if p in started) or (CPU_PROVIDER,)
    why = f"{', '.join(failed)} did not start (no usable GPU, or its driver or CUDA libraries are missing)"
    note = f"{choice.note}; {why}" if choice.note else f"runtime.device {choice.requested}: {why}"
    return DeviceChoice(choice.requested, _device_of(kept), kept, f"{note}; running on {', '.join(kept)}")


def open_session(path: str | Path, *, threads: int = 0, device: str = "cpu",
                 providers: Sequence[str] | None = None) -> Any:
    """An onnxruntime session on ``device``; ``threads=0`` uses one intra-op thread per core.

    ``device`` and ``providers`` are the params' ``runtime.device`` and ``runtime.providers``
    (:func:`select_providers`); :func:`session_device` says where the session runs.

    Raises
    ------
    DeviceError
        When ``device`` is cuda and no GPU is usable.
    ModelError
        When onnxruntime cannot load the model.
    """
    import onnxruntime as ort

    choice = select_providers(device, providers)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=list(choice.providers))
    except Exception as exc:
        raise ModelError(f"model: {path}: onnxruntime cannot load it: {exc}") from None
    _CHOICES[session] = confirm_providers(choice, session.get_providers())
    return session


_CHOICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # what each open session was asked for


def session_device(session: Any) -> DeviceChoice:
    """Where a session runs: for one :func:`open_session` opened, with the reason ``auto`` fell back to the CPU.

    Any other session is described from ``session.get_providers()``.
    """
    started = tuple(getattr(session, "get_providers", lambda: [CPU_PROVIDER])())  # a stand-in runs where it is
    try:
        known = _CHOICES.get(session)
    except TypeError:  # an object that takes no weak reference
        known = None
    if known is not None and known.providers == started[:len(known.providers)]:
        return known
    return DeviceChoice("cpu" if started == (CPU_PROVIDER,) else "auto", _device_of(started), started)


def run_bound(session: Any, names: Sequence[str], input_name: str, x: np.ndarray, *,
              device: str = "cpu") -> list[np.ndarray]:
    """``session.run(names, {input_name: x})`` through onnxruntime's I/O binding.

    The batch is copied to ``device`` once (``"cuda"``: the GPU) and the outputs come back to host
    memory once, with no copy of the inputs through onnxruntime's own staging buffers.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
    names : sequence of str
        The outputs wanted.
    input_name : str
    x : ndarray
        The batch, in the model's input type and layout.
    device : {"cpu", "cuda"}
        Where the input is placed.

    Returns
    -------
    list of ndarray
        One per name, as ``session.run`` returns them.
    """
    import onnxruntime as ort

    binding = session.io_binding()
    binding.bind_ortvalue_input(input_name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x), device, 0))
    for name in names:
        binding.bind_output(name, "cpu")
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()


def input_layout(input_shape, view_shape, layout):
    """``"nchw"`` or ``"nhwc"``: how the model takes a batch of views of shape ``(C, H, W)``, checked against
    its input shape (``layout``: ``preprocess.layout``, auto, nchw or nhwc). The prediction loop and the
    report's heat maps decide it the same way."""
    c, h, w = view_shape
    if len(input_shape) != 4:
        raise ModelError(f"model input has shape {input_shape}; expected a 4-d image batch for "
                         f"preprocessed images of shape (N, {c}, {h}, {w})")

    def fits(shape):
        return all(d is None or isinstance(d, str) or d == want for d, want in zip(shape[1:], (c, h, w)))

    nhwc = [input_shape[0], input_shape[3], input_shape[1], input_shape[2]]
    if layout == "nchw" or (layout == "auto" and fits(input_shape)):
        chosen, shape = "nchw", input_shape
    elif layout == "nhwc" or (layout == "auto" and fits(nhwc)):
        chosen, shape = "nhwc", nhwc
    else:
        chosen, shape = "nchw", input_shape
    if not fits(shape):
        want = (f"(N, {c}, {h}, {w})" if chosen == "nchw" else f"(N, {h}, {w}, {c})")
        raise ModelError(f"model input has shape {list(input_shape)}; the preprocessing gives {want} "
                         f"(preprocess.mode/crop/resize/layout)")
    return chosen


def input_dtype(input_type: str, *, dtype: str = "auto", name: str = "input") -> str:
    """The ``preprocess.dtype`` that feeds a model input of type ``input_type``.

    Parameters
    ----------
    input_type : str
        onnxruntime's type (``"tensor(float)"``, ``"tensor(float16)"``, ``"tensor(double)"``,
        ``"tensor(uint8)"``) or onnx's element type name (``"float"``...), as :func:`model_facts` lists.
    dtype : {"auto", "float32", "float16", "float64", "uint8"}
        The params' ``preprocess.dtype``; ``auto`` takes the model's, any other must match it.
    name : str
        The input's name, for messages.

    Returns
    -------
    str
        One of float32, float16, float64, uint8.
    """
    kind = input_type[len("tensor("):-1] if input_type.startswith("tensor(") else input_type
    got = _INPUT_TYPES.get(kind)
    if got is None:
        raise ModelError(f"model input {name!r} has type {input_type}; expected tensor(float), tensor(float16), "
                         f"tensor(double) or tensor(uint8)")
    if dtype not in ("auto", got):
        raise ModelError(f"preprocess.dtype: expected auto or {got} (model input {name!r} has type {input_type}); "
                         f"got {dtype!r}")
    return got


def score_type_warning(score_type: Mapping[str, Any]) -> str | None:
    """The warning for a declared score type that the scores contradict, or None.

    ``score_type`` is :attr:`Predictions.score_type`.
    """
    declared, detected = score_type["declared"], score_type["detected"]
    if declared in ("auto", detected):
        return None
    if detected == "probabilities":
        what = "these look like probabilities (a Softmax output); log loss and ECE would be wrong"
    else:
        what = "these are not probabilities (they look like logits), so they were evaluated as logits"
    return (f"outputs.scores_are: declared {declared!r} but {score_type['evidence']}: {what}; "
            f"set outputs.scores_are to {detected!r} or 'auto'")


def _cpu_temperature():
    import psutil

    temps = getattr(psutil, "sensors_temperatures", lambda: {})() or {}
    values = [t.current for entries in temps.values() for t in entries if t.current is not None]
    return max(values) if values else None


def wait_for_cool_cpu(limit, *, read=_cpu_temperature, sleep=time.sleep, poll=2.0, max_wait=600.0):
    """Pause while the CPU is hotter than ``limit`` degrees C; returns seconds waited."""
    if limit is None:
        return 0.0
    waited = 0.0
    while waited < max_wait:
        temp = read()
        if temp is None or temp <= limit:
            break
        sleep(poll)
        waited += poll
    return waited


_OUTPUT = "output"  # how the reason for an image whose model output is unusable starts


def is_output_problem(reason: object) -> bool:
    """Whether a skipped file's reason is an unusable model output (:func:`unusable_outputs`), not its file."""
    return str(reason).startswith(f"{_OUTPUT} '")


def unusable_outputs(batch: Mapping[str, np.ndarray], *, embedding: str | None = None) -> list[str | None]:
    """Per image, why its model outputs cannot be used, or None.

    Parameters
    ----------
    batch : dict of str to ndarray of shape (n_images, n_views, n_values)
        Each output in use, every test-time view of each image.
    embedding : str, optional
        The output that is an embedding: an all-zero embedding (in any view) has no direction.

    Returns
    -------
    list of str or None
        One per image: the first problem found, outputs taken in ``batch``'s order; an image is
        unusable when any of its views is.
    """
    n = len(next(iter(batch.values()))) if batch else 0
    reasons: list[str | None] = [None] * n
    free = np.ones(n, dtype=bool)
    for name, values in batch.items():
        checks = [(~np.isfinite(values).all(axis=(1, 2)), "gave NaN or infinite values")]
        if name == embedding:
            checks.append(((values == 0).all(axis=2).any(axis=1), "gave an all-zero embedding"))
        for bad, what in checks:
            for k in np.flatnonzero(bad & free):
                reasons[k] = f"{_OUTPUT} {name!r} {what}"
            free &= ~bad
    return reasons


def _all_unusable_message(unusable, files, *, shown=3):
    """One line for a model whose outputs were unusable for every image that decoded."""
    parents = [os.path.dirname(os.path.abspath(f)) for f in files]
    base = os.path.commonpath(parents) if parents else ""
    first = ", ".join(Path(os.path.relpath(f["path"], base)).as_posix() for f in unusable[:shown])
    counts = {}
    for f in unusable:
        counts[f["reason"]] = counts.get(f["reason"], 0) + 1
    n, undecoded = len(unusable), len(files) - len(unusable)
    which = f"all {n} images" + (" that decoded" if undecoded else "")
    if len(counts) == 1:
        head = f"model {unusable[0]['reason']} for {which}"
    else:
        head = f"model outputs were unusable for {which}: " + ", ".join(f"{r} ({k})" for r, k in counts.items())
    tail = f"; {undecoded} more could not be decoded" if undecoded else ""
    return f"{head} (first: {first}){tail}"


def decode_pool_size(workers: int = 0) -> int:
    """Threads that decode images beside the model: ``workers``, or one per core for 0.

    Threads, not processes: Pillow releases the GIL while it decodes and resizes, and NumPy while
    it normalizes, so threads scale with the cores without copying each image's views between
    processes (``bench/bench_photos.py`` measures both).
    """
    if workers < 0:
        raise ValueError(f"workers: expected 0 (one per core) or more; got {workers}")
    return workers or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def predict(session: Any, files: Sequence[str | Path], pre: PreprocessParams | Mapping[str, Any],
            outputs: OutputsParams | Mapping[str, Any], *, batch_size: int = 64, decode_workers: int = 0,
            max_cpu_temp: float | None = None, progress: Any = True, desc: str = "inference",
            file_hashes: Sequence[str] | None = None, jpeg_draft: bool = False) -> Predictions:
    """Run ``session`` over image ``files`` with the params' preprocessing.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
    files : list of Path
    pre : PreprocessParams or mapping
        The params' ``preprocess`` section (a mapping of its keys is read into one). Its ``dtype``
        (``auto`` by default) is resolved against the model's input type (:func:`input_dtype`);
        uint8 inputs take the raw pixels.
    outputs : OutputsParams or mapping
        The params' ``outputs`` section (``scores``, ``scores_are``, ``embedding``).
    decode_workers : int, default 0
        Threads decoding the next batch while the model runs this one (0: one per core,
        :func:`decode_pool_size`).
    progress : bool or tqdm, default True
        Show a progress bar named ``desc``; or a bar to advance by one per image (left open).
    file_hashes : sequence of str, optional
        The content hash of each file (:func:`evallib._keys.hash_listing` computed them for the cache
        key): given, the files are not hashed again.
    jpeg_draft : bool, default False
        Decode JPEGs at reduced scale where the resize allows it
        (:func:`evallib.data.preprocessing.load_views_draft`): faster on large photos, but the
        pixels differ from the default path's by a few levels wherever the scale is reduced.

    Returns
    -------
    Predictions
        Files that cannot be read or decoded, and images whose outputs in use hold NaN or
        infinite values (in any test-time view) or whose embedding is all zeros
        (:func:`unusable_outputs`), are left out and listed in ``failed`` with the reason.
        ``file_hashes`` holds :func:`evallib._keys.content_hash` of each kept file's bytes.

    Raises
    ------
    ModelError
        When the outputs are unusable for every image that decoded; the message names the output
        and the first files.
    """
    from tqdm.auto import tqdm

    if file_hashes is not None and len(file_hashes) != len(files):
        raise ValueError(f"file_hashes: expected one per file ({len(files)}); got {len(file_hashes)}")
    pre = PreprocessParams.coerce(pre)
    outputs = OutputsParams.coerce(outputs)
    tta = pre.tta
    inp = session.get_inputs()[0]
    names = [o.name for o in session.get_outputs()]
    wanted = [n for n in (outputs.scores, outputs.embedding) if n]
    for key in ("scores", "embedding"):
        if getattr(outputs, key) and getattr(outputs, key) not in names:
            raise ModelError(f"outputs.{key}: expected one of the model's outputs {names}; "
                             f"got {getattr(outputs, key)!r}")
    dtype_name = input_dtype(inp.type, dtype=pre.dtype, name=inp.name)
    if dtype_name == "uint8":
        if not takes_raw_pixels(pre):
            raise ModelError(f"preprocess.mean/std: expected mean [0] and std [1] for model input {inp.name!r} of "
                             f"type {inp.type} (it takes raw 0..255 pixels); got mean {list(pre.mean)}, "
                             f"std {list(pre.std)}")
        if not whole_pad_values(pre):
            raise ModelError(f"preprocess.pad_value: expected whole pixel values for model input {inp.name!r} of "
                             f"type {inp.type} (it takes raw 0..255 pixels); got {pre.pad_value}")
    try:
        pre = dataclasses.replace(pre, dtype=dtype_name)
    except ParamsError as exc:  # not reached: the rules of a uint8 input were checked above
        raise ModelError(str(exc)) from None
    dtype = DTYPES[pre.dtype]

    def decode(i):
        f = files[i]
        try:
            raw = Path(f).read_bytes()
        except OSError as exc:
            return None, f"cannot read: {exc.strerror or exc}", None, None
        if not raw:
            return None, "empty file (0 bytes)", None, None
        views, reason, props = (load_views_draft if jpeg_draft else decode_views)(io.BytesIO(raw), pre)
        return views, reason, (file_hashes[i] if file_hashes is not None else content_hash(raw)), props

    fixed = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
    start = time.perf_counter()
    kept: list[int] = []
    failed: list[dict[str, Any]] = []
    unusable: list[dict[str, Any]] = []
    digests: list[Any] = []
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
    props: list[Any] = []  # ImageProperties of each kept image
    layout = None
    batches = [range(s, min(s + batch_size, len(files))) for s in range(0, len(files), batch_size)]
    own_bar = not hasattr(progress, "update")
    bar = tqdm(total=len(files), desc=desc, unit="img", disable=not progress, leave=False) if own_bar else progress
    on = session_device(session).device
    bound = on if on == "cuda" else None  # on a GPU each batch goes over once, through I/O binding
    with ThreadPoolExecutor(max_workers=decode_pool_size(decode_workers)) as pool:
        pending = pool.map(decode, batches[0]) if batches else iter(())
        for b, rows in enumerate(batches):
            decoded = list(pending)
            if b + 1 < len(batches):  # decode the next batch while this one runs
                pending = pool.map(decode, batches[b + 1])
            good, good_digests, good_props = [], [], []
            for i, (v, reason, digest, p) in zip(rows, decoded):
                if v is None:
                    failed.append({"path": str(files[i]), "reason": reason})
                else:
                    good.append((i, v))
                    good_digests.append(digest)
                    good_props.append(p)
            bar.update(len(rows))
            if not good:
                continue
            x = np.concatenate([v for _, v in good])  # (n * views, C, H, W)
            n_views = good[0][1].shape[0]
            if layout is None:
                layout = input_layout(list(inp.shape), x.shape[1:], pre.layout)
            if layout == "nhwc":
                x = x.transpose(0, 2, 3, 1)
            # all views of an image go in the same run; a run holds at most batch_size views
            # (or one image's views), since very large runs are slower per image; a graph that fixes
            # its batch size (dynamo exports fix 1) gets exactly that many, the last run padded
            step = fixed or max(n_views, batch_size // n_views * n_views)
            parts: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
            for s0 in range(0, len(x), step):
                wait_for_cool_cpu(max_cpu_temp)
                run = x[s0:s0 + step]
                if len(run) < step and fixed:
                    run = np.concatenate([run, np.zeros((step - len(run), *run.shape[1:]), run.dtype)])
                run = np.ascontiguousarray(run, dtype=dtype)
                result = (run_bound(session, wanted, inp.name, run, device=bound) if bound else
                          session.run(wanted, {inp.name: run}))
                for name, r in zip(wanted, result):
                    parts[name].append(np.asarray(r, dtype=np.float64)[:len(x) - s0])
            batch = {name: np.concatenate(parts[name]).reshape(len(good), n_views, -1) for name in wanted}
            problems = unusable_outputs(batch, embedding=outputs.embedding)
            ok = np.array([p is None for p in problems], dtype=bool)
            for k in np.flatnonzero(~ok):
                failed.append({"path": str(files[good[k][0]]), "reason": problems[k]})
                unusable.append(failed[-1])
            for name in wanted:
                chunks[name].append(batch[name][ok])
            kept.extend(good[k][0] for k in np.flatnonzero(ok))
            digests.extend(good_digests[k] for k in np.flatnonzero(ok))
            props.extend(good_props[k] for k in np.flatnonzero(ok))
    if own_bar:
        bar.close()
    seconds = time.perf_counter() - start
    if unusable and not kept:
        raise ModelError(_all_unusable_message(unusable, files))

    def gather(name):
        return np.concatenate(chunks[name]) if chunks[name] else None

    scores = emb = scores_c = emb_c = score_type = None
    scores_are = raw_are = None
    c = CENTER_VIEW[tta]
    if outputs.scores:
        raw = gather(outputs.scores)
        if raw is not None:
            # decided once, on every view's raw scores, before views are averaged
            out_type = next(o.type for o in session.get_outputs() if o.name == outputs.scores)
            atol = 4e-3 if out_type == "tensor(float16)" else 1e-3  # a softmax computed in float16
            detected, evidence = infer_score_type(raw.reshape(-1, raw.shape[-1]), atol=atol)
            declared = outputs.scores_are
            # scores that are not probabilities cannot be used as such (the metrics refuse them): they are
            # taken as logits, and the warning says so; probabilities declared as logits stay logits
            raw_are = detected if declared == "auto" or detected == "logits" else declared
            score_type = {"declared": declared, "detected": detected, "used": raw_are, "evidence": evidence}
            if tta == "none":
                scores, scores_are = raw[:, 0], raw_are
            else:
                probs = softmax(raw, axis=-1) if raw_are == "logits" else raw
                scores, scores_are = probs.mean(axis=1), "probabilities"
                scores_c = raw[:, c]
    if outputs.embedding:
        raw = gather(outputs.embedding)
        if raw is not None:
            emb = l2_normalize(raw.mean(axis=1))
            if tta != "none":
                emb_c = l2_normalize(raw[:, c])
    return Predictions(kept=np.asarray(kept, dtype=np.int64), scores=scores, scores_are=scores_are, embeddings=emb,
                       scores_center=scores_c, embeddings_center=emb_c, failed=failed, seconds=seconds,
                       file_hashes=digests, raw_scores_are=raw_are, score_type=score_type,
                       image_properties=properties_table(props))
