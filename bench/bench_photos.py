"""Target 16: photo-sized JPEGs through a ResNet-50 at 224, center crop and 10-crop, end to end.

Generated photos: 1/f (pink) noise fields, whose power spectrum falls as 1/f^2 as natural images'
does (Field 1987; van der Schaaf and van Hateren 1996), with correlated colour channels, at
ImageNet's validation size distribution (most 500x375 or 375x500, some 500x333, squares and other
sizes), saved as JPEG quality 90 in class folders. The model is torchvision's ResNet-50 (random
weights) exported to ONNX at 224.

Measured in the same run, on the same onnxruntime session:

* evallib end to end: :func:`evallib.inference.predict` (decoding in a thread pool sized from the
  cores, overlapping inference);
* the inference ceiling: onnxruntime alone on tensors decoded beforehand;
* the usual torch pipeline: ``torchvision.datasets.ImageFolder`` + ``DataLoader(num_workers=cores)``
  with the same resize, crop and normalisation, feeding the same session;
* decoding alone (decode, resize, crop, normalise) with 1 and 2 threads, and with 2 processes.

    python bench/bench_photos.py                          # 2,000 photos for decoding, 128 through the model
    python bench/bench_photos.py --images 50000 --infer-images 50000
    python bench/bench_photos.py --images 50000 --photos /data/photos50k   # generated once, kept, reused
    python bench/bench_photos.py --device cuda            # on a GPU: CUDA EP, scores checked against the CPU
"""

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from _util import export_torchvision, report

# (width, height, share): ImageNet validation sizes, roughly
SIZES = [(500, 375, 0.55), (375, 500, 0.12), (500, 333, 0.10), (333, 500, 0.04), (500, 500, 0.05),
         (640, 480, 0.04), (500, 400, 0.04), (400, 300, 0.03), (800, 600, 0.02), (300, 225, 0.01)]
PRE = {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
OUTS = {"scores": "logits", "scores_are": "logits"}
# the GPU's scores agree with the CPU's within this share of the largest score (cuDNN sums in another order;
# onnxruntime's CUDA provider keeps float32 arithmetic, TF32 off, by default)
GPU_TOLERANCE = 1e-3


def pink_field(rng, size=1024):
    """A (size, size, 3) uint8 image with a 1/f amplitude spectrum and correlated channels."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0
    base = []
    for _ in range(3):
        spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f
        spec[0, 0] = 0
        base.append(np.fft.irfft2(spec, s=(size, size)))
    x = np.stack(base, axis=-1)
    x /= x.std()
    mix = np.array([[1.0, 0.8, 0.6], [0.0, 0.5, 0.3], [0.0, 0.0, 0.5]])  # luminance shared by the channels
    x = x @ mix
    x = (x - x.mean(axis=(0, 1))) / x.std(axis=(0, 1)) * rng.uniform(35, 60) + rng.uniform(80, 160, 3)
    return np.clip(x, 0, 255).astype(np.uint8)


def make_photos(root, n, *, classes=10, seed=0):
    """``n`` JPEGs in ``classes`` class folders; returns their paths."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    fields = [pink_field(rng) for _ in range(8)]
    shares = np.array([s for _, _, s in SIZES])
    picks = rng.choice(len(SIZES), n, p=shares / shares.sum())
    paths = []
    for i, k in enumerate(picks):
        w, h, _ = SIZES[k]
        field = fields[i % len(fields)]
        top, left = rng.integers(0, field.shape[0] - h), rng.integers(0, field.shape[1] - w)
        d = Path(root) / f"c{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"img{i:06d}.jpg"
        Image.fromarray(np.ascontiguousarray(field[top:top + h, left:left + w])).save(p, quality=90)
        paths.append(p)
    return paths


def export_resnet50(path):
    return export_torchvision("resnet50", path)


def _decode(path, pre):
    from evallib.data import load_views

    return load_views(path, pre)[0]


def decode_rate(paths, pre, workers, *, processes=False):
    """Images/s of decode + resize + crop + normalise with ``workers`` threads (or processes)."""
    kind = ProcessPoolExecutor if processes else ThreadPoolExecutor
    with kind(max_workers=workers) as pool:
        list(pool.map(_decode, paths[:workers * 2], [pre] * (workers * 2)))  # warm: imports, process start
        t0 = time.perf_counter()
        for _ in pool.map(_decode, paths, [pre] * len(paths), chunksize=8 if processes else 1):
            pass
        return len(paths) / (time.perf_counter() - t0)


def ceiling_rate(sess, paths, pre, batch):
    """Images/s of onnxruntime alone on tensors decoded beforehand."""
    x = np.concatenate([_decode(p, pre) for p in paths])  # (n * views, 3, 224, 224)
    views = len(x) // len(paths)
    step = max(views, batch // views * views)
    sess.run(["logits"], {"input": x[:step]})
    t0 = time.perf_counter()
    for s in range(0, len(x), step):
        sess.run(["logits"], {"input": x[s:s + step]})
    return len(paths) / (time.perf_counter() - t0)


def torch_rate(sess, root, n, tta, batch, workers):
    """Images/s of ImageFolder + DataLoader(num_workers) feeding the same session."""
    import torch
    from torchvision import datasets, transforms

    norm = transforms.Normalize(PRE["mean"], PRE["std"])
    if tta == "tencrop":
        tf = transforms.Compose([transforms.Resize(256), transforms.TenCrop(224),
                                 transforms.Lambda(lambda crops: torch.stack([norm(transforms.functional.to_tensor(c))
                                                                              for c in crops]))])
    else:
        tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), norm])
    ds = torch.utils.data.Subset(datasets.ImageFolder(str(root), transform=tf), range(n))
    per_batch = max(1, batch // (10 if tta == "tencrop" else 1))
    loader = torch.utils.data.DataLoader(ds, batch_size=per_batch, num_workers=workers, shuffle=False)
    t0 = time.perf_counter()
    for x, _ in loader:
        x = x.reshape(-1, 3, 224, 224).numpy()
        sess.run(["logits"], {"input": x})
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000, help="photos generated (decoding measured on all)")
    ap.add_argument("--infer-images", type=int, default=128, help="photos run through the model, center crop")
    ap.add_argument("--tencrop-images", type=int, default=None, help="photos run with 10-crop (default a quarter)")
    ap.add_argument("--batch", type=int, default=32, help="views per onnxruntime run")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--photos", type=Path, default=None,
                    help="folder to keep the generated photos in and reuse on the next run (default: a temporary one)")
    args = ap.parse_args()
    from evallib.inference import open_session, predict, session_device

    cores = len(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp())
    try:
        photos = args.photos or tmp / "photos"
        marker = photos / f".complete-{args.images}"  # the same seed makes the same photos
        t0 = time.perf_counter()
        if marker.exists():
            paths = sorted(photos.glob("c*/img*.jpg"))
            paths = sorted(paths, key=lambda p: p.name)[:args.images]  # generation order
        else:
            paths = make_photos(photos, args.images)
            marker.touch()
        gen_s = time.perf_counter() - t0
        mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e3
        dec = {"1 thread": decode_rate(paths, PRE, 1), "2 threads": decode_rate(paths, PRE, 2),
               "2 processes": decode_rate(paths, PRE, 2, processes=True)}
        scaling = dec["2 threads"] / dec["1 thread"]
        model = export_resnet50(tmp / "resnet50.onnx")
        sess = open_session(model, device=args.device)
        device = session_device(sess)
        results, met = {}, scaling >= 1.7
        n_ten = args.tencrop_images or max(16, args.infer_images // 4)
        for tta, n in (("none", args.infer_images), ("tencrop", n_ten)):
            pre = {**PRE, "tta": tta}
            files = sorted(paths)[:n]  # ImageFolder's order: class folders, then names
            ceiling = ceiling_rate(sess, files[:min(n, 64)], pre, args.batch)
            # warm like the ceiling: onnxruntime plans each new input shape on its first run
            one_run = files[:max(1, args.batch // (10 if tta == "tencrop" else 1))]
            predict(sess, one_run, pre, OUTS, batch_size=args.batch, progress=False)
            t0 = time.perf_counter()
            pred = predict(sess, files, pre, OUTS, batch_size=args.batch, progress=False)
            ours = len(pred.kept) / (time.perf_counter() - t0)
            theirs = torch_rate(sess, photos, n, tta, args.batch, cores)
            results[tta] = {"evallib_img_s": round(ours, 2), "ceiling_img_s": round(ceiling, 2),
                            "torch_dataloader_img_s": round(theirs, 2), "of_ceiling": round(ours / ceiling, 3),
                            "of_torch": round(ours / theirs, 3), "images": n}
            met = met and ours >= theirs * 0.95 and ours >= 0.9 * ceiling
            if args.device == "cuda":  # the same scores as the CPU, within the stated tolerance
                cpu = predict(open_session(model, device="cpu"), files[:16], pre, OUTS, batch_size=args.batch,
                              progress=False)
                diff = float(np.abs(cpu.scores - pred.scores[:16]).max())
                results[tta]["max_abs_diff_vs_cpu"] = diff
                met = met and diff <= GPU_TOLERANCE * max(1.0, float(np.abs(cpu.scores).max()))
        report(f"16. photo-sized JPEGs, ResNet-50 at 224 ({args.device})", met=met, device=device.device,
               providers=", ".join(device.providers), photos=args.images, mean_jpeg_kB=round(mb, 1),
               decode_img_s={k: round(v, 1) for k, v in dec.items()}, decode_scaling_1_to_2=round(scaling, 2),
               center_crop=results["none"], ten_crop=results["tencrop"], generate_s=round(gen_s, 1), cores=cores,
               **({} if args.device == "cuda" else {"gpu_figures": (
                   "still open: not measured on a GPU (run python bench/bench_photos.py --device cuda on a machine "
                   "with onnxruntime-gpu: CUDA EP against the CPU, and the GPU's scores against the CPU's)")}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
