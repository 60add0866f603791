"""Paired tests, bootstrap CIs, block permutation and FDR: calibration under planted nulls."""
import warnings

import numpy as np
import pytest
import scipy.stats

from braintune.evaluation.stats import (
    block_bootstrap_ci,
    block_permutation_test,
    bootstrap_ci,
    fdr_bh,
    mean_sem,
    min_wilcoxon_p,
    paired_ttest,
    wilcoxon,
)


def _ar1(n, n_targets, rho, rng):
    x = np.zeros((n, n_targets))
    eps = rng.standard_normal((n, n_targets))
    for t in range(1, n):
        x[t] = rho * x[t - 1] + eps[t]
    return x


def test_wilcoxon_warns_when_n_pairs_cannot_reach_alpha():
    a, b = np.array([0.30, 0.25, 0.40, 0.35]), np.array([0.20, 0.21, 0.30, 0.31])
    assert min_wilcoxon_p(4) == 0.125 and min_wilcoxon_p(4, "greater") == 0.0625
    with pytest.warns(UserWarning, match="smallest possible two-sided p is 0.125 > alpha=0.05"):
        res = wilcoxon(a, b)
    assert res.pvalue == pytest.approx(0.125) and res.n == 4
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.3, 0.1, 12), rng.normal(0.2, 0.1, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = wilcoxon(a, b)
    assert res.pvalue == pytest.approx(scipy.stats.wilcoxon(a, b).pvalue)
    t = paired_ttest(a, b, alternative="greater")
    assert t.pvalue == pytest.approx(scipy.stats.ttest_rel(a, b, alternative="greater").pvalue)
    assert t.mean_diff == pytest.approx((a - b).mean())


def test_fdr_bh_matches_hand_example_and_controls_fdp_under_h0():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, np.nan])
    reject, adj = fdr_bh(p, q=0.05)
    np.testing.assert_array_equal(reject, [1, 1, 0, 0, 0, 0, 0, 0, 0])
    assert adj[0] == pytest.approx(0.008) and np.isnan(adj[-1])
    rng = np.random.default_rng(1)
    fdp_null, fdp_mixed, power = [], [], []
    for _ in range(200):
        null = rng.uniform(size=500)
        fdp_null.append(fdr_bh(null, 0.05)[0].mean() > 0)  # all-null: FDP = 1 if any reject
        z = np.r_[rng.standard_normal(400), rng.standard_normal(100) + 3.5]
        rej = fdr_bh(scipy.stats.norm.sf(z), 0.05)[0]
        fdp_mixed.append(rej[:400].sum() / max(rej.sum(), 1))
        power.append(rej[400:].mean())
    assert np.mean(fdp_null) <= 0.05 + 0.03
    assert np.mean(fdp_mixed) <= 0.05
    assert np.mean(power) > 0.8


def test_block_permutation_is_calibrated_on_ar1_where_iid_shuffle_is_not():
    rng = np.random.default_rng(2)
    y_true, y_pred = _ar1(400, 300, 0.9, rng), _ar1(400, 300, 0.9, rng)
    p_block = block_permutation_test(y_true, y_pred, block_len=40, n_perm=300, seed=0)
    p_circ = block_permutation_test(y_true, y_pred, 40, n_perm=300, method="circular")
    p_iid = block_permutation_test(y_true, y_pred, block_len=1, n_perm=300, seed=0)
    assert 0.01 <= (p_block < 0.05).mean() <= 0.10
    assert 0.01 <= (p_circ < 0.05).mean() <= 0.10
    assert (p_iid < 0.05).mean() > 0.25
    planted = y_true[:, :40] + _ar1(400, 40, 0.9, rng)  # r ~ 0.7: detected (power > 0.8)
    assert (block_permutation_test(y_true[:, :40], planted, 40, n_perm=200) < 0.05).mean() > 0.8


def test_bootstrap_cis_cover_and_widen_with_autocorrelation():
    rng = np.random.default_rng(3)
    diffs = rng.normal(0.05, 0.02, 30)
    low, high = bootstrap_ci(diffs, n_boot=2000, seed=0)
    assert low < diffs.mean() < high and low > 0
    mean, sem = mean_sem(diffs)
    assert sem == pytest.approx(diffs.std(ddof=1) / np.sqrt(30))
    y = _ar1(500, 40, 0.9, rng)
    pred = y + 4 * _ar1(500, 40, 0.9, rng)
    lo_b, hi_b = block_bootstrap_ci(y, pred, block_len=40, n_boot=300)
    lo_i, hi_i = block_bootstrap_ci(y, pred, block_len=1, n_boot=300)
    assert np.all(lo_b < hi_b)
    assert np.median(hi_b - lo_b) > 1.5 * np.median(hi_i - lo_i)
    with pytest.raises(ValueError, match="block_len=300 must be between 1 and n_TRs/2 = 250"):
        block_bootstrap_ci(y, pred, block_len=300)


def test_paired_block_bootstrap_ci_is_zero_for_the_same_model_and_covers_a_planted_gain():
    from braintune.evaluation.metrics import correlation
    from braintune.evaluation.stats import paired_block_bootstrap_ci

    rng = np.random.default_rng(0)
    signal = rng.standard_normal((400, 20))
    y = signal + rng.standard_normal((400, 20))
    weak, strong = signal + 2.0 * rng.standard_normal((400, 20)), signal + 0.5 * rng.standard_normal((400, 20))
    assert paired_block_bootstrap_ci(y, weak, weak, block_len=20, n_boot=50) == (0.0, 0.0)
    truth = np.mean(correlation(y, strong) - correlation(y, weak))
    lo, hi = paired_block_bootstrap_ci(y, weak, strong, block_len=20, n_boot=300)
    assert 0 < lo < truth < hi
