"""Noise ceilings against closed forms on simulated repeats and participants."""
import numpy as np
import pytest

from braintune.evaluation.ceiling import cross_participant_ceiling, explainable_variance, noise_ceiling, normalized_r, select_by_ceiling
from braintune.evaluation.metrics import correlation


def _repeats(n_rep, s, n, n_trs=3000, n_targets=40, seed=0):
    rng = np.random.default_rng(seed)
    signal = s * rng.standard_normal((n_trs, n_targets))
    return signal, signal[None] + n * rng.standard_normal((n_rep, n_trs, n_targets))


@pytest.mark.parametrize("n_rep,s,n", [(10, 1.0, 3.0), (2, 1.0, 1.0), (5, 0.5, 2.0)])
def test_noise_ceiling_recovers_analytic_value(n_rep, s, n):
    signal, reps = _repeats(n_rep, s, n)
    analytic = np.sqrt(s ** 2 / (s ** 2 + n ** 2 / n_rep))
    cc = noise_ceiling(reps)
    assert cc.shape == (40,)
    assert abs(cc.mean() - analytic) < 0.02
    assert np.all(np.abs(cc - analytic) < 0.08)
    # A perfect predictor (the true signal) reaches normalised r ~ 1.
    r = correlation(reps.mean(0), signal)
    assert abs(np.nanmean(normalized_r(r, cc)) - 1.0) < 0.02
    ev_c = explainable_variance(reps)
    assert abs(ev_c.mean() - s ** 2 / (s ** 2 + n ** 2)) < 0.02


def test_noise_ceiling_is_zero_for_pure_noise_constant_and_nan_targets():
    _, reps = _repeats(6, 0.0, 1.0, n_trs=500, n_targets=30)
    reps[:, :, 1] = 3.0
    reps[:, :, 2] = np.nan
    reps[0, 10:20, 3] = np.nan  # a few missing TRs in one repeat: still a finite estimate
    cc = noise_ceiling(reps)
    assert np.all(np.isfinite(cc)) and np.all((cc >= 0) & (cc <= 1))
    assert cc[1] == 0.0 and cc[2] == 0.0
    assert cc.mean() < 0.15  # pure noise: SP ~ 0, clipped at 0 about half of the time


def test_cross_participant_ceiling_matches_closed_form():
    rng = np.random.default_rng(1)
    n_part, s, n = 5, 1.0, 1.5
    shared = s * rng.standard_normal((4000, 20))
    resp = shared[None] + n * rng.standard_normal((n_part, 4000, 20))
    analytic = s ** 2 / np.sqrt((s ** 2 + n ** 2) * (s ** 2 + n ** 2 / (n_part - 1)))
    ceil = cross_participant_ceiling(resp)
    assert ceil.shape == (n_part, 20)
    assert abs(ceil.mean() - analytic) < 0.02
    with pytest.raises(ValueError, match="at least 2 n_participants"):
        cross_participant_ceiling(resp[:1])


def test_normalized_r_and_selection_exclude_low_ceilings():
    r = np.array([0.2, 0.1, 0.3, 0.05])
    ceiling = np.array([0.4, 0.02, np.nan, 0.05])
    out = normalized_r(r, ceiling, min_ceiling=0.05)
    np.testing.assert_allclose(out, [0.5, np.nan, np.nan, 1.0])
    np.testing.assert_array_equal(select_by_ceiling(ceiling, 0.05), [True, False, False, True])
