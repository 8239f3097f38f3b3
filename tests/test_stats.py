import numpy as np
import pytest
from scipy.stats import binomtest, false_discovery_control

from evallib.metrics.stats import benjamini_hochberg, format_interval, wilson_interval


def test_bh_matches_scipy_and_rejects_the_step_up_set():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = np.concatenate([rng.uniform(size=30), rng.uniform(0, 0.01, size=5)])
        reject, adj = benjamini_hochberg(p, alpha=0.1)
        np.testing.assert_allclose(adj, false_discovery_control(p, method="bh"), rtol=1e-12)
        np.testing.assert_array_equal(reject, adj <= 0.1)


def test_bh_hand_worked_and_nan():
    # m=4: sorted p 0.01, 0.02, 0.03, 0.5; k*alpha/m at alpha=0.05: .0125 .025 .0375 .05 -> first three rejected
    reject, adj = benjamini_hochberg([0.03, np.nan, 0.01, 0.5, 0.02], alpha=0.05)
    assert reject.tolist() == [True, False, True, False, True]
    assert np.isnan(adj[1]) and adj[3] == 0.5
    with pytest.raises(ValueError, match="alpha"):
        benjamini_hochberg([0.1], alpha=1.5)


def test_bh_controls_fdr_under_the_null_over_seeds():
    rng = np.random.default_rng(1)
    any_false = np.mean([benjamini_hochberg(rng.uniform(size=50), alpha=0.05)[0].any() for _ in range(400)])
    assert any_false < 0.08  # all nulls true: FDR = FWER = P(any rejection) <= alpha


def test_wilson_matches_statsmodels():
    k, n = np.array([0, 3, 50, 97, 100]), np.array([10, 40, 100, 100, 100])
    lo, hi = wilson_interval(k, n)
    ci = [binomtest(int(a), int(b)).proportion_ci(confidence_level=0.95, method="wilson") for a, b in zip(k, n)]
    ref_lo, ref_hi = [c.low for c in ci], [c.high for c in ci]
    np.testing.assert_allclose(lo, ref_lo, atol=1e-9)
    np.testing.assert_allclose(hi, ref_hi, atol=1e-9)
    lo0, hi0 = wilson_interval(0, 0)
    assert np.isnan(lo0) and np.isnan(hi0)
    assert format_interval(0.1234567, float("nan")) == "[0.1235, n/a]"
