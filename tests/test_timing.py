"""Seconds -> sample / frame / TR indices, pooling windows and the LeBel TR convention, against hand-computed answers."""
from __future__ import annotations

import numpy as np
import pytest

from braintune.data.formats import lebel
from braintune.data.timing import RunTiming, time_to_index, tr_windows, window_to_slice


@pytest.mark.parametrize(
    "t, rate, start, expected",
    [
        (0.0, 16000, 0.0, 0),
        (1.0, 16000, 0.0, 16000),
        (2.0045, 16000, 0.0, 32072),  # 2.0045 * 16000 = 32072 exactly
        (0.3, 50, 0.0, 15),
        (0.1 * 3, 50, 0.0, 15),  # 0.30000000000000004: still frame 15
        (0.1 * 3, 10, 0.0, 3),  # 0.1*3*10 = 3.0000000000000004 -> 3, and 0.7*10 style errors below
        (0.7, 10, 0.0, 7),  # 0.7 * 10 = 7.000000000000001
        (0.29, 10, 0.0, 2),
        (0.019999, 50, 0.0, 0),  # just before the end of frame 0
        (0.02, 50, 0.0, 1),
        (5.0, 50, 4.0, 50),  # relative to a start time
        (3.9, 50, 4.0, -5),  # before the start: negative index, the caller decides
        (2.0045 * 3, 1 / 2.0045, 0.0, 3),  # TR index of the 4th TR
    ],
)
def test_time_to_index(t, rate, start, expected):
    assert time_to_index(t, rate, start) == expected


def test_time_to_index_vectorised():
    t = np.array([0.0, 0.1 * 3, 0.5, 1.0])
    np.testing.assert_array_equal(time_to_index(t, 50), [0, 15, 25, 50])


@pytest.mark.parametrize(
    "t0, t1, rate, start, expected",
    [
        (0.0, 1.0, 16000, 0.0, (0, 16000)),
        (0.0, 2.0, 50, 0.0, (0, 100)),
        (0.1 * 3, 0.1 * 7, 50, 0.0, (15, 35)),  # float error on both edges absorbed
        (0.01, 0.03, 50, 0.0, (0, 2)),  # partial frames at both edges are included
        (10.045, 12.045, 50, 0.0, (502, 603)),  # 502.25 -> 502, 602.25 -> 603
        (4.0, 6.0, 50, 3.0, (50, 150)),
        (2.0, 2.0, 50, 0.0, (100, 100)),  # empty window
        (2.0, 1.0, 50, 0.0, (100, 100)),  # reversed window is empty, never negative
    ],
)
def test_window_to_slice(t0, t1, rate, start, expected):
    assert window_to_slice(t0, t1, rate, start) == expected


def test_tr_windows_hand_computed():
    times = np.array([10.0, 12.0])
    win = tr_windows(times, window_s=2.0, lag_s=1.0, n_windows=3)
    assert win.shape == (2, 3, 2)
    np.testing.assert_allclose(win[0], [[7.0, 9.0], [5.0, 7.0], [3.0, 5.0]])  # k=0 is the most recent
    np.testing.assert_allclose(win[1], [[9.0, 11.0], [7.0, 9.0], [5.0, 7.0]])
    batched = tr_windows(np.stack([times, times + 1]), 2.0, 0.0, 2)
    assert batched.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(batched[1, 0, 0], [9.0, 11.0])


def test_run_timing_times():
    t = RunTiming(tr=2.0045, n_trs=4, first_tr_s=10.045)
    np.testing.assert_allclose(t.times(), [10.045, 12.0495, 14.054, 16.0585])


def test_lebel_convention():
    # HuthLab/deep-fMRI-dataset: load_simulated_trfiles(respdict, tr=2.0, start_time=10.0, pad=5) puts trigger k at
    # audio time 2k - 10; DataSequence.from_grid adds TR/2; apply_zscore_and_hrf keeps [5 + 5 : -5] of respdict - 5.
    assert lebel.TR == 2.0
    assert lebel.first_row_s() == 11.0  # row 0 = trigger 10: 2 * 10 - 10 + 1
    assert lebel.rows_from_scan(100) == 80  # hf5 rows = respdict - 20
    # a scan ~10 s longer than the audio at each end (an unverified assumption, only reported): 60 s -> 40 - 20 rows
    assert lebel.expected_rows(60.0) == 20
    last = lebel.first_row_s() + (lebel.expected_rows(60.0) - 1) * lebel.TR
    assert last == 49.0
