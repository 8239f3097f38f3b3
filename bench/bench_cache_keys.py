"""What the content-hash cache costs: hashing every image, a rerun that finds nothing changed (stat
fields compared with the file index, no file read), and a whole fresh ``run_model`` against a rerun.

    python bench/bench_cache_keys.py                                   # 2,000 photo-size JPEGs
    python bench/bench_cache_keys.py --images 100000 --pixels 160x120  # 100,000 smaller JPEGs

References in the same run: listing the files (what every run does), and reading the files without
hashing them (the least any content check can cost). The page cache is warm (the files were just
written), as on a rerun. The hash figures are medians of three runs; the pipeline figures
(``--pipeline``, on by default) time :func:`evallib.run.run_model` on a tiny ONNX model (a global
average pool and one dense layer, so that inference costs next to nothing and the fresh run is
mostly listing, hashing, decoding and preprocessing): once fresh (no output folder) and then a rerun
with nothing changed, which must be at least 3 times faster.

Images beyond the first 64 repeat those 64 files' bytes (writing 100,000 distinct JPEGs would take
longer than the measurement; the hash and the decoder cost the same for a repeated file).
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _util import report, timed
from evallib._keys import hash_listing
from evallib.data import list_images

_DISTINCT = 64


def make_photos(root, n, seed=0, size=(375, 500)):
    """JPEG files of ImageNet's typical size and weight by default (500x375, about 100 KB at quality 90),
    in 10 class folders; ``size`` is (height, width)."""
    rng = np.random.default_rng(seed)
    pool = []
    for k in range(n):
        folder = root / f"class_{k % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img_{k:06d}.jpg"
        if k < _DISTINCT:
            low = rng.integers(0, 256, size=(max(1, size[0] // 8), max(1, size[1] // 8), 3), dtype=np.uint8)
            img = np.asarray(Image.fromarray(low).resize(size[::-1], Image.BICUBIC), dtype=np.int16)
            img = np.clip(img + rng.integers(-24, 25, size=img.shape), 0, 255).astype(np.uint8)  # texture
            Image.fromarray(img).save(path, quality=90)
            pool.append(path.read_bytes())
        else:
            path.write_bytes(pool[k % _DISTINCT])


def read_all(root, paths):
    total = 0
    for p in paths:
        with open(root / p, "rb") as fh:
            total += len(fh.read())
    return total


def tiny_model(path, n_classes=10):
    """An ONNX model: global average pool of a 3-channel image, then one dense layer (``logits``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(n_classes, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                            ["batch", 3, "h", "w"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes])],
                              initializer=[w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def pipeline(tmp, root, pixels):
    """Seconds of a fresh :func:`run_model` and of a rerun with nothing changed."""
    from evallib.params import parse_params
    from evallib.run import run_model

    model = Path(tmp) / "tiny.onnx"
    tiny_model(model)
    params = parse_params({"name": "bench", "model": str(model), "data": {"root": str(root)},
                           "preprocess": {"resize": [pixels[0], pixels[1]], "batch_size": 256}})
    out = Path(tmp) / "outputs"
    t0 = time.perf_counter()
    fresh = run_model(params, out, progress=False)
    t_fresh = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = run_model(params, out, progress=False)
    t_rerun = time.perf_counter() - t0
    assert not fresh["inference"]["cached"] and again["inference"]["cached"]
    shutil.rmtree(out)
    return t_fresh, t_rerun, fresh["inference"]["seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000, help="how many JPEG files (default 2,000)")
    ap.add_argument("--pixels", default="500x375", help="WIDTHxHEIGHT of each image (default 500x375)")
    ap.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                    help="only the hash figures, not run_model fresh against a rerun")
    args = ap.parse_args()
    width, height = (int(v) for v in args.pixels.lower().split("x"))
    repeat = 3 if args.images <= 10_000 else 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        t0 = time.perf_counter()
        make_photos(root, args.images, size=(height, width))
        t_make = time.perf_counter() - t0
        t_list, ds = timed(lambda: list_images(root), repeat)
        t_read, nbytes = timed(lambda: read_all(root, ds.paths), repeat)
        t_hash, (_, index, hashed) = timed(lambda: hash_listing(root, ds.paths), repeat)
        t_rerun, (_, _, rehashed) = timed(lambda: hash_listing(root, ds.paths, index), repeat)
        figures = {}
        if args.pipeline:
            t_fresh_run, t_rerun_run, t_infer = pipeline(tmp, root, (height, width))
            figures = dict(run_model_fresh_seconds=t_fresh_run, run_model_fresh_inference_seconds=t_infer,
                           run_model_rerun_seconds=t_rerun_run, run_model_fresh_over_rerun=t_fresh_run / t_rerun_run)
    assert hashed == len(ds) and rehashed == 0
    mb = nbytes / 1e6
    met = t_rerun <= t_list + 0.5 and t_hash <= 5 * t_read + 1
    if args.pipeline:
        met = met and figures["run_model_fresh_over_rerun"] >= 3
    report(f"cache keys: content hashes of {args.images:,} JPEGs of {width}x{height}", met=met,
           images=len(ds), megabytes=mb, mean_kb_per_image=nbytes / len(ds) / 1e3, make_seconds=t_make,
           list_seconds=t_list, read_only_seconds=t_read, hash_all_seconds=t_hash,
           hash_ms_per_image=1e3 * t_hash / len(ds), hash_mb_per_s=mb / t_hash,
           rerun_nothing_changed_seconds=t_rerun, rerun_ms_per_image=1e3 * t_rerun / len(ds), **figures)


if __name__ == "__main__":
    main()
