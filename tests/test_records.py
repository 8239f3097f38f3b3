"""Typed records between the stages: params sections, one Predictions type, run.json and metrics.json
written from records with a format version and checked against their JSON Schemas in docs/schemas/."""

import dataclasses
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

from conftest import check_output_folder, export_tiny_model, output_schema, write_image_tree
from evallib import outputs
from evallib.data import preprocess
from evallib.errors import DataError, ParamsError
from evallib.inference import open_session, predict
from evallib.params import (
    DEFAULTS,
    DataParams,
    OutputsParams,
    Params,
    PreprocessParams,
    ReportParams,
    RuntimeParams,
    parse_params,
)
from evallib.records import METRICS_FORMAT_VERSION, RUN_FORMAT_VERSION, FailedRun, MetricsRecord, Predictions, RunFacts
from evallib.run import run_many

schema = output_schema


@pytest.fixture(scope="module")
def outs(tmp_path_factory):
    """Outputs as ``evallib run`` writes them: a model of both tasks with test-time flips, on data with a file
    that does not decode; and a params file whose model is missing (a failed run)."""
    t = tmp_path_factory.mktemp("records")
    model = export_tiny_model(t / "tiny.onnx")
    data = write_image_tree(t / "data", np.random.default_rng(0), per_class=4)
    (data / "a" / "broken.png").write_bytes(b"not a png")
    base = {"model": str(model), "data": {"root": str(data)}, "report": {"bootstrap": 20, "gallery_size": 0},
            "preprocess": {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale"}}
    docs = {
        "both": {**base, "name": "both", "task": "both", "preprocess": {**base["preprocess"], "tta": "flip"},
                 "outputs": {"scores": "logits", "embedding": "embedding"}},
        "gone": {**base, "name": "gone", "model": str(t / "missing.onnx")},
    }
    files = []
    for name, doc in docs.items():
        (t / f"{name}.yaml").write_text(yaml.safe_dump(doc))
        files.append(t / f"{name}.yaml")
    results = run_many(files, t / "out", progress=False)
    return t, files, results


def test_run_and_metrics_files_match_their_schemas(outs):
    t, files, results = outs
    assert [r["status"] for r in results] == ["ok", "failed"]
    for name in ("both", "gone"):
        run = check_output_folder(t / "out" / name)
        assert run["format_version"] == RUN_FORMAT_VERSION
    m = json.loads((t / "out" / "both" / "metrics.json").read_text())
    assert m["format_version"] == METRICS_FORMAT_VERSION and m["metrics_key"] == results[0]["metrics_key"]
    assert {"classification", "verification"} <= set(m) and "center_crop" in m["classification"]
    # a rerun reuses the predictions and writes run.json again, still valid
    again = run_many(files[:1], t / "out", progress=False)[0]
    assert again["inference"]["cached"] is True
    check_output_folder(t / "out" / "both")


def test_the_schemas_refuse_what_a_reader_could_not_use(outs):
    t, _, _ = outs
    run = json.loads((t / "out" / "both" / "run.json").read_text())
    m = json.loads((t / "out" / "both" / "metrics.json").read_text())
    broken = [
        ("run", {k: v for k, v in run.items() if k != "predictions_key"}),
        ("run", {**run, "status": "done"}),
        ("run", {**run, "dataset": {**run["dataset"], "skipped": [{"path": "a.png"}]}}),
        ("run", {**run, "format_version": 2}),
        ("run", {**run, "extra": 1}),
        ("metrics", {**m, "headline": {**m["headline"], "accuracy": {"value": 0.5, "interval": [0.1]}}}),
        ("metrics", {**m, "primary_metric": "f1"}),
        ("metrics", {k: v for k, v in m.items() if k != "run"}),
    ]
    for which, doc in broken:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema(which))


def test_run_json_is_written_from_its_record(outs, tmp_path):
    t, _, _ = outs
    run = json.loads((t / "out" / "both" / "run.json").read_text())
    rec = RunFacts.from_dict(run)
    assert isinstance(rec.dataset.counts, dict) and rec.inference.tta == "flip"
    assert rec.to_dict() == run  # the record holds exactly what the file holds
    legacy = {k: v for k, v in run.items() if k != "format_version"}  # a file of an earlier version
    assert RunFacts.from_dict(legacy).to_dict() == run
    with pytest.raises(ValueError, match=r"RunFacts: expected the keys .*; got unknown keys \['speed'\]"):
        outputs.write_run(tmp_path, {**run, "speed": 3})
    with pytest.raises(ValueError, match=r"RunFacts: .*got no data_fingerprint, predictions_key"):
        outputs.write_run(tmp_path, {k: v for k, v in run.items() if k not in ("predictions_key", "data_fingerprint")})
    assert not (tmp_path / "run.json").exists()  # nothing written
    outputs.write_run(tmp_path, FailedRun(name="x", params_file="x.yaml", error="E", expected=True, traceback=""))
    assert json.loads((tmp_path / "run.json").read_text()) == {
        "name": "x", "params_file": "x.yaml", "error": "E", "expected": True, "traceback": "", "status": "failed",
        "format_version": RUN_FORMAT_VERSION}
    m = json.loads((t / "out" / "both" / "metrics.json").read_text())
    assert MetricsRecord.from_dict(m).to_dict().keys() == m.keys()


def test_predictions_are_one_type_made_written_and_loaded(outs):
    t, files, _ = outs
    pred = outputs.load_predictions(t / "out" / "both")
    assert type(pred) is Predictions
    params = parse_params(yaml.safe_load(files[0].read_text()), source=files[0])
    from evallib.data import list_images

    ds = list_images(params.data.root)
    made = predict(open_session(params.model), [ds.file(i) for i in range(len(ds))], params.preprocess,
                   params.outputs, progress=False)
    assert type(made) is Predictions
    np.testing.assert_allclose(made.scores, pred.scores, rtol=1e-6)
    np.testing.assert_allclose(made.embeddings, pred.embeddings, rtol=1e-6)
    assert made.file_hashes == pred.file_hashes and pred.paths == [ds.paths[i] for i in made.kept]
    assert pred.skipped == [{"path": "a/broken.png", "reason": made.failed[0]["reason"]}]
    # the record round-trips through its arrays, and keeps the dict view of earlier versions
    back = Predictions.from_arrays(pred.to_arrays())
    for f in dataclasses.fields(Predictions):
        a, b = getattr(pred, f.name), getattr(back, f.name)
        if f.name == "image_properties":  # a dict of arrays
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), f.name
            continue
        assert (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b), f.name
    assert pred["scores"] is pred.scores and "scores_center" in pred and "embeddings" in pred
    ver = dataclasses.replace(pred, scores=None, scores_center=None)  # an embedding model's
    assert "scores" not in ver and ver.get("scores", "none") == "none" and ver.scores is None
    with pytest.raises(KeyError):
        ver["scores"]
    assert pred["skipped_paths"] == ["a/broken.png"]


def test_params_sections_are_frozen_dataclasses_with_one_set_of_defaults(tmp_path):
    p = parse_params({"name": "m", "model": "m.onnx", "data": {"root": "d", "extensions": ["PNG"]},
                      "preprocess": {"resize": [20, 18], "mean": [0.5, 0.4, 0.3]}}, source=tmp_path / "p.yaml")
    assert isinstance(p.data, DataParams) and isinstance(p.preprocess, PreprocessParams)
    assert isinstance(p.outputs, OutputsParams) and isinstance(p.report, ReportParams)
    assert isinstance(p.runtime, RuntimeParams)
    assert p.data.extensions == (".png",) and p.preprocess.resize == (20, 18)
    assert p.preprocess.resize_mode == "exact"  # filled in from the resize
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.preprocess.tta = "flip"
    # the defaults are the dataclass fields' defaults, nowhere else
    for section, cls in (("preprocess", PreprocessParams), ("outputs", OutputsParams), ("report", ReportParams),
                         ("runtime", RuntimeParams)):
        assert cls().to_dict() == DEFAULTS[section]
    assert Params.from_dict(p.to_dict()) == p
    assert json.loads(json.dumps(p.settings())) == p.settings()
    # run.json of another version: unknown keys left out, new keys take their defaults
    old = p.to_dict()
    old["report"] = {k: v for k, v in old["report"].items() if k != "tsne_perplexity"} | {"gone": 1}
    assert Params.from_dict(old).report.tsne_perplexity == 30.0


def test_a_section_checks_its_rules_however_it_is_made():
    with pytest.raises(ParamsError, match=r"preprocess\.interpolation: expected one of nearest, bilinear, bicubic, "
                                          r"lanczos, area; got 'box'"):
        PreprocessParams(interpolation="box")
    with pytest.raises(ParamsError, match=r"preprocess\.crop_pct: expected preprocess\.crop with it"):
        PreprocessParams(crop_pct=0.9)
    ok = PreprocessParams(resize=[8, 8], resize_mode="fit", pad_value=114)
    with pytest.raises(ParamsError, match=r"preprocess\.pad_value: expected resize_mode 'fit' with it"):
        dataclasses.replace(ok, resize_mode="exact")
    with pytest.raises(ParamsError, match=r"report\.far_target: expected a number < 1; got 1\.5"):
        ReportParams(far_target=1.5)
    with pytest.raises(ParamsError, match=r"data\.csv: expected a manifest path when data\.labels is 'csv'"):
        DataParams(root="d", labels="csv")
    with pytest.raises(ParamsError, match=r"outputs\.embedding: expected the name of the ONNX output"):
        Params(name="m", model=Path("m.onnx"), tasks=("verification",), data=DataParams(root="d"))
    img = __import__("PIL.Image").Image.new("L", (10, 12))
    with pytest.raises(DataError, match=r"preprocess\.std\.0: expected a number > 0; got 0"):
        preprocess(img, {"std": [0]})  # a function given a mapping says which argument key is wrong
