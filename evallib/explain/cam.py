"""Grad-CAM and friends through pytorch-grad-cam, for torch modules and ONNX files.

An ONNX file is converted to torch with onnx2torch; when that fails, a torch model named in the
params (a state dict with the function that builds the module, or a pickled module when
``report.allow_pickle`` is true) is used instead.
Targets are small callables (pytorch-grad-cam's seam): :class:`ClassTarget` for a class score,
:class:`SimilarityTarget` for the cosine similarity of an embedding to a reference. Hooks are
released by pytorch-grad-cam's context manager.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError

METHODS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "scorecam": "ScoreCAM", "eigencam": "EigenCAM",
           "xgradcam": "XGradCAM", "layercam": "LayerCAM", "hirescam": "HiResCAM"}


class ClassTarget:
    """The score of one class (logit or probability, as the output is)."""

    def __init__(self, category):
        self.category = int(category)

    def __call__(self, model_output):
        return model_output[..., self.category]


class SimilarityTarget:
    """Cosine similarity of the output embedding to a reference embedding."""

    def __init__(self, reference):
        self.reference = np.asarray(reference, dtype=np.float32)

    def __call__(self, model_output):
        import torch

        ref = torch.as_tensor(self.reference, device=model_output.device)
        return torch.nn.functional.cosine_similarity(model_output, ref, dim=-1)


@dataclass
class TorchModel:
    """A torch module ready for CAMs, and how it was obtained (shown in the report).

    ``batch`` is the batch size the ONNX graph fixes (dynamo exports often fix 1), else ``None``.
    """

    module: object
    source: str
    nhwc: bool = False
    batch: int | None = None


def _output_module(module, output, nhwc):
    """Wrap ``module`` so that it takes NCHW input and returns one tensor (output ``output``)."""
    import torch

    class Selected(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, x):
            if nhwc:
                x = x.permute(0, 2, 3, 1)
            y = self.inner(x)
            if isinstance(y, dict):
                return y[output] if isinstance(output, str) else list(y.values())[output]
            if isinstance(y, (tuple, list)):
                return y[output if isinstance(output, int) else 0]
            return y

    return Selected().eval()


def load_torch_model(model, *, fallback=None, factory=None, allow_pickle=False, output=0, nhwc=False,
                     output_names=None, input_shape=None):
    """A torch module for CAMs from a module, an ONNX file (onnx2torch) or a fallback torch file.

    Two of the fallbacks run code that comes from outside evallib; neither happens unless the
    params name it (``report.torch_model_factory``, ``report.allow_pickle``).

    Parameters
    ----------
    model : torch.nn.Module or str or Path
    fallback : str or Path, optional
        A state dict (with ``factory``; read with ``weights_only=True``, which runs no code), or a
        whole pickled module (``torch.save(model)``, with ``allow_pickle``), used when ONNX
        conversion fails. TorchScript modules cannot take forward hooks, so they do not serve.
    factory : str, optional
        ``"package.module:callable"`` building the module for a state dict: the module is
        imported (its top-level code runs) and the callable is called.
    allow_pickle : bool, default False
        Unpickle a whole module from ``fallback`` (``torch.load(weights_only=False)``). Unpickling
        runs code from the file; without this the file is refused.
    output : int or str
        Which output the CAM explains (index, or ONNX output name with ``output_names``).
    nhwc : bool
        The model takes NHWC input; the returned module takes NCHW and transposes.
    input_shape : tuple of int, optional
        ``(channels, height, width)`` of one NCHW input: the converted module is then checked
        against onnxruntime (see :func:`evallib.onnx_convert.to_torch`).
    """
    import torch

    if isinstance(output, str) and output_names:
        output = output_names.index(output) if output in output_names else 0
    if isinstance(model, torch.nn.Module):
        return TorchModel(_output_module(model, output, nhwc), "torch module")
    errors = []
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        shape = None
        if input_shape is not None:
            c, h, w = input_shape
            shape = (h, w, c) if nhwc else (c, h, w)
        try:
            module, steps, batch = _converted(str(path.resolve()), path.stat().st_mtime_ns, shape)
            return TorchModel(_output_module(module, output, nhwc),
                              f"ONNX file {path.name} converted with onnx2torch ({'; '.join(steps) or 'as is'})",
                              nhwc, batch)
        except ModelError as exc:
            errors.append(str(exc))
    if fallback:
        fb = Path(fallback)
        try:
            if factory:
                mod_name, _, fn = factory.partition(":")
                module = getattr(importlib.import_module(mod_name), fn)()
                module.load_state_dict(torch.load(fb, map_location="cpu", weights_only=True))
                src = f"state dict {fb.name} with {factory}"
            else:
                if not allow_pickle:
                    raise ModelError(f"report.allow_pickle: expected true to load {fb.name} as a pickled torch "
                                     f"module (unpickling runs code from the file: allow it only for a file you "
                                     f"trust), or report.torch_model_factory to read it as a state dict; got false")
                module = torch.load(fb, map_location="cpu", weights_only=False)
                if isinstance(module, torch.jit.ScriptModule):
                    raise ModelError("a TorchScript module cannot take the forward hooks Grad-CAM needs; save a "
                                     "state dict and name its builder in report.torch_model_factory")
                if not isinstance(module, torch.nn.Module):
                    raise ModelError(f"expected a pickled torch.nn.Module (torch.save(model)); got "
                                     f"{type(module).__name__} (a state dict needs report.torch_model_factory)")
                src = f"torch module file {fb.name}"
            return TorchModel(_output_module(module.eval(), output, nhwc), src + " (named in params)", nhwc)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"the torch model {fb} could not be loaded: {type(exc).__name__}: {exc}")
    elif errors:
        errors.append("no torch model is named in params (report.torch_model) to use instead")
    raise ModelError("Grad-CAM unavailable: " + "; ".join(errors or [f"cannot use {model!r} as a model"]))


@functools.lru_cache(maxsize=4)
def _converted(path, mtime_ns, shape):
    """:func:`evallib.onnx_convert.to_torch`, once per file version and input shape: a report that
    explains the scores and the embedding converts the model once (the module is only read)."""
    from .onnx_convert import to_torch

    del mtime_ns  # part of the cache key: a rewritten file is converted again
    return to_torch(path, input_shape=shape)


def _passes_through(module, inputs, output):
    """Outputs that are an input again, or only its layout changed (Transpose), hold no new map."""
    return any(output is i for i in inputs) or type(module).__name__ == "OnnxTranspose"


def spatial_layers(module, input_shape):
    """``[(name, module, output shape)]`` of leaf modules whose output is a 4-d map, in execution order.

    Pass-through modules (``Identity``, whose output is its input) and layout changes
    (``Transpose``, as NHWC graphs have around their convolutions) are left out.
    """
    import torch

    seen = []
    hooks = []
    for name, m in module.named_modules():
        if len(list(m.children())) == 0:
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: seen.append((name, mod, tuple(out.shape)))
                if isinstance(out, torch.Tensor) and not _passes_through(mod, inp, out) else None))
    try:
        with torch.no_grad():
            module(torch.zeros(input_shape))
    finally:
        for h in hooks:
            h.remove()
    return [(n, m, s) for n, m, s in seen if len(s) == 4]


def _is_map(shape, input_shape):
    """Whether a 4-d output reads as an NCHW map of the input: more than one position, and no
    spatial side longer than the input's (an NHWC tensor read as NCHW has its channels there)."""
    h, w = shape[2], shape[3]
    return h * w > 1 and h <= input_shape[-2] and w <= input_shape[-1]


#: ONNX operators (and onnx2torch's or torch's modules, by a class name holding ``Pool``) that only pool
POOL_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool")


def _is_pool_module(module):
    return "Pool" in type(module).__name__


def _before_trailing_pools(items, is_pool):
    """The last of ``items`` that is not in the run of pooling layers that ends them (all pools: the last).

    Grad-CAM's layer is the last convolution's activation (Selvaraju et al., "Grad-CAM: Visual
    Explanations from Deep Networks via Gradient-based Localization", ICCV 2017, section 3: "the
    last convolutional layers"); a max-pool after it only coarsens the map (VGG16: ``block5_pool`` is
    half the size of ``block5_conv3``).
    """
    k = len(items) - 1
    while k > 0 and is_pool(items[k]):
        k -= 1
    return items[k]


def find_target_layer(module, input_shape):
    """The automatic Grad-CAM layer: ``(name, module)``.

    The last layer whose output is still a spatial map (height and width above 1), stepping back over
    pooling layers at the end: on VGG-style networks, whose last convolution's activation is
    followed only by pooling, that activation (``features.29`` of torchvision's VGG16, Keras'
    ``block5_conv3``), not the final max-pool, as the Grad-CAM paper chooses.
    """
    maps = [(n, m, s) for n, m, s in spatial_layers(module, input_shape) if _is_map(s, input_shape)]
    if not maps:
        raise ModelError(f"Grad-CAM: no layer of the model outputs a spatial map for input {list(input_shape)}; "
                         f"name one in params (report.cam_layer)")
    name, m, _ = _before_trailing_pools(maps, lambda item: _is_pool_module(item[1]))
    return name, m


def get_layer(module, name):
    """The submodule called ``name``: its module path, or the ONNX node output it computes."""
    layers = dict(module.named_modules())
    if name in layers:
        return layers[name]
    for path, m in layers.items():
        mapping = getattr(m, "onnx_mapping", None)
        if (mapping is not None and name in mapping.outputs) or path.rsplit(".", 1)[-1] == name:
            return m
    candidates = [n for n in layers if n]
    raise ModelError(f"report.cam_layer: expected one of the model's layers ({', '.join(candidates[-12:])}) or an "
                     f"ONNX tensor name; got {name!r}")


def layer_label(module, layer):
    """A layer's module path, with the ONNX tensor it computes when it came from onnx2torch."""
    name = next((n for n, m in module.named_modules() if m is layer), "?").removeprefix("inner.")
    mapping = getattr(layer, "onnx_mapping", None)
    return f"{name} (ONNX tensor {mapping.outputs[0]!r})" if mapping is not None and mapping.outputs else name


def _torch_cam(tm, x, targets, layer, method, batch_size):
    import pytorch_grad_cam
    import torch

    cam_cls = getattr(pytorch_grad_cam, METHODS[method])
    step = tm.batch or batch_size
    out = []
    with cam_cls(model=tm.module, target_layers=[layer]) as cam:
        if hasattr(cam, "batch_size"):
            cam.batch_size = 16 if tm.batch is None else tm.batch
        for s in range(0, len(x), step):
            t = None if targets is None else targets[s:s + step]
            out.append(cam(input_tensor=torch.from_numpy(x[s:s + step]), targets=t))
    return np.concatenate(out).astype(np.float32)


class OnnxEigenCAM:
    """EigenCAM with onnxruntime alone: no conversion, no gradients.

    The target layer's activations are read as an extra output of the graph, and turned into
    maps exactly as pytorch-grad-cam's ``EigenCAM`` does (first principal component, clipped at
    zero, scaled to [0, 1] and resized to the input). The maps do not depend on the target.

    Parameters
    ----------
    path : str or Path
        The ONNX file.
    input_shape : tuple of int
        ``(channels, height, width)`` of one NCHW input.
    layer : str, optional
        An ONNX tensor or node name (default: the last 4-d map with height and width above 1 that
        is not a mere Transpose, stepping back over pooling at the end as :func:`find_target_layer`).
    nhwc : bool
        The model takes NHWC input.
    """

    def __init__(self, path, input_shape, *, layer=None, nhwc=False, threads=0):
        import onnx

        from .onnx_convert import fixed_batch

        self.nhwc = nhwc
        model = onnx.load(str(path))
        self.batch = fixed_batch(model)
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type.elem_type for v in
                 [*inferred.graph.value_info, *inferred.graph.output]}
        producers = {o: n for n in model.graph.node for o in n.output}
        if layer is not None:
            node = next((n for n in model.graph.node if n.name == layer), None)
            name = node.output[0] if node is not None else layer
            if name not in producers:
                raise ModelError(f"report.cam_layer: expected an ONNX tensor or node name of {Path(path).name}; "
                                 f"got {layer!r}")
            candidates = [name]
        else:
            candidates = [o for n in model.graph.node if n.op_type not in ("Transpose", "Identity", "Constant")
                          for o in n.output if types.get(o) == onnx.TensorProto.FLOAT]
        self.input_shape = tuple(input_shape)
        x = self._layout(np.zeros((self.batch or 1, *self.input_shape), np.float32))
        probe = self._session(model, candidates, threads)
        shapes = dict(zip(candidates, (a.shape for a in probe.run(candidates, {probe.get_inputs()[0].name: x}))))
        maps = [n for n in candidates if len(shapes[n]) == 4 and _is_map(shapes[n], self.input_shape)]
        if not maps:
            raise ModelError(f"EigenCAM: no tensor of {Path(path).name} is a spatial map for input "
                             f"{list(self.input_shape)}; name one in params (report.cam_layer)")
        self.layer = _before_trailing_pools(maps, lambda name: producers[name].op_type in POOL_OPS)
        self.session = probe if len(candidates) == 1 else self._session(model, [self.layer], threads)

    @staticmethod
    def _session(model, names, threads):
        import onnx
        import onnxruntime as ort

        m = onnx.ModelProto()
        m.CopyFrom(model)
        known = {o.name for o in m.graph.output}
        m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in known)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0
        opts.log_severity_level = 3
        return ort.InferenceSession(m.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])

    def _layout(self, x):
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if self.nhwc else x)

    def activations(self, images):
        """The target layer's output for NCHW ``images``: ndarray of shape (n, C, h, w)."""
        x = np.asarray(images, np.float32)
        step = self.batch or 32
        name = self.session.get_inputs()[0].name
        out = [self.session.run([self.layer], {name: self._layout(x[s:s + step])})[0] for s in range(0, len(x), step)]
        return np.concatenate(out)

    def __call__(self, images, targets=None):
        from pytorch_grad_cam.utils.image import scale_cam_image
        from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

        del targets  # EigenCAM is class-agnostic
        size = (self.input_shape[2], self.input_shape[1])
        cam = np.maximum(get_2d_projection(self.activations(images)), 0)
        per_layer = np.maximum(scale_cam_image(cam, size)[:, None], 0)  # as BaseCAM, for one layer
        return scale_cam_image(per_layer.mean(axis=1)).astype(np.float32)


@dataclass
class CamRoute:
    """How heat maps are drawn for one model output; the report states all of it.

    Call it with NCHW ``images`` and per-image ``targets`` (class indices or callables).
    """

    route: str
    """``"onnx2torch"``, ``"torch model named in params"`` or ``"onnxruntime (forward only)"``."""
    method: str
    layer: str
    source: str
    notes: list
    """Why earlier routes did not serve (empty when the first did)."""
    draw: object = None

    def __call__(self, images, targets=None):
        return self.draw(np.asarray(images, dtype=np.float32), targets)


def cam_route(model, *, input_shape, method="gradcam", layer=None, output=0, output_names=None, nhwc=False,
              fallback=None, factory=None, allow_pickle=False, batch_size=32):
    """The first route that can draw CAMs of ``model``, tried in this order:

    1. the ONNX file converted by onnx2torch after :func:`evallib.onnx_convert.normalize_for_torch`,
       and checked against onnxruntime, with pytorch-grad-cam and ``method``;
    2. the torch model named in params (``fallback``, ``factory`` and ``allow_pickle``, as
       :func:`load_torch_model` reads them), with ``method``;
    3. EigenCAM on onnxruntime alone (:class:`OnnxEigenCAM`), which needs no conversion.

    Raises
    ------
    ModelError
        Naming every route's reason, when none serves.
    """
    _check_method(method)
    shape = tuple(input_shape)
    try:
        tm = load_torch_model(model, fallback=fallback, factory=factory, allow_pickle=allow_pickle, output=output,
                              nhwc=nhwc, output_names=output_names, input_shape=shape)
        target = get_layer(tm.module, layer) if layer else find_target_layer(tm.module, (1, *shape))[1]

        def draw(x, targets):
            return _torch_cam(tm, x, _targets(targets, x), target, method, batch_size)

        route = "onnx2torch" if tm.source.startswith("ONNX file") else "torch model named in params"
        return CamRoute(route, method, layer_label(tm.module, target), tm.source, [], draw)
    except ModelError as exc:
        notes = [str(exc)]
    if Path(str(model)).suffix.lower() != ".onnx":
        raise ModelError(notes[0])
    try:
        eigen = OnnxEigenCAM(model, shape, layer=layer, nhwc=nhwc)
    except (ModelError, ValueError, RuntimeError) as exc:  # onnxruntime raises its own RuntimeError kinds
        raise ModelError("; ".join(notes + [f"EigenCAM on onnxruntime failed too: {exc}"])) from None
    return CamRoute("onnxruntime (forward only)", "eigencam", f"ONNX tensor {eigen.layer!r}",
                    f"ONNX file {Path(model).name} run by onnxruntime", notes, lambda x, targets: eigen(x))


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}; got {method!r}")


def _targets(targets, x):
    if targets is None:
        return None
    targets = [t if callable(t) else ClassTarget(t) for t in targets]
    if len(targets) != len(x):
        raise ValueError(f"targets: expected one per image ({len(x)}); got {len(targets)}")
    return targets


def grad_cam(model, images, *, targets=None, layer=None, method="gradcam", output=0, batch_size=32):
    """Class activation maps of ``images``.

    Parameters
    ----------
    model : torch.nn.Module, str, Path, TorchModel or CamRoute
        A torch module, an ONNX file or a prepared model. An ONNX file goes the first route of
        :func:`cam_route` that serves; when that is EigenCAM on onnxruntime (the file cannot be
        converted), a warning says so.
    images : ndarray of shape (n_images, channels, height, width)
        Preprocessed model inputs (NCHW).
    targets : sequence, optional
        Per image: a class index or a callable target. Default: the predicted class.
    layer : str or torch.nn.Module, optional
        Target layer (default: the last layer with a spatial output): a module, its name, or an
        ONNX tensor name.
    method : {"gradcam", "gradcam++", "scorecam", "eigencam", "xgradcam", "layercam", "hirescam"}

    Returns
    -------
    ndarray of shape (n_images, height, width)
        Each map scaled to [0, 1].

    Examples
    --------
    >>> maps = evallib.grad_cam("resnet18.onnx", x, targets=[207, 208])  # doctest: +SKIP
    """
    _check_method(method)
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"images: expected an array of shape (n_images, channels, height, width); got {x.shape}")
    if isinstance(model, CamRoute):
        return model(x, targets)
    if isinstance(model, (str, Path)):
        route = cam_route(model, input_shape=x.shape[1:], method=method, layer=layer, output=output,
                          batch_size=batch_size)
        if route.method != method:
            import warnings

            warnings.warn(f"{method} unavailable, the maps are {route.method} from {route.source}: "
                          + "; ".join(route.notes), stacklevel=2)
        return route(x, targets)
    tm = model if isinstance(model, TorchModel) else load_torch_model(model, output=output)
    if layer is None:
        _, layer = find_target_layer(tm.module, (1, *x.shape[1:]))
    elif isinstance(layer, str):
        layer = get_layer(tm.module, layer)
    return _torch_cam(tm, x, _targets(targets, x), layer, method, batch_size)


def overlay(image, heat, *, alpha=0.5):
    """The image (H, W) or (H, W, 3) in [0, 1] with a jet heat map blended over it: (H, W, 3) in [0, 1]."""
    from matplotlib import colormaps

    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    jet = colormaps["jet"](np.clip(heat, 0, 1))[..., :3]
    return np.clip((1 - alpha) * img + alpha * jet, 0, 1)


def to_display(view, mean, std, *, top=1.0, bgr=False):
    """A preprocessed (C, H, W) view back to an (H, W[, 3]) RGB image in [0, 1].

    ``top`` is the pixel value of white before normalization (1 for ``scale: unit``, 255 for
    ``scale: byte`` and uint8 inputs); ``bgr`` reverses the model's BGR order to RGB.
    """
    v = np.asarray(view, dtype=np.float32).transpose(1, 2, 0)
    v = (v * np.asarray(std, np.float32) + np.asarray(mean, np.float32)) / np.float32(top)
    v = np.clip(v, 0, 1)
    if bgr and v.shape[2] == 3:
        v = v[:, :, ::-1]
    return v[:, :, 0] if v.shape[2] == 1 else v
