"""Lanczos resampling, TR-bin means and per-run z-scoring against hand computations."""
import numpy as np
import pytest

from braintune.evaluation.resample import lanczos_resample, mean_in_tr, zscore_runs

TR = 2.0


def _naive_lanczosinterp2D(data, oldtime, newtime, window=3):
    """The published formula, one TR and one event at a time."""
    cutoff = 1.0 / np.mean(np.diff(newtime))
    out = np.zeros((len(newtime), data.shape[1]))
    for i, tr in enumerate(newtime):
        for j, ev in enumerate(oldtime):
            t = (tr - ev) * cutoff
            if t == 0:
                w = 1.0
            elif abs(t) > window:
                w = 0.0
            else:
                w = window * np.sin(np.pi * t) * np.sin(np.pi * t / window) / (np.pi ** 2 * t ** 2)
            out[i] += w * data[j]
    return out


def test_lanczos_matches_published_formula_on_irregular_word_times():
    rng = np.random.default_rng(0)
    words = np.sort(rng.uniform(0, 60, 150))
    words[5] = 10.0  # an event exactly on a TR time: L(0) = 1
    feats = rng.standard_normal((150, 3))
    trs = np.arange(0, 60, TR)
    out = lanczos_resample(feats, words, trs, tr_block=7)
    np.testing.assert_allclose(out, _naive_lanczosinterp2D(feats, words, trs), atol=1e-12)


def test_constant_stays_constant():
    events = np.arange(0, 300, 0.1)  # 10 Hz feature frames, as 0.1 s speech windows
    trs = np.arange(0, 300, TR)
    const = np.full((len(events), 2), 3.0)
    exact = lanczos_resample(const, events, trs, normalize=True)
    np.testing.assert_allclose(exact, 3.0, atol=1e-9)
    huth = lanczos_resample(const, events, trs)  # unnormalised: scaled by rate / cutoff = 20
    interior = huth[5:-5]
    np.testing.assert_allclose(interior, interior.mean(), rtol=1e-4)
    # ≈ rate/cutoff · c: the truncated 3-lobe kernel integrates to 0.997, not exactly 1
    assert interior.mean() == pytest.approx(3.0 * 10 * TR, rel=0.005)


@pytest.mark.parametrize("normalize", [True, False])
def test_slow_sinusoid_keeps_amplitude_and_phase(normalize):
    events = np.arange(0, 400, 0.1)
    trs = np.arange(10, 390, TR)
    freq, phase = 0.04, 0.7  # well below the TR Nyquist rate of 0.25 Hz
    wave = np.sin(2 * np.pi * freq * events + phase)[:, None]
    out = lanczos_resample(wave, events, trs, normalize=normalize)[:, 0]
    truth = np.sin(2 * np.pi * freq * trs + phase)
    assert np.corrcoef(out, truth)[0, 1] > 0.99
    gain = (out @ truth) / (truth @ truth)
    assert gain == pytest.approx(1.0 if normalize else 10 * TR, rel=0.03)


def test_mean_in_tr_equals_hand_computed_bin_means():
    trs = np.array([0.0, 2.0, 4.0, 6.0])
    times = np.array([0.1, 1.9, 2.0, 3.5, 6.5, 7.99, 8.0, -0.5])
    feats = np.array([[1.0], [3.0], [10.0], [20.0], [4.0], [6.0], [100.0], [50.0]])
    out = mean_in_tr(feats, times, trs, tr_s=TR)
    # [0,2): 1,3 -> 2 ; [2,4): 10,20 -> 15 ; [4,6): empty -> 0 ; [6,8): 4,6 -> 5 ; 8.0 and -0.5 out
    np.testing.assert_allclose(out[:, 0], [2.0, 15.0, 0.0, 5.0])
    with pytest.raises(ValueError, match="event_times_s has shape"):
        mean_in_tr(feats, times[:3], trs, TR)


def test_zscore_runs_per_run_constant_columns_zero_and_dtype_kept():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 3)).astype(np.float32) * 5 + 2
    X[:, 2] = 7.0
    X[20:, 0] += 100.0
    groups = np.repeat(["story_a", "story_b"], 20)
    Z = zscore_runs(X, groups)
    assert Z.dtype == np.float32 and np.all(np.isfinite(Z))
    for g in ("story_a", "story_b"):
        np.testing.assert_allclose(Z[groups == g, :2].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(Z[groups == g, :2].std(0), 1, atol=1e-5)
    np.testing.assert_array_equal(Z[:, 2], 0.0)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN/inf values"):
        zscore_runs(X, groups)
