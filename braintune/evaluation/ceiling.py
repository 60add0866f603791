"""Repeated or multi-participant responses in, a per-target noise ceiling out.

Two ceilings, for two kinds of data (analysis_methods.md §0 step 8):

* repeat-based (`noise_ceiling`), when a test stimulus was heard N times (LeBel
  ``wheretheressmoke``, 10 repeats): Schoppe et al. 2016, cc_max = the correlation between
  the true signal and the N-repeat mean;
* cross-participant (`cross_participant_ceiling`), for parcel / common-space data without
  repeats (Algonauts Schaefer-1000, fsaverage): each participant correlated with the mean of
  the others.

`normalized_r` divides a model's r by a ceiling; `select_by_ceiling` keeps targets whose
ceiling reaches a threshold.
"""
from __future__ import annotations

import warnings

import numpy as np

from braintune.data.responses import check_stack, noise_ceiling, signal_power
from braintune.evaluation.metrics import correlation

__all__ = ["check_stack", "cross_participant_ceiling", "explainable_variance", "noise_ceiling", "normalized_r", "select_by_ceiling",
           "signal_power"]


def explainable_variance(repeats, bias_correction: bool = True) -> np.ndarray:
    """Explainable variance of single repeats (voxelwise_tutorials; encoding_anchors.md §8).

    EV = Var(ȳ) / mean_i Var(y_i), each repeat z-scored over time; with bias correction
    EV_c = EV − (1 − EV)/(N − 1). Returns shape (n_targets,), NaN where undefined.
    """
    repeats = check_stack(repeats, "explainable_variance", "n_repeats")
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        z = (repeats - np.nanmean(repeats, axis=1, keepdims=True)) / np.nanstd(
            repeats, axis=1, keepdims=True)
        ev = np.nanvar(np.nanmean(z, axis=0), axis=0) / np.nanmean(np.nanvar(z, axis=1), axis=0)
    n = repeats.shape[0]
    return ev - (1 - ev) / (n - 1) if bias_correction else ev


def cross_participant_ceiling(responses) -> np.ndarray:
    """Correlation of each participant with the mean of the other participants.

    For data without repeats (parcels or a common surface, same stimulus TRs for everyone),
    the part of a participant's response that a stimulus model can predict is at most the
    part shared with other people; r(y_p, mean_{q≠p} y_q) estimates it. It is a
    conservative ceiling (the others' mean is itself noisy) and differs from Brain-Score's
    extrapolated ceiling (Schrimpf et al. 2021), which fits v(k) over pool sizes k.

    Parameters
    ----------
    responses : array of shape (n_participants, n_TRs, n_targets)
        Same targets (common space) and same TRs for every participant.

    Returns
    -------
    ceiling : array of shape (n_participants, n_targets)
        Pearson r per participant and target, clipped below at 0.
    """
    responses = check_stack(responses, "cross_participant_ceiling", "n_participants")
    n = responses.shape[0]
    total = responses.sum(axis=0)
    out = np.stack([correlation(responses[p], (total - responses[p]) / (n - 1))
                    for p in range(n)])
    return np.clip(out, 0.0, 1.0)


def normalized_r(r, ceiling, min_ceiling: float = 0.05) -> np.ndarray:
    """r divided by the ceiling; NaN where the ceiling is below ``min_ceiling`` or NaN.

    Parameters
    ----------
    r, ceiling : arrays of shape (n_targets,) (or broadcastable)
    min_ceiling : float
        Targets with ceiling < min_ceiling are excluded (NaN): dividing by a near-zero
        ceiling turns noise into huge normalised scores.
    """
    r, ceiling = np.broadcast_arrays(np.asarray(r, float), np.asarray(ceiling, float))
    keep = select_by_ceiling(ceiling, min_ceiling) & (ceiling > 0)
    out = np.full(r.shape, np.nan)
    out[keep] = r[keep] / ceiling[keep]
    return out


def select_by_ceiling(ceiling, threshold: float) -> np.ndarray:
    """Boolean mask (n_targets,) of targets whose ceiling is ≥ threshold (NaN → False)."""
    ceiling = np.asarray(ceiling, float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(ceiling) & (ceiling >= threshold)
