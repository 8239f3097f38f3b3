"""Data listing, decoding and test-time views, against torchvision."""

import numpy as np
import pytest
from PIL import Image

from evallib.data import center_crop, list_images, load_image, load_views, preprocess, read_pairs, resize, views
from evallib.errors import DataError


def _img(rng, size=(20, 14), mode="RGB"):
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode)


@pytest.fixture
def tree(tmp_path, rng):
    """Six images of classes a and b in each layout."""
    (tmp_path / "by_class" / "a").mkdir(parents=True)
    (tmp_path / "by_class" / "b").mkdir()
    (tmp_path / "flat").mkdir()
    rows = ["path,label"]
    for k in range(6):
        lab = "ab"[k % 2]
        im = _img(rng)
        im.save(tmp_path / "by_class" / lab / f"{k}.png")
        im.save(tmp_path / "flat" / f"{lab}_{k:04d}.png")
        rows.append(f"by_class/{lab}/{k}.png,{lab}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_three_label_layouts_agree(tree):
    a = list_images(tree / "by_class", labels="folder")
    b = list_images(tree / "flat", labels="filename_prefix")
    c = list_images(tree, labels="csv", csv_path=tree / "manifest.csv")
    for d in (a, b, c):
        assert d.classes == ["a", "b"] and len(d) == 6 and d.counts() == {"a": 3, "b": 3}
    assert sorted(zip(map(str, a.labels), [p.split("/")[-1] for p in a.paths])) == \
        sorted(zip(map(str, c.labels), [p.split("/")[-1] for p in c.paths]))


def test_filename_prefix_uses_text_before_first_underscore(tmp_path, rng):
    for name in ("john_doe_0001.png", "john_doe_0002.png", "mary_0001.png", "nolabel.png"):
        _img(rng).save(tmp_path / name)
    d = list_images(tmp_path, labels="filename_prefix")
    assert d.classes == ["john", "mary"]
    assert d.skipped == [{"path": "nolabel.png", "reason": "no '_' in the file name, so no label"}]


def test_given_classes_fix_the_column_order(tree):
    d = list_images(tree / "by_class", classes=["b", "a", "c"])
    assert d.classes == ["b", "a", "c"] and set(d.labels.tolist()) == {0, 1}


def test_data_errors(tmp_path, tree, rng):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data\.root: expected image files .* got none in .*empty"):
        list_images(tmp_path / "empty")
    with pytest.raises(DataError, match=r"data\.root: expected a folder of images; got .*missing which does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "one" / "only").mkdir(parents=True)
    _img(rng).save(tmp_path / "one" / "only" / "x.png")
    with pytest.raises(DataError, match=r"expected images of at least 2 classes; got only class 'only' \(1 images\)"):
        list_images(tmp_path / "one")
    with pytest.raises(DataError, match=r"data\.classes: expected every label .* 2 classes; got unknown labels"
                                        r" \['b'\]"):
        list_images(tree / "by_class", classes=["a", "z"])
    with pytest.raises(DataError, match=r"data\.csv: expected a manifest file .*; got no file at"):
        list_images(tree, labels="csv", csv_path=tree / "nope.csv")


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "P_transparent", "I;16", "I", "1", "LA", "CMYK", "F"])
def test_every_image_mode_decodes(tmp_path, rng, mode):
    base = _img(rng)
    if mode == "P_transparent":
        im = base.convert("P")
        im.info["transparency"] = 0
    elif mode == "I;16":
        im = Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)
        assert im.mode == "I;16"
    elif mode == "I":
        im = Image.fromarray(np.asarray(base.convert("L"), np.int32) * 257)
    elif mode == "F":
        im = Image.fromarray(np.asarray(base.convert("L"), np.float32) / 255.0)
    else:
        im = base.convert(mode)
    ext = ".tiff" if mode in ("CMYK", "F", "I") else ".png"
    f = tmp_path / f"x{ext}"
    im.save(f, transparency=0) if mode == "P_transparent" else im.save(f)
    for want, channels in (("rgb", 3), ("grayscale", 1)):
        out = load_image(f, want)
        assert out.mode == ("RGB" if channels == 3 else "L") and out.size == base.size
    if mode in ("I;16", "I", "F", "L"):  # high bit depth scales down to the same 8-bit gray
        np.testing.assert_allclose(np.asarray(load_image(f, "grayscale"), float),
                                   np.asarray(base.convert("L"), float), atol=1)


def test_corrupt_file_is_a_reason_not_a_crash(tmp_path):
    f = tmp_path / "bad.png"
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    v, reason = load_views(f, {"tta": "none"})
    assert v is None and reason.startswith("cannot decode:")
    t = tmp_path / "trunc.png"
    Image.new("RGB", (64, 64), "red").save(t)
    t.write_bytes(t.read_bytes()[:60])
    assert load_views(t, {"tta": "none"})[0] is None


@pytest.mark.parametrize("size, resize_to, crop", [((20, 14), 16, 12), ((31, 40), [24, 20], 15),
                                                  ((33, 33), 33, [9, 21]), ((8, 8), 36, 32)])
def test_views_equal_torchvision(rng, size, resize_to, crop):
    import torch
    from torchvision import transforms as T

    img = _img(rng, size)
    ours = resize(img, resize_to)
    theirs = T.Resize(resize_to)(img)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    arr = np.asarray(ours)
    np.testing.assert_array_equal(center_crop(arr, crop), np.asarray(T.CenterCrop(crop)(theirs)))
    ten = views(arr, crop, "tencrop")
    ref = T.TenCrop(crop)(theirs)
    assert len(ten) == len(ref) == 10
    for a, b in zip(ten, ref):
        np.testing.assert_array_equal(a, np.asarray(b))  # pixel for pixel, torchvision's order
    # the whole preprocessing equals ToTensor + Normalize on each crop
    pre = {"resize": resize_to, "crop": crop, "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3], "tta": "tencrop"}
    x = preprocess(img, pre)
    norm = T.Compose([T.ToTensor(), T.Normalize(pre["mean"], pre["std"])])
    want = torch.stack([norm(c) for c in ref]).numpy()
    np.testing.assert_allclose(x, want, atol=1e-6)
    flip = preprocess(img, {**pre, "tta": "flip"})
    np.testing.assert_allclose(flip[1], want[4][:, :, ::-1], atol=1e-6)  # flip view = mirrored center crop


def test_center_crop_pads_like_torchvision(rng):
    from torchvision import transforms as T

    img = _img(rng, (10, 7))
    np.testing.assert_array_equal(center_crop(np.asarray(img), 12), np.asarray(T.CenterCrop(12)(img)))


def test_tencrop_larger_than_image_is_an_error(rng):
    with pytest.raises(DataError, match=r"preprocess\.crop: expected a crop no larger than the resized image"
                                        r" \(14x20\); got 16x16"):
        preprocess(_img(rng), {"crop": 16, "tta": "tencrop"})


def test_pairs_file(tree):
    d = list_images(tree / "flat", labels="filename_prefix")
    (tree / "pairs.txt").write_text("2\t1\na\t0\t2\nb\t1\ta\t4\nb\t1\t3\na\t0\tb\t5\n")
    p = read_pairs(tree / "pairs.txt", d)
    assert p.same.tolist() == [True, False, True, False] and p.fold.tolist() == [0, 0, 1, 1]
    assert d.paths[p.i[0]] == "a_0000.png" and d.paths[p.j[1]] == "a_0004.png"
    (tree / "bad.txt").write_text("a\t0\t99\n")
    with pytest.raises(DataError, match=r"bad\.txt: line 1: expected image 99 of 'a'; got 3 images"):
        read_pairs(tree / "bad.txt", d)


def test_padding_happens_before_normalization_like_torchvision(rng):
    import torch
    from torchvision import transforms as T

    img = _img(rng, (10, 7))
    pre = {"resize": None, "crop": 12, "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.1], "tta": "flip"}
    ours = preprocess(img, pre)
    ref = T.Compose([T.CenterCrop(12), T.ToTensor(), T.Normalize(pre["mean"], pre["std"])])(img)
    np.testing.assert_allclose(ours[0], ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(ours[1], torch.flip(ref, dims=[2]).numpy(), atol=1e-6)


def test_the_subpackage_keeps_every_name_of_the_former_module():
    import importlib

    import evallib.data as data

    homes = {
        "listing": ["Dataset", "list_images", "sort_labels", "classes_from_metadata", "describe_class_order",
                    "METADATA_CLASS_KEYS"],
        "pairs": ["Pairs", "read_pairs"],
        "decoding": ["load_image"],
        "preprocessing": ["preprocess", "load_views", "resize", "pad_to_box", "center_crop", "five_crop", "views",
                          "fit_size", "crop_pct_size", "CENTER_VIEW", "N_VIEWS", "INTERPOLATIONS", "DTYPES"],
    }
    for module, names in homes.items():
        mod = importlib.import_module(f"evallib.data.{module}")
        for name in names:
            assert getattr(data, name) is getattr(mod, name), name
    from evallib.params import PADS as pads
    from evallib.params import RESIZE_MODES as modes

    assert data.PADS is pads and data.RESIZE_MODES is modes and set(data.INTERPOLATIONS) >= {
        "nearest", "bilinear", "bicubic", "lanczos"}
    added = ["OPENCV_INTERPOLATIONS", "resize_opencv", "text_line_size", "decode_views"]  # new with the subpackage
    for name in added:
        assert getattr(data, name) is getattr(importlib.import_module("evallib.data.preprocessing"), name), name
    assert sorted(data.__all__) == sorted([n for names in homes.values() for n in names] + ["PADS", "RESIZE_MODES"]
                                          + added)


def test_tencrop_without_a_crop_names_the_setting():
    arr = np.arange(8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    with pytest.raises(DataError, match=r"preprocess\.tta: expected preprocess\.crop with tta 'tencrop'"):
        views(arr, None, "tencrop")
    assert len(views(arr, 4, "tencrop")) == 10 and views(arr, None, "flip")[0] is arr


def test_csv_labels_without_a_manifest_names_the_argument(tmp_path):
    (tmp_path / "a_1.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"csv_path: expected a manifest path when labels is 'csv'; got None"):
        list_images(tmp_path, labels="csv")
