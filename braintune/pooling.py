"""Backbone frames (B, T, D) -> one vector per TR (B, K, F), by averaging frames inside each TR's windows.

A TR at stimulus time t pools the windows ``[t - lag - (k+1)·w, t - lag - k·w]``, k = 0..n_windows-1
(``braintune.data.timing.tr_windows``). ``combine="concat"`` keeps one block per window, so the head can
weigh delays as an FIR model does (F = n_windows·D); ``"mean"`` averages them (F = D), as the reference
recipe's mean over its 10 s window does.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data.timing import Blocks, tr_windows, window_to_slice


class TRPooling(nn.Module):
    def __init__(self, window_s: float, lag_s: float, n_windows: int, combine: str = "concat"):
        super().__init__()
        self.window_s, self.lag_s, self.n_windows, self.combine = window_s, lag_s, n_windows, combine

    def out_features(self, hidden_size: int) -> int:
        return hidden_size * (self.n_windows if self.combine == "concat" else 1)

    def span(self, first_tr_s: float, last_tr_s: float) -> tuple[float, float]:
        """Stimulus seconds ``[start, end)`` that the windows of TRs from ``first_tr_s`` to ``last_tr_s`` cover."""
        return first_tr_s - self.lag_s - self.n_windows * self.window_s, last_tr_s - self.lag_s

    def blocks(self, tr_times: np.ndarray, start_s: np.ndarray, lookahead_s: float, past_s: float) -> Blocks:
        """Block-causal attention for spans starting at ``start_s`` (B,) with TRs at ``tr_times`` (B, K): block k ends
        at TR k's latest pooling-window end (``t - lag``) + ``lookahead_s``, in seconds from the span start."""
        ends = np.asarray(tr_times, dtype=np.float64) - self.lag_s + lookahead_s - np.asarray(start_s, dtype=np.float64)[:, None]
        return Blocks(ends, past_s)

    def weights(self, tr_times: np.ndarray, frame_start_s: np.ndarray, frame_rate: float, n_frames: int) -> torch.Tensor:
        """(B, K, W, T) averaging weights; rows of TRs whose windows hold no frame are all zero.

        ``tr_times`` (B, K) seconds; ``frame_start_s`` (B,) stimulus time at which frame 0 starts.
        """
        win = tr_windows(tr_times, self.window_s, self.lag_s, self.n_windows)  # (B, K, W, 2)
        start = np.asarray(frame_start_s, dtype=np.float64)[:, None, None]
        i0, i1 = window_to_slice(win[..., 0], win[..., 1], frame_rate, start=start)  # (B, K, W) each
        frames = np.arange(n_frames)
        inside = (frames >= np.maximum(i0, 0)[..., None]) & (frames < np.minimum(i1, n_frames)[..., None])  # (B, K, W, T)
        count = inside.sum(-1, keepdims=True)
        return torch.from_numpy(np.where(inside, 1.0 / np.maximum(count, 1), 0.0).astype(np.float32))

    def forward(self, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, D), weights (B, K, W, T) -> (B, K, F)."""
        pooled = torch.einsum("bkwt,btd->bkwd", weights.to(hidden.dtype), hidden)  # (B, K, W, D)
        if self.combine == "mean":
            return pooled.mean(dim=2)
        return pooled.flatten(2)  # (B, K, W·D)
