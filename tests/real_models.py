"""Models laid out as real exporters and frameworks write them, built at test time (no files committed).

* torchvision architectures (random weights) through torch's TorchScript exporter at a given opset
  and through the dynamo exporter (which fixes the batch at 1 here, as it does by default);
* an ArcFace-style embedding network (insightface's ``iresnet``: PReLU, BatchNorm, Dropout, then
  flatten + FC + BatchNorm1d);
* a graph whose weights are ``Constant`` nodes, as PaddlePaddle writes them;
* a graph taking NHWC input with a ``Transpose`` right after it, as Keras exports have.
"""

import warnings

import numpy as np
import torch
import torchvision
from torch import nn

# the layer pytorch-grad-cam users pick for each architecture
LAYERS = {"resnet18": "layer4", "resnet50": "layer4", "mobilenet_v3_small": "features.12",
          "efficientnet_b0": "features.8", "convnext_tiny": "features.7", "densenet121": "features.norm5"}
EXPORTERS = ["ts11", "ts13", "ts17", "ts18", "ts20", "dynamo"]


def torchvision_model(arch, seed=0):
    torch.manual_seed(seed)
    return getattr(torchvision.models, arch)(weights=None).eval()


def export(net, path, exporter, shape, *, output_names=("logits",)):
    """Export ``net`` with ``exporter`` ("tsNN" = TorchScript at opset NN, or "dynamo")."""
    x = torch.zeros(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(net, (x,), str(path), dynamo=True, input_names=["input"],
                              output_names=list(output_names), external_data=False, verbose=False)
        else:
            axes = {n: {0: "batch"} for n in ["input", *output_names]}
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=int(exporter[2:]),
                              input_names=["input"], output_names=list(output_names), dynamic_axes=axes)
    return path


# --- insightface's iresnet, small ----------------------------------------------------------------

class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes, eps=1e-5))

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """insightface's ``iresnet`` layout with fewer channels: 112x112 input, 7x7 last map, embedding."""

    def __init__(self, widths=(16, 32, 48, 64), embedding=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], eps=1e-5)
        self.prelu = nn.PReLU(widths[0])
        layers, inplanes = [], widths[0]
        for w in widths:
            layers.append(nn.Sequential(IBasicBlock(inplanes, w, stride=2), IBasicBlock(w, w)))
            inplanes = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.bn2 = nn.BatchNorm2d(widths[-1], eps=1e-5)
        self.dropout = nn.Dropout(p=0.2)
        self.fc = nn.Linear(widths[-1] * 7 * 7, embedding)
        self.features = nn.BatchNorm1d(embedding, eps=1e-5)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def iresnet(seed=0):
    torch.manual_seed(seed)
    net = IResNet()
    with torch.no_grad():  # non-trivial batch-norm statistics, as a trained network has
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, nn.PReLU):
                m.weight.uniform_(0.1, 0.3)
    return net.eval()


# --- other frameworks' layouts ------------------------------------------------------------------

def weights_as_constants(src, dst):
    """Rewrite every initializer as a ``Constant`` node, as PaddlePaddle's exporter lays weights out."""
    import onnx
    from onnx import helper

    m = onnx.load(str(src))
    consts = [helper.make_node("Constant", [], [t.name], value=t, name=f"{t.name}_const") for t in m.graph.initializer]
    names = {t.name for t in m.graph.initializer}
    keep_inputs = [i for i in m.graph.input if i.name not in names]
    del m.graph.initializer[:]
    del m.graph.input[:]
    m.graph.input.extend(keep_inputs)
    nodes = consts + list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return dst


class NHWC(nn.Module):
    """Takes NHWC input and transposes it first, as Keras graphs converted to ONNX do."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.permute(0, 3, 1, 2))


def onnx_tensor_equal_to(path, x, activation, *, nhwc=False):
    """The name of the ONNX tensor whose value on ``x`` equals ``activation`` (the last one, in graph order).

    This is how a test finds, in an exported graph, "the same layer" as a layer of the torch original.
    """
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(path))
    names = [o for n in m.graph.node if n.op_type not in ("Constant", "Identity") for o in n.output]
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = x.transpose(0, 2, 3, 1) if nhwc else x
    found = None
    for name, value in zip(names, s.run(names, {s.get_inputs()[0].name: np.ascontiguousarray(feed)})):
        if value.shape == activation.shape and np.allclose(value, activation, rtol=1e-4,
                                                          atol=1e-4 * np.abs(activation).max()):
            found = name
    if found is None:
        raise AssertionError(f"no tensor of {path} equals the torch layer's output")
    return found


def flat_model(path, *, size=8, n_classes=3):
    """A graph with no spatial map anywhere (Flatten, then Gemm): no heat map can be drawn for it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(size=(n_classes, size * size)).astype(np.float32)
    fc = numpy_helper.from_array(weights, "fc")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["embedding"]),
         helper.make_node("Gemm", ["embedding", "fc"], ["logits"], transB=1)],
        "flat", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", size * size])], initializer=[fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
