"""Seconds -> sample / frame / TR indices, and the per-TR pooling windows, for every stage.

Convention: element ``i`` of a signal sampled at ``rate`` Hz whose element 0 starts at ``start`` seconds
covers ``[start + i / rate, start + (i + 1) / rate)``. Every conversion in braintune goes through
``time_to_index`` / ``window_to_slice`` so that audio samples, backbone frames and TRs agree. A response row is
placed at one time, the middle of its volume (``RunTiming``); its input windows end at that time minus a lag.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

_EPS = 1e-6  # seconds are float; this absorbs representation error, e.g. 0.1 * 3 != 0.3


def time_to_index(t: float | np.ndarray, rate: float, start: float = 0.0) -> int | np.ndarray:
    """Index of the element that contains time ``t`` (seconds), ``floor((t - start) * rate)``."""
    idx = np.floor((np.asarray(t, dtype=np.float64) - start) * rate + _EPS).astype(np.int64)
    return int(idx) if idx.ndim == 0 else idx


def window_to_slice(t0, t1, rate: float, start=0.0):
    """Indices ``[i0, i1)`` of the elements overlapping the window ``[t0, t1)`` (seconds).

    Scalars give a pair of ints; arrays (broadcast together with ``start``) give a pair of int64 arrays.
    """
    t0, t1, start = (np.asarray(v, dtype=np.float64) for v in (t0, t1, start))
    i0 = np.floor((t0 - start) * rate + _EPS).astype(np.int64)
    i1 = np.maximum(np.ceil((t1 - start) * rate - _EPS).astype(np.int64), i0)
    if i0.ndim == 0:
        return int(i0), int(i1)
    return i0, i1


@dataclass(frozen=True)
class RunTiming:
    """The TR clock of one run: row ``j`` of its responses sits at stimulus time ``first_tr_s + j * tr``.

    A row's time is the **middle** of its volume (the volume is acquired over ``[t - tr/2, t + tr/2)``), as the
    Huth-lab ``DataSequence.from_grid`` has it; readers build the clock from the scan with ``from_scan``.
    """

    tr: float
    n_trs: int
    first_tr_s: float = 0.0

    @classmethod
    def from_scan(cls, tr: float, n_trs: int, scan_start_s: float, where: str = "a run") -> RunTiming:
        """The clock of ``n_trs`` volumes of ``tr`` seconds whose first volume's acquisition starts at stimulus time
        ``scan_start_s`` (negative: the scan started before the stimulus): row ``j`` at the middle of volume ``j``,
        ``scan_start_s + (j + 1/2) * tr``. The one place every reader's row-time convention lives.
        """
        if not (np.isfinite(tr) and tr > 0) or not np.isfinite(scan_start_s):
            raise DataError(f"cannot place the rows of {where}: TR {tr} s, scan start {scan_start_s} s of stimulus time; "
                            f"the TR must be a positive number of seconds and the stimulus onset known")
        return cls(float(tr), int(n_trs), float(scan_start_s) + float(tr) / 2)

    def times(self) -> np.ndarray:
        """(n_trs,) stimulus time in seconds of every kept TR (the middle of its volume)."""
        return self.first_tr_s + np.arange(self.n_trs) * self.tr


def tr_windows(tr_times: np.ndarray, window_s: float, lag_s: float, n_windows: int) -> np.ndarray:
    """Input windows of each TR: ``[t - lag - (k+1)·window, t - lag - k·window]`` for k = 0..n_windows-1.

    Parameters
    ----------
    tr_times : (..., K) stimulus times in seconds.

    Returns
    -------
    (..., K, n_windows, 2) start and end seconds; k = 0 is the most recent window.
    """
    k = np.arange(n_windows)
    ends = tr_times[..., None] - lag_s - k * window_s  # (..., K, W)
    return np.stack([ends - window_s, ends], axis=-1)


@dataclass(frozen=True)
class Blocks:
    """Block-causal attention over spans: block ``k`` of item ``b`` ends ``ends_s[b, k]`` seconds after the span
    start (increasing in ``k``); a frame attends to the frames from its block's start − ``past_s`` to its block's end.

    A frame belongs to the first block whose end it does not pass (a frame straddling a block end belongs to the
    next block: it holds stimulus from after the end); frames after the last end form a trailing block. Block 0
    starts at the span start. Because blocks are contiguous in time, what a frame may see is one interval of frame
    indices, ``[lo, hi)``: the bound on future input holds at any depth of the network, unlike a per-frame band
    whose reach grows with every layer.
    """

    ends_s: np.ndarray  # (B, K)
    past_s: float

    def intervals(self, frame_rate: float, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) int64 ``lo`` and ``hi``: frame ``q`` may attend to frames ``lo[q] <= j < hi[q]``."""
        ends = np.asarray(self.ends_s, dtype=np.float64)
        frame_end = (np.arange(n_frames) + 1) / frame_rate  # (T,) seconds from the span start
        block = np.stack([np.searchsorted(e, frame_end - _EPS, side="left") for e in ends])  # (B, T), K = trailing
        starts = np.concatenate([np.zeros((len(ends), 1)), ends], axis=1)  # (B, K + 1): start of every block
        block_start = np.take_along_axis(starts, block, axis=1)  # (B, T)
        lo = np.maximum(time_to_index(block_start - self.past_s, frame_rate), 0)  # first frame starting at/after
        lo = np.where(lo / frame_rate < block_start - self.past_s - _EPS, lo + 1, lo)
        hi = np.stack([np.searchsorted(b, b, side="right") for b in block])  # one past the block's last frame
        return lo.astype(np.int64), hi.astype(np.int64)

    def allowed(self, frame_rate: float, n_frames: int) -> np.ndarray:
        """(B, T, T) bool: ``allowed[b, q, j]`` says frame ``q`` may attend to frame ``j``."""
        lo, hi = self.intervals(frame_rate, n_frames)
        j = np.arange(n_frames)
        return (j >= lo[..., None]) & (j < hi[..., None])
