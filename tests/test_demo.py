"""The embedded demo's build: digits written as files, three models and a second version trained and exported,
the planted problems (a weak scanner, mislabelled images, a conflicting duplicate) and the synthetic identities.
The build is conftest's ``demo``, made once for the session; test_demo_reports.py checks what ``evallib demo``
makes of it and test_demo_cluster.py runs it on a Dask cluster."""

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from evallib.demo import WEAK_SCANNER, _tensors, build_demo, build_model, plant_problems, split_digits, train_model

pytestmark = pytest.mark.slow  # trains three models and a version

CLASSIFIERS = ("linear", "cnn_small", "cnn_small_v2", "cnn_wide")


def _png(path):
    from PIL import Image

    return np.asarray(Image.open(path))


def test_data_layouts_and_split(demo):
    data = demo / "build" / "demo" / "data"
    train = list(data.glob("train/*/*.png"))
    evals = list(data.glob("eval/*/*.png"))
    flat = list(data.glob("eval_flat/*.png"))
    assert (len(train), len(evals), len(flat)) == (1257, 541, 541)  # 540 images, one of them in two folders
    assert not {p.name for p in train} & {p.name for p in evals}  # disjoint split
    assert {p.name.split("_")[0] for p in flat} == {str(d) for d in range(10)}
    lines = (data / "pairs.txt").read_text().splitlines()
    assert lines[0] == "10\t30" and len(lines) == 601
    # the training split is clean: every file is its digit, in its digit's folder
    images, labels, _, _ = split_digits()
    for p in train:
        i = int(p.stem.split("_")[1])
        assert int(p.parent.name) == labels[i] and np.array_equal(_png(p), images[i]), p


def test_planted_problems_are_where_planted_json_says(demo):
    data = demo / "build" / "demo" / "data"
    planted = json.loads((data / "planted.json").read_text())
    images, labels, _, test = split_digits()
    meta = dict(csv.reader((data / "eval_meta.csv").open()))
    flat_meta = dict(csv.reader((data / "eval_flat_meta.csv").open()))
    assert meta.pop("path") == flat_meta.pop("path") == "scanner" and len(meta) == len(flat_meta) == 541
    # a weak scanner of about 8% of the images, written darker than the digit itself; the others as they are
    weak = [p for p, s in meta.items() if s == WEAK_SCANNER]
    assert planted["weak_slice"]["value"] == WEAK_SCANNER and len(weak) == planted["weak_slice"]["images"]
    assert 0.05 <= len(weak) / 541 <= 0.10
    for rel, s in meta.items():
        i = int(Path(rel).stem.split("_")[1])
        if s == WEAK_SCANNER:
            assert _png(data / "eval" / rel).mean() < 0.75 * images[i].mean(), rel
        else:
            assert np.array_equal(_png(data / "eval" / rel), images[i]), rel
    # eval_flat holds the same files with the same scanners
    by_content = {_png(data / "eval" / rel).tobytes() + rel.split("/")[0].encode(): s for rel, s in meta.items()}
    for flat, s in flat_meta.items():
        assert by_content[_png(data / "eval_flat" / flat).tobytes() + flat.split("_")[0].encode()] == s
    # mislabelled: the digit of one class in another class's folder (and prefix), never of the weak scanner
    wrong = planted["mislabelled"]
    assert len(wrong) == 8 and len({w["index"] for w in wrong}) == 8
    for w in wrong:
        i = w["index"]
        assert i in set(test.tolist()) and labels[i] == w["true_label"] != w["given_label"]
        assert w["eval"].split("/")[0] == str(w["given_label"]) and w["eval_flat"].startswith(f"{w['given_label']}_")
        assert np.array_equal(_png(data / "eval" / w["eval"]), images[i]) and meta[w["eval"]] != WEAK_SCANNER
        assert np.array_equal(_png(data / "eval_flat" / w["eval_flat"]), images[i])
    # one image in two class folders, with the same bytes
    dup = planted["duplicate"]
    copies = [data / "eval" / c["eval"] for c in dup["copies"]]
    assert len(copies) == 2 and copies[0].read_bytes() == copies[1].read_bytes()
    assert {c["given_label"] for c in dup["copies"]} - {dup["true_label"]} and copies[0].parent != copies[1].parent
    # the plan is a function of the split alone
    again = plant_problems(images, labels, split_digits()[2], test)
    assert {int(k): v for k, v in again["mislabelled"].items()} == {w["index"]: w["given_label"] for w in wrong}


def test_glyph_identities(demo):
    data = demo / "build" / "demo" / "data"
    rows = list(csv.DictReader((data / "glyphs.csv").open()))
    ids = {r["label"] for r in rows}
    gallery = {r["label"] for r in rows if r["role"] == "gallery"}
    assert 100 <= len(ids) <= 200 and {r["role"] for r in rows} == {"gallery", "probe"}
    assert sum(r["role"] == "gallery" for r in rows) == len(gallery)  # one gallery image per enrolled identity
    assert len(ids - gallery) >= 20  # identities with probes only: open-set searches
    pics = {r["path"]: _png(data / "glyphs" / r["path"]) for r in rows}
    assert all(p.shape == (8, 8) for p in pics.values())
    same = [pics[a["path"]] for a in rows if a["label"] == "id000"]
    assert len(same) >= 2 and not np.array_equal(same[0], same[1])  # per-image jitter


def test_models_have_two_outputs_and_metadata(demo):
    for name in CLASSIFIERS:
        m = onnx.load(str(demo / "build" / "demo" / "models" / f"{name}.onnx"))
        assert [o.name for o in m.graph.output] == ["logits", "embedding"]
        props = {p.key: p.value for p in m.metadata_props}
        assert props["signature"].startswith(f"evallib-demo/{name}/")


def test_build_is_reused(demo):
    logged = []
    build_demo(demo / "build" / "demo", log=logged.append)
    assert logged == [f"demo: reusing {demo / 'build' / 'demo'}"]


def test_training_is_deterministic():
    images, labels, train, _ = split_digits()
    x = _tensors(images, train[:200])
    a = train_model("linear", x, labels[train[:200]])
    b = train_model("linear", x, labels[train[:200]])
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert np.array_equal(va.numpy(), vb.numpy()), k
    assert sum(p.numel() for p in build_model("cnn_wide").parameters()) > \
        sum(p.numel() for p in build_model("cnn_small").parameters())
