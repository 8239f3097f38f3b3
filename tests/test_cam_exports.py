"""Grad-CAM on ONNX files as exporters really write them, against pytorch-grad-cam on the torch originals.

CI runs a covering subset: every exporter and opset on resnet18, every other architecture at opset 18
except convnext, whose one export in CI goes through the dynamo exporter (it writes Gelu, opset 20).
``pytest -m full_matrix`` runs every architecture through every exporter.
"""

import numpy as np
import pytest
import pytorch_grad_cam
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from evallib.cam import OnnxEigenCAM, SimilarityTarget, cam_route, grad_cam
from real_models import (
    EXPORTERS,
    LAYERS,
    NHWC,
    export,
    flat_model,
    iresnet,
    onnx_tensor_equal_to,
    torchvision_model,
    weights_as_constants,
)

pytestmark = pytest.mark.slow  # exports torchvision architectures

SIZE = 64  # every architecture still has a 2x2 map or larger at its last stage
TARGETS = [3, 7]

CI_CASES = [("resnet18", e) for e in EXPORTERS] + [
    (a, "ts18") for a in ("resnet50", "mobilenet_v3_small", "efficientnet_b0", "densenet121")
] + [("convnext_tiny", "dynamo")]  # convnext's one export in CI is the dynamo one: it has Gelu (opset 20)
FULL_CASES = [(a, e) for a in LAYERS for e in EXPORTERS if (a, e) not in CI_CASES]


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).normal(size=(2, 3, SIZE, SIZE)).astype(np.float32)


def reference(net, layer, x, cls, targets):
    with cls(model=net, target_layers=[layer]) as cam:
        return cam(input_tensor=torch.from_numpy(x), targets=targets)


def activation(net, layer, x):
    seen = []
    h = layer.register_forward_hook(lambda m, i, o: seen.append(o.detach().numpy()))
    with torch.no_grad():
        net(torch.from_numpy(x))
    h.remove()
    return seen[0]


def check_export(arch, exporter, tmp_path, x):
    net = torchvision_model(arch)
    layer = net.get_submodule(LAYERS[arch])
    path = export(net, tmp_path / f"{arch}_{exporter}.onnx", exporter, (1, 3, SIZE, SIZE))
    tensor = onnx_tensor_equal_to(path, x[:1], activation(net, layer, x[:1]))

    # without a layer named, the last spatial map is chosen: the one users pick (densenet's norm5 is
    # followed by a functional ReLU, whose output is the last map there)
    route = cam_route(path, input_shape=x.shape[1:], layer=tensor if arch == "densenet121" else None)
    assert route.route == "onnx2torch" and route.notes == []
    assert f"ONNX tensor {tensor!r}" in route.layer
    ref = reference(net, layer, x, pytorch_grad_cam.GradCAM, [ClassifierOutputTarget(t) for t in TARGETS])
    ours = route(x, TARGETS)
    assert ours.shape == (2, SIZE, SIZE)
    np.testing.assert_allclose(ours, ref, atol=1e-4)

    # the forward-only route, on onnxruntime alone, equals pytorch-grad-cam's EigenCAM
    eigen = reference(net, layer, x, pytorch_grad_cam.EigenCAM, None)
    np.testing.assert_allclose(OnnxEigenCAM(path, x.shape[1:], layer=tensor)(x), eigen, atol=1e-4)
    return route


@pytest.mark.parametrize("arch, exporter", CI_CASES)
def test_export_cam_equals_torch_original(arch, exporter, tmp_path, images):
    route = check_export(arch, exporter, tmp_path, images)
    if exporter in ("ts18", "ts20", "dynamo"):
        assert "-> 17" in route.source  # converted to the opset onnx2torch covers
    if arch == "convnext_tiny" and exporter == "dynamo":
        assert "Gelu written as Erf arithmetic" in route.source
    if arch == "resnet18" and exporter.startswith("ts"):
        assert "Identity aliases of weights resolved" in route.source


@pytest.mark.full_matrix
@pytest.mark.parametrize("arch, exporter", FULL_CASES)
def test_full_matrix(arch, exporter, tmp_path, images):
    check_export(arch, exporter, tmp_path, images)


def test_arcface_embedding_with_similarity_target(tmp_path):
    net = iresnet()
    path = export(net, tmp_path / "iresnet.onnx", "ts11", (1, 3, 112, 112), output_names=("embedding",))
    x = np.random.default_rng(2).normal(size=(3, 3, 112, 112)).astype(np.float32)
    with torch.no_grad():
        ref_emb = net(torch.from_numpy(x[:1])).numpy()[0]
    targets = [SimilarityTarget(ref_emb)] * 2
    route = cam_route(path, input_shape=(3, 112, 112))  # automatic layer: bn2, the last 7x7 map
    assert route.route == "onnx2torch"
    bn2 = onnx_tensor_equal_to(path, x[:1], activation(net, net.bn2, x[:1]))
    assert f"ONNX tensor {bn2!r}" in route.layer
    with pytorch_grad_cam.GradCAM(model=net, target_layers=[net.bn2]) as cam:
        ref = cam(input_tensor=torch.from_numpy(x[1:]), targets=targets)
    ours = route(x[1:], targets)
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert ours.max() > 0.99 and ours.std() > 0.05  # a real map, not a constant


def test_weights_as_constant_nodes(tmp_path, images):
    net = torchvision_model("resnet18")
    plain = export(net, tmp_path / "plain.onnx", "ts13", (1, 3, SIZE, SIZE))
    paddle = weights_as_constants(plain, tmp_path / "paddle_layout.onnx")
    route = cam_route(paddle, input_shape=images.shape[1:])
    assert route.route == "onnx2torch" and "Constant nodes as initializers" in route.source
    ref = reference(net, net.layer4, images, pytorch_grad_cam.GradCAM, [ClassifierOutputTarget(t) for t in TARGETS])
    np.testing.assert_allclose(route(images, TARGETS), ref, atol=1e-4)


def test_nhwc_input_as_keras_exports(tmp_path, images):
    net = torchvision_model("resnet18")
    path = export(NHWC(net).eval(), tmp_path / "nhwc.onnx", "ts13", (1, SIZE, SIZE, 3))
    route = cam_route(path, input_shape=images.shape[1:], nhwc=True)
    assert route.route == "onnx2torch"
    # the Transpose after the input is not taken for a map: the automatic layer is layer4's output
    tensor = onnx_tensor_equal_to(path, images, activation(net, net.layer4, images), nhwc=True)
    assert f"ONNX tensor {tensor!r}" in route.layer
    ref = reference(net, net.layer4, images, pytorch_grad_cam.GradCAM, [ClassifierOutputTarget(t) for t in TARGETS])
    np.testing.assert_allclose(route(images, TARGETS), ref, atol=1e-4)
    eigen = reference(net, net.layer4, images, pytorch_grad_cam.EigenCAM, None)
    np.testing.assert_allclose(OnnxEigenCAM(path, images.shape[1:], nhwc=True)(images), eigen, atol=1e-4)


class ThresholdedReluNet(torch.nn.Module):
    """The torch twin of conftest's unconvertible graph (Conv, ThresholdedRelu, pooling, Gemm)."""

    def __init__(self, w, fc):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.conv.weight.data = torch.from_numpy(w)
        self.act = torch.nn.Threshold(0.1, 0.0)
        self.fc = torch.nn.Linear(4, fc.shape[0], bias=False)
        self.fc.weight.data = torch.from_numpy(fc)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


def test_unconvertible_graph_falls_back_to_eigencam_on_onnxruntime(tmp_path):
    import onnx
    from onnx import numpy_helper

    from conftest import export_unconvertible_model

    path = export_unconvertible_model(tmp_path / "bad.onnx", size=16)
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    twin = ThresholdedReluNet(inits["w"], inits["fc"]).eval()
    x = np.random.default_rng(3).normal(size=(3, 1, 16, 16)).astype(np.float32)

    route = cam_route(path, input_shape=(1, 16, 16), method="gradcam")
    assert route.route == "onnxruntime (forward only)" and route.method == "eigencam"
    assert route.layer == "ONNX tensor 'r'"
    assert any("ThresholdedRelu" in n for n in route.notes)
    ref = reference(twin, twin.act, x, pytorch_grad_cam.EigenCAM, None)
    np.testing.assert_allclose(route(x, [0, 1, 2]), ref, atol=1e-4)
    with pytest.warns(UserWarning, match=r"gradcam unavailable, the maps are eigencam from ONNX file bad\.onnx"):
        np.testing.assert_allclose(grad_cam(path, x), ref, atol=1e-4)


def test_no_route_names_every_reason(tmp_path):
    from evallib.errors import ModelError

    path = flat_model(tmp_path / "flat.onnx", size=8)
    with pytest.raises(ModelError, match=r"no layer of the model outputs a spatial map for input \[1, 1, 8, 8\].*"
                                         r"EigenCAM on onnxruntime failed too: .*no tensor of flat\.onnx is a spatial"
                                         r" map"):
        cam_route(path, input_shape=(1, 8, 8))


def test_one_conversion_serves_every_output(tmp_path, monkeypatch):
    import evallib.onnx_convert
    from conftest import export_tiny_model

    path = export_tiny_model(tmp_path / "two_outputs.onnx")
    calls = []
    real = evallib.onnx_convert.to_torch
    monkeypatch.setattr(evallib.onnx_convert, "to_torch", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    x = np.random.default_rng(4).normal(size=(2, 1, 16, 16)).astype(np.float32)
    scores = cam_route(path, input_shape=(1, 16, 16), output="logits", output_names=["logits", "embedding"])
    emb = cam_route(path, input_shape=(1, 16, 16), output="embedding", output_names=["logits", "embedding"])
    assert len(calls) == 1
    ref = np.random.default_rng(5).normal(size=16).astype(np.float32)
    assert scores(x, [0, 1]).shape == emb(x, [SimilarityTarget(ref)] * 2).shape == (2, 16, 16)
    path.write_bytes(path.read_bytes())  # a rewritten file is converted again
    cam_route(path, input_shape=(1, 16, 16))
    assert len(calls) == 2
