"""The automatic Grad-CAM layer on a VGG-style network is the last convolution's activation, not the
max-pool after it (Selvaraju et al., ICCV 2017), on torchvision's VGG16 exported to ONNX."""

import numpy as np
import pytest
import pytorch_grad_cam
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from evallib.cam import OnnxEigenCAM, cam_route, find_target_layer
from evallib.explain.cam import spatial_layers
from real_models import export, onnx_tensor_equal_to, torchvision_model

pytestmark = pytest.mark.slow  # exports VGG16's convolutions (14.7 million weights)

SIZE = 64  # features.29 (the last ReLU) is 4x4, features.30 (the last max-pool) 2x2


def vgg16():
    """torchvision's VGG16 (random weights) with a small head: the pooling after the last convolution is
    kept (features.30, then an adaptive average pool to the 2x2 it already is), the 4096-wide dense
    layers are narrowed so that the export stays small."""
    net = torchvision_model("vgg16")
    net.avgpool = nn.AdaptiveAvgPool2d(2)
    net.classifier = nn.Sequential(nn.Linear(512 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10))
    torch.manual_seed(0)
    for m in net.classifier:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.05)
    return net.eval()


def test_vgg16_automatic_layer_is_the_last_relu_not_the_pool(tmp_path):
    net = vgg16()
    shape = (1, 3, SIZE, SIZE)
    # only pooling follows the last convolution: the last spatial maps are pools, which the old choice
    # took. On the torch module the in-place ReLU (features.29) writes into the convolution's output,
    # so that output is the map recorded, and the one chosen.
    last = [(n, s) for n, _, s in spatial_layers(net, shape)][-3:]
    assert last == [("features.28", (1, 512, 4, 4)), ("features.30", (1, 512, 2, 2)), ("avgpool", (1, 512, 2, 2))]
    assert find_target_layer(net, shape)[0] == "features.28"

    x = np.random.default_rng(1).normal(size=(2, 3, SIZE, SIZE)).astype(np.float32)
    path = export(net, tmp_path / "vgg16.onnx", "ts17", shape)
    layer = net.features[29]
    seen = []
    hook = layer.register_forward_hook(lambda m, i, o: seen.append(o.detach().numpy()))
    with torch.no_grad():
        net(torch.from_numpy(x[:1]))
    hook.remove()
    tensor = onnx_tensor_equal_to(path, x[:1], seen[0])

    route = cam_route(path, input_shape=x.shape[1:])
    assert route.route == "onnx2torch" and f"ONNX tensor {tensor!r}" in route.layer
    targets = [3, 7]
    with pytorch_grad_cam.GradCAM(model=net, target_layers=[layer]) as cam:
        ref = cam(input_tensor=torch.from_numpy(x), targets=[ClassifierOutputTarget(t) for t in targets])
    np.testing.assert_allclose(route(x, targets), ref, atol=1e-4)

    eigen = OnnxEigenCAM(path, x.shape[1:])  # the forward-only route chooses the same tensor
    assert eigen.layer == tensor
    with pytorch_grad_cam.EigenCAM(model=net, target_layers=[layer]) as cam:
        ref = cam(input_tensor=torch.from_numpy(x), targets=None)
    np.testing.assert_allclose(eigen(x), ref, atol=1e-4)
