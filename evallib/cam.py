"""Grad-CAM and friends through pytorch-grad-cam, for torch modules and ONNX files.

An ONNX file is converted to torch with onnx2torch; when that fails, a torch model named in the
params (a state dict with the function that builds the module, or a pickled module) is used instead.
Targets are small callables (pytorch-grad-cam's seam): :class:`ClassTarget` for a class score,
:class:`SimilarityTarget` for the cosine similarity of an embedding to a reference. Hooks are
released by pytorch-grad-cam's context manager.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError

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
    """A torch module ready for CAMs, and how it was obtained (shown in the report)."""

    module: object
    source: str
    nhwc: bool = False


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


def load_torch_model(model, *, fallback=None, factory=None, output=0, nhwc=False, output_names=None):
    """A torch module for CAMs from a module, an ONNX file (onnx2torch) or a fallback torch file.

    Parameters
    ----------
    model : torch.nn.Module or str or Path
    fallback : str or Path, optional
        A state dict (with ``factory``), or a whole pickled module (``torch.save(model)``), used
        when ONNX conversion fails. TorchScript modules cannot take forward hooks, so they do
        not serve.
    factory : str, optional
        ``"package.module:callable"`` building the module for a state dict.
    output : int or str
        Which output the CAM explains (index, or ONNX output name with ``output_names``).
    """
    import torch

    if isinstance(output, str) and output_names:
        output = output_names.index(output) if output in output_names else 0
    if isinstance(model, torch.nn.Module):
        return TorchModel(_output_module(model, output, nhwc), "torch module")
    errors = []
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        try:
            import onnx2torch

            return TorchModel(_output_module(onnx2torch.convert(str(path)), output, nhwc),
                              f"ONNX file converted with onnx2torch ({path.name})", nhwc)
        except Exception as exc:  # noqa: BLE001 -- any conversion failure falls back, with its reason
            errors.append(f"onnx2torch could not convert {path.name}: {type(exc).__name__}: {exc}")
    if fallback:
        fb = Path(fallback)
        try:
            if factory:
                mod_name, _, fn = factory.partition(":")
                module = getattr(importlib.import_module(mod_name), fn)()
                module.load_state_dict(torch.load(fb, map_location="cpu", weights_only=True))
                src = f"state dict {fb.name} with {factory}"
            else:
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


def spatial_layers(module, input_shape):
    """``[(name, module, output shape)]`` of leaf modules whose output is a 4-d map, in execution order
    (pass-through modules such as ``Identity``, whose output is their input, are left out)."""
    import torch

    seen = []
    hooks = []
    for name, m in module.named_modules():
        if len(list(m.children())) == 0:
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: seen.append((name, mod, tuple(out.shape)))
                if isinstance(out, torch.Tensor) and not any(out is i for i in inp) else None))
    try:
        with torch.no_grad():
            module(torch.zeros(input_shape))
    finally:
        for h in hooks:
            h.remove()
    return [(n, m, s) for n, m, s in seen if len(s) == 4]


def find_target_layer(module, input_shape, *, nhwc=False):
    """The last layer whose output is still a spatial map (height and width above 1): ``(name, module)``."""
    layers = spatial_layers(module, input_shape)
    maps = [(n, m, s) for n, m, s in layers if (s[1] * s[2] if nhwc else s[2] * s[3]) > 1]
    if not maps:
        raise ModelError(f"Grad-CAM: no layer of the model outputs a spatial map for input {list(input_shape)}; "
                         f"name one in params (report.cam_layer)")
    name, m, _ = maps[-1]
    return name, m


def get_layer(module, name):
    layers = dict(module.named_modules())
    if name not in layers:
        candidates = [n for n in layers if n]
        raise ModelError(f"report.cam_layer: expected one of the model's layers ({', '.join(candidates[-12:])}); "
                         f"got {name!r}")
    return layers[name]


def grad_cam(model, images, *, targets=None, layer=None, method="gradcam", output=0, batch_size=32):
    """Class activation maps of ``images``.

    Parameters
    ----------
    model : torch.nn.Module, str, Path or TorchModel
        A torch module, an ONNX file (converted with onnx2torch) or a :class:`TorchModel`.
    images : ndarray of shape (n_images, channels, height, width)
        Preprocessed model inputs (NCHW).
    targets : sequence, optional
        Per image: a class index or a callable target. Default: the predicted class.
    layer : str or torch.nn.Module, optional
        Target layer (default: the last layer with a spatial output).
    method : {"gradcam", "gradcam++", "scorecam", "eigencam", "xgradcam", "layercam", "hirescam"}

    Returns
    -------
    ndarray of shape (n_images, height, width)
        Each map scaled to [0, 1].
    """
    import pytorch_grad_cam
    import torch

    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}; got {method!r}")
    tm = model if isinstance(model, TorchModel) else load_torch_model(model, output=output)
    module = tm.module
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"images: expected an array of shape (n_images, channels, height, width); got {x.shape}")
    if layer is None:
        _, layer = find_target_layer(module, (1, *x.shape[1:]))
    elif isinstance(layer, str):
        layer = get_layer(module, layer)
    if targets is not None:
        targets = [t if callable(t) else ClassTarget(t) for t in targets]
        if len(targets) != len(x):
            raise ValueError(f"targets: expected one per image ({len(x)}); got {len(targets)}")
    cam_cls = getattr(pytorch_grad_cam, METHODS[method])
    out = []
    with cam_cls(model=module, target_layers=[layer]) as cam:
        if hasattr(cam, "batch_size"):
            cam.batch_size = 16
        for s in range(0, len(x), batch_size):
            t = None if targets is None else targets[s:s + batch_size]
            out.append(cam(input_tensor=torch.from_numpy(x[s:s + batch_size]), targets=t))
    return np.concatenate(out).astype(np.float32)


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
