"""Cross-subject noise ceiling (Schrimpf et al. 2021) against closed forms on simulated participants."""
import numpy as np
import pytest
from scipy.optimize import curve_fit

from braintune.evaluation.cross_subject import bootstrap_saturation, cross_subject_ceiling, fit_saturation
from braintune.evaluation.metrics import correlation

RIDGE = dict(alphas=np.logspace(-1, 3, 9), cv=4, backend="numpy")


def participants(n, noise, n_targets=20, seed=0):
    """Shared signal (unit variance) + independent noise per participant; 4 training runs, 2 test runs."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((1200, n_targets))
    ys = [signal + noise * rng.standard_normal(signal.shape) for _ in range(n)]
    return ([y[:800] for y in ys], [y[800:] for y in ys], np.repeat(np.arange(4), 200), np.repeat([0, 1], 200),
            signal[800:])


def test_vectorised_fit_recovers_v0_and_matches_curve_fit():
    rng = np.random.default_rng(1)
    x = np.repeat(np.arange(1, 6), 3).astype(float)
    v0, tau = rng.uniform(0.2, 0.8, 200), rng.uniform(0.5, 3.0, 200)
    clean = v0 * (1 - np.exp(-x[:, None] / tau))
    fit_v0, fit_tau = fit_saturation(x, clean)
    np.testing.assert_allclose(fit_v0, v0, rtol=0.01)  # grid step of tau ~2 %
    np.testing.assert_allclose(fit_tau, tau, rtol=0.02)
    noisy = clean + 0.005 * rng.standard_normal(clean.shape)
    fit_v0, _ = fit_saturation(x, noisy)
    exp = lambda x, a, t: a * (1 - np.exp(-x / t))  # noqa: E731
    oracle = [curve_fit(exp, x, noisy[:, j], p0=[0.5, 1.0])[0][0] for j in range(20)]
    np.testing.assert_allclose(fit_v0[:20], oracle, atol=3e-3)
    boot, _ = bootstrap_saturation(x, noisy, n_boot=100)
    assert boot.shape == (100, 200)
    assert np.abs(np.nanmedian(boot, 0) - v0).max() < 0.05
    assert np.isnan(fit_saturation(np.ones(4), noisy[:4])[0]).all()  # one subset size: no fit


def test_ceiling_recovers_the_analytic_ceiling_of_simulated_participants():
    noise = 0.5
    train, test, groups, groups_test, signal = participants(5, noise)
    analytic = 1 / np.sqrt(1 + noise ** 2)  # corr(target, shared signal): the best any stimulus model can do
    exact = cross_subject_ceiling(train, test, groups, groups_test, curve="pooled_noise", **RIDGE)
    assert exact.kind == "extrapolated" and exact.ceiling.shape == (5, 20)
    assert abs(exact.ceiling.mean() - analytic) < 0.02 and np.abs(exact.ceiling - analytic).max() < 0.08
    # The paper's exponential: recovers what the exponential fitted to the noise-free pooled curve gives.
    paper = cross_subject_ceiling(train, test, groups, groups_test, **RIDGE)
    assert list(np.bincount(paper.sizes)) == [0, 4, 6, 4, 1]  # every subset of the 4 others
    pooled = analytic / np.sqrt(1 + noise ** 2 / paper.sizes)  # r of the mean of x participants' responses
    expected = fit_saturation(paper.sizes, pooled[:, None])[0][0]
    assert abs(paper.ceiling.mean() - expected) < 0.02 and expected < analytic
    # A model that predicts the shared signal perfectly scores ~1 after normalisation.
    r_true = np.stack([correlation(t, signal) for t in test])
    assert abs(np.mean(r_true / exact.ceiling) - 1) < 0.03


def test_three_participants_give_a_lower_bound_and_say_so():
    noise = 0.7
    train, test, groups, groups_test, _ = participants(3, noise)
    res = cross_subject_ceiling(train, test, groups, groups_test, **RIDGE)
    assert res.kind == "lower_bound" and "lower bound" in res.note and np.isnan(res.shape).all()
    two_pooled = 1 / np.sqrt(1 + noise ** 2) / np.sqrt(1 + noise ** 2 / 2)
    assert abs(res.ceiling.mean() - two_pooled) < 0.03 and res.ceiling.mean() < 1 / np.sqrt(1 + noise ** 2)


def test_pool_each_averages_pairwise_scores_flat_across_sizes():
    noise = 0.7
    train, test, groups, groups_test, _ = participants(4, noise)
    res = cross_subject_ceiling(train, test, groups, groups_test, pool="each", **RIDGE)
    by_size = [res.scores[:, res.sizes == k].mean() for k in (1, 2, 3)]
    assert np.ptp(by_size) < 1e-9  # a mean over the same pairwise scores, whatever the subset size
    assert abs(res.ceiling.mean() - 1 / (1 + noise ** 2)) < 0.04  # corr(y_t, y_s) = c²


def test_capped_subsets_and_bad_input():
    train, test, groups, groups_test, _ = participants(5, 0.5, n_targets=5)
    res = cross_subject_ceiling(train, test, groups, groups_test, max_subsets_per_size=2, n_boot=10, **RIDGE)
    assert list(np.bincount(res.sizes)) == [0, 2, 2, 2, 1]
    with pytest.raises(ValueError, match="same TRs and targets"):
        cross_subject_ceiling(train[:-1] + [train[-1][:, :3]], test, groups, groups_test)
    with pytest.raises(ValueError, match="curve='logistic'"):
        cross_subject_ceiling(train, test, groups, groups_test, curve="logistic")
    with pytest.raises(ValueError, match=">= 2 participants"):
        cross_subject_ceiling(train[:1], test[:1], groups, groups_test)
