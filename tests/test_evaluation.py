"""The metrics step: results stored and read back without pickle, thinned sweeps, stale folders refused."""

import dataclasses
import json

import numpy as np
import pytest
import yaml

import evallib
from conftest import export_tiny_model, make_classification, make_embeddings, write_image_tree
from evallib import _store
from evallib.evaluation import Evaluation, read_evaluation, thin_sweep, write_evaluation
from evallib.metrics import evaluate_classification, evaluate_verification, threshold_sweep
from evallib.report import StaleOutputsError


def test_results_round_trip_exactly(rng, tmp_path):
    y, scores = make_classification(rng, n=300, c=5, ties=True)
    emb, ids = make_embeddings(rng, n=120, ids=12)
    ev = Evaluation(classification=evaluate_classification(y, scores, top_k=(1, 3)),
                    verification=evaluate_verification(emb, ids, n_bootstrap=30, seed=1),
                    cls_intervals={"accuracy": [0.1, 0.2]}, curves={"roc_micro": {"fpr": np.r_[0.0, 1.0]}},
                    tsne={"coords": rng.normal(size=(3, 2)), "index": np.arange(3), "trustworthiness": float("nan")},
                    warnings=["w"], metrics={"headline": {}})
    write_evaluation(tmp_path, ev, metrics_key="k")
    back = read_evaluation(tmp_path)
    for k in Evaluation._STORED:
        assert _store.same(getattr(ev, k), getattr(back, k)), k
    assert isinstance(next(iter(back.verification.tar_at_far)), float)  # dict keys keep their type
    assert back.verification.policies["max_accuracy"].threshold == ev.verification.policies["max_accuracy"].threshold
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics_key"] == "k"


def test_only_evallibs_result_types_are_stored_or_read():
    class Other:
        pass

    @dataclasses.dataclass
    class Lookalike:
        x: int

    with pytest.raises(TypeError, match="obj: cannot store a Other"):
        _store.dump({"a": Other()})
    with pytest.raises(TypeError, match=r"obj: cannot store a Lookalike \(expected .*ThresholdSweep"):
        _store.dump([Lookalike(1)])
    with pytest.raises(ValueError, match="results: unknown result type 'os.system'"):
        _store.load({"__type__": "os.system", "fields": {}}, {})


def test_thinned_sweep_keeps_exact_counts_and_the_low_far_detail(rng):
    pos = rng.random(60_000) < 0.02
    score = rng.normal(size=60_000) + 2.0 * pos
    full = threshold_sweep(pos, score)
    thin = thin_sweep(full, max_points=2_000)
    assert len(thin.thresholds) <= 2_002 and len(full.thresholds) == 60_000
    assert thin.thresholds[0] == full.thresholds[0] and thin.thresholds[-1] == full.thresholds[-1]
    for t, tp, fp in zip(thin.thresholds, thin.tp, thin.fp):  # brute force at every kept threshold
        assert tp == np.sum(pos & (score >= t)) and fp == np.sum(~pos & (score >= t))
    for level in range(1, 11):  # where FAR first reaches 1..10 false positives is kept
        assert level in thin.fp
    assert thin_sweep(full, max_points=100_000) is full
    # the slider treats it as the whole sweep it came from
    from evallib.slider import THINNED, sweep_payload

    assert thin.n_thresholds == 60_000
    payload = sweep_payload(thin, name="s")
    assert payload["how"] == f"exact counts at {len(thin.thresholds):,} of 60,000 thresholds"
    big = thin_sweep(threshold_sweep(np.r_[pos, pos, pos], np.r_[score, score + 1e-3, score + 2e-3]))
    assert big.n_thresholds == 180_000 and len(sweep_payload(big, name="s")["thresholds"]) <= THINNED


def _params(folder, model, data, **pre):
    f = folder / "m.yaml"
    f.write_text(yaml.safe_dump({
        "name": "m", "model": str(model), "task": "classification", "data": {"root": str(data)},
        "preprocess": {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale", **pre},
        "outputs": {"scores": "logits", "scores_are": "logits", "embedding": None},
        "report": {"bootstrap": 20, "gallery_size": 0}}))
    return f


def test_load_refuses_outputs_made_with_other_settings(rng, tmp_path, evaluated):
    model = export_tiny_model(tmp_path / "tiny.onnx")
    data = write_image_tree(tmp_path / "data", rng, per_class=4)
    params = _params(tmp_path, model, data, tta="none")
    rep = evaluated(params, tmp_path / "out")
    assert evallib.load(tmp_path / "out" / "m", params=params).metrics == rep.metrics  # up to date
    _params(tmp_path, model, data, tta="flip")
    msg = (rf"{tmp_path / 'out' / 'm'}: these outputs were not made from {params} as it is now: its settings differ "
           rf"from the params file \(preprocess\)\. Nothing from them is shown\. Bring them up to date with: "
           rf"evallib run {params} --out {tmp_path / 'out'}")
    with pytest.raises(StaleOutputsError, match=msg.replace("/", "/")):
        evallib.load(tmp_path / "out" / "m", params=params)
    _params(tmp_path, model, data, tta="none")
    export_tiny_model(model, seed=1)  # the same settings, another model file
    with pytest.raises(StaleOutputsError, match="the model file or the images changed since"):
        evallib.load(tmp_path / "out" / "m", params=params)
    # metrics.json of another run beside this run.json
    run = json.loads((tmp_path / "out" / "m" / "run.json").read_text())
    run["metrics_key"] = "0" * 64
    (tmp_path / "out" / "m" / "run.json").write_text(json.dumps(run))
    with pytest.raises(StaleOutputsError, match="metrics.json does not belong to run.json"):
        evallib.load(tmp_path / "out" / "m")
    with pytest.raises(evallib.EvallibError, match=r"expected a model's output folder with run.json; got none"):
        evallib.load(tmp_path / "out" / "nothing")


def test_sections_are_displays_with_html_and_plots(rng, tmp_path, evaluated):
    from matplotlib.figure import Figure

    model = export_tiny_model(tmp_path / "tiny.onnx")
    data = write_image_tree(tmp_path / "data", rng, per_class=6)
    rep = evaluated(_params(tmp_path, model, data), tmp_path / "out")
    assert "<table" in rep.classification_summary._repr_html_()
    assert rep.confusion is rep.confusion  # built once
    ax = Figure().add_subplot()
    disp = rep.confusion
    assert disp.plot(ax=ax) is disp and disp.ax_ is ax and disp.figure_ is ax.figure
    assert ax.get_title() == "Confusion matrix: m"
    curves = rep.curves.plot()  # ROC and precision-recall, as the section shows them
    roc, pr = curves.ax_
    assert [line.get_label() for line in roc.get_lines()][:2] == [
        f"micro average (AUC {rep.evaluation.curves['roc_micro']['area']:.3f})",
        f"macro average (AUC {rep.classification.roc_auc_macro:.3f})"]
    assert pr.get_xlabel() == "recall" and len(roc.collections) >= 1  # the band around the micro average
    with pytest.raises(TypeError, match="ax: expected two Axes"):
        rep.curves.plot(ax=Figure().add_subplot())
    with pytest.raises(TypeError, match="expected a view with a figure to plot; this one is text and tables"):
        rep.header.plot()
    assert not list((tmp_path / "out" / "m").glob("report*"))  # loading and drawing wrote nothing
