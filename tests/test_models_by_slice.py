"""Several models on the same slices: accuracy with intervals per slice and model, McNemar per slice against
the reference after Benjamini–Hochberg over every test, checked against scipy and a brute-force count, and
its error rates over seeds."""

import numpy as np
import pytest
from scipy.stats import binomtest

from conftest import check_display
from evallib.metrics.slices import models_by_slice
from evallib.metrics.stats import wilson_interval
from evallib.report.slices import ModelsBySliceDisplay


def _bh(p):
    """Benjamini–Hochberg adjusted p-values by their definition: min over j >= rank of p_(j) m / j."""
    m = len(p)
    order = np.argsort(p)
    out = np.empty(m)
    for r, i in enumerate(order):
        out[i] = min(1.0, min(p[order[j]] * m / (j + 1) for j in range(r, m)))
    return out


def _models(seed, *, n=3000, slices=10, planted=None, drop=0.2, models=2, acc=0.8):
    """Labels, predicted classes of ``models`` models with independent errors at accuracy ``acc``, one slicing
    column of ``slices`` equal slices; the last model is ``drop`` less accurate in slice ``planted``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    col = np.repeat([f"s{k}" for k in range(slices)], n // slices)
    preds = {}
    for m in range(models):
        p = np.full(n, acc)
        if planted is not None and m == models - 1:
            p[col == f"s{planted}"] -= drop
        right = rng.random(n) < p
        preds[f"m{m}"] = np.where(right, y, (y + 1 + rng.integers(0, 3, n)) % 4)
    return y, preds, {"scanner": col}


def test_models_by_slice_equals_counts_scipy_and_bh_by_definition():
    y, preds, cols = _models(0, n=600, slices=6, planted=2, drop=0.3, models=3)
    cols["site"] = np.where(np.arange(600) % 3 == 0, "x", "y")
    r = models_by_slice(y, preds, cols, min_slice_size=30)
    ref = max(preds, key=lambda k: np.mean(preds[k] == y))
    assert r.reference == ref and r.models[0] == ref
    pooled = []
    for i, name in enumerate(r.slices):
        if name == "all":
            mask = np.ones(len(y), bool)
        else:
            c, v = name.split("=")
            mask = cols[c] == v
        assert r.n[i] == mask.sum()
        for m, model in enumerate(r.models):
            right = preds[model][mask] == y[mask]
            assert r.accuracy[i, m] == pytest.approx(right.mean())
            lo, hi = wilson_interval(right.sum(), mask.sum())
            assert (r.accuracy_low[i, m], r.accuracy_high[i, m]) == pytest.approx((float(lo), float(hi)))
            if m == 0:
                assert np.isnan(r.p_value[i, m])
                continue
            ref_right = preds[ref][mask] == y[mask]
            b, c = int((right & ~ref_right).sum()), int((~right & ref_right).sum())
            assert r.difference[i, m] == pytest.approx((b - c) / mask.sum())
            assert r.p_value[i, m] == pytest.approx(binomtest(b, b + c, 0.5).pvalue if b + c else 1.0)
            pooled.append(((i, m), r.p_value[i, m]))
    q = _bh(np.array([p for _, p in pooled]))
    for ((i, m), _), qv in zip(pooled, q):
        assert r.q_value[i, m] == pytest.approx(qv)
        assert r.significant[i, m] == (qv <= 0.05)
    assert r.n_tests == len(pooled)
    assert r.significant[r.slices.index("scanner=s2"), r.models.index("m2")]
    with pytest.raises(ValueError, match=r"reference: expected one of m0, m1, m2; got 'm9'"):
        models_by_slice(y, preds, cols, reference="m9")
    with pytest.raises(ValueError, match=r"scores: expected a mapping of at least two model names"):
        models_by_slice(y, {"m0": preds["m0"]}, cols)


def test_a_planted_slice_difference_is_found_and_nothing_is_found_when_nothing_is_planted():
    """Over 40 seeds, 10 slices of 300 images and two models with independent errors: a slice where one model
    is 20 points less accurate is found (q < 0.05) in at least 36; with nothing planted, some slice is flagged
    in at most 4 (Benjamini–Hochberg at 0.05 over the 11 tests, 'all' included)."""
    seeds = 40
    found = flagged = wrong_slice = 0
    for seed in range(seeds):
        y, preds, cols = _models(seed, planted=3)
        r = models_by_slice(y, preds, cols, reference="m0")
        m = r.models.index("m1")
        found += bool(r.significant[r.slices.index("scanner=s3"), m])
        wrong_slice += bool(np.delete(r.significant[:, m], [0, r.slices.index("scanner=s3")]).any())
        y, preds, cols = _models(1000 + seed)
        flagged += bool(models_by_slice(y, preds, cols).significant.any())
    print(f"planted found {found}/{seeds}; another slice flagged {wrong_slice}/{seeds}; "
          f"null: some slice flagged {flagged}/{seeds}")
    assert found >= 38
    assert flagged <= 4
    assert wrong_slice <= 4


def test_models_by_slice_display_at_few_and_many_slices():
    y, preds, cols = _models(3, n=600, slices=6, planted=1, drop=0.35, models=3)
    disp = ModelsBySliceDisplay.from_predictions(y, preds, cols)
    ax, html = check_display(disp)
    r = disp.result
    assert disp.order[0] == 0 and r.slices[disp.order[1]] == "scanner=s1"  # where a model differs first
    assert "▼" in html and f"<th>− {r.reference}</th>" in html and len(ax.get_yticklabels()) == len(r.slices)
    # one row per slice and model: eight columns whatever the number of models
    six = ModelsBySliceDisplay.from_predictions(*_models(5, n=600, slices=6, models=6))
    first_row = six._repr_html_().split("<tr>")[1]
    assert first_row.count("<th>") == 8 and len(six.result.models) == 6
    y, preds, cols = _models(4, n=6000, slices=200, models=2)
    many = ModelsBySliceDisplay.from_predictions(y, preds, cols, min_slice_size=20)
    ax, html = check_display(many)
    assert len(ax.get_yticklabels()) == 25 and "25 of 201" in ax.get_title()
    assert "Show all 201 slices" in html or "201" in html
