"""Target 4: the inference pipeline on 2,000 JPEG files through a ResNet-18-shaped ONNX model at 224.

References in the same run: onnxruntime's own throughput on the same preprocessed tensors already
in memory, and the one-image-at-a-time loop of a typical script. Center crop and TenCrop are timed
on the same subset, median of three runs each.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _util import export_torchvision, report
from evallib.data import load_views
from evallib.inference import open_session, predict

PRE = {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "mode": "rgb",
       "layout": "auto", "tta": "none"}
OUTS = {"scores": "logits", "scores_are": "logits", "embedding": None}


def make_images(root, n, seed=0):
    rng = np.random.default_rng(seed)
    files = []
    for k in range(n):
        folder = root / f"class_{k % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        low = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)  # smooth, photo-like content
        img = Image.fromarray(low).resize((256, 256), Image.BICUBIC)
        f = folder / f"img_{k:05d}.jpg"
        img.save(f, quality=90)
        files.append(f)
    return files


def export_resnet18(path):
    return export_torchvision("resnet18", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--tencrop-images", type=int, default=128)
    ap.add_argument("--loop-images", type=int, default=160)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = make_images(tmp / "images", args.images)
        model = export_resnet18(tmp / "resnet18.onnx")
        sess = open_session(model)
        x = np.concatenate([load_views(f, PRE)[0] for f in files]).astype(np.float32)
        sess.run(None, {"input": x[:args.batch]})  # warm-up
        t0 = time.perf_counter()
        for s in range(0, len(x), args.batch):
            sess.run(None, {"input": x[s:s + args.batch]})
        t_ort = time.perf_counter() - t0
        del x
        pred = predict(sess, files, PRE, OUTS, batch_size=args.batch, progress=False)
        t_ours = pred.seconds
        sub = files[:args.tencrop_images]
        t_center = statistics.median(predict(sess, sub, PRE, OUTS, batch_size=args.batch, progress=False).seconds
                                     for _ in range(3))
        t_ten = statistics.median(predict(sess, sub, {**PRE, "tta": "tencrop"}, OUTS, batch_size=args.batch,
                                          progress=False).seconds for _ in range(3))
        loop = files[:args.loop_images]
        t0 = time.perf_counter()
        for f in loop:
            sess.run(None, {"input": load_views(f, PRE)[0].astype(np.float32)})
        t_loop = time.perf_counter() - t0
    ips_ort, ips_ours = args.images / t_ort, args.images / t_ours
    report("4. inference ResNet-18 at 224", met=ips_ours >= 0.9 * ips_ort and t_ten / t_center <= 10.5,
           images=args.images, onnxruntime_images_per_s=ips_ort, evallib_images_per_s=ips_ours,
           ratio_to_onnxruntime=ips_ours / ips_ort, tencrop_over_center=t_ten / t_center,
           one_at_a_time_images_per_s=len(loop) / t_loop)


if __name__ == "__main__":
    main()
