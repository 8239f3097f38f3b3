"""Params files: validation before any work, errors that name file, key, expectation and value."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evallib.demo import MODELS, VERSIONS
from evallib.errors import ParamsError
from evallib.params import find_params, load_params

BASE = {
    "name": "m1", "model": "models/m.onnx", "task": "both",
    "data": {"root": "data", "labels": "folder"},
    "preprocess": {"resize": 36, "crop": 32, "tta": "tencrop", "mode": "grayscale"},
    "outputs": {"scores": "logits", "embedding": "embedding"},
}


def _write(tmp_path, doc, name="p.yaml"):
    f = tmp_path / name
    f.write_text(yaml.safe_dump(doc) if isinstance(doc, dict) else doc)
    return f


def _with(path, value):
    import copy

    doc = copy.deepcopy(BASE)
    node = doc
    for k in path[:-1]:
        node = node.setdefault(k, {})
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def test_valid_file_resolves_paths_against_its_folder(tmp_path):
    sub = tmp_path / "params"
    sub.mkdir()
    p = load_params(_write(sub, _with(["model"], "../models/m.onnx")))
    assert p.model == (tmp_path / "models" / "m.onnx").resolve()
    assert p.data.root == (sub / "data").resolve()
    assert p.tasks == ("classification", "verification")
    assert p.preprocess.mean == (0.0,) and p.report.bootstrap == 1000  # defaults filled in
    assert p.outputs.scores_are == "auto"  # decided from the scores unless declared


@pytest.mark.parametrize("path, value, match", [
    (["preprocess", "tta"], "tencorp", r"p\.yaml: preprocess\.tta: expected one of none, flip, tencrop; got 'tencorp'"),
    (["preprocess", "crop"], None, r"p\.yaml: preprocess\.tta: expected preprocess\.crop with tta 'tencrop' \(the ten"
                                   r" crops need a crop size\); got no crop"),
    (["task"], "detection", r"p\.yaml: task: expected one of classification, verification, both, or a list of them;"
                            r" got 'detection'"),
    (["data", "labels"], "folders", r"p\.yaml: data\.labels: expected one of folder, filename_prefix, csv; got"
                                    r" 'folders'"),
    (["preprocess", "crop"], 0, r"p\.yaml: preprocess\.crop: expected an integer, \[height, width\], or null; got 0"),
    (["preprocess", "std"], [0.0], r"p\.yaml: preprocess\.std\.0: expected a number > 0; got 0\.0"),
    (["preprocess", "batch_size"], "big", r"p\.yaml: preprocess\.batch_size: expected an integer; got 'big' \(str\)"),
    (["model"], KeyError, r"p\.yaml: model: expected this key to be present; got nothing"),
    (["data", "rooot"], "x", r"p\.yaml: data\.rooot: unknown key; expected one of allow_outside_root, classes, csv,"
                             r" .*extensions, .*labels, .*pairs, .*root"),
    (["name"], "has space", r"p\.yaml: name: expected letters, digits, '_', '\.', '-' \(it names the output folder\);"
                            r" got 'has space'"),
    (["outputs", "embedding"], None, r"p\.yaml: outputs\.embedding: expected the name of the ONNX output with the"
                                     r" embedding for task verification; got None"),
    (["data", "labels"], "csv", r"p\.yaml: data\.csv: expected a manifest path when data\.labels is 'csv'; got"
                                r" nothing"),
    (["preprocess", "mean"], [0.1, 0.2], r"p\.yaml: preprocess\.mean: expected 1 value or one per channel \(3\); got 2"
                                         r" values"),
    (["outputs", "scores_are"], "softmax", r"p\.yaml: outputs\.scores_are: expected one of auto, logits,"
                                           r" probabilities; got 'softmax'"),
])
def test_errors_name_file_key_expected_and_got(tmp_path, path, value, match):
    with pytest.raises(ParamsError, match=match):
        load_params(_write(tmp_path, _with(path, value)))


def test_several_errors_are_reported_together(tmp_path):
    doc = _with(["preprocess", "tta"], "tencorp")
    doc["report"] = {"threshold_policy": "best"}
    with pytest.raises(ParamsError) as exc:
        load_params(_write(tmp_path, doc))
    assert "preprocess.tta" in str(exc.value) and "report.threshold_policy" in str(exc.value)


def test_yaml_syntax_and_missing_file(tmp_path):
    with pytest.raises(ParamsError, match=r"bad\.yaml: expected valid YAML; got a syntax error \(line 2"):
        load_params(_write(tmp_path, "name: a\n  model: [\n", "bad.yaml"))
    with pytest.raises(ParamsError, match=r"nope\.yaml: expected a params YAML file; got no such file"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(ParamsError, match=r"list\.yaml: \(top level\): expected a mapping of keys; got list"):
        load_params(_write(tmp_path, "- a\n- b\n", "list.yaml"))


def test_find_params_expands_folders(tmp_path):
    _write(tmp_path, BASE, "b.yaml"), _write(tmp_path, BASE, "a.yml")
    assert sorted(p.name for p in find_params([tmp_path])) == ["a.yml", "b.yaml"]
    with pytest.raises(ParamsError, match="expected a params file or folder; got no such path"):
        find_params([tmp_path / "missing"])


def test_repo_params_files_are_valid():
    files = sorted((Path(__file__).parent.parent / "params").glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        p = load_params(f)
        assert p.name == f.stem and p.model.stem in (*MODELS, *VERSIONS)  # a model the demo builds


def test_params_import_jsonschema_without_the_slow_iri_checker():
    # rfc3987_syntax builds its parsers when imported (seconds per process, jsonschema#1428); evallib hides it
    # while it imports jsonschema, and leaves it importable for other code
    code = ("import sys, evallib.params, jsonschema; assert 'rfc3987_syntax' not in sys.modules; "
            "assert jsonschema.Draft202012Validator({'type': 'integer'}).is_valid(3); "
            "import importlib.util\n"
            "if importlib.util.find_spec('rfc3987_syntax'): import rfc3987_syntax\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
