"""`evallib compare OLD NEW`, the report's baseline view and the index's links, on two tiny evaluated models.

One pipeline run (module-scoped) evaluates three tiny models, classifiers that also output a 16-d
embedding and verify the pairs of a pair list: ``old`` and ``new`` (another seed, with
``report.baseline: old``) on one data folder, ``elsewhere`` on a folder with one image changed.
"""

import csv
import json
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import export_tiny_model

CLASSES = ["ant", "bee", "cat"]


@pytest.fixture(scope="module")
def evaluated_pair(tmp_path_factory):
    from evallib.run import run_many

    root = tmp_path_factory.mktemp("versions")
    rng = np.random.default_rng(3)
    data = root / "data"
    for c in CLASSES:
        (data / c).mkdir(parents=True)
        for k in range(12):
            arr = np.clip(rng.normal(60 + 60 * CLASSES.index(c), 50, size=(16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(arr, "L").save(data / c / f"{c}_{k:02d}.png")
    other = root / "other"
    shutil.copytree(data, other)
    Image.fromarray(np.zeros((16, 16), np.uint8), "L").save(other / "ant" / "ant_00.png")
    # every pair of images once, LFW style: "name n1 n2" genuine, "name1 n1 name2 n2" impostor (n: 1-based)
    images = [(c, k + 1) for c in CLASSES for k in range(12)]
    lines = [f"{a} {i} {j}" if a == b else f"{a} {i} {b} {j}"
             for x, (a, i) in enumerate(images) for (b, j) in images[x + 1:]]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    base = {"task": "both", "data": {"root": str(data), "pairs": str(root / "pairs.txt")},
            "preprocess": {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale", "tta": "none"},
            "outputs": {"scores": "logits", "scores_are": "logits", "embedding": "embedding"},
            "report": {"bootstrap": 50, "gallery_size": 2, "tsne_thumbnails": 0, "threshold_policy": "youden"}}
    params = root / "params"
    params.mkdir()
    files = {}
    for name, seed, extra in (("old", 0, {}), ("new", 1, {"baseline": "old"}), ("elsewhere", 2, {})):
        model = export_tiny_model(root / f"{name}.onnx", n_classes=3, seed=seed)
        p = {**base, "name": name, "model": str(model), "report": {**base["report"], **extra}}
        if name == "elsewhere":  # a classifier only (no embeddings, no t-SNE map to draw)
            p.update(task="classification", data={"root": str(other)},
                     outputs={k: v for k, v in base["outputs"].items() if k != "embedding"})
        files[name] = params / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(p))
    out = root / "out"
    facts = run_many([files["old"], files["new"], files["elsewhere"]], out, progress=False)
    assert [f["status"] for f in facts] == ["ok"] * 3, [f.get("error") for f in facts]
    return {"out": out, "params": files}


def _softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _by_path(model_dir):
    """Labels (as class names) and probabilities of each file, read straight from predictions.npz."""
    with np.load(model_dir / "predictions.npz", allow_pickle=False) as z:
        classes, paths = [str(c) for c in z["classes"]], [str(p) for p in z["paths"]]
        probs = _softmax(z["scores"].astype(np.float64))
        return {p: (classes[int(y)], {c: probs[i, k] for k, c in enumerate(classes)})
                for i, (p, y) in enumerate(zip(paths, z["labels"]))}


@pytest.fixture(scope="module")
def compared(evaluated_pair):
    from evallib.cli import main

    out = evaluated_pair["out"]
    # the floor: new -> old stands in for two runs of one recipe (its negative flips are old -> new's positive ones)
    assert main(["compare", "old", "new", "--out", str(out), "--n-boot", "60", "--max-nfr", "1", "--far", "0.01",
                 "--floor", "new", "old"]) == 0
    return out / "compare" / "old__new"


@pytest.mark.slow
def test_compare_json_equals_version_regression_on_the_predictions(evaluated_pair, compared):
    from evallib.metrics.flips import version_regression

    out = evaluated_pair["out"]
    got = json.loads((compared / "compare.json").read_text())
    old, new = _by_path(out / "old"), _by_path(out / "new")
    files = sorted(old)
    y = np.array([CLASSES.index(old[f][0]) for f in files])
    so = np.log(np.array([[old[f][1][c] for c in CLASSES] for f in files]))
    sn = np.log(np.array([[new[f][1][c] for c in CLASSES] for f in files]))
    # compare.json follows the old model's file order; the reference is computed in sorted order, so
    # everything that does not depend on the order must agree
    ref = version_regression(y, so, sn, classes=CLASSES, n_boot=60, seed=0)
    got_rows = [got["regression"]["overall"], *got["regression"]["classes"]]
    for g, r in zip(got_rows, ref.rows):
        assert g["counts"] == r.counts and g["name"] == r.name and g["n"] == r.n
        for m in ("nfr", "pfr", "net_gain", "btc", "churn"):
            assert g[m] == pytest.approx(getattr(r, m), nan_ok=True)
        assert g["p_value"] == pytest.approx(r.p_value, nan_ok=True)
        assert g["intervals"]["nfr"] == pytest.approx(list(r.intervals["nfr"]), nan_ok=True)
    # an independent count, file by file
    nf = sum(old[f][0] == max(old[f][1], key=old[f][1].get) != max(new[f][1], key=new[f][1].get) for f in files)
    pf = sum(old[f][0] == max(new[f][1], key=new[f][1].get) != max(old[f][1], key=old[f][1].get) for f in files)
    assert got["regression"]["overall"]["counts"]["negative_flips"] == nf
    assert got["regression"]["overall"]["counts"]["positive_flips"] == pf
    assert nf + pf > 0  # two differently seeded models disagree somewhere
    assert got["old"] == "old" and got["new"] == "new" and got["images"] == len(files) == 36
    assert got["gate"] == {"max_nfr": 1.0, "passed": True, "failing": []}


@pytest.mark.slow
def test_flips_csv_lists_exactly_the_flipped_files(evaluated_pair, compared):
    out = evaluated_pair["out"]
    old, new = _by_path(out / "old"), _by_path(out / "new")
    with open(compared / "flips.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    want = {"negative": set(), "positive": set()}
    for f, (true, p_old) in old.items():
        po, pn = max(p_old, key=p_old.get), max(new[f][1], key=new[f][1].get)
        if po == true != pn:
            want["negative"].add(f)
        if pn == true != po:
            want["positive"].add(f)
    for kind in ("negative", "positive"):
        assert {r["file"] for r in rows if r["flip"] == kind} == want[kind]
    assert len(rows) == len(want["negative"]) + len(want["positive"])
    for r in rows:
        assert r["true_class"] == old[r["file"]][0]
        assert float(r["old_probability"]) == pytest.approx(old[r["file"]][1][r["old_prediction"]])
        assert float(r["new_probability"]) == pytest.approx(new[r["file"]][1][r["new_prediction"]])
    neg = [float(r["score"]) for r in rows if r["flip"] == "negative"]
    assert neg == sorted(neg, reverse=True)  # the gallery's order


@pytest.mark.slow
def test_gate_exit_codes(evaluated_pair, tmp_path, capsys):
    from evallib.cli import main

    shutil.copytree(evaluated_pair["out"], tmp_path / "out", ignore=shutil.ignore_patterns("compare"))
    out = str(tmp_path / "out")
    # a Wilson upper bound is above 0 even without a flip: a budget of 0 always fails
    assert main(["compare", "old", "new", "--out", out, "--n-boot", "20", "--max-nfr", "0", "--no-page"]) == 1
    err = capsys.readouterr().err
    assert "Gate failed: NFR above the budget 0 in" in err and "all images" in err
    got = json.loads((tmp_path / "out" / "compare" / "old__new" / "compare.json").read_text())
    assert got["gate"]["passed"] is False and got["gate"]["failing"][0]["kind"] == "overall"
    assert not (tmp_path / "out" / "compare" / "old__new" / "compare.html").exists()
    assert main(["compare", "old", "new", "--out", out, "--n-boot", "20", "--max-nfr", "1", "--no-page"]) == 0
    assert "Gate passed" in capsys.readouterr().out
    assert main(["compare", "old", "new", "--out", out, "--max-nfr", "2"]) == 2
    assert "max_nfr: expected a rate in [0, 1]; got 2.0" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_errors_say_what_is_wrong(evaluated_pair, tmp_path, capsys):
    from evallib.cli import main

    shutil.copytree(evaluated_pair["out"], tmp_path / "out", ignore=shutil.ignore_patterns("compare"))
    out = str(tmp_path / "out")
    assert main(["compare", "old", "nope", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "nope: expected a model folder under" in err and "elsewhere, new, old" in err
    assert main(["compare", "old", "elsewhere", "--out", out]) == 2
    assert "evaluated on different data" in capsys.readouterr().err
    assert main(["compare", "old", "old", "--out", out]) == 2
    assert "expected another model than the old one" in capsys.readouterr().err
    # params files name the models too
    p = evaluated_pair["params"]
    assert main(["compare", str(p["old"]), str(p["new"]), "--out", out, "--n-boot", "20", "--no-page",
                 "--max-nfr", "1"]) == 0


@pytest.mark.slow
def test_page_opens_offline_in_chromium(evaluated_pair, compared):
    from playwright.sync_api import sync_playwright

    page_file = compared / "compare.html"
    text = page_file.read_text()
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text
    errors, requests = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_context(offline=True).new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.as_uri())
        found = page.evaluate("""() => ({text: document.body.innerText,
            h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
            broken: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length,
            images: document.images.length,
            links: Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href'))})""")
        options = page.locator("select.evallib-flip-filter option").all_inner_texts()
        shown = []
        for k in range(len(options)):
            page.locator("select.evallib-flip-filter").select_option(index=k)
            shown.append(page.evaluate("""() => Array.from(document.querySelectorAll('.evallib-flip-class'))
                .filter(d => !d.hidden).map(d => d.innerText)"""))
        browser.close()
    assert not errors
    assert all(u.startswith(("file:", "data:")) for u in requests)
    assert found["h2"] == ["What the new model breaks", "Against the noise floor",
                           "Negative flips: old prediction → new prediction", "Negative flips",
                           "Negative flips by class",
                           "Verification pairs that flipped at FAR 0.01",
                           "Verification pairs that flipped at each model's own threshold",
                           "Backward compatibility of the embeddings"]  # BCT: both embeddings have 16 dimensions
    assert found["images"] >= 7 and found["broken"] == 0
    assert "the noise floor 0.3056 of two runs of one recipe (new → old)" in found["text"]
    assert found["text"].count("Top row: genuine pairs the old model accepted") == 2  # both pair galleries drawn
    assert "Gate passed" in found["text"] and "old → new: what the new version breaks" in found["text"]
    assert "flips.csv" in found["links"]
    # the filter by class: one option per class that lost images (with its count), each showing only its flips
    lost = json.loads((compared / "compare.json").read_text())["regression"]["classes"]
    want = sorted((-r["counts"]["negative_flips"], r["key"]) for r in lost if r["counts"]["negative_flips"])
    assert options == [f"{CLASSES[k]} ({-n} negative flips)" for n, k in want]
    for (n, k), visible in zip(want, shown):
        assert len(visible) == 1 and f"Negative flips of the class {CLASSES[k]}:" in visible[0]
        assert f"of {-n}" in visible[0] or f"all {-n}" in visible[0]


@pytest.mark.slow
def test_report_of_a_model_with_a_baseline_shows_what_changed(evaluated_pair, compared):
    import evallib
    from evallib.report.flips import (
        CompatibilityDisplay,
        FlipGalleryDisplay,
        FlipTransitionsDisplay,
        PairFlipsDisplay,
        RegressionTableDisplay,
    )

    out = evaluated_pair["out"]
    rep = evallib.load(out / "new")
    view = rep.changes
    assert view.title == "What changed since old"
    kinds = [type(d) for d in view.displays]
    assert kinds[1:] == [RegressionTableDisplay, FlipTransitionsDisplay, FlipGalleryDisplay, PairFlipsDisplay,
                         PairFlipsDisplay, CompatibilityDisplay]
    got = json.loads((compared / "compare.json").read_text())
    table = view.displays[1].result
    assert table.overall.counts == got["regression"]["overall"]["counts"]
    gallery = view.displays[3]
    assert any("route" in f[0] for f in gallery.facts)  # both models' Grad-CAM
    n_neg = got["regression"]["overall"]["counts"]["negative_flips"]
    assert sum(len(r) for r in gallery.tiles) == 2 * min(n_neg, 6)  # old and new heat map per flip
    html = view._repr_html_()
    assert "../compare/old__new/compare.html" in html
    assert "No baseline" in evallib.load(out / "old").changes._repr_html_()
    # a baseline evaluated on other data: the view says why instead of comparing
    import dataclasses

    other = dataclasses.replace(rep.params, report=dataclasses.replace(rep.params.report, baseline="elsewhere"))
    rep2 = evallib.load(out / "new")
    rep2.params = other
    assert "evaluated on different data" in rep2.changes._repr_html_()


@pytest.mark.slow
def test_index_links_the_comparisons(evaluated_pair, compared):
    from evallib.report.compare import Comparison

    out = evaluated_pair["out"]
    html = Comparison.load(out).versions(links_from=out)._repr_html_()
    assert 'href="compare/old__new/compare.html"' in html
    assert "new report (not rendered)" in html  # the pipeline ran without reports
    (out / "new" / "report.html").write_text("")
    try:
        html = Comparison.load(out).versions(links_from=out / "notebooks")._repr_html_()
    finally:
        (out / "new" / "report.html").unlink()
    assert 'href="../compare/old__new/compare.html"' in html and 'href="../new/report.html#sec-changes"' in html
    assert "<td>old</td><td>new</td><td>36</td>" in html


def test_baseline_must_be_a_model_name(tmp_path):
    from evallib.errors import ParamsError
    from evallib.params import parse_params

    raw = {"name": "m", "model": "m.onnx", "data": {"root": str(tmp_path)}, "outputs": {"scores": "logits"},
           "report": {"baseline": "../etc"}}
    with pytest.raises(ParamsError, match="report.baseline: expected the name of another model"):
        parse_params(raw)
    raw["report"]["baseline"] = "v1.2"
    assert parse_params(raw).report.baseline == "v1.2"


@pytest.mark.slow
def test_slice_rows_from_groups(evaluated_pair):
    from evallib.versions import compare_versions

    out = evaluated_pair["out"]
    with np.load(out / "old" / "predictions.npz") as z:
        paths = [str(p) for p in z["paths"]]
    groups = np.array(["even" if int(p[-6:-4]) % 2 == 0 else "odd" for p in paths])
    cmp = compare_versions("old", "new", out_root=out, groups=groups, group_name="parity", n_boot=20)
    assert [r.name for r in cmp.result.groups] == ["even", "odd"]
    assert sum(r.counts["negative_flips"] for r in cmp.result.groups) == cmp.result.overall.counts["negative_flips"]
    assert cmp.to_dict()["groups"] == "parity"
    with pytest.raises(Exception, match="groups: expected one label per image of old"):
        compare_versions("old", "new", out_root=out, groups=groups[:3])


def _with_embeddings(src, dst, emb_old, emb_new):
    """A copy of the output folder whose two models carry the given embeddings (rows in each file's order)."""
    import dataclasses

    from evallib.outputs import load_predictions, write_predictions

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("compare"))
    for name, emb in (("old", emb_old), ("new", emb_new)):
        pred = load_predictions(dst / name)
        write_predictions(dst / name, dataclasses.replace(pred, embeddings=emb(pred)))


@pytest.mark.slow
def test_bct_cross_test_when_both_models_have_embeddings(evaluated_pair, tmp_path):
    from evallib.metrics.flips import cross_model_compatibility
    from evallib.report.versions import version_views
    from evallib.versions import compare_versions

    out = evaluated_pair["out"]
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    by_file = {}

    def space(pred):  # one embedding per file, whatever the row order
        for p, y in zip(pred.paths, pred.labels):
            by_file.setdefault(p, centres[y] + 0.5 * rng.normal(size=8))
        return np.array([by_file[p] for p in pred.paths])

    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    _with_embeddings(out, tmp_path / "same", space, space)
    same = compare_versions("old", "new", out_root=tmp_path / "same", n_boot=20, far=0.05).compatibility
    assert same.compatible["tar_at_far"] and same.tar_at_far["new/old"] == same.tar_at_far["old/old"]
    _with_embeddings(out, tmp_path / "rot", space, lambda pred: space(pred) @ rotation)
    cmp = compare_versions("old", "new", out_root=tmp_path / "rot", n_boot=20, far=0.05)
    rot = cmp.compatibility
    assert not rot.compatible["rank1"] and rot.rank1["new/old"] < rot.rank1["old/old"]
    # the same figures as the function on the aligned arrays
    files = cmp.files
    e_old = np.array([by_file[f] for f in files])
    ref = cross_model_compatibility(e_old, e_old @ rotation, cmp.y, far=0.05)
    assert rot.tar_at_far == pytest.approx(ref.tar_at_far) and rot.rank1 == pytest.approx(ref.rank1)
    from evallib._io import to_jsonable

    assert to_jsonable(cmp.to_dict())["compatibility"]["compatible"] == rot.compatible  # what compare.json holds
    assert version_views(cmp)[-1].title == "Backward compatibility of the embeddings"


def _pair_list(root):
    """The fixture's pair list read independently: ``[(file_a, file_b, same)]``, image n of a class its n-th file."""
    out = []
    for line in (root / "pairs.txt").read_text().split("\n"):
        t = line.split()
        if t:
            (a, i), (b, j) = (t[0], t[1]), (t[0], t[2]) if len(t) == 3 else (t[2], t[3])
            out.append((f"{a}/{a}_{int(i) - 1:02d}.png", f"{b}/{b}_{int(j) - 1:02d}.png", a == b))
    return out


def _brute_threshold(same, s, far):
    """The lowest score at which at most ``far`` of the impostor pairs are accepted (score >= threshold)."""
    imp = s[~same]
    return min(t for t in np.unique(s) if np.mean(imp >= t) <= far)


@pytest.mark.slow
def test_pair_flips_from_the_pipeline_equal_brute_force(evaluated_pair, compared):
    out = evaluated_pair["out"]
    got = json.loads((compared / "compare.json").read_text())["pair_flips"]
    pairs = _pair_list(out.parent)
    same = np.array([s for _, _, s in pairs])
    scores = {}
    for name in ("old", "new"):
        with np.load(out / name / "predictions.npz", allow_pickle=False) as z:
            emb = dict(zip((str(p) for p in z["paths"]), z["embeddings"].astype(np.float64)))
        scores[name] = np.array([emb[a] @ emb[b] / np.linalg.norm(emb[a]) / np.linalg.norm(emb[b])
                                 for a, b, _ in pairs])
    assert got["n_pairs"] == len(pairs) == 630 and got["n_genuine"] == same.sum() == 3 * 66

    def flips(t_old, t_new):
        so, sn = scores["old"], scores["new"]
        lost = {(pairs[k][0], pairs[k][1]) for k in range(len(pairs)) if same[k] and so[k] >= t_old and sn[k] < t_new}
        let_in = {(pairs[k][0], pairs[k][1]) for k in range(len(pairs))
                  if not same[k] and so[k] < t_old and sn[k] >= t_new}
        return lost, let_in

    def listed(part):
        return [{(r["file_a"], r["file_b"]) for r in part["flipped"][k]} for k in ("genuine_lost", "impostor_gained")]

    # at a matched FAR (0.01): each model at its own lowest threshold letting in at most 1% of the impostors
    m = got["matched_far"]
    t_old, t_new = _brute_threshold(same, scores["old"], 0.01), _brute_threshold(same, scores["new"], 0.01)
    # the library rounds unit embeddings to a 2**-24 grid (exact scores); the cosine here differs by ~1e-7
    assert (m["threshold_old"], m["threshold_new"]) == pytest.approx((t_old, t_new), abs=1e-6)
    lost, let_in = flips(t_old, t_new)
    assert listed(m) == [lost, let_in] and len(lost) + len(let_in) > 0
    assert m["rates"]["genuine_lost"] == pytest.approx(len(lost) / same.sum())
    # at each model's own operating point: the threshold its report chose (report.threshold_policy: youden)
    own = got["own_thresholds"]
    stored = [json.loads((out / n / "metrics.json").read_text())["pairs"]["policies"]["youden"]["threshold"]
              for n in ("old", "new")]
    assert [own["threshold_old"], own["threshold_new"]] == stored
    assert got["policies"] == {"old": "youden", "new": "youden"}
    assert got["threshold_sources"] == {"old": "its metrics.json", "new": "its metrics.json"}
    assert listed(own) == list(flips(*stored))
    # the gallery's order: genuine pairs furthest below the new threshold first
    below = [stored[1] - r["score_new"] for r in own["flipped"]["genuine_lost"]]
    assert below == sorted(below, reverse=True)


@pytest.mark.slow
def test_noise_floor_in_compare_json_equals_an_independent_count(evaluated_pair, compared):
    out = evaluated_pair["out"]
    got = json.loads((compared / "compare.json").read_text())
    floor = got["floor"]
    old, new = _by_path(out / "old"), _by_path(out / "new")
    top = {name: {f: max(p[1], key=p[1].get) for f, p in d.items()} for name, d in (("old", old), ("new", new))}
    nf = sum(top["old"][f] == old[f][0] != top["new"][f] for f in old)  # old -> new, the candidate
    pf = sum(top["new"][f] == old[f][0] != top["old"][f] for f in old)  # new -> old, the floor
    assert (floor["old"], floor["new"], floor["images"]) == ("new", "old", 36)
    assert floor["nfr"] == pytest.approx(pf / 36) and floor["counts"]["negative_flips"] == pf
    a = floor["against"]
    # an image is never a negative flip of both old -> new and new -> old
    assert a["counts"] == {"both": 0, "candidate_only": nf, "floor_only": pf, "neither": 36 - nf - pf}
    assert a["ratio"] == pytest.approx(nf / pf) and a["difference"] == pytest.approx((nf - pf) / 36)
    lo, hi = a["intervals"]["difference"]
    assert lo <= a["difference"] <= hi
    assert got["regression"]["overall"]["nfr"] == pytest.approx(nf / 36)


@pytest.mark.slow
def test_noise_floor_line_gate_and_errors_through_the_cli(evaluated_pair, tmp_path, capsys):
    from evallib.cli import main

    shutil.copytree(evaluated_pair["out"], tmp_path / "out", ignore=shutil.ignore_patterns("compare"))
    out = str(tmp_path / "out")
    # a second run evaluated on the other data, as a floor on the wrong data
    shutil.copytree(tmp_path / "out" / "elsewhere", tmp_path / "out" / "elsewhere2")
    run = json.loads((tmp_path / "out" / "elsewhere2" / "run.json").read_text())
    (tmp_path / "out" / "elsewhere2" / "run.json").write_text(json.dumps({**run, "name": "elsewhere2"}))
    args = ["compare", "old", "new", "--out", out, "--n-boot", "40", "--no-page"]
    assert main([*args, "--floor", "new", "old", "--max-nfr-over-floor", "1"]) == 0
    printed = capsys.readouterr().out
    assert "the noise floor 0.3056 [" in printed and "(new -> old); NFR - floor 0.0278 [" in printed
    assert "Gate passed: NFR − noise floor 0.0278, upper bound of its 95% interval" in printed
    got = json.loads((tmp_path / "out" / "compare" / "old__new" / "compare.json").read_text())
    assert got["gate"]["passed"] and got["gate"]["max_nfr"] is None and got["gate"]["over_floor"]["passed"]
    # one more negative flip than the floor: the upper bound of the excess is above 0, so a margin of 0 fails
    assert main([*args, "--floor", "new", "old", "--max-nfr-over-floor", "0"]) == 1
    assert "Gate failed: NFR − noise floor 0.0278" in capsys.readouterr().err
    for extra, message in (
            (["--floor", "elsewhere", "elsewhere2"], "floor: expected two runs evaluated on the data of old and new "
                                                     "(data fingerprint "),
            (["--floor", "old", "elsewhere"], "floor: old and elsewhere were evaluated on different data"),
            (["--floor", "old", "nope"], "floor: nope: expected a model folder under"),
            (["--max-nfr-over-floor", "0.1"], "max_nfr_over_floor: expected a noise floor to hold the NFR against"),
            (["--floor", "new", "old", "--max-nfr-over-floor", "3"], "max_nfr_over_floor: expected a rate in [0, 1]")):
        assert main([*args, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert main([*args, "--floor", "elsewhere", "elsewhere2"]) == 2
    assert "got elsewhere and elsewhere2 evaluated on other data" in capsys.readouterr().err


@pytest.mark.slow
def test_embedding_models_without_class_scores_are_compared_by_their_pairs(evaluated_pair, compared, tmp_path,
                                                                           capsys):
    import dataclasses

    from evallib.cli import main
    from evallib.outputs import load_predictions, write_predictions
    from evallib.report.compare import Comparison

    shutil.copytree(evaluated_pair["out"], tmp_path / "out", ignore=shutil.ignore_patterns("compare"))
    for name in ("old", "new"):
        pred = load_predictions(tmp_path / "out" / name)
        write_predictions(tmp_path / "out" / name, dataclasses.replace(pred, scores=None, scores_are=None))
    out = str(tmp_path / "out")
    assert main(["compare", "old", "new", "--out", out, "--n-boot", "20", "--far", "0.01"]) == 0
    assert "embedding models (no class scores, no NFR)" in capsys.readouterr().out
    folder = tmp_path / "out" / "compare" / "old__new"
    got, ref = (json.loads((d / "compare.json").read_text()) for d in (folder, compared))
    assert got["regression"] is None and got["floor"] is None
    assert got["pair_flips"]["matched_far"] == ref["pair_flips"]["matched_far"]  # the same pairs flip
    assert (folder / "flips.csv").read_text().strip() == ",".join(
        ("flip", "rank", "index", "file", "true_class", "old_prediction", "old_probability", "new_prediction",
         "new_probability", "score"))
    page = (folder / "compare.html").read_text()
    assert "Both are embedding models" in page and "What the new model breaks" not in page
    assert "Verification pairs that flipped at FAR 0.01" in page and "Backward compatibility" in page
    assert "compare/old__new/compare.html" in Comparison.load(tmp_path / "out").versions(
        links_from=tmp_path / "out")._repr_html_()
    for extra, message in ((["--max-nfr", "0.1"], "max_nfr: expected two classifiers"),
                           (["--floor", "old", "new"], "floor: expected a comparison of two classifiers")):
        assert main(["compare", "old", "new", "--out", out, "--n-boot", "20", "--no-page", *extra]) == 2
        assert message in capsys.readouterr().err
    # one classifier against an embedding model: the command says which lacks what
    shutil.copytree(evaluated_pair["out"] / "old", tmp_path / "out" / "clf", ignore=shutil.ignore_patterns("x"))
    run = json.loads((tmp_path / "out" / "clf" / "run.json").read_text())
    (tmp_path / "out" / "clf" / "run.json").write_text(json.dumps({**run, "name": "clf"}))
    assert main(["compare", "clf", "new", "--out", out, "--no-page"]) == 2
    assert "new: expected class scores like clf" in capsys.readouterr().err
