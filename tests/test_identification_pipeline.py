"""1:N identification and templates through the pipeline: roles from a manifest column, IJB-style
protocol files, their errors through the CLI, and the report's views."""

import json
import re

import numpy as np
import pytest
import yaml

from conftest import export_tiny_model, write_image_tree
from evallib.cli import main
from evallib.metrics.identification import evaluate_identification
from evallib.metrics.templates import evaluate_template_identification, evaluate_template_verification, pool_templates

CLASSES = ("a", "b", "c", "d")  # d has no gallery image: its probes are non-mated searches


def _dataset(tmp_path):
    """Images, a manifest with a role column, and IJB-style protocol files over them."""
    rng = np.random.default_rng(0)
    data = write_image_tree(tmp_path / "data", rng, classes=CLASSES, per_class=4, size=(16, 16))
    rows, tid_mid, gallery, probes, templates = [], [], [], [], []
    for c, name in enumerate(CLASSES):
        for k in range(4):
            path = f"{name}/{name}_{k}.png"
            role = "gallery" if k < 2 and name != "d" else "probe"
            rows.append(f"{path},{name},{role}")
            t = 10 * (c + 1) + k // 2  # two templates per class: images 0-1 and 2-3
            tid_mid.append(f"{path} {t} {100 * t + k}")
            (gallery if k < 2 and name != "d" else probes).append((t, c + 1, path))
            templates.append(t)
    (tmp_path / "manifest.csv").write_text("path,label,role\n" + "\n".join(rows) + "\n")
    (tmp_path / "face_tid_mid.txt").write_text("\n".join(tid_mid) + "\n")
    ts = sorted(set(templates))
    pairs = [f"{a} {b} {int(a // 10 == b // 10)}" for i, a in enumerate(ts) for b in ts[i + 1:]]
    (tmp_path / "template_pair_label.txt").write_text("\n".join(pairs) + "\n")
    for name, lst in (("gallery.csv", gallery), ("probes.csv", probes)):
        (tmp_path / name).write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n" + "\n".join(f"{t},{s},{p}" for t, s, p in lst)
                                     + "\n")
    export_tiny_model(tmp_path / "model.onnx", size=16)
    return data


def _params(tmp_path, name, **data):
    p = {"name": name, "model": "model.onnx", "task": "verification",
         "data": {"root": "data", "labels": "csv", "csv": "manifest.csv", **data},
         "preprocess": {"mode": "grayscale", "batch_size": 8},
         "outputs": {"scores": None, "embedding": "embedding"},
         "report": {"bootstrap": 40, "gallery_size": 2}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


PROTOCOL = {"role_column": "role", "templates": "face_tid_mid.txt", "template_pairs": "template_pair_label.txt",
            "gallery": "gallery.csv", "probes": "probes.csv"}


@pytest.mark.slow
def test_roles_and_templates_through_the_pipeline(tmp_path, evaluated):
    _dataset(tmp_path)
    rep = evaluated(_params(tmp_path, "ident", **PROTOCOL), tmp_path / "out")
    ident = rep.evaluation.identification
    emb, y, paths = rep.pred["embeddings"], rep.y, list(rep.pred["paths"])
    # the image search: the same numbers as the search of the verification pass's embeddings
    role = {f"{n}/{n}_{k}.png": ("gallery" if k < 2 and n != "d" else "probe") for n in CLASSES for k in range(4)}
    probe = np.array([i for i, p in enumerate(paths) if role[p] == "probe"])
    gallery = np.array([i for i, p in enumerate(paths) if role[p] == "gallery"])
    np.testing.assert_array_equal(ident.probe_rows, probe)
    ref = evaluate_identification(emb[probe], y[probe], emb[gallery], y[gallery], threads=1)
    r = ident.images
    assert (r.n_mated, r.n_nonmated, r.n_gallery_identities) == (6, 4, 3)
    np.testing.assert_array_equal(r.ranks, ref.ranks)
    np.testing.assert_array_equal(r.cmc, ref.cmc)
    assert r.rank_accuracy == ref.rank_accuracy
    # templates: pooled from the same embeddings, in the protocol's image order
    tid = {p: 10 * (CLASSES.index(p[0]) + 1) + int(p[-5]) // 2 for p in paths}
    feats = pool_templates(emb, np.array([tid[p] for p in paths]), np.array([100 * tid[p] + int(p[-5]) for p in paths]))
    np.testing.assert_allclose(ident.templates.features, feats.features, atol=1e-12)
    ts = feats.templates
    t1, t2 = np.array([(a, b) for i, a in enumerate(ts) for b in ts[i + 1:]]).T
    ver = evaluate_template_verification(feats, t1, t2, t1 // 10 == t2 // 10)
    assert ident.template_verification.auc == pytest.approx(ver.auc, abs=1e-12)
    gt, pt = np.array([10, 20, 30]), np.array([11, 21, 31, 40, 41])
    tref = evaluate_template_identification(feats, gallery_templates=gt, gallery_subjects=gt // 10,
                                            probe_templates=pt, probe_subjects=pt // 10, threads=1)
    np.testing.assert_array_equal(ident.template_identification.ranks, tref.ranks)
    # metrics.json: the headline entries the index shows, with their intervals
    m = json.loads((tmp_path / "out" / "ident" / "metrics.json").read_text())
    h = m["headline"]
    assert h["rank_1"]["value"] == pytest.approx(ref.rank_accuracy[1])
    lo, hi = h["rank_1"]["interval"]
    assert lo <= h["rank_1"]["value"] <= hi
    assert h["fnir_at_fpir"]["fpir"] == 0.01 and "template_tar_at_far" in h
    assert m["identification"]["images"]["n_mated"] == 6 and m["identification"]["n_templates"] == 8
    # the index's leaderboard shows them beside the primary metric
    from evallib.report.compare import Comparison

    board = Comparison.load(tmp_path / "out").leaderboard()._repr_html_()
    assert "rank_1" in board and "fnir_at_fpir (lower is better)" in board
    top = rep.summary._repr_html_()
    assert "rank-1 identification accuracy" in top and "FNIR at FPIR 0.01 (lower is better)" in top
    # the views
    page = rep.identification_summary._repr_html_()
    assert "rank-1 accuracy" in page and "FNIR at FPIR" in page and "Each row is a search the model got wrong" in page
    page = rep.templates_summary._repr_html_()
    assert "1:1 template verification" in page and "1:N template identification" in page
    assert page.count("<img") >= 3


def _bad(tmp_path, name, file, text, **data):
    (tmp_path / file).write_text(text)
    return _params(tmp_path, name, **{"templates": "face_tid_mid.txt", **data})


@pytest.mark.slow  # seven tiny models' inference
def test_protocol_file_errors_through_the_cli(tmp_path, capsys):
    _dataset(tmp_path)
    tid_mid = (tmp_path / "face_tid_mid.txt").read_text()
    good = [_params(tmp_path, "roles_bad", role_column="role", csv="bad_manifest.csv"),
            _bad(tmp_path, "tid_bad", "bad_tid.txt", tid_mid.replace(" 10 ", " x ", 1), templates="bad_tid.txt"),
            _bad(tmp_path, "pairs_bad", "bad_pairs.txt", "10 11 1\n10 20 2\n", template_pairs="bad_pairs.txt"),
            _bad(tmp_path, "subjects_bad", "bad_gallery.csv", "TEMPLATE_ID,SUBJECT_ID\n11,1\n11,2\n",
                 gallery="bad_gallery.csv", probes="probes.csv"),
            _bad(tmp_path, "unknown_template", "unknown_pairs.txt", "10 11 1\n10 99 0\n",
                 template_pairs="unknown_pairs.txt"),
            _bad(tmp_path, "unknown_image", "bad_images.txt", tid_mid + "e/e_0.png 50 500\n",
                 templates="bad_images.txt"),
            _bad(tmp_path, "no_probes", "x.txt", "", gallery="gallery.csv")]
    (tmp_path / "bad_manifest.csv").write_text((tmp_path / "manifest.csv").read_text().replace(",probe", ",probes", 1))
    assert main(["run", *map(str, good), "--out", str(tmp_path / "out"), "--no-report", "--quiet"]) == 1
    err = capsys.readouterr().err
    failed = dict(re.findall(r"^FAILED  (\w+): (.*)$", err, flags=re.M))
    expected = {
        "roles_bad": r"DataError: .*bad_manifest\.csv:4: role: expected gallery or probe; got 'probes'",
        "tid_bad": r"DataError: .*bad_tid\.txt:1: template_id: expected an integer; got 'x'",
        "pairs_bad": r"DataError: .*bad_pairs\.txt:2: label: expected 0 or 1; got 2",
        "subjects_bad": r"DataError: .*bad_gallery\.csv:3: template 11: expected subject 1 as on line 2; got 2",
        "unknown_template": r"DataError: .*unknown_pairs\.txt: data\.template_pairs: expected templates listed in "
                            r"data\.templates; got template 99$",
        "unknown_image": r"DataError: .*bad_images\.txt:17: expected an image evaluated under data\.root .*"
                         r"got 'e/e_0\.png'",
        "no_probes": r"ParamsError: .*no_probes\.yaml: data\.probes: expected data\.gallery and data\.probes together",
    }
    assert set(failed) == set(expected)
    for name, pattern in expected.items():
        assert re.search(pattern, failed[name]), (name, failed[name])


@pytest.mark.parametrize("data, match", [
    ({"role_column": "role"}, r"p\.yaml: data\.role_column: expected data\.csv, the manifest that holds the column"),
    ({"template_pairs": "x.txt"}, r"p\.yaml: data\.template_pairs: expected data\.templates \(a \*_face_tid_mid\.txt "
                                  r"file\) with it"),
    ({"templates": "t.txt", "probes": "p.csv"}, r"p\.yaml: data\.gallery: expected data\.gallery and data\.probes "
                                                r"together"),
    ({"templates": 3}, r"p\.yaml: data\.templates: expected a string; got 3 \(int\)"),
])
def test_protocol_params_are_checked(tmp_path, data, match):
    from evallib.errors import ParamsError
    from evallib.params import parse_params

    raw = {"name": "m", "model": "m.onnx", "task": "verification", "data": {"root": "d", **data},
           "outputs": {"embedding": "embedding"}}
    with pytest.raises(ParamsError, match=match):
        parse_params(raw, source=tmp_path / "p.yaml")


def test_protocol_files_resolve_against_the_params_folder(tmp_path):
    from evallib.params import parse_params

    p = parse_params({"name": "m", "model": "m.onnx", "task": "verification",
                      "data": {"root": "d", "labels": "csv", "csv": "m.csv", **PROTOCOL},
                      "outputs": {"embedding": "embedding"}}, source=tmp_path / "p.yaml")
    assert p.data.templates == (tmp_path / "face_tid_mid.txt").resolve() and p.data.role_column == "role"
    assert p.data.gallery.name == "gallery.csv" and p.data.probes.parent == tmp_path.resolve()


def test_editing_a_protocol_file_changes_the_metrics_key(tmp_path):
    from evallib._keys import metrics_key
    from evallib.params import parse_params

    for name, text in (("manifest.csv", "path,label,role\na/a_0.png,a,gallery\n"),
                       ("face_tid_mid.txt", "a/a_0.png 1 1\n"), ("template_pair_label.txt", "1 1 1\n"),
                       ("gallery.csv", "TEMPLATE_ID,SUBJECT_ID\n1,1\n"),
                       ("probes.csv", "TEMPLATE_ID,SUBJECT_ID\n1,1\n")):
        (tmp_path / name).write_text(text)
    p = parse_params({"name": "m", "model": "m.onnx", "task": "verification",
                      "data": {"root": "d", "labels": "csv", "csv": "manifest.csv", **PROTOCOL},
                      "outputs": {"embedding": "embedding"}}, source=tmp_path / "p.yaml")
    keys = [metrics_key(p, "predictions")]
    for name, text in (("manifest.csv", "path,label,role\na/a_0.png,a,probe\n"),
                       ("probes.csv", "TEMPLATE_ID,SUBJECT_ID\n1,2\n"), ("template_pair_label.txt", "1 1 0\n")):
        (tmp_path / name).write_text(text)
        keys.append(metrics_key(p, "predictions"))
    assert len(set(keys)) == len(keys)
    assert metrics_key(p, "predictions") == keys[-1]  # the same files, the same key
