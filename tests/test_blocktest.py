"""Paired block sign-flip test of r_b − r_a: brute-force oracle, exact enumeration, calibration on correlated nulls.

The null simulations have what real test sets have and the across-target Wilcoxon ignores: AR(1) noise in
time (ρ = 0.7) and noise shared by all voxels (rank-2 mixing with positive loadings, like a global signal).
"""
import itertools
import warnings

import numpy as np
import pytest
import scipy.signal

from braintune.evaluation.blocktest import block_sign_flip_test, block_starts, min_pvalue
from braintune.evaluation.metrics import correlation
from braintune.evaluation.stats import fdr_bh, wilcoxon

RHO = 0.7


def _ar1(rng, n_trs, n, rho=RHO):
    """(n_trs, n) stationary AR(1) series with unit variance."""
    eps = rng.standard_normal((n_trs, n))
    c = np.sqrt(1 - rho ** 2)
    eps[0] /= c  # start in the stationary distribution
    return scipy.signal.lfilter([c], [1, -rho], eps, axis=0)


def _field(rng, n_trs, n_vox, shared, rank=2):
    """AR(1) in time; a fraction ``shared`` of each voxel's unit variance comes from ``rank`` common series."""
    load = rng.uniform(0.5, 1.5, (rank, n_vox))
    load /= np.linalg.norm(load, axis=0)
    return np.sqrt(shared) * _ar1(rng, n_trs, rank) @ load + np.sqrt(1 - shared) * _ar1(rng, n_trs, n_vox)


def _simulate(seed, n_trs=300, n_vox=100, noise_a=0.8, noise_b=0.8):
    """y = signal + noise; each model predicts signal + its own correlated noise (equal sizes: H0 holds)."""
    rng = np.random.default_rng(seed)
    signal = _field(rng, n_trs, n_vox, shared=0.5, rank=5)
    y = signal + _field(rng, n_trs, n_vox, shared=0.7)
    pred_a = signal + noise_a * _field(rng, n_trs, n_vox, shared=0.5)
    pred_b = signal + noise_b * _field(rng, n_trs, n_vox, shared=0.5)
    return y, pred_a, pred_b


def test_blocks_merge_the_remainder_and_stay_inside_runs():
    np.testing.assert_array_equal(block_starts(65, 20), [0, 20, 40])  # blocks of 20, 20, 25 rows
    np.testing.assert_array_equal(block_starts(105, 20, run_lengths=[65, 40]), [0, 20, 40, 65, 85])
    with pytest.raises(ValueError, match="block_trs=70 is larger than the test run, which has 65 TRs"):
        block_starts(65, 70)
    with pytest.raises(ValueError, match="block_trs=30 is larger than test run 1 \\(of 2\\), which has 25 TRs"):
        block_starts(90, 30, run_lengths=[65, 25])
    with pytest.raises(ValueError, match="must be positive and sum to the 90 test rows"):
        block_starts(90, 20, run_lengths=[65, 20])
    with pytest.raises(ValueError, match="block_trs=0 must be a positive integer"):
        block_starts(65, 0)


@pytest.mark.filterwarnings("ignore:block_sign_flip_test")  # 5 blocks: two-sided min p = 1/16 > 0.05
def test_matches_brute_force_swaps_and_all_alternatives():
    """Oracle: swap the predictions in every subset of blocks explicitly and call `correlation`."""
    y, a, b = _simulate(3, n_trs=100, n_vox=20, noise_b=0.6)
    starts = block_starts(100, 20)
    bounds = list(zip(starts, list(starts[1:]) + [100]))
    null = []
    for flips in itertools.product([0, 1], repeat=len(starts)):
        a2, b2 = a.copy(), b.copy()
        for (lo, hi), f in zip(bounds, flips):
            if f:
                a2[lo:hi], b2[lo:hi] = b[lo:hi], a[lo:hi]
        null.append(correlation(y, b2) - correlation(y, a2))
    null = np.array(null)                                                      # (32, V)
    obs = correlation(y, b) - correlation(y, a)
    tol = 1e-9
    for alt, f in [("two-sided", np.abs), ("greater", lambda x: x), ("less", lambda x: -x)]:
        res = block_sign_flip_test(y, a, b, block_trs=20, n_perm=32, correction="max", alternative=alt)
        assert res.exact and res.n_blocks == 5 and res.n_patterns == 32
        np.testing.assert_allclose(res.diff, obs, atol=1e-12)
        assert res.statistic == pytest.approx(obs.mean())
        assert res.pvalue == np.mean(f(null.mean(1)) >= f(obs.mean()) - tol)
        np.testing.assert_array_equal(res.pvalue_targets_uncorrected, np.mean(f(null) >= f(obs) - tol, axis=0))
        max_null = f(null).max(1)
        np.testing.assert_array_equal(res.pvalue_targets, np.mean(max_null[:, None] >= f(obs) - tol, axis=0))
    # b better than a here, so "greater" for (a, b) is "less" for (b, a)
    g = block_sign_flip_test(y, a, b, n_perm=32, alternative="greater")
    l = block_sign_flip_test(y, b, a, n_perm=32, alternative="less")
    assert g.statistic > 0 and g.statistic == pytest.approx(-l.statistic) and g.pvalue == l.pvalue


def test_three_blocks_enumerate_eight_patterns_and_warn_that_they_cannot_reach_alpha():
    y, a, b = _simulate(4, n_trs=65, n_vox=30)
    with pytest.warns(UserWarning, match="smallest reachable two-sided p is 0.25 > alpha=0.05"):
        res = block_sign_flip_test(y, a, b, block_trs=20, n_perm=1000)
    # 3 blocks (20, 20, 25 rows): 2^3 = 8 patterns, identity included. One-sided the identity alone can be
    # the most extreme: 1/8. Two-sided, flipping all 3 blocks negates the statistic and always ties: 2/8.
    assert (res.n_blocks, res.n_patterns, res.exact) == (3, 8, True)
    assert res.min_p == 0.25 == min_pvalue(3, 1000) and res.pvalue >= 0.25
    assert "cannot reject" in res.warning and not res.reject.any()
    with pytest.warns(UserWarning, match="greater p is 0.125 > alpha"):
        assert block_sign_flip_test(y, a, b, n_perm=1000, alternative="greater").min_p == 0.125
    with pytest.warns(UserWarning):
        same = block_sign_flip_test(y, a, a.copy(), block_trs=20)
    assert same.statistic == 0.0 and same.pvalue == 1.0
    assert np.all(same.diff == 0) and np.all(same.pvalue_targets == 1.0)


def test_sampled_patterns_are_seeded_and_bh_is_fdr_bh_of_the_permutation_p():
    y, a, b = _simulate(5, n_trs=240, n_vox=60, noise_b=0.5)
    y[:, 0] = 3.0  # a constant target: r = 0 for both models (as `correlation`), never significant
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 12 blocks, 400 draws: min p = 1/401 < alpha, no warning
        mx = block_sign_flip_test(y, a, b, n_perm=400, seed=7, correction="max")
    bh = block_sign_flip_test(y, a, b, n_perm=400, seed=7, correction="bh")
    assert not mx.exact and mx.n_blocks == 12 and mx.n_patterns == 401 and mx.min_p == 1 / 401 and mx.warning is None
    assert mx.diff[0] == 0 and mx.pvalue_targets_uncorrected[0] == 1 and mx.pvalue_targets[0] == 1
    assert mx.pvalue < 0.05  # b is planted better (noise 0.5 vs 0.8); one target alone has little power
    assert bh.pvalue == mx.pvalue and bh.statistic == mx.statistic
    np.testing.assert_array_equal(bh.pvalue_targets_uncorrected, mx.pvalue_targets_uncorrected)
    reject, adjusted = fdr_bh(mx.pvalue_targets_uncorrected, q=0.05)
    np.testing.assert_array_equal(bh.pvalue_targets, adjusted)
    np.testing.assert_array_equal(bh.reject, reject)
    # FWER-adjusted p are never below the per-target p; BH-adjusted never below either
    assert np.all(mx.pvalue_targets >= mx.pvalue_targets_uncorrected)
    assert np.all(bh.pvalue_targets >= bh.pvalue_targets_uncorrected)
    again = block_sign_flip_test(y, a, b, n_perm=400, seed=7)
    np.testing.assert_array_equal(again.pvalue_targets, mx.pvalue_targets)


def test_null_false_positives_block_test_holds_alpha_and_across_target_wilcoxon_does_not():
    """400 nulls (A and B equally good): global test and max-corrected per-target test vs today's Wilcoxon."""
    global_rej, any_target_rej, wilcoxon_rej = [], [], []
    for seed in range(400):
        y, a, b = _simulate(seed)
        res = block_sign_flip_test(y, a, b, block_trs=20, n_perm=500, seed=seed, correction="max")
        global_rej.append(res.pvalue <= 0.05)
        # what `evaluate.py compare` does today: Wilcoxon signed-rank over targets of r_b vs r_a
        wilcoxon_rej.append(wilcoxon(res.r_b, res.r_a).pvalue <= 0.05)
        # Cutting at block boundaries drops the covariance of neighbouring blocks, so the null is slightly
        # narrow: variance short by ~2φ/((1 − φ²)·block_trs), φ ≈ 0.7² here. The max over 100 targets sits in
        # the far tail, where that matters most: FWER ≈ 0.077 with 20-TR blocks and ≈ 0.058 with 40-TR
        # blocks (2000 simulations), so the per-target family is checked with 40-TR blocks (7 blocks, exact).
        res40 = block_sign_flip_test(y, a, b, block_trs=40, n_perm=500, correction="max")
        any_target_rej.append(res40.reject.any())
    assert res.n_blocks == 15 and not res.exact and res40.n_blocks == 7 and res40.exact
    fpr, fwer, fpr_wilcoxon = np.mean(global_rej), np.mean(any_target_rej), np.mean(wilcoxon_rej)
    assert fpr <= 0.075, fpr  # 0.0525 here; 0.061 over 2000 simulations
    assert fwer <= 0.075, fwer
    # shared noise makes the targets' r differences move together: the Wilcoxon p-values are far too small
    assert fpr_wilcoxon >= 0.5, fpr_wilcoxon


def test_power_for_a_planted_gain_of_0_1_in_mean_r_over_two_runs():
    """Model b's prediction noise 0.4 instead of 0.8: mean r_b − r_a ≈ 0.10 (r_a ≈ 0.5); two 150-TR runs."""
    stats, rejected = [], []
    for seed in range(150):
        y, a, b = _simulate(10_000 + seed, n_trs=300, noise_a=0.8, noise_b=0.4)
        res = block_sign_flip_test(y, a, b, block_trs=20, n_perm=500, seed=seed, run_lengths=[150, 150])
        stats.append(res.statistic)
        rejected.append(res.pvalue <= 0.05 and res.statistic > 0)
    assert res.n_blocks == 14
    assert 0.08 <= np.mean(stats) <= 0.12, np.mean(stats)
    assert np.mean(rejected) >= 0.8, np.mean(rejected)


def test_bad_input_names_the_argument():
    y, a, b = _simulate(6, n_trs=80, n_vox=5)
    with pytest.raises(ValueError, match="must all be \\(n_TRs, n_targets\\).*\\(80, 5\\), \\(80, 4\\)"):
        block_sign_flip_test(y, a[:, :4], b)
    a_nan = a.copy()
    a_nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="pred_a has NaN or inf in 1 of 5 targets"):
        block_sign_flip_test(y, a_nan, b)
    with pytest.raises(ValueError, match="correction='fdr' is not one of \\('max', 'bh'\\)"):
        block_sign_flip_test(y, a, b, correction="fdr")
    with pytest.raises(ValueError, match="alternative='larger'"):
        block_sign_flip_test(y, a, b, alternative="larger")
    with pytest.raises(ValueError, match="n_perm=0 must be a positive integer"):
        block_sign_flip_test(y, a, b, n_perm=0)
    with pytest.raises(ValueError, match="block_trs=100 is larger than the test run, which has 80 TRs"):
        block_sign_flip_test(y, a, b, block_trs=100)
