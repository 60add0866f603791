"""Event-rate features (words, audio windows, frames) with times in seconds in, one row per TR out.

* `lanczos_resample`: Huth-lab ``lanczosinterp2D`` (window = 3 lobes, cutoff = 1/TR), the
  down-sampler of the LeBel / Moussa & Toneva pipelines (encoding_anchors.md §4 step 2).
* `mean_in_tr`: the mean of the events that fall inside each TR (Proietti et al.).
* `zscore_runs`: per-run z-scoring of features or responses (analysis_methods.md §0 step 4).
"""
from __future__ import annotations

import numpy as np

from ..data.responses import zscore


def _check_events(features, event_times_s, tr_times_s, where: str):
    features = np.asarray(features)
    event_times_s = np.asarray(event_times_s, dtype=np.float64)
    tr_times_s = np.asarray(tr_times_s, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"{where}: features must be 2-D (n_events, n_features), got shape "
                         f"{features.shape}; reshape a single feature with features[:, None].")
    if event_times_s.shape != (len(features),):
        raise ValueError(f"{where}: event_times_s has shape {event_times_s.shape} but features "
                         f"has {len(features)} events; pass one time (s) per feature row.")
    if tr_times_s.ndim != 1 or len(tr_times_s) < 2:
        raise ValueError(f"{where}: tr_times_s must be 1-D with at least 2 TR times (s), got "
                         f"shape {tr_times_s.shape}.")
    for name, arr in (("event_times_s", event_times_s), ("tr_times_s", tr_times_s)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: {name} contains NaN/inf; every time must be finite (s).")
    return features, event_times_s, tr_times_s


def lanczos_kernel(t: np.ndarray, window: int = 3) -> np.ndarray:
    """Lanczos kernel L(t) = w·sin(πt)·sin(πt/w) / (π²t²) for |t| ≤ w, L(0) = 1, else 0.

    ``t`` is in units of the cutoff period (seconds × cutoff frequency).
    """
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        val = window * np.sin(np.pi * t) * np.sin(np.pi * t / window) / (np.pi ** 2 * t ** 2)
    val[t == 0] = 1.0
    val[np.abs(t) > window] = 0.0
    return val


def lanczos_resample(features, event_times_s, tr_times_s, window: int = 3,
                     cutoff_mult: float = 1.0, normalize: bool = False,
                     tr_block: int = 512) -> np.ndarray:
    """Low-pass and resample event features to TR times with a Lanczos kernel.

    Output row k is Σ_j L((tr_k − e_j)·f_c) · features_j with cutoff f_c = cutoff_mult /
    mean(diff(tr_times_s)), as Huth's ``lanczosinterp2D(data, oldtime, newtime, window)``.
    Like the original, rows are not normalised: the output scales with the event rate
    (≈ rate/f_c × a constant input); per-run z-scoring removes that scale.
    ``normalize=True`` divides each row by its summed weights, so a constant input stays
    exactly constant, including near run edges.

    Parameters
    ----------
    features : array of shape (n_events, n_features)
    event_times_s : array of shape (n_events,)
        Time of each event (word mid/onset time, window end time), seconds.
    tr_times_s : array of shape (n_trs,)
        Times of the TRs to resample to, seconds (same clock as the events).
    window : int
        Number of lobes (3 in all reference pipelines).
    cutoff_mult : float
        Multiplies the cutoff frequency 1/TR.
    normalize : bool
        Divide each TR's weights by their sum (False reproduces ``lanczosinterp2D``).
    tr_block : int
        TRs computed at once; the (tr_block, n_events) weight block bounds memory.

    Returns
    -------
    resampled : array of shape (n_trs, n_features), float64
    """
    features, event_times_s, tr_times_s = _check_events(
        features, event_times_s, tr_times_s, "lanczos_resample")
    cutoff = cutoff_mult / np.mean(np.diff(tr_times_s))
    out = np.zeros((len(tr_times_s), features.shape[1]))
    for start in range(0, len(tr_times_s), tr_block):
        block = slice(start, start + tr_block)
        weights = lanczos_kernel((tr_times_s[block, None] - event_times_s[None, :]) * cutoff,
                                 window)  # (tr_block, n_events)
        if normalize:
            total = weights.sum(1, keepdims=True)
            weights = weights / np.where(total == 0, 1.0, total)
        out[block] = weights @ features
    return out


def mean_in_tr(features, event_times_s, tr_times_s, tr_s: float) -> np.ndarray:
    """Mean of the events inside each TR bin.

    Bin convention: ``tr_times_s[k]`` is the start of TR k's acquisition and its bin is the
    half-open interval [tr_times_s[k], tr_times_s[k] + tr_s). An event exactly on a boundary
    belongs to the later TR; events outside every bin are ignored; empty bins give 0.

    Parameters
    ----------
    features : array of shape (n_events, n_features)
    event_times_s : array of shape (n_events,)
    tr_times_s : array of shape (n_trs,), increasing
    tr_s : float
        TR length in seconds.

    Returns
    -------
    means : array of shape (n_trs, n_features), float64
    """
    features, event_times_s, tr_times_s = _check_events(
        features, event_times_s, tr_times_s, "mean_in_tr")
    if not np.all(np.diff(tr_times_s) > 0) or tr_s <= 0:
        raise ValueError("mean_in_tr: tr_times_s must be strictly increasing and tr_s > 0 "
                         f"(got tr_s={tr_s}).")
    k = np.searchsorted(tr_times_s, event_times_s, side="right") - 1
    inside = (k >= 0) & (event_times_s < tr_times_s[np.clip(k, 0, None)] + tr_s)
    sums = np.zeros((len(tr_times_s), features.shape[1]))
    np.add.at(sums, k[inside], features[inside])
    counts = np.bincount(k[inside], minlength=len(tr_times_s))[:, None]
    return sums / np.maximum(counts, 1)


def zscore_runs(X, groups=None) -> np.ndarray:
    """Z-score each column within each run; constant columns become 0 (no NaN produced).

    Parameters
    ----------
    X : array of shape (n_samples, n_columns)
    groups : array of shape (n_samples,), optional
        Run label per sample; None z-scores over all samples.

    Returns
    -------
    Z : array of shape (n_samples, n_columns), float32 if X is float32, else float64
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"zscore_runs: X must be 2-D (n_samples, n_columns), got {X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"zscore_runs: X has {int((~np.isfinite(X)).sum())} NaN/inf values; "
                         f"drop or impute those columns before z-scoring.")
    groups = np.zeros(len(X)) if groups is None else np.asarray(groups)
    if groups.shape != (len(X),):
        raise ValueError(f"zscore_runs: groups has shape {groups.shape} but X has {len(X)} "
                         f"samples; pass one run label per sample.")
    out = np.empty(X.shape, dtype=np.float32 if X.dtype == np.float32 else np.float64)
    for g in np.unique(groups):
        rows = groups == g
        out[rows] = zscore(X[rows], out.dtype)
    return out
