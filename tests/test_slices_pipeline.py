"""Slices through the pipeline: params, image properties measured while decoding, the metrics step's
slices stored in metrics.npz and metrics.json, the report's views, and bad metadata through the CLI."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import check_output_folder
from evallib.data.image_properties import image_properties
from evallib.data.slicing import NO_METADATA
from evallib.errors import DataError, ParamsError
from evallib.metrics.slices import metrics_by_slice, verification_by_group
from evallib.params import parse_params
from evallib.records import Predictions
from evallib.steps_slices import evaluate_slices, slices_summary

SIZE = 16


def _half_model(path, rows=SIZE):
    """An ONNX model that calls an image class ``a`` when its left half is brighter than its right half and
    ``b`` otherwise (logits ±(left - right) mean over the first ``rows`` rows), with the flattened pixels as its
    embedding."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((2, SIZE * SIZE), np.float32)
    left = np.tile(np.arange(SIZE) < SIZE // 2, SIZE)
    w[0] = np.where(left, 1.0, -1.0) * 40 / (SIZE * SIZE) * (np.repeat(np.arange(SIZE), SIZE) < rows)
    w[1] = -w[0]
    nodes = [helper.make_node("Flatten", ["input"], ["embedding"]),
             helper.make_node("Gemm", ["embedding", "w"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "half", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", SIZE * SIZE])],
        initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _planted_data(root, rng, *, per=24, scanners=("s0", "s1", "s2", "s3"), weak="s2"):
    """``root/<class>/<scanner>/<i>.png``: class ``a`` has the brighter left half, ``b`` the brighter right
    half; scanner ``weak`` takes dark, flat images whose halves differ by less than the noise, so the model
    is about at chance there. Returns the metadata rows ``(path, site)``."""
    rows = []
    for c in ("a", "b"):
        for s in scanners:
            (root / c / s).mkdir(parents=True, exist_ok=True)
            for i in range(per):
                if s == weak:
                    img = rng.normal(40, 12, (SIZE, SIZE))
                else:
                    img = rng.normal(120, 20, (SIZE, SIZE))
                    side = slice(0, SIZE // 2) if c == "a" else slice(SIZE // 2, SIZE)
                    img[:, side] += 60
                rel = f"{c}/{s}/{i}.png"
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").save(root / rel)
                rows.append((rel, "north" if rng.random() < 0.5 else "south"))
    return rows


def _params_doc(t, model, data, **data_keys):
    return {"name": "half", "model": str(model), "data": {"root": str(data), **data_keys},
            "preprocess": {"mode": "grayscale"},
            "report": {"bootstrap": 20, "gallery_size": 0, "min_slice_size": 10}}


# ------------------------------------------------------------------------------ one pipeline run
@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    import evallib
    from evallib.run import run_many

    t = tmp_path_factory.mktemp("slices")
    model = _half_model(t / "half.onnx")
    data = t / "data"
    rows = _planted_data(data, np.random.default_rng(3))
    meta = t / "meta.csv"
    meta.write_text("path,site\n" + "".join(f"{p},{s}\n" for p, s in rows[:-5]))  # 5 images without metadata
    (t / "half.yaml").write_text(yaml.safe_dump(_params_doc(t, model, data, metadata=str(meta),
                                                            folder_slices={"scanner": -1})))
    doc = _params_doc(t, _half_model(t / "top.onnx", rows=2), data, metadata=str(meta), folder_slices={"scanner": -1})
    (t / "top.yaml").write_text(yaml.safe_dump({**doc, "name": "top"}))  # a second model: two rows of pixels only
    for facts in run_many([t / "half.yaml", t / "top.yaml"], t / "out", progress=False):
        assert facts["status"] == "ok", facts.get("error")
    check_output_folder(t / "out" / "half")
    return t, evallib.load(t / "out" / "half"), rows


@pytest.mark.slow
def test_planted_weak_scanner_is_found_end_to_end(planted):
    t, rep, rows = planted
    found = rep.evaluation.slices
    assert found.sources == {"site": "metadata", "scanner": "folders", "brightness": "image properties",
                             "contrast": "image properties", "blur": "image properties"}
    r = found.by_slice
    weak = [w.name for w in r.weak]
    assert weak and weak[0] in ("scanner=s2", "brightness=< " + weak[0].split("< ")[-1])
    s2 = r.row("scanner=s2")
    assert s2.weak and s2.q_value < 0.05 and s2.n == 48
    # equal to a computation on the subset from the stored predictions
    y, pred = rep.pred.labels, rep.pred.scores.argmax(1)
    mask = np.array(["/s2/" in p for p in rep.pred.paths])
    assert s2.accuracy == pytest.approx((y[mask] == pred[mask]).mean())
    assert all(rep.evaluation.slices.columns["site"][np.array([p in {q for q, _ in rows[-5:]}
                                                               for p in rep.pred.paths])] == NO_METADATA)
    # the properties were measured on the decoded files
    i = 7
    expect = image_properties(np.asarray(Image.open(Path(rep.pred.root) / rep.pred.paths[i])))
    assert rep.pred.image_properties["brightness"][i] == pytest.approx(expect.brightness)
    assert rep.pred.image_properties["blur"][i] == pytest.approx(expect.blur)
    # metrics.json lists the weakest confirmed slices with n and interval
    entry = rep.metrics["slices"]
    assert entry["weakest"][0]["name"] == r.weak[0].name and entry["weakest"][0]["n"] == r.weak[0].n
    lo, hi = entry["weakest"][0]["interval"]
    assert lo <= entry["weakest"][0]["accuracy"] <= hi
    # the discovery confirms the dark scanner on the held-out half
    assert any("s2" in c.name or "brightness" in c.name or "contrast" in c.name
               for c in found.discovery.confirmed)
    # the report's view
    html = rep.where_it_fails._repr_html_()
    assert "scanner=s2" in html and "held-out" in html


@pytest.mark.slow
def test_the_index_table_compares_the_models_slice_by_slice_on_the_same_images(planted):
    from evallib.compare import Comparison
    from evallib.evaluation import read_slices
    from evallib.metrics.slices import models_by_slice
    from evallib.outputs import load_predictions

    t, rep, _ = planted
    section = Comparison.load(t / "out").by_slice()
    [disp] = section.displays
    r = disp.result
    assert set(r.models) == {"half", "top"}
    ref, other = r.models
    pa, pb = load_predictions(t / "out" / ref), load_predictions(t / "out" / other)
    assert list(pa["paths"]) == list(pb["paths"])  # the same files, in the same order here
    cols = read_slices(t / "out" / ref).columns
    want = models_by_slice(pa["labels"], {ref: pa["scores"], other: pb["scores"]}, cols, reference=ref,
                           min_slice_size=10)
    assert r.slices == want.slices and np.array_equal(r.n, want.n)
    assert np.allclose(r.accuracy, want.accuracy) and np.allclose(r.q_value, want.q_value, equal_nan=True)
    html = section._repr_html_()
    assert "scanner=s2" in html and "McNemar" in html and "Benjamini" in html
    # the weak slice's strips: its mistakes, and heat maps or the reason there are none
    import dataclasses

    import evallib

    again = evallib.load(t / "out" / ref)
    again.params = dataclasses.replace(again.params, report=dataclasses.replace(again.params.report, gallery_size=6))
    strips = again._slice_mistakes(again.evaluation.slices)
    assert strips.slices and strips.slices[0] == again.evaluation.slices.by_slice.weak[0].name
    if again.cam_route("scores") is None:  # the images alone, and why
        assert strips.row_labels == strips.slices and strips.facts[0] == ["no heat maps", again.cam_reason]
    else:
        assert strips.row_labels[1] == "heat maps"
    print(strips.row_labels, strips.facts)


@pytest.mark.slow
def test_changing_the_metadata_recomputes_the_metrics(planted):
    from evallib._keys import metrics_key
    from evallib.params import load_params

    t, rep, _ = planted
    params = load_params(t / "half.yaml")
    before = metrics_key(params, "k")
    meta = t / "meta.csv"
    text = meta.read_text()
    try:
        meta.write_text(text.replace("north", "east"))
        assert metrics_key(params, "k") != before
    finally:
        meta.write_text(text)


# ------------------------------------------------------------------------- bad metadata via the CLI
@pytest.mark.parametrize("content, message", [
    ("path,site\na/x/0.png,north\na/x/0.png,south\n", r"meta\.csv: each image may be listed once; duplicate "
                                                       r"paths at row 3 \(same path as row 2"),
    ("path,site\na/x/0.png,north\na/x/9.png,south\nb/x/7.png,east\n", r"meta\.csv: paths not among the 4 "
                                                                      r"evaluated images at rows 3 .*, 4 "),
    ("path,site\na/x/0.png,\nb/x/1.png,east\n", r"meta\.csv: missing values \(column 'site': row 2\)"),
])
def test_bad_metadata_fails_the_run_naming_the_file_and_rows(tmp_path, capsys, content, message):
    import re

    from evallib.cli import main

    data = tmp_path / "data"
    for c in ("a", "b"):
        (data / c / "x").mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.zeros((SIZE, SIZE), np.uint8), "L").save(data / c / "x" / f"{i}.png")
    (tmp_path / "meta.csv").write_text(content)
    doc = _params_doc(tmp_path, _half_model(tmp_path / "half.onnx"), data, metadata="meta.csv")
    (tmp_path / "half.yaml").write_text(yaml.safe_dump(doc))
    code = main(["run", str(tmp_path / "half.yaml"), "--out", str(tmp_path / "out"), "--no-report", "--quiet"])
    assert code != 0
    said = capsys.readouterr()
    said = said.out + said.err
    assert re.search(message, said), said
    assert not (tmp_path / "out" / "half" / "predictions.npz").exists()  # it failed before inference


def test_metadata_and_folder_slices_are_checked_in_the_params(tmp_path):
    base = {"name": "m", "model": "m.onnx", "data": {"root": "data"}}
    p = parse_params({**base, "data": {"root": "data", "metadata": "meta.csv", "folder_slices": {"scanner": 0}},
                      "report": {"min_slice_size": 12, "min_slice_effect": 0.05}}, base_dir=tmp_path)
    assert p.data.metadata == (tmp_path / "meta.csv").resolve() and p.data.folder_slices == {"scanner": 0}
    assert p.report.min_slice_size == 12 and p.report.min_slice_effect == 0.05
    with pytest.raises(ParamsError, match=r"data\.folder_slices\.scanner: expected a integer|data.folder_slices"):
        parse_params({**base, "data": {"root": "data", "folder_slices": {"scanner": "top"}}}, base_dir=tmp_path)
    with pytest.raises(ParamsError, match=r"report\.min_slice_size: expected a number >= 1; got 0"):
        parse_params({**base, "report": {"min_slice_size": 0}}, base_dir=tmp_path)


# ---------------------------------------------------------------------- the step, from arrays
def _params(tmp_path, task="classification", **data_keys):
    doc = {"name": "m", "model": "m.onnx", "task": task, "data": {"root": str(tmp_path), **data_keys},
           "outputs": {"embedding": "embedding"} if task != "classification" else {},
           "report": {"bootstrap": 50, "min_slice_size": 20, "far_target": 0.01}}
    return parse_params(doc, base_dir=tmp_path)


def test_the_step_equals_the_metric_functions_on_the_same_columns(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    paths = [f"{'ab'[i % 2]}/{'cam' + str(i % 4)}/{i}.png" for i in range(n)]
    y = np.arange(n) % 2
    logits = rng.normal(size=(n, 2))
    logits[np.arange(n), y] += 2
    (tmp_path / "meta.csv").write_text("path,site\n" + "".join(f"{p},{'xyz'[i % 3]}\n" for i, p in enumerate(paths)))
    props = {"brightness": rng.random(n), "contrast": rng.random(n), "blur": rng.random(n) * 100,
             "pixels": np.full(n, 256.0), "aspect_ratio": np.ones(n)}
    pred = Predictions(scores=logits, scores_are="logits", paths=paths, labels=y, classes=["a", "b"],
                       root=str(tmp_path), image_properties=props)
    params = _params(tmp_path, metadata="meta.csv", folder_slices={"camera": 1})
    found = evaluate_slices(params, pred)
    assert list(found.columns) == ["site", "camera", "brightness", "contrast", "blur"]  # constant size dropped
    ref = metrics_by_slice(y, logits, found.columns, top_k=5, min_slice_size=20, min_slice_effect=0.02)
    assert [(r.name, r.n, r.accuracy, r.q_value, r.macro_f1_interval) for r in found.by_slice.rows] == \
        [(r.name, r.n, r.accuracy, r.q_value, r.macro_f1_interval) for r in ref.rows]
    assert found.discovery is not None and found.by_group is None
    entry = slices_summary(found)
    assert entry["tested"] == ref.n_tests and entry["columns"]["camera"] == "folders"


def test_a_name_on_both_metadata_and_folders_is_an_error(tmp_path):
    paths = ["a/c0/0.png", "b/c1/1.png"]
    (tmp_path / "meta.csv").write_text("path,camera\na/c0/0.png,x\nb/c1/1.png,y\n")
    pred = Predictions(scores=np.eye(2), scores_are="logits", paths=paths, labels=np.array([0, 1]),
                       classes=["a", "b"], root=str(tmp_path))
    with pytest.raises(DataError, match=r"data\.folder_slices: 'camera' is also a column of the metadata file"):
        evaluate_slices(_params(tmp_path, metadata="meta.csv", folder_slices={"camera": 1}), pred)


def test_verification_by_group_from_metadata_equals_brute_force(tmp_path):
    rng = np.random.default_rng(1)
    ids, per = 40, 4
    y = np.repeat(np.arange(ids), per)
    group = np.where(np.arange(ids) < 20, "g1", "g2")[y]
    centres = rng.normal(size=(ids, 8))
    e = centres[y] + rng.normal(scale=np.where(group == "g2", 1.2, 0.6)[:, None], size=(len(y), 8))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    paths = [f"{k}_{i}.png" for i, k in enumerate(y)]
    (tmp_path / "meta.csv").write_text("path,camera,region\n" + "".join(
        f"{p},{'cd'[i % 2]},{g}\n" for i, (p, g) in enumerate(zip(paths, group))))
    pred = Predictions(embeddings=e, paths=paths, labels=y, classes=[str(k) for k in range(ids)], root=str(tmp_path))
    found = evaluate_slices(_params(tmp_path, task="verification", metadata="meta.csv"), pred)
    assert found.group_column == "region" and found.by_slice is None  # camera varies within an identity
    res = found.by_group
    i, j = np.triu_indices(len(y), 1)
    s, same = (e[i] * e[j]).sum(1), y[i] == y[j]
    for row in res.rows:
        both = (group[i] == row.group) & (group[j] == row.group)
        assert row.n_genuine == (both & same).sum()
        assert row.fnmr == pytest.approx((s[both & same] < res.threshold).mean())
        assert row.fmr == pytest.approx((s[both & ~same] >= res.threshold).mean())
    ref = verification_by_group(s, same, group[i], group[j], far=0.01, ids_a=y[i], ids_b=y[j], n_boot=50, seed=0)
    assert res.threshold == ref.threshold and res.fmr_ratio == ref.fmr_ratio
    with pytest.raises(DataError, match=r"report\.verification_group: expected a column of the metadata file "
                                        r"\(camera, region\); got 'age'"):
        params = _params(tmp_path, task="verification", metadata="meta.csv")
        import dataclasses
        evaluate_slices(dataclasses.replace(params, report=dataclasses.replace(params.report,
                                                                               verification_group="age")), pred)


def test_discovery_does_not_fill_its_candidates_with_a_weak_slices_intersections():
    from evallib.metrics.slices import discover_weak_slices

    rng = np.random.default_rng(4)
    n = 4000
    scanner = rng.choice([f"s{k}" for k in range(8)], n)
    site = rng.choice([f"t{k}" for k in range(6)], n)
    y = rng.integers(0, 3, n)
    right = rng.random(n) < np.where(scanner == "s1", 0.4, 0.9)
    pred = np.where(right, y, (y + 1) % 3)
    found = discover_weak_slices(y, pred, slices={"scanner": scanner, "site": site}, min_slice_size=20, seed=0)
    names = [c.name for c in found.candidates]
    assert names[0] == "scanner=s1" and found.candidates[0].confirmed
    # brute force: an intersection with s1 stays only if, on the discovery half, it is less accurate than the
    # rest of s1 (one-sided Fisher p < 0.05)
    from scipy.stats import fisher_exact

    disc = ~found.holdout
    for name in names:
        if name.startswith("scanner=s1 & "):
            child = disc & (scanner == "s1") & (site == name.split("site=")[1])
            rest = disc & (scanner == "s1") & ~child
            table = [[right[child].sum(), (~right[child]).sum()], [right[rest].sum(), (~right[rest]).sum()]]
            assert fisher_exact(table, alternative="less")[1] < 0.05, name
    assert sum(nm.startswith("scanner=s1 & ") for nm in names) <= 1
