"""The embedded demo: scikit-learn's handwritten digits, three models, exported to ONNX.

Data
    The 1,797 8x8 digits from ``sklearn.datasets.load_digits`` (pixel values 0-16 scaled to
    0-255), written as PNG files. The split is fixed: ``train_test_split(test_size=0.3,
    stratify=labels, random_state=0)`` gives 1,257 training and 540 evaluation images.

    ``data/train/<digit>/digit_<index>.png`` and ``data/eval/<digit>/digit_<index>.png``
    (one folder per class), ``data/eval_flat/<digit>_<k>.png`` (the same evaluation images in
    the flat layout of face datasets, ``k`` counting from 1 within the digit) and
    ``data/pairs.txt`` (10 folds of 30 genuine and 30 impostor pairs over ``eval_flat``).

Models
    ``linear`` (a rank-16 linear map), ``cnn_small`` (three conv layers, global average
    pooling) and ``cnn_wide`` (wider convs and a fully connected head), trained on the train
    split only on 32x32 upsampled digits, deterministic, exported with two outputs: ``logits``
    and ``embedding`` (the penultimate layer). 10% of the training split is held out to log
    validation loss and accuracy per epoch (``models/<name>_training.csv``, Keras CSVLogger style).

The build is reused while ``build/demo/STAMP`` matches this file's source; any change to it
rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SPLIT_SEED = 0
TEST_SIZE = 0.3
RESIZE, CROP = 36, 32
MEAN, STD = [0.5], [0.5]
MODELS = ("linear", "cnn_small", "cnn_wide")
VAL_SHARE = 0.1


def _source_stamp():
    import sklearn
    import torch

    src = Path(__file__).read_bytes()
    return hashlib.sha256(src + torch.__version__.encode() + sklearn.__version__.encode()).hexdigest()


def split_digits():
    """The digits, their labels and the fixed train/evaluation index split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    idx = np.arange(len(images))
    train, test = train_test_split(idx, test_size=TEST_SIZE, stratify=d.target, random_state=SPLIT_SEED)
    return images, d.target.astype(np.int64), np.sort(train), np.sort(test)


def write_data(root):
    """Write the PNG folders and the pairs file under ``root``; returns the split."""
    from PIL import Image

    images, labels, train, test = split_digits()
    root = Path(root)
    for part, idx in (("train", train), ("eval", test)):
        for i in idx:
            folder = root / part / str(labels[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], "L").save(folder / f"digit_{i:04d}.png")
    flat = root / "eval_flat"
    flat.mkdir(parents=True, exist_ok=True)
    count = {}
    for i in test:
        k = count[labels[i]] = count.get(labels[i], 0) + 1
        Image.fromarray(images[i], "L").save(flat / f"{labels[i]}_{k:04d}.png")
    _write_pairs(root / "pairs.txt", count)
    return images, labels, train, test


def _write_pairs(path, count, folds=10, half=30, seed=SPLIT_SEED):
    rng = np.random.default_rng(seed)
    names = sorted(count)
    lines = [f"{folds}\t{half}"]
    for _ in range(folds):
        for _ in range(half):
            c = names[rng.integers(len(names))]
            a, b = rng.choice(count[c], size=2, replace=False) + 1
            lines.append(f"{c}\t{a}\t{b}")
        for _ in range(half):
            c1, c2 = rng.choice(names, size=2, replace=False)
            lines.append(f"{c1}\t{rng.integers(count[c1]) + 1}\t{c2}\t{rng.integers(count[c2]) + 1}")
    path.write_text("\n".join(lines) + "\n")


def _tensors(images, idx):
    from PIL import Image

    from .data import preprocess
    from .params import PreprocessParams

    pre = PreprocessParams(resize=RESIZE, mean=MEAN, std=STD)
    return np.stack([preprocess(Image.fromarray(images[i], "L"), pre)[0] for i in idx]).astype(np.float32)


def build_model(name):
    """The untrained torch module for a demo model; ``forward`` returns ``(logits, embedding)``."""
    from torch import nn

    class Net(nn.Module):
        def __init__(self, features, head_in, emb):
            super().__init__()
            self.features = features
            self.embed = nn.Sequential(nn.Flatten(), nn.Linear(head_in, emb)) if emb else nn.Flatten()
            self.classifier = nn.Linear(emb or head_in, 10)

        def forward(self, x):
            e = self.embed(self.features(x))
            return self.classifier(e), e

    if name == "linear":
        return Net(nn.Identity(), CROP * CROP, 16)
    if name == "cnn_small":
        feats = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        return Net(feats, 16, None)
    if name == "cnn_wide":
        feats = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        return Net(feats, 64 * 4 * 4, 64)
    raise ValueError(f"model name: expected one of {', '.join(MODELS)}; got {name!r}")


def build_cnn_small():
    """The untrained ``cnn_small`` (a builder to name in ``report.torch_model_factory``)."""
    return build_model("cnn_small")


_EPOCHS = {"linear": 12, "cnn_small": 20, "cnn_wide": 12}


def train_model(name, x, y, *, seed=0, log=None):
    """Train a demo model deterministically on ``(x, y)`` with random 32x32 crops of 36x36 inputs.

    A fixed random ``VAL_SHARE`` of the training data is held out for validation. With
    ``log`` (a path), a Keras ``CSVLogger``-style log is written: ``epoch, accuracy, loss,
    val_accuracy, val_loss``.
    """
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(name)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.randperm(len(x), generator=gen)
    n_val = int(len(x) * VAL_SHARE)
    xt, yt = torch.from_numpy(x)[order[n_val:]], torch.from_numpy(y)[order[n_val:]]
    xv, yv = torch.from_numpy(x)[order[:n_val]], torch.from_numpy(y)[order[:n_val]]
    c0 = (RESIZE - CROP) // 2
    xv = xv[:, :, c0:c0 + CROP, c0:c0 + CROP]
    n, pad = len(xt), RESIZE - CROP
    rows = ["epoch,accuracy,loss,val_accuracy,val_loss"]
    for epoch in range(_EPOCHS[name]):
        perm = torch.randperm(n, generator=gen)
        seen = correct = total_loss = 0.0
        model.train()
        for s in range(0, n, 64):
            b = perm[s:s + 64]
            dy, dx = torch.randint(0, pad + 1, (2,), generator=gen).tolist()
            xb = xt[b, :, dy:dy + CROP, dx:dx + CROP]
            logits = model(xb)[0]
            loss = torch.nn.functional.cross_entropy(logits, yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(b)
            total_loss += float(loss.detach()) * len(b)
            correct += float((logits.argmax(1) == yt[b]).sum())
        model.eval()
        with torch.no_grad():
            vl = model(xv)[0]
            val_loss = float(torch.nn.functional.cross_entropy(vl, yv))
            val_acc = float((vl.argmax(1) == yv).float().mean())
        rows.append(f"{epoch},{correct / seen:.6f},{total_loss / seen:.6f},{val_acc:.6f},{val_loss:.6f}")
    if log is not None:
        Path(log).write_text("\n".join(rows) + "\n")
    return model.eval()


def export_onnx(model, path, *, name, metadata=None):
    """Export with inputs ``input`` (N, 1, 32, 32) and outputs ``logits``, ``embedding``."""
    import warnings

    import onnx
    import torch

    x = torch.zeros(1, 1, CROP, CROP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits", "embedding"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}})
    m = onnx.load(str(path))
    onnx.helper.set_model_props(m, {"name": name, **(metadata or {})})
    m.producer_name, m.producer_version = "evallib-demo", "1"
    onnx.save(m, str(path))


def build_demo(build_dir: str | Path = "build/demo", *, force: bool = False, log: Callable[[str], Any] = print) -> Path:
    """Build the demo data and models under ``build_dir`` unless an up-to-date build is there.

    Returns the build folder.
    """
    import torch

    build = Path(build_dir)
    stamp = _source_stamp()
    stamp_file = build / "STAMP"
    if not force and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        log(f"demo: reusing {build}")
        return build
    if build.exists():
        shutil.rmtree(build)
    (build / "models").mkdir(parents=True)
    log(f"demo: writing digits to {build / 'data'}")
    images, labels, train, test = write_data(build / "data")
    x_train, x_test = _tensors(images, train), _tensors(images, test)
    c0 = (RESIZE - CROP) // 2
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    summary = {}
    try:
        for name in MODELS:
            model = train_model(name, x_train, labels[train], log=build / "models" / f"{name}_training.csv")
            with torch.no_grad():
                logits = model(torch.from_numpy(x_test[:, :, c0:c0 + CROP, c0:c0 + CROP]))[0]
            acc = float((logits.argmax(1).numpy() == labels[test]).mean())
            summary[name] = {"eval_accuracy_center_crop": acc}
            log(f"demo: trained {name}: center-crop accuracy {acc:.3f}")
            export_onnx(model, build / "models" / f"{name}.onnx", name=name,
                        metadata={"signature": f"evallib-demo/{name}/{stamp[:12]}",
                                  "training_data": "sklearn digits, train split (1,257 images)"})
            torch.save(model.state_dict(), build / "models" / f"{name}.pt")
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)
    (build / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    stamp_file.write_text(stamp + "\n")
    return build
