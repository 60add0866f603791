"""Measured and predicted responses in, one Pearson r per target out.

`correlation` is the single alignment metric of braintune: every module that reports "r"
(encoding models, ceilings, statistics, callbacks) calls it, so that all numbers share one
definition (encoding_anchors.md §8):

    r_v = Σ_t (y_tv − ȳ_v)(ŷ_tv − ŷ̄_v) / sqrt(Σ_t (y_tv − ȳ_v)² · Σ_t (ŷ_tv − ŷ̄_v)²)

with r_v = 0 where either column is constant (no NaN is ever produced).
"""
from __future__ import annotations

import numpy as np


def correlation(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray | float:
    """Column-wise Pearson correlation between measured and predicted responses.

    Parameters
    ----------
    y_true : array of shape (n_samples, n_targets) or (n_samples,)
        Measured responses.
    y_pred : array of shape (n_samples, n_targets) or (n_samples,)
        Predictions, same shape as ``y_true``.

    Returns
    -------
    r : array of shape (n_targets,), or a float for 1-D inputs
        Pearson r per column, computed in float64; 0 where a column of either input is
        constant.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"correlation: y_true has shape {y_true.shape} but y_pred has shape "
            f"{y_pred.shape}; pass arrays of identical shape (n_samples, n_targets).")
    if y_true.ndim not in (1, 2) or y_true.shape[0] < 2:
        raise ValueError(
            f"correlation: expected (n_samples, n_targets) or (n_samples,) with "
            f"n_samples >= 2, got shape {y_true.shape}.")
    yt = y_true - y_true.mean(0)
    yp = y_pred - y_pred.mean(0)
    num = (yt * yp).sum(0)
    den = np.sqrt((yt ** 2).sum(0) * (yp ** 2).sum(0))
    # Relative tolerance: a column that is constant up to rounding must score 0, not noise.
    tiny = np.finfo(np.float64).eps * y_true.shape[0] * (
        np.abs(y_true).max(0) * np.abs(y_pred).max(0) + 1e-300)
    ok = den > tiny
    r = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
    r = np.clip(r, -1.0, 1.0)
    return float(r) if r.ndim == 0 else r
