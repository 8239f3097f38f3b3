"""ONNX graphs as exporters write them, made convertible to torch by onnx2torch.

Real exports differ from the graphs onnx2torch was written for in ways that do not change what
the model computes:

* weights held by ``Constant`` nodes (PaddlePaddle, some converters) instead of initializers;
* ``Identity`` nodes that alias one initializer under another name (torch's TorchScript exporter
  de-duplicates equal weights that way);
* opsets above the ones onnx2torch covers (``ReduceMean`` 18, ``AveragePool`` 19, ``Identity`` 19...),
  and ``Gelu`` (opset 20), which has no earlier version to convert to;
* ``Reshape`` with ``allowzero=1`` (the dynamo exporter) where the shape has no zero, so the flag
  changes nothing;
* model-local functions.

:func:`normalize_for_torch` rewrites those (each rewrite is named in the returned steps) and
:func:`to_torch` converts the result and checks it against onnxruntime on a random input, so that a
heat map is never drawn from a module that computes something else.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from ..errors import ModelError

#: The highest default-domain opset that onnx2torch 1.5 converts throughout.
TORCH_OPSET = 17


def _constant_value(node):
    from onnx import helper, numpy_helper

    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name in ("value_float", "value_floats"):
            return np.array(helper.get_attribute_value(a), dtype=np.float32)
        if a.name in ("value_int", "value_ints"):
            return np.array(helper.get_attribute_value(a), dtype=np.int64)
    return None  # sparse or string constants stay nodes


def _decompose_gelu(graph):
    """``Gelu`` (opset 20) as the ``Erf``/``Tanh`` arithmetic earlier exporters wrote; returns the count."""
    from onnx import helper, numpy_helper

    nodes, n = [], 0
    for node in graph.node:
        if node.op_type != "Gelu" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        approx = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "approximate"), b"none")
        approx = approx.decode() if isinstance(approx, bytes) else approx
        x, y, p = node.input[0], node.output[0], f"{node.output[0]}__gelu{n}"

        def const(name, value, p=p):  # p bound now: the names belong to this node
            graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.float32), f"{p}_{name}"))
            return f"{p}_{name}"

        if approx == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            nodes += [helper.make_node("Mul", [x, x], [f"{p}_x2"]),
                      helper.make_node("Mul", [f"{p}_x2", x], [f"{p}_x3"]),
                      helper.make_node("Mul", [f"{p}_x3", const("c", 0.044715)], [f"{p}_cx3"]),
                      helper.make_node("Add", [x, f"{p}_cx3"], [f"{p}_in"]),
                      helper.make_node("Mul", [f"{p}_in", const("k", np.sqrt(2 / np.pi))], [f"{p}_kin"]),
                      helper.make_node("Tanh", [f"{p}_kin"], [f"{p}_t"])]
        else:  # 0.5 x (1 + erf(x / sqrt(2)))
            nodes += [helper.make_node("Div", [x, const("s", np.sqrt(2.0))], [f"{p}_xs"]),
                      helper.make_node("Erf", [f"{p}_xs"], [f"{p}_t"])]
        nodes += [helper.make_node("Add", [f"{p}_t", const("one", 1.0)], [f"{p}_1t"]),
                  helper.make_node("Mul", [x, f"{p}_1t"], [f"{p}_x1t"]),
                  helper.make_node("Mul", [f"{p}_x1t", const("half", 0.5)], [y])]
        n += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return n


def normalize_for_torch(model):
    """A copy of ``model`` that onnx2torch can convert, and the rewrites applied.

    Parameters
    ----------
    model : onnx.ModelProto

    Returns
    -------
    model : onnx.ModelProto
    steps : list of str
        One short phrase per kind of rewrite, e.g. ``"opset 20 -> 17"``.
    """
    from onnx import inliner, numpy_helper, version_converter

    model = copy.deepcopy(model)
    steps = []
    if len(model.functions):
        model = inliner.inline_local_functions(model)
        steps.append("model-local functions inlined")
    opset = {o.domain or "": o.version for o in model.opset_import}.get("", TORCH_OPSET)
    if opset > TORCH_OPSET:
        n = _decompose_gelu(model.graph)
        if n:
            steps.append(f"{n} Gelu written as Erf arithmetic")
        try:
            model = version_converter.convert_version(model, TORCH_OPSET)
            steps.append(f"opset {opset} -> {TORCH_OPSET}")
        except Exception as exc:  # noqa: BLE001 -- the converter asserts in C++; conversion may still succeed
            steps.append(f"opset {opset} kept ({str(exc).splitlines()[-1][:120]})")

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    graph_outputs = {o.name for o in g.output}
    kept, n_const, n_alias = [], 0, 0
    for node in g.node:
        out = node.output[0] if node.output else None
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and out not in graph_outputs:
            value = _constant_value(node)
            if value is not None:
                inits[out] = numpy_helper.from_array(value, out)
                g.initializer.append(inits[out])
                n_const += 1
                continue
        if node.op_type == "Identity" and node.input[0] in inits and out not in graph_outputs:
            alias = copy.deepcopy(inits[node.input[0]])
            alias.name = out
            inits[out] = alias
            g.initializer.append(alias)
            n_alias += 1
            continue
        kept.append(node)
    del g.node[:]
    g.node.extend(kept)
    if n_const:
        steps.append(f"{n_const} Constant nodes as initializers")
    if n_alias:
        steps.append(f"{n_alias} Identity aliases of weights resolved")

    n_reshape = 0
    for node in g.node:
        if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in inits:
            flag = next((a for a in node.attribute if a.name == "allowzero"), None)
            if flag is not None and flag.i == 1 and 0 not in numpy_helper.to_array(inits[node.input[1]]).tolist():
                node.attribute.remove(flag)
                n_reshape += 1
    if n_reshape:
        steps.append(f"{n_reshape} Reshape allowzero flags dropped (no zero in the shape)")
    return model, steps


def _input_dims(model):
    """The dims of the graph's (first non-initializer) input: ints where fixed, else None."""
    inits = {t.name for t in model.graph.initializer}
    vi = next(v for v in model.graph.input if v.name not in inits)
    return [int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in vi.type.tensor_type.shape.dim]


def fixed_batch(model):
    """The input's batch size when the graph fixes it (dynamo exports often fix 1), else ``None``."""
    dims = _input_dims(model)
    return dims[0] if dims else None


def to_torch(path, *, input_shape=None, rtol=1e-3):
    """Convert an ONNX file to a torch module with onnx2torch, after :func:`normalize_for_torch`.

    Parameters
    ----------
    path : str or Path
    input_shape : tuple of int, optional
        ``(channels, height, width)`` of one input in the model's own layout; when given (or fixed in
        the graph) the module is run beside onnxruntime on a random input and must agree.
    rtol : float
        Largest accepted difference, relative to the largest absolute output value.

    Returns
    -------
    module : torch.nn.Module
        Every submodule carries ``onnx_mapping`` (the ONNX tensor names it reads and writes).
    steps : list of str
        The rewrites, then ``"checked against onnxruntime: max difference ..."`` when checked.
    batch : int or None
        The batch size the graph fixes, if any.

    Raises
    ------
    ModelError
        When onnx2torch fails or the module disagrees with onnxruntime.
    """
    import onnx
    import onnx2torch
    import torch

    name = Path(path).name
    model = onnx.load(str(path))
    batch = fixed_batch(model)
    fixed, steps = normalize_for_torch(model)
    try:
        module = onnx2torch.convert(fixed, attach_onnx_mapping=True).eval()
    except Exception as exc:  # noqa: BLE001 -- onnx2torch raises many kinds
        raise ModelError(f"onnx2torch could not convert {name}: {type(exc).__name__}: {exc}"
                         + (f" (after: {'; '.join(steps)})" if steps else "")) from None
    shape = input_shape or _static_input_shape(model)
    if shape is not None:
        import onnxruntime as ort

        rng = np.random.default_rng(0)
        try:
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            inp = session.get_inputs()[0]
            if inp.type == "tensor(uint8)":
                x = rng.integers(0, 256, size=(batch or 1, *shape), dtype=np.uint8)
            else:
                x = rng.normal(size=(batch or 1, *shape)).astype(np.float32)
            ref = session.run(None, {inp.name: x})
            with torch.no_grad():
                got = module(torch.from_numpy(x))
        except Exception as exc:  # noqa: BLE001 -- onnxruntime and the converted module raise their own kinds
            raise ModelError(f"onnx2torch converted {name}, but the module could not be checked against "
                             f"onnxruntime on an input of shape {[batch or 1, *shape]}: "
                             f"{type(exc).__name__}: {str(exc)[:200]}") from None
        got = list(got.values()) if isinstance(got, dict) else (list(got) if isinstance(got, (tuple, list)) else [got])
        worst = 0.0
        for r, g in zip(ref, got):
            r, g = np.asarray(r, np.float64), g.detach().numpy().astype(np.float64)
            if r.shape != g.shape:
                raise ModelError(f"onnx2torch converted {name}, but the module's output has shape {g.shape} "
                                 f"where onnxruntime gives {r.shape}")
            worst = max(worst, float(np.abs(r - g).max() / max(np.abs(r).max(), 1e-6)))
        if not worst <= rtol:
            raise ModelError(f"onnx2torch converted {name}, but the module disagrees with onnxruntime "
                             f"(relative difference {worst:.2g} > {rtol:g})")
        steps.append(f"checked against onnxruntime: relative difference {worst:.1e}")
    return module, steps, batch


def _static_input_shape(model):
    dims = _input_dims(model)[1:]
    return tuple(dims) if dims and None not in dims else None
