"""Grad-CAM through ONNX against pytorch-grad-cam on the original torch model; layer choice; fallbacks; t-SNE."""

import numpy as np
import pytest
import pytorch_grad_cam
import torch

from conftest import export_unconvertible_model
from evallib.cam import ClassTarget, SimilarityTarget, find_target_layer, grad_cam, load_torch_model, overlay
from evallib.demo import build_model, export_onnx
from evallib.errors import ModelError
from evallib.tsne import plot_tsne, spread_subset, tsne_map


class First(torch.nn.Module):
    """The demo nets return (logits, embedding); pytorch-grad-cam wants one tensor."""

    def __init__(self, net, index=0):
        super().__init__()
        self.net, self.index = net, index

    def forward(self, x):
        return self.net(x)[self.index]


@pytest.fixture(scope="module", params=["cnn_small", "cnn_wide"])
def demo_pair(request, tmp_path_factory):
    torch.manual_seed(3)
    net = build_model(request.param).eval()
    path = tmp_path_factory.mktemp("cam") / f"{request.param}.onnx"
    export_onnx(net, path, name=request.param)
    return request.param, net, path


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(6, 1, 32, 32)).astype(np.float32)


# the layer pytorch-grad-cam users pick by hand: the last convolution's activation (cnn_wide ends with a
# max-pool after it, which only coarsens the map, as VGG's does)
EXPECTED_LAYER = {"cnn_small": 7, "cnn_wide": 7}


@pytest.mark.parametrize("method, cls", [("gradcam", "GradCAM"), ("gradcam++", "GradCAMPlusPlus"),
                                         ("eigencam", "EigenCAM"), ("scorecam", "ScoreCAM")])
def test_onnx_cam_equals_torch_original(demo_pair, images, method, cls):
    name, net, path = demo_pair
    ours = grad_cam(path, images, method=method, targets=[0, 1, 2, 3, 4, 5])
    layer = net.features[EXPECTED_LAYER[name]]
    with getattr(pytorch_grad_cam, cls)(model=First(net).eval(), target_layers=[layer]) as cam:
        ref = cam(input_tensor=torch.from_numpy(images),
                  targets=[pytorch_grad_cam.utils.model_targets.ClassifierOutputTarget(k) for k in range(6)])
    assert ours.shape == (6, 32, 32) and ours.min() >= 0 and ours.max() <= 1
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_similarity_target_on_the_embedding_output(demo_pair, images):
    name, net, path = demo_pair
    ref_emb = net(torch.from_numpy(images[:1]))[1].detach().numpy()[0]
    tm = load_torch_model(path, output="embedding", output_names=["logits", "embedding"])
    ours = grad_cam(tm, images[1:4], targets=[SimilarityTarget(ref_emb)] * 3)
    layers = [net.features[EXPECTED_LAYER[name]]]
    with pytorch_grad_cam.GradCAM(model=First(net, 1).eval(), target_layers=layers) as cam:
        ref = cam(input_tensor=torch.from_numpy(images[1:4]), targets=[SimilarityTarget(ref_emb)] * 3)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_automatic_layer_choice(demo_pair):
    name, net, path = demo_pair
    # on the converted ONNX graph and on the torch original the same layer is chosen
    onnx_name, _ = find_target_layer(load_torch_model(path).module, (1, 1, 32, 32))
    torch_name, layer = find_target_layer(First(net), (1, 1, 32, 32))
    assert layer is net.features[EXPECTED_LAYER[name]]
    assert onnx_name.endswith(f"features/{EXPECTED_LAYER[name]}/Relu")


def test_no_spatial_layer_is_a_clear_error():
    net = build_model("linear").eval()
    with pytest.raises(ModelError, match=r"no layer of the model outputs a spatial map .* name one in params"
                                         r" \(report\.cam_layer\)"):
        grad_cam(First(net), np.zeros((1, 1, 32, 32), np.float32))


def test_unconvertible_onnx_falls_back_to_a_named_torch_model(tmp_path, images):
    bad = export_unconvertible_model(tmp_path / "bad.onnx", size=32)
    with pytest.raises(ModelError, match=r"Grad-CAM unavailable: onnx2torch could not convert bad\.onnx:"
                                         r" .*ThresholdedRelu"
                                         r".*no torch model is named in params"):
        load_torch_model(bad)
    scripted = tmp_path / "scripted.pt"
    torch.jit.script(First(build_model("cnn_small"))).save(str(scripted))
    with pytest.raises(ModelError, match=r"TorchScript module cannot take the forward hooks"):
        load_torch_model(bad, fallback=scripted, allow_pickle=True)
    state = tmp_path / "state.pt"
    torch.save(build_model("cnn_small").state_dict(), state)
    with pytest.raises(ModelError, match=r"the torch model .*state\.pt could not be loaded.*no_such_factory"):
        load_torch_model(bad, fallback=state, factory="evallib.demo:no_such_factory")
    tm = load_torch_model(bad, fallback=state, factory="evallib.demo:build_cnn_small")
    assert tm.source == "state dict state.pt with evallib.demo:build_cnn_small (named in params)"
    whole = tmp_path / "whole.pt"
    seq = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 3))
    torch.save(seq, whole)
    assert load_torch_model(bad, fallback=whole, allow_pickle=True).source == \
        "torch module file whole.pt (named in params)"
    assert grad_cam(tm, images[:2]).shape == (2, 32, 32)


def test_targets_and_overlay():
    out = torch.tensor([[1.0, 2.0, 3.0]])
    assert ClassTarget(2)(out).item() == 3.0
    assert SimilarityTarget([0, 0, 1])(out).item() == pytest.approx(3 / np.sqrt(14))
    img = np.zeros((4, 4))
    heat = np.ones((4, 4))
    o = overlay(img, heat, alpha=0.5)
    assert o.shape == (4, 4, 3) and np.allclose(o, 0.5 * np.array([0.5, 0, 0]), atol=0.01)  # jet(1) is dark red


@pytest.mark.slow
def test_tsne_is_deterministic_and_trustworthy():
    from sklearn.datasets import load_digits

    x = load_digits().data[:600]
    a = tsne_map(x, seed=1)
    b = tsne_map(x, seed=1)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert a.trustworthiness >= 0.95 and a.method.startswith("Barnes-Hut")


def test_thumbnails_never_overlap():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(2000, 2)) * 100
    idx = spread_subset(pts, cell=20.0, max_items=150)
    assert 0 < len(idx) <= 150
    p = pts[idx]
    dx = np.abs(p[:, None, 0] - p[None, :, 0])
    dy = np.abs(p[:, None, 1] - p[None, :, 1])
    np.fill_diagonal(dx, np.inf)
    assert not ((dx < 20) & (dy < 20)).any()


@pytest.mark.slow
def test_tsne_plot_places_thumbnails():
    rng = np.random.default_rng(0)
    emb = np.r_[rng.normal(0, 1, (60, 8)), rng.normal(6, 1, (60, 8))]
    labels = np.r_[np.zeros(60, int), np.ones(60, int)]
    m = tsne_map(emb)
    ax, placed = plot_tsne(m, labels, ["a", "b"], thumbnails=lambda i: np.full((8, 8), i / 120.0),
                           mistakes=rng.random(120) < 0.1, max_thumbnails=20)
    assert 0 < placed <= 20 and ax.get_title().startswith("t-SNE map")
