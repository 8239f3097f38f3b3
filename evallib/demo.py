"""The embedded demo: scikit-learn's handwritten digits, three models and a second version, exported to ONNX.

Data
    The 1,797 8x8 digits from ``sklearn.datasets.load_digits`` (pixel values 0-16 scaled to
    0-255), written as PNG files. The split is fixed: ``train_test_split(test_size=0.3,
    stratify=labels, random_state=0)`` gives 1,257 training and 540 evaluation images.

    ``data/train/<digit>/digit_<index>.png`` and ``data/eval/<digit>/digit_<index>.png``
    (one folder per class), ``data/eval_flat/<digit>_<k>.png`` (the same evaluation images in
    the flat layout of face datasets, ``k`` counting from 1 within the digit) and
    ``data/pairs.txt`` (10 folds of 30 genuine and 30 impostor pairs over ``eval_flat``).

Planted problems (evaluation images only; the training split is clean)
    So that the report's sections have something to find, ``data/planted.json`` records:

    - a weak slice: each evaluation image has a ``scanner`` (``data/eval_meta.csv`` and
      ``data/eval_flat_meta.csv``, one per layout, for ``data.metadata``); the images of scanner
      ``S4`` (about 8%) are written darker and blurred, so every model does worse on them;
    - ``N_MISLABELLED`` mislabelled clear digits, written into another class's folder (and with another
      class prefix in ``eval_flat``);
    - one exact duplicate with a conflicting label: one image written into two class folders
      (so the evaluation set holds 541 files).

Identities
    ``data/glyphs/<identity>/<identity>_<k>.png``: ``GLYPH_IDENTITIES`` synthetic identities, each a
    glyph of two or three random strokes drawn with per-image jitter (rotation, scale, shift, stroke
    width, noise) at the digits' 8x8 size. ``data/glyphs.csv`` is the manifest (``path,label,role``):
    the first ``GLYPH_ENROLLED`` identities have one ``gallery`` image and the rest ``probe``
    images; the others have probes only (non-mated searches, open set). ``params/glyph_ids.yaml``
    embeds them with ``cnn_wide`` for 1:N identification.

Models
    ``linear`` (a rank-16 linear map), ``cnn_small`` (three conv layers, global average
    pooling) and ``cnn_wide`` (wider convs and a fully connected head), trained on the train
    split only on 32x32 upsampled digits, deterministic, exported with two outputs: ``logits``
    and ``embedding`` (the penultimate layer). 10% of the training split is held out to log
    validation loss and accuracy per epoch (``models/<name>_training.csv``, Keras CSVLogger style).
    ``cnn_small_v2`` is the next version of ``cnn_small``: the same training run continued for
    ``VERSIONS["cnn_small_v2"]`` more epochs (its log holds every epoch), so the demo shows a
    version comparison with flips (``report.baseline: cnn_small``).

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
VERSIONS = {"cnn_small_v2": ("cnn_small", 6)}  # a model's next version: (the model it continues, more epochs)
VAL_SHARE = 0.1

PLANT_SEED = 1
SCANNERS = ("S1", "S2", "S3", "S4")
WEAK_SCANNER = "S4"  # its images are darker and blurred
WEAK_SHARE = 0.08
WEAK_DARKEN, WEAK_BLUR = 0.55, 0.55  # pixel values times this; Gaussian blur of this radius (pixels of the 8x8 image)
N_MISLABELLED = 8

GLYPH_IDENTITIES, GLYPH_ENROLLED, GLYPH_IMAGES = 200, 150, 3
GLYPH_SEED = 2


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


def plant_problems(images, labels, train, test, *, seed=PLANT_SEED):
    """What the demo plants in its evaluation images (nothing in the training split).

    Label errors are planted on clear digits, as a typo in the label of an image anyone can read: images
    whose nearest class mean of the training split (in pixels) is their own, by a margin above the median.

    Parameters
    ----------
    images : ndarray of uint8, shape (n_digits, 8, 8)
    labels : ndarray of int, shape (n_digits,)
    train, test : ndarray of int
        The training and evaluation splits (indices into ``labels``).

    Returns
    -------
    dict
        ``scanner`` (ndarray of str, shape (n_eval,), aligned with ``test``), ``mislabelled``
        (``{index: given label}``, ``N_MISLABELLED`` clear images of other scanners than the weak one) and
        ``duplicate`` (``(index, second label)``: one more image, also written into that class's folder).
    """
    rng = np.random.default_rng(seed)
    n = len(test)
    scanner = np.asarray(SCANNERS[:-1])[rng.integers(0, len(SCANNERS) - 1, n)].astype(object)
    weak = rng.choice(n, size=round(WEAK_SHARE * n), replace=False)
    scanner[weak] = WEAK_SCANNER
    x = images.reshape(len(images), -1).astype(np.float64)
    means = np.stack([x[train][labels[train] == c].mean(0) for c in range(10)])
    dist = np.linalg.norm(x[test][:, None, :] - means[None], axis=2)  # (n_eval, 10)
    own = dist[np.arange(n), labels[test]]
    dist[np.arange(n), labels[test]] = np.inf
    margin = dist.min(1) - own  # > 0: the own class mean is the nearest
    clear = (scanner != WEAK_SCANNER) & (margin > np.median(margin)) & (margin > 0)
    chosen = rng.permutation(np.flatnonzero(clear))
    mislabelled = {}
    for pos in chosen[:N_MISLABELLED]:
        i = int(test[pos])
        mislabelled[i] = int((labels[i] + rng.integers(1, 10)) % 10)
    i = int(test[chosen[N_MISLABELLED]])
    duplicate = (i, int((labels[i] + rng.integers(1, 10)) % 10))
    return {"scanner": scanner.astype(str), "mislabelled": mislabelled, "duplicate": duplicate}


def _degrade(image):
    """A weak-scanner image: darker and blurred."""
    from PIL import Image, ImageFilter

    dark = np.round(image.astype(np.float64) * WEAK_DARKEN).astype(np.uint8)
    return np.asarray(Image.fromarray(dark, "L").filter(ImageFilter.GaussianBlur(WEAK_BLUR)))


def write_data(root):
    """Write the PNG folders, the pairs file, the metadata, the planted problems and the identities under ``root``.

    Returns
    -------
    images, labels, train, test
        The digits and the split (:func:`split_digits`).
    eval_images : ndarray of uint8, shape (n_eval_files, 8, 8)
        The evaluation images as written (degraded where planted), one per file of ``data/eval``.
    eval_labels : ndarray of int, shape (n_eval_files,)
        Their labels as given by the folders (wrong where planted).
    """
    from PIL import Image

    images, labels, train, test = split_digits()
    root = Path(root)
    for i in train:
        folder = root / "train" / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i], "L").save(folder / f"digit_{i:04d}.png")
    plan = plant_problems(images, labels, train, test)
    files = []  # (index, pixels, given label, scanner) per evaluation file
    for i, scanner in zip(test.tolist(), plan["scanner"]):
        pixels = _degrade(images[i]) if scanner == WEAK_SCANNER else images[i]
        files.append((i, pixels, plan["mislabelled"].get(i, int(labels[i])), str(scanner)))
        if i == plan["duplicate"][0]:
            files.append((i, pixels, plan["duplicate"][1], str(scanner)))
    (root / "eval_flat").mkdir(parents=True, exist_ok=True)
    count, meta, flat_meta, where = {}, ["path,scanner"], ["path,scanner"], {}
    for i, pixels, given, scanner in files:
        folder = root / "eval" / str(given)
        folder.mkdir(parents=True, exist_ok=True)
        k = count[given] = count.get(given, 0) + 1
        rel, flat = f"{given}/digit_{i:04d}.png", f"{given}_{k:04d}.png"
        Image.fromarray(pixels, "L").save(root / "eval" / rel)
        Image.fromarray(pixels, "L").save(root / "eval_flat" / flat)
        meta.append(f"{rel},{scanner}")
        flat_meta.append(f"{flat},{scanner}")
        where.setdefault(i, []).append({"eval": rel, "eval_flat": flat, "given_label": given})
    (root / "eval_meta.csv").write_text("\n".join(meta) + "\n")
    (root / "eval_flat_meta.csv").write_text("\n".join(flat_meta) + "\n")
    _write_pairs(root / "pairs.txt", count)
    dup = plan["duplicate"][0]
    planted = {
        "weak_slice": {"column": "scanner", "value": WEAK_SCANNER, "darken": WEAK_DARKEN, "blur_radius": WEAK_BLUR,
                       "images": int((plan["scanner"] == WEAK_SCANNER).sum()), "of": len(files)},
        "mislabelled": [{"index": i, "true_label": int(labels[i]), **where[i][0]} for i in plan["mislabelled"]],
        "duplicate": {"index": dup, "true_label": int(labels[dup]), "copies": where[dup]},
    }
    (root / "planted.json").write_text(json.dumps(planted, indent=2) + "\n")
    write_glyphs(root)
    eval_images = np.stack([f[1] for f in files])
    return images, labels, train, test, eval_images, np.asarray([f[2] for f in files], dtype=np.int64)


_GLYPH_CANVAS = 64


def _glyph_strokes(rng):
    """Two or three strokes (lines and arcs) on a 5x5 grid of a 64x64 canvas: one identity's glyph."""
    grid = np.linspace(12, 52, 5)
    strokes = []
    for _ in range(int(rng.integers(2, 4))):
        a = grid[rng.integers(5, size=2)]
        if rng.integers(3) < 2:
            b = a
            while np.array_equal(a, b):
                b = grid[rng.integers(5, size=2)]
            strokes.append(("line", tuple(a), tuple(b)))
        else:
            c, r = grid[rng.integers(1, 4, size=2)], float(rng.choice([10, 16, 20]))
            start, span = int(rng.choice([0, 90, 180, 270])), int(rng.choice([180, 270, 360]))
            strokes.append(("arc", (c[0] - r, c[1] - r, c[0] + r, c[1] + r), (start, start + span)))
    return strokes


def draw_glyph(strokes, rng, *, size=8):
    """One image of a glyph with jitter: stroke width, rotation, scale, shift, then noise at ``size`` pixels.

    Returns
    -------
    ndarray of uint8, shape (size, size)
    """
    from PIL import Image, ImageDraw

    n = _GLYPH_CANVAS
    img = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(img)
    width = int(rng.integers(6, 9))
    for kind, a, b in strokes:
        if kind == "line":
            draw.line([a, b], fill=255, width=width)
        else:
            draw.arc(list(a), b[0], b[1], fill=255, width=width)
    tx, ty = rng.uniform(-3, 3, 2)
    img = img.rotate(float(rng.uniform(-10, 10)), resample=Image.Resampling.BILINEAR, translate=(float(tx), float(ty)))
    s = int(round(n * rng.uniform(0.9, 1.1)))
    scaled = img.resize((s, s), Image.Resampling.BILINEAR)
    img = Image.new("L", (n, n), 0)
    img.paste(scaled, ((n - s) // 2, (n - s) // 2))
    pixels = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float64)
    return np.clip(np.round(pixels + rng.normal(0, 8, pixels.shape)), 0, 255).astype(np.uint8)


def write_glyphs(root, *, identities=GLYPH_IDENTITIES, enrolled=GLYPH_ENROLLED, per_identity=GLYPH_IMAGES,
                 seed=GLYPH_SEED):
    """Write the synthetic identities under ``root/glyphs`` and their manifest ``root/glyphs.csv``.

    Identity ``g`` gets ``per_identity`` images of one glyph; the first image of each of the first
    ``enrolled`` identities is its ``gallery`` image, every other image a ``probe``. Returns the manifest path.
    """
    from PIL import Image

    root = Path(root)
    rows = ["path,label,role"]
    for g in range(identities):
        name = f"id{g:03d}"
        rng = np.random.default_rng([seed, g])
        strokes = _glyph_strokes(rng)
        (root / "glyphs" / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_identity):
            rel = f"{name}/{name}_{k}.png"
            Image.fromarray(draw_glyph(strokes, rng), "L").save(root / "glyphs" / rel)
            rows.append(f"{rel},{name},{'gallery' if k == 0 and g < enrolled else 'probe'}")
    (root / "glyphs.csv").write_text("\n".join(rows) + "\n")
    return root / "glyphs.csv"


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


def train_model(name, x, y, *, seed=0, log=None, epochs=None, on_epoch=None):
    """Train a demo model deterministically on ``(x, y)`` with random 32x32 crops of 36x36 inputs.

    A fixed random ``VAL_SHARE`` of the training data is held out for validation. With
    ``log`` (a path), a Keras ``CSVLogger``-style log is written: ``epoch, accuracy, loss,
    val_accuracy, val_loss``.

    Parameters
    ----------
    epochs : int, optional
        Default: the model's own number (``_EPOCHS``).
    on_epoch : callable, optional
        Called after each epoch as ``on_epoch(epoch, model, log_rows)`` (the model in eval mode, the
        log's lines so far); a snapshot taken there is the same run stopped earlier.
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
    for epoch in range(_EPOCHS[name] if epochs is None else epochs):
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
        if on_epoch is not None:
            on_epoch(epoch, model, list(rows))
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
    images, labels, train, test, eval_images, eval_labels = write_data(build / "data")
    x_train = _tensors(images, train)
    c0 = (RESIZE - CROP) // 2
    x_eval = _tensors(eval_images, range(len(eval_images)))[:, :, c0:c0 + CROP, c0:c0 + CROP]
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    summary = {}

    def save(name, model, rows, about):
        (build / "models" / f"{name}_training.csv").write_text("\n".join(rows) + "\n")
        with torch.no_grad():
            logits = model(torch.from_numpy(x_eval))[0]
        acc = float((logits.argmax(1).numpy() == eval_labels).mean())
        summary[name] = {"eval_accuracy_center_crop": acc}
        log(f"demo: trained {name}: center-crop accuracy {acc:.3f} on the evaluation files as written")
        export_onnx(model, build / "models" / f"{name}.onnx", name=name,
                    metadata={"signature": f"evallib-demo/{name}/{stamp[:12]}",
                              "training_data": f"sklearn digits, train split (1,257 images){about}"})
        torch.save(model.state_dict(), build / "models" / f"{name}.pt")

    try:
        for name in MODELS:
            version = next(((v, more) for v, (base, more) in VERSIONS.items() if base == name), None)
            logs: dict[str, list[str]] = {}

            def snapshot(epoch, model, rows, name=name, logs=logs):  # the first version: the run at its own epochs
                logs["rows"] = rows
                if epoch == _EPOCHS[name] - 1:
                    save(name, model, rows, "")
            model = train_model(name, x_train, labels[train], on_epoch=snapshot,
                                epochs=_EPOCHS[name] + (version[1] if version else 0))
            if version is not None:  # the next version: the same run, trained longer
                save(version[0], model, logs["rows"], f"; {name} trained {version[1]} more epochs")
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)
    (build / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    stamp_file.write_text(stamp + "\n")
    return build
