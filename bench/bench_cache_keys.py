"""What the content-hash cache costs: hashing 2,000 JPEG files of photo size, and a rerun that finds
nothing changed (stat fields compared with the file index, no file read).

References in the same run: listing the files (what every run does), and reading the files without
hashing them (the least any content check can cost). The page cache is warm (the files were just
written), as on a rerun; median of three runs each.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from _util import report, timed
from evallib._keys import hash_listing
from evallib.data import list_images


def make_photos(root, n, seed=0, size=(375, 500)):
    """JPEG files of ImageNet's typical size and weight (500x375, about 100 KB at quality 90)."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        folder = root / f"class_{k % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        low = rng.integers(0, 256, size=(size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(low).resize(size[::-1], Image.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.integers(-24, 25, size=img.shape), 0, 255).astype(np.uint8)  # texture
        Image.fromarray(img).save(folder / f"img_{k:05d}.jpg", quality=90)


def read_all(root, paths):
    total = 0
    for p in paths:
        with open(root / p, "rb") as fh:
            total += len(fh.read())
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        make_photos(root, args.images)
        t_list, ds = timed(lambda: list_images(root))
        t_read, nbytes = timed(lambda: read_all(root, ds.paths))
        t_hash, (_, index, hashed) = timed(lambda: hash_listing(root, ds.paths))
        t_rerun, (_, _, rehashed) = timed(lambda: hash_listing(root, ds.paths, index))
    assert hashed == len(ds) and rehashed == 0
    mb = nbytes / 1e6
    report("cache keys: content hashes of 2,000 JPEGs", met=t_rerun <= t_list + 0.5 and t_hash <= 5 * t_read + 1,
           images=len(ds), megabytes=mb, mean_kb_per_image=nbytes / len(ds) / 1e3,
           list_seconds=t_list, read_only_seconds=t_read, hash_all_seconds=t_hash,
           hash_ms_per_image=1e3 * t_hash / len(ds), hash_mb_per_s=mb / t_hash,
           rerun_nothing_changed_seconds=t_rerun, rerun_ms_per_image=1e3 * t_rerun / len(ds))


if __name__ == "__main__":
    main()
