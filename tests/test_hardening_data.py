"""Bad models, bad data and odd file systems give a clear message, through ``evallib run``.

Each case runs the command line on tiny data with a model built here with ``onnx.helper``: its
logits are NaN (or infinite) and its embedding all zeros for images whose left half is bright,
so which images must be dropped is worked out from the pixels (a brute-force reference).
"""

import json
import os
import re
import struct
import warnings
import zlib

import numpy as np
import pytest
import yaml
from PIL import Image, ImageOps

import evallib
from conftest import export_unconvertible_model
from evallib.cam import cam_route, load_torch_model
from evallib.cli import main
from evallib.data import list_images, load_image
from evallib.errors import DataError, ModelError, ParamsError
from evallib.inference import open_session, predict
from evallib.params import parse_params

SIZE = 16
DARK, BRIGHT = 40, 220  # left halves far from the gate at 0.5 (pixels / 255)
PRE = {"mode": "grayscale", "mean": [0.0], "std": [1.0], "tta": "none"}
NAN_GATE = 0.5


def gate_model(path, *, nan_above=NAN_GATE, zero_above=np.inf, bad=np.nan, classes=3):
    """Logits (``classes``) and an embedding (4) linear in the pixels; logits get ``bad`` added where the mean
    of the input's left half is above ``nan_above``, the embedding is zeroed where it is above
    ``zero_above``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def const(name, value, dtype=np.float32):
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)

    inits = [const("w", rng.normal(size=(SIZE * SIZE, classes))), const("we", rng.normal(size=(SIZE * SIZE, 4))),
             const("starts", [0], np.int64), const("ends", [SIZE // 2], np.int64), const("axes", [3], np.int64),
             const("nan_gate", nan_above), const("zero_gate", zero_above), const("bad", bad), const("zero", 0.0),
             const("one", 1.0)]
    nodes = [
        helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["left"]),
        helper.make_node("ReduceMean", ["left"], ["left_mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Flatten", ["left_mean4"], ["left_mean"]),
        helper.make_node("Flatten", ["input"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["lin"]),
        helper.make_node("Greater", ["left_mean", "nan_gate"], ["is_bad"]),
        helper.make_node("Where", ["is_bad", "bad", "zero"], ["spoil"]),
        helper.make_node("Add", ["lin", "spoil"], ["logits"]),
        helper.make_node("MatMul", ["flat", "we"], ["emb"]),
        helper.make_node("Greater", ["left_mean", "zero_gate"], ["is_zero"]),
        helper.make_node("Where", ["is_zero", "zero", "one"], ["keep"]),
        helper.make_node("Mul", ["emb", "keep"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "gate", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 4])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def halves(rng, left, right, size=(SIZE, SIZE)):
    """A grayscale image ``size`` (width, height) whose left and right halves sit near two levels."""
    w, h = size
    arr = np.empty((h, w), np.uint8)
    arr[:, :w // 2] = np.clip(left + rng.integers(-20, 21, (h, w // 2)), 0, 255)
    arr[:, w // 2:] = np.clip(right + rng.integers(-20, 21, (h, w - w // 2)), 0, 255)
    return Image.fromarray(arr, "L")


def write_tree(root, rng, *, per_class=3, bright_left=()):
    """Classes a, b, c of ``per_class`` images each; the named ones (``"a/a_1.png"``) have a bright left half."""
    for c in "abc":
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            name = f"{c}/{c}_{k}.png"
            halves(rng, BRIGHT if name in bright_left else DARK, int(rng.integers(0, 256))).save(root / name)
    return root


def left_is_bright(path):
    """The brute-force reference of the gate: the left half's mean of the pixels the model sees."""
    arr = np.asarray(Image.open(path).convert("L"), np.float64) / 255.0
    return arr[:, :SIZE // 2].mean() > NAN_GATE


def write_params(path, model, root, *, name=None, data=None, pre=None, outputs=None):
    path.write_text(yaml.safe_dump({
        "name": name or path.stem, "model": str(model), "task": "classification",
        "data": {"root": str(root), **(data or {})}, "preprocess": {**PRE, **(pre or {})},
        "outputs": outputs or {"scores": "logits", "scores_are": "logits", "embedding": None},
        "report": {"bootstrap": 0, "gallery_size": 0}}, allow_unicode=True))
    return path


def run_cli(params, out, capsys):
    """``evallib run PARAMS --out OUT --no-report``: exit code, stderr and the model's run.json."""
    code = main(["run", str(params), "--out", str(out), "--no-report", "--quiet"])
    err = capsys.readouterr().err
    name = yaml.safe_load(params.read_text())["name"]
    return code, err, json.loads((out / name / "run.json").read_text())


def predictions(out, name):
    with np.load(out / name / "predictions.npz") as z:
        return {k: z[k] for k in z.files}


def skipped(run):
    return {s["path"]: s["reason"] for s in run["dataset"]["skipped"]}


def png_header_only(width, height):
    """A PNG whose header declares ``width x height`` gray pixels, with almost no pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"fine": gate_model(root / "fine.onnx", nan_above=np.inf),
            "fine4": gate_model(root / "fine4.onnx", nan_above=np.inf, classes=4),
            "nan": gate_model(root / "nan.onnx"),
            "inf": gate_model(root / "inf.onnx", bad=np.inf),
            "all_nan": gate_model(root / "all_nan.onnx", nan_above=-1.0),
            "zero": gate_model(root / "zero.onnx", nan_above=np.inf, zero_above=NAN_GATE)}


# --- non-finite model outputs ---------------------------------------------------------------

def test_images_with_nan_logits_are_skipped_and_the_rest_evaluated(models, tmp_path, rng, capsys):
    bright = {"a/a_1.png", "b/b_0.png", "b/b_2.png", "c/c_2.png"}
    data = write_tree(tmp_path / "data", rng, bright_left=bright)
    want = {f"{c}/{f}" for c in "abc" for f in os.listdir(data / c) if left_is_bright(data / c / f)}
    assert want == bright  # the reference agrees with how the images were made
    code, err, run = run_cli(write_params(tmp_path / "nan.yaml", models["nan"], data), tmp_path / "out", capsys)
    assert code == 0 and run["status"] == "ok" and "FAILED" not in err
    assert skipped(run) == {p: "output 'logits' gave NaN or infinite values" for p in sorted(want)}
    pred = predictions(tmp_path / "out", "nan")
    assert sorted(pred["paths"].tolist()) == sorted({f"{c}/{c}_{k}.png" for c in "abc" for k in range(3)} - want)
    assert np.isfinite(pred["scores"]).all() and pred["scores"].shape == (5, 3)
    assert run["inference"]["images"] == 5 and run["dataset"]["images"] == 9
    # the command names them, the metrics are on the rest, and the report says how many were left out
    assert (f"WARNING nan: 4 files left out of the metrics: a/a_1.png (output 'logits' gave NaN or infinite "
            f"values); b/b_0.png (output 'logits' gave NaN or infinite values); b/b_2.png (output 'logits' gave NaN "
            f"or infinite values); and 1 more (all in {tmp_path / 'out' / 'nan' / 'run.json'})") in err.splitlines()
    rep = evallib.load(tmp_path / "out" / "nan")
    assert rep.metrics["left_out"] == 4 and rep.classification.n_samples == 5
    assert ("<b>Left out:</b> the metrics are computed on 5 images; 4 files left out; 4 of them because the "
            "model&#39;s output was NaN, infinite or an all-zero embedding") in rep.summary._repr_html_()


def test_a_model_that_gives_nan_for_every_image_fails_with_one_line(models, tmp_path, rng, capsys):
    data = write_tree(tmp_path / "data", rng)
    code, err, run = run_cli(write_params(tmp_path / "all_nan.yaml", models["all_nan"], data), tmp_path / "out",
                             capsys)
    line = "model output 'logits' gave NaN or infinite values for all 9 images (first: a/a_0.png, a/a_1.png, a/a_2.png)"
    assert code == 1 and run["status"] == "failed" and run["error"] == f"ModelError: {line}"
    assert f"FAILED  all_nan: ModelError: {line}" in err.splitlines()
    # files that do not decode are counted apart
    (data / "a" / "a_0.png").write_bytes(b"")
    code, _, run = run_cli(write_params(tmp_path / "all_nan.yaml", models["all_nan"], data), tmp_path / "out",
                           capsys)
    assert code == 1 and run["error"] == ("ModelError: model output 'logits' gave NaN or infinite values for all 8 "
                                          "images that decoded (first: a/a_1.png, a/a_2.png, b/b_0.png); "
                                          "1 more could not be decoded")


@pytest.mark.parametrize("tta", ["none", "flip"])
@pytest.mark.parametrize("batch_size", [2, 64])
def test_views_and_batches_drop_the_same_images_as_the_reference(models, tmp_path, rng, tta, batch_size):
    """With the flip view, an image whose right half is bright gives NaN too (its mirror's left half)."""
    levels = [(DARK, DARK), (BRIGHT, DARK), (DARK, BRIGHT), (BRIGHT, BRIGHT)] * 3
    files = []
    for k, (left, right) in enumerate(levels):
        files.append(tmp_path / f"x_{k}.png")
        halves(rng, left, right).save(files[-1])

    def bad(f):
        arr = np.asarray(Image.open(f), np.float64) / 255.0
        views = [arr, arr[:, ::-1]] if tta == "flip" else [arr]
        return any(v[:, :SIZE // 2].mean() > NAN_GATE for v in views)

    outputs = {"scores": "logits", "scores_are": "logits", "embedding": "embedding"}
    pred = predict(open_session(models["inf"]), files, {**PRE, "tta": tta}, outputs, batch_size=batch_size,
                   progress=False)
    want = [f for f in files if bad(f)]
    assert [f["path"] for f in pred.failed] == [str(f) for f in want] and 0 < len(want) < len(files)
    assert {f["reason"] for f in pred.failed} == {"output 'logits' gave NaN or infinite values"}
    assert pred.kept.tolist() == [i for i, f in enumerate(files) if f not in want]
    assert np.isfinite(pred.scores).all() and np.isfinite(pred.embeddings).all()
    assert len(pred.scores) == len(pred.embeddings) == len(pred.file_hashes) == len(pred.kept)


def test_an_all_zero_embedding_is_dropped(models, tmp_path, rng, capsys):
    data = write_tree(tmp_path / "data", rng, bright_left={"c/c_1.png"})
    params = write_params(tmp_path / "zero.yaml", models["zero"], data,
                          outputs={"scores": "logits", "scores_are": "logits", "embedding": "embedding"})
    code, _, run = run_cli(params, tmp_path / "out", capsys)
    assert code == 0 and skipped(run) == {"c/c_1.png": "output 'embedding' gave an all-zero embedding"}
    pred = predictions(tmp_path / "out", "zero")
    assert len(pred["embeddings"]) == 8 and np.allclose(np.linalg.norm(pred["embeddings"], axis=1), 1)


# --- bad files ------------------------------------------------------------------------------

def test_empty_truncated_non_image_and_bomb_files_are_skipped(models, tmp_path, rng, capsys):
    data = write_tree(tmp_path / "data", rng)
    (data / "a" / "empty.png").write_bytes(b"")
    halves(rng, DARK, DARK, (64, 64)).save(data / "a" / "full.png")
    (data / "a" / "truncated.png").write_bytes((data / "a" / "full.png").read_bytes()[:80])
    (data / "a" / "full.png").unlink()
    (data / "b" / "notes.png").write_text("not an image, in spite of its name\n")
    (data / "b" / "readme.txt").write_text("not listed: not an image extension\n")
    (data / "c" / "bomb.png").write_bytes(png_header_only(100_000, 100_000))  # 10 GB of pixels if decoded
    (data / "c" / "big.png").write_bytes(png_header_only(10_000, 10_000))  # only Pillow's warning range
    filters = list(warnings.filters)
    code, err, run = run_cli(write_params(tmp_path / "bad_files.yaml", models["fine"], data), tmp_path / "out",
                             capsys)
    assert code == 0 and run["status"] == "ok" and run["inference"]["images"] == 9
    reasons = skipped(run)
    assert sorted(reasons) == ["a/empty.png", "a/truncated.png", "b/notes.png", "c/big.png", "c/bomb.png"]
    assert reasons["a/empty.png"] == "empty file (0 bytes)"
    assert reasons["a/truncated.png"].startswith("cannot decode: ") and "truncated" in reasons["a/truncated.png"]
    assert reasons["b/notes.png"] == "cannot decode: not an image file Pillow can read"
    limit = f"{Image.MAX_IMAGE_PIXELS:,}"
    for name, pixels in (("c/bomb.png", "10,000,000,000"), ("c/big.png", "100,000,000")):
        assert reasons[name] == (f"refused: the image declares {pixels} pixels, more than PIL.Image.MAX_IMAGE_PIXELS "
                                 f"({limit}); a possible decompression bomb")
    assert "DecompressionBomb" not in err and list(warnings.filters) == filters  # refused, not warned; no leak
    with pytest.raises(DataError, match=r"refused: the image declares 100,000,000 pixels"):
        load_image(data / "c" / "big.png")


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_like_exif_transpose(tmp_path, rng, orientation):
    arr = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    f = tmp_path / "photo.jpg"
    Image.fromarray(arr, "RGB").save(f, exif=exif, quality=95)
    with Image.open(f) as im:
        want = ImageOps.exif_transpose(im).convert("RGB")
        raw = im.convert("RGB")
    got = load_image(f)
    assert got.size == want.size == raw.size[::-1 if orientation in (6, 8) else 1]
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_exif_rotated_photos_are_evaluated_upright(models, tmp_path, rng, capsys):
    """Rotated JPEGs give the scores of the upright pixels saved losslessly, not of the stored ones."""
    trees = {name: tmp_path / name for name in ("jpeg", "upright", "stored")}
    for c, orientation in zip("ab", (6, 8)):
        for k in range(3):
            exif = Image.Exif()
            exif[0x0112] = orientation
            f = trees["jpeg"] / c / f"{c}_{k}.jpg"
            f.parent.mkdir(parents=True, exist_ok=True)
            halves(rng, DARK, BRIGHT, (SIZE, SIZE + 8)).save(f, exif=exif, quality=95)
            with Image.open(f) as im:
                for name, img in (("upright", ImageOps.exif_transpose(im)), ("stored", im.copy())):
                    (trees[name] / c).mkdir(parents=True, exist_ok=True)
                    img.save(trees[name] / c / f"{c}_{k}.png")
    scores = {}
    for name, root in trees.items():
        params = write_params(tmp_path / f"{name}.yaml", models["fine"], root, pre={"resize": SIZE, "crop": SIZE},
                              data={"classes": ["a", "b", "c"]})  # the model's three columns; no image of c here
        code, err, run = run_cli(params, tmp_path / "out", capsys)
        assert code == 0 and run["dataset"]["skipped"] == [] and run["inference"]["images"] == 6, err
        scores[name] = predictions(tmp_path / "out", name)["scores"]
    np.testing.assert_allclose(scores["jpeg"], scores["upright"], rtol=1e-5)
    assert not np.allclose(scores["jpeg"], scores["stored"], rtol=1e-2)


def test_awkward_file_names_are_evaluated(models, tmp_path, rng, capsys):
    names = ["a/with space.png", "a/quote's \"double\".png", "b/ünïcödé ☃.png", "b/<tag>.png", "c/a&b.png",
             "c/#hash.png", "ç &<#>/x y.png", "ç &<#>/é.png"]
    data = tmp_path / "data"
    for n in names:
        (data / n).parent.mkdir(parents=True, exist_ok=True)
        halves(rng, DARK, int(rng.integers(0, 256))).save(data / n)
    code, err, run = run_cli(write_params(tmp_path / "names.yaml", models["fine4"], data), tmp_path / "out", capsys)
    assert code == 0 and run["status"] == "ok" and run["dataset"]["skipped"] == [] and "FAILED" not in err
    assert run["dataset"]["classes"] == ["a", "b", "c", "ç &<#>"]
    assert sorted(predictions(tmp_path / "out", "names")["paths"].tolist()) == sorted(names)


def test_symlink_loops_do_not_hang_and_are_reported(models, tmp_path, rng, capsys):
    data = write_tree(tmp_path / "data", rng)
    os.symlink(data, data / "loop")  # a class folder that is the data root again
    os.symlink("..", data / "a" / "up")  # a folder link inside a class folder
    os.symlink("self.png", data / "b" / "self.png")  # a link to itself
    os.symlink("ping.png", data / "c" / "pong.png")
    os.symlink("pong.png", data / "c" / "ping.png")
    code, err, run = run_cli(write_params(tmp_path / "loops.yaml", models["fine"], data), tmp_path / "out", capsys)
    assert code == 0 and run["status"] == "ok"
    assert run["dataset"]["classes"] == ["a", "b", "c"] and run["inference"]["images"] == 9
    dead = "a link that leads to no file (broken, or a loop of links)"
    assert skipped(run) == {
        "loop": f"a link to {os.path.realpath(data)}, which holds data.root (a loop): not followed",
        "a/up": "a link to a folder: links inside class folders are not followed",
        "b/self.png": dead, "c/ping.png": dead, "c/pong.png": dead}


def test_an_empty_class_folder_is_a_class_with_no_images(models, tmp_path, rng, capsys):
    # a three-column model on four folders: refused before any metric, naming the classes
    data3 = write_tree(tmp_path / "data3", rng)
    (data3 / "b0_empty").mkdir()
    code, err, run = run_cli(write_params(tmp_path / "three.yaml", models["fine"], data3), tmp_path / "out", capsys)
    assert code == 1 and run["error"] == (
        "DataError: data.root: expected one class per column of output 'logits' (3 columns); got 4 classes "
        "(a, b, b0_empty, c; set data.classes to the model's classes in column order)")
    data = write_tree(tmp_path / "data", rng)
    (data / "b0_empty").mkdir()
    (data / "b0_empty" / "notes.txt").write_text("no images here")
    code, _, run = run_cli(write_params(tmp_path / "empty.yaml", models["fine4"], data), tmp_path / "out", capsys)
    assert code == 0 and run["status"] == "ok"
    # it keeps its place among the sorted folder names, as the model's columns are numbered
    assert run["dataset"]["classes"] == ["a", "b", "b0_empty", "c"]
    assert run["dataset"]["counts"] == {"a": 3, "b": 3, "b0_empty": 0, "c": 3}
    assert predictions(tmp_path / "out", "empty")["labels"].tolist() == [0, 0, 0, 1, 1, 1, 3, 3, 3]


# --- csv manifests --------------------------------------------------------------------------

@pytest.mark.parametrize("rows, error", [
    (["b/b_9.png,b"], r"row 4: expected an image file at 'b/b_9\.png' under data\.root \(.*data\); got no such file"),
    (["a/a_0.png,a"], r"rows 2 and 4: expected each file once; got 'a/a_0\.png' twice"),
    (["./a/../a/a_0.png,b"], r"rows 2 and 4: expected each file once; got '\./a/\.\./a/a_0\.png' twice"),
    (["../other/o.png,a"], r"row 4: expected a path inside data\.root \(.*data\); got '\.\./other/o\.png' "
                           r"\(set data\.allow_outside_root: true to allow it\)"),
    (["/etc/passwd,a"], r"row 4: expected a path inside data\.root \(.*data\); got '/etc/passwd' \(set .*\)"),
])
def test_manifest_problems_name_the_file_and_rows(models, tmp_path, rng, capsys, rows, error):
    data = write_tree(tmp_path / "data", rng, per_class=1)
    (tmp_path / "other").mkdir()
    halves(rng, DARK, DARK).save(tmp_path / "other" / "o.png")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(["path,label", "a/a_0.png,a", "b/b_0.png,b", *rows, "c/c_0.png,c"]) + "\n")
    params = write_params(tmp_path / "csv.yaml", models["fine"], data, data={"labels": "csv", "csv": str(manifest)})
    code, err, run = run_cli(params, tmp_path / "out", capsys)
    assert code == 1 and run["status"] == "failed"
    full = rf"DataError: {re.escape(str(manifest))}: {error}"
    assert re.fullmatch(full, run["error"]), run["error"]
    assert any(re.fullmatch(rf"FAILED  csv: {full}", line) for line in err.splitlines())


def test_manifest_lists_every_problem_and_allows_outside_paths_when_asked(tmp_path, rng):
    data = write_tree(tmp_path / "data", rng, per_class=1)
    (tmp_path / "other").mkdir()
    halves(rng, DARK, DARK).save(tmp_path / "other" / "o.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text("a/a_0.png,a\nb/b_0.png,b\n../other/o.png,c\n" + "".join(f"z/{k}.png,a\n" for k in range(4)))
    with pytest.raises(DataError, match=r"m\.csv: row 3: .*outside.*; row 4: .*'z/0\.png'.*; row 5: .*'z/1\.png'"
                                        r".*; and 2 more rows with problems$"):
        list_images(data, labels="csv", csv_path=manifest)
    manifest.write_text("a/a_0.png,a\nb/b_0.png,b\n../other/o.png,c\n")
    d = list_images(data, labels="csv", csv_path=manifest, allow_outside_root=True)
    assert d.paths == ["a/a_0.png", "b/b_0.png", "../other/o.png"] and d.classes == ["a", "b", "c"]
    assert load_image(d.file(2)).size == (SIZE, SIZE)


def test_the_cli_evaluates_outside_paths_when_the_params_allow_them(models, tmp_path, rng, capsys):
    data = write_tree(tmp_path / "data", rng, per_class=1)
    (tmp_path / "other").mkdir()
    halves(rng, DARK, DARK).save(tmp_path / "other" / "o.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na/a_0.png,a\nb/b_0.png,b\n../other/o.png,c\n")
    params = write_params(tmp_path / "out.yaml", models["fine"], data,
                          data={"labels": "csv", "csv": str(manifest), "allow_outside_root": True})
    code, err, run = run_cli(params, tmp_path / "out", capsys)
    assert code == 0 and run["status"] == "ok" and run["inference"]["images"] == 3, err
    assert predictions(tmp_path / "out", "out")["paths"].tolist() == ["a/a_0.png", "b/b_0.png", "../other/o.png"]


def test_new_params_are_booleans_defaulting_to_false(tmp_path):
    base = {"name": "m", "model": "m.onnx", "data": {"root": "d"}}
    p = parse_params(base, source=tmp_path / "p.yaml")
    assert p.data.allow_outside_root is False and p.report.allow_pickle is False
    p = parse_params({**base, "data": {"root": "d", "allow_outside_root": True}, "report": {"allow_pickle": True}})
    assert p.data.allow_outside_root is True and p.report.allow_pickle is True
    with pytest.raises(ParamsError, match=r"p\.yaml: data\.allow_outside_root: expected a boolean; got 'yes' \(str\)"):
        parse_params({**base, "data": {"root": "d", "allow_outside_root": "yes"}}, source=tmp_path / "p.yaml")
    with pytest.raises(ParamsError, match=r"p\.yaml: report\.allow_pickle: expected a boolean; got 1 \(int\)"):
        parse_params({**base, "report": {"allow_pickle": 1}}, source=tmp_path / "p.yaml")


# --- code execution is explicit -------------------------------------------------------------

def test_a_pickled_torch_module_needs_allow_pickle(tmp_path):
    import torch

    bad = export_unconvertible_model(tmp_path / "bad.onnx", size=16)
    whole = tmp_path / "whole.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten(), torch.nn.Linear(4, 3)), whole)
    refusal = (r"report\.allow_pickle: expected true to load whole\.pt as a pickled torch module \(unpickling runs "
               r"code from the file: allow it only for a file you trust\), or report\.torch_model_factory to read "
               r"it as a state dict; got false")
    with pytest.raises(ModelError, match=refusal):
        load_torch_model(bad, fallback=whole)
    route = cam_route(bad, input_shape=(1, 16, 16), fallback=whole)  # refused: EigenCAM on onnxruntime instead
    assert route.route == "onnxruntime (forward only)" and re.search(refusal, route.notes[0])
    tm = load_torch_model(bad, fallback=whole, allow_pickle=True)
    assert tm.source == "torch module file whole.pt (named in params)"
    route = cam_route(bad, input_shape=(1, 16, 16), fallback=whole, allow_pickle=True)
    assert route.route == "torch model named in params" and route.notes == []
    assert route(np.zeros((2, 1, 16, 16), np.float32), [0, 1]).shape == (2, 16, 16)


def test_a_state_dict_with_a_factory_needs_no_pickle_flag(tmp_path):
    import torch

    from evallib.demo import build_cnn_small

    bad = export_unconvertible_model(tmp_path / "bad.onnx", size=32)
    state = tmp_path / "state.pt"
    torch.save(build_cnn_small().state_dict(), state)
    tm = load_torch_model(bad, fallback=state, factory="evallib.demo:build_cnn_small")
    assert tm.source == "state dict state.pt with evallib.demo:build_cnn_small (named in params)"
