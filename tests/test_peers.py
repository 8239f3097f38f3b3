"""The models' table: each report's ranking and key read one file, whatever the number of models."""

import json

import numpy as np
import pytest

from evallib import peers
from evallib._keys import peers_digest
from evallib.outputs import MODEL_SUMMARY, PEERS, data_key
from evallib.peers import load_peers, model_summary, read_count, write_model_summary, write_peers
from evallib.report.summary import rank_among


def _facts(name, value, *, data="a", status="ok"):
    if status != "ok":
        return {"name": name, "status": "failed", "error": "ValueError: broken"}, None
    run = {"name": name, "status": "ok", "data_fingerprint": data * 64, "metrics_key": f"k-{name}",
           "dataset": {"root": f"/somewhere/{data}-data", "images": 100},
           "inference": {"images": 98, "images_per_second": 40.0}, "model": {"size_bytes": 2_000_000}}
    metrics = {"name": name, "task": ["classification"], "primary_metric": "macro_f1", "run": run,
               "headline": {"macro_f1": {"value": value, "interval": [value - 0.05, value + 0.05]},
                            "accuracy": {"value": value + 0.01, "interval": [value - 0.04, value + 0.06]}}}
    return run, metrics


def _folders(root, n, rng, *, summaries=True):
    """``n`` models on data ``a``, three on data ``b`` and two failed; returns their full metrics."""
    root.mkdir(parents=True, exist_ok=True)
    full = {}
    values = rng.uniform(0.5, 0.9, n).round(4)
    values[3] = np.nan  # a model whose metric could not be computed
    specs = [(f"m{i:03d}", values[i], "a", "ok") for i in range(n)] + \
            [(f"other{i}", 0.6 + i / 10, "b", "ok") for i in range(3)] + \
            [(f"bad{i}", 0, "a", "failed") for i in range(2)]
    for name, v, data, status in specs:
        run, metrics = _facts(name, float(v), data=data, status=status)
        d = root / name
        d.mkdir()
        (d / "run.json").write_text(json.dumps(run))
        if metrics is not None:
            (d / "metrics.json").write_text(json.dumps(metrics))
            full[name] = metrics
        if summaries:
            write_model_summary(d, run, metrics)
    return full


def _brute_rank(name, full, metric):
    """The ranking written out: same data, a value (or this model), best first, then by name."""
    key = data_key(full[name]["run"])
    rows = [(o, m["headline"][metric]["value"]) for o, m in full.items() if data_key(m["run"]) == key]
    rows = [(o, v if v == v else None) for o, v in rows if o == name or v == v]
    rows.sort(key=lambda r: (r[1] is None, -(r[1] or 0.0), r[0]))
    return [(i + 1, o, v) for i, (o, v) in enumerate(rows)]


@pytest.mark.parametrize("n", [5, 300])
def test_a_ranking_costs_one_read_and_matches_the_brute_force_one(tmp_path, rng, n):
    full = _folders(tmp_path / "out", n, rng)
    before = read_count()
    table = write_peers(tmp_path / "out")
    assert read_count() - before == n + 5  # once per run: one small summary per model
    assert set(table) == set(full) | {"bad0", "bad1"} and table["bad0"]["status"] == "failed"
    for name in ("m000", "m003", f"m{n - 1:03d}", "other1"):
        before = read_count()
        got = load_peers(tmp_path / "out")
        ok = {k: v for k, v in got.items() if v["status"] == "ok"}
        ranking = rank_among(name, {**ok, name: full[name]}, "macro_f1")
        digest = peers_digest(tmp_path / "out", full[name]["run"], name)
        assert read_count() - before == 2  # the table, once for the ranking and once for the key
        want = _brute_rank(name, full, "macro_f1")
        assert [(r["rank"], r["name"], r["value"]) for r in ranking] == want
        assert isinstance(digest, str)


def test_folders_without_summaries_are_read_from_their_files(tmp_path, rng):
    full = _folders(tmp_path / "out", 6, rng, summaries=False)
    before = read_count()
    got = load_peers(tmp_path / "out")
    assert read_count() - before == 2 * 9 + 2  # run.json and metrics.json of each ok model, run.json of a failed one
    for name, m in full.items():
        assert json.dumps(got[name], sort_keys=True) == json.dumps(model_summary(m["run"], m), sort_keys=True)
    assert not (tmp_path / "out" / PEERS).exists()


def test_the_report_key_follows_the_peers_on_the_same_data(tmp_path, rng):
    out = tmp_path / "out"
    full = _folders(out, 4, rng)
    write_peers(out)
    me = full["m000"]["run"]
    first = peers_digest(out, me, "m000")
    # a model on other data changes: the key stays
    run, metrics = _facts("other0", 0.99, data="b")
    write_model_summary(out / "other0", run, metrics)
    write_peers(out)
    assert peers_digest(out, me, "m000") == first
    # a peer on the same data changes its headline: the key changes
    run, metrics = _facts("m001", 0.123, data="a")
    write_model_summary(out / "m001", run, metrics)
    write_peers(out)
    assert peers_digest(out, me, "m000") != first
    # this model's own metrics never enter its key
    run, metrics = _facts("m000", 0.321, data="a")
    write_model_summary(out / "m000", run, metrics)
    second = peers_digest(out, me, "m000")
    write_peers(out)
    assert peers_digest(out, me, "m000") == second


def test_model_summary_is_small_and_complete(tmp_path):
    run, metrics = _facts("x", 0.7)
    s = model_summary(run, metrics)
    assert s["data_key"] == "a" * 64 and s["data_folder"] == "a-data" and s["images"] == 98
    assert s["headline"]["macro_f1"]["value"] == 0.7 and s["model_mb"] == 2.0 and s["metrics_key"] == "k-x"
    write_model_summary(tmp_path, run, metrics)
    assert len((tmp_path / MODEL_SUMMARY).read_bytes()) < 1000
    failed = model_summary({"name": "y", "status": "failed", "error": "E"})
    assert failed["status"] == "failed" and failed["data_key"] is None and failed["headline"] == {}
    # a table of another format is not trusted: the folders are read
    (tmp_path / PEERS).write_text(json.dumps({"format_version": peers.PEERS_FORMAT_VERSION + 1, "models": {}}))
    assert load_peers(tmp_path) == {}


def test_the_index_sizes_its_overlay_and_paired_table_to_many_models(tmp_path, rng):
    from evallib.outputs import write_predictions
    from evallib.records import Predictions
    from evallib.report.compare import MAX_CURVES, Comparison

    n = MAX_CURVES + 7
    ok, runs = {}, {}
    y = rng.integers(0, 3, 60)
    for i in range(n):
        name = f"m{i:02d}"
        run, metrics = _facts(name, float(rng.uniform(0.3, 0.9)))
        metrics["classification"] = {"roc_micro": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.7, 1.0]}}
        ok[name], runs[name] = metrics, run
        scores = rng.normal(size=(60, 3))
        scores[np.arange(60), y] += 1 + i / n
        write_predictions(tmp_path / name, Predictions(scores=scores, scores_are="logits", labels=y,
                                                       classes=["a", "b", "c"], file_hashes=[f"{k}" for k in range(60)],
                                                       paths=[f"{k}.png" for k in range(60)]))
    cmp = Comparison(tmp_path, "macro_f1", ok, {}, runs)
    best = sorted(ok, key=lambda k: -ok[k]["headline"]["macro_f1"]["value"])
    panel = cmp.roc_overlay()
    [roc] = panel.displays
    assert [c.label for c in roc.curves] == best[:MAX_CURVES]
    assert f"the best {MAX_CURVES} of {n} models by macro_f1" in roc.title
    page = cmp.paired(n_boot=10, max_others=3)._repr_html_()
    compared = {m for m in best[1:] if f">{m}</td><td>accuracy</td>" in page}
    assert compared == set(best[1:4]) and f"{n - 4:,} more are ranked in the leaderboard" in page
    with pytest.raises(ValueError, match="max_others: expected 1 or more; got 0"):
        cmp.paired(max_others=0)
