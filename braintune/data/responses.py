"""Study responses -> validated, per-run z-scored float32 targets, with excluded targets counted; repeated
presentations -> the repeat-based noise ceiling of each target.

NaN and constant targets are excluded per participant (over every run used) and reported, never
silently zeroed as the reference code does.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError
from .study import Study

log = logging.getLogger(__name__)


@dataclass
class Responses:
    """``data[(participant, run)]`` is (n_trs, n_kept[participant]) float32."""

    data: dict[tuple[str, str], np.ndarray]
    kept: dict[str, np.ndarray]  # participant -> indices of the kept targets in the original files
    n_original: dict[str, int]
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)  # participant -> {reason: count}

    @property
    def n_targets(self) -> dict[str, int]:
        return {p: len(k) for p, k in self.kept.items()}


def zscore(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Column-wise z-score over time; (n, d) -> (n, d) of ``dtype``. Constant columns (to rounding) become 0.

    The one z-score of braintune: responses per run here, features per run in ``evaluation.resample.zscore_runs``.
    """
    x = np.asarray(x, dtype=np.float64)
    mean, std = x.mean(0), x.std(0)
    constant = std <= 1e-12 * np.maximum(np.abs(mean), 1.0)
    return np.where(constant, 0.0, (x - mean) / np.where(constant, 1.0, std)).astype(dtype)


def read_checked(study: Study, participant: str, run: str) -> np.ndarray:
    """(n_trs, n_targets) of one (participant, run), refused when its row count differs from the run's TR clock."""
    source = study.sources[(participant, run)]
    data = source.read()
    expected = study.runs[run].timing.n_trs
    if data.shape[0] != expected:
        raise DataError(
            f"'{source.path}' ({participant}, run '{run}') has {data.shape[0]} TRs but the run's stimulus "
            f"implies {expected}; check that the file belongs to this run and was not trimmed differently"
        )
    return data


def check_widths(study: Study, participant: str, runs: list[str], widths: dict[str, int] | None = None) -> list[str]:
    """The runs of ``runs`` that ``participant`` has, refused when there are none or their target counts differ
    (``widths``: run -> target count when already read, {} to check presence only; else the files' shapes)."""
    have = [r for r in runs if (participant, r) in study.sources]
    if not have:
        raise DataError(f"participant '{participant}' has no responses for any of the runs {runs} under '{study.root}'")
    if widths is None:
        widths = {r: study.sources[(participant, r)].shape()[1] for r in have}
    if len(set(widths.values())) > 1:
        listing = ", ".join(f"{study.sources[(participant, r)].path}: {w}" for r, w in widths.items())
        raise DataError(f"participant '{participant}' has different target counts across runs ({listing}); all runs must share "
                        "one target space")
    return have


def excluded_targets(study: Study, participant: str, have: list[str], arrays=None) -> tuple[np.ndarray, dict, int]:
    """(indices of the kept targets, {"nan": n, "constant": n}, target count): NaN or constant targets over every run
    of ``have`` are excluded. ``arrays`` (run -> data) when already read; else each run is read in turn."""
    nan = const = None
    for r in have:
        a = arrays[r] if arrays is not None else read_checked(study, participant, r)
        if nan is None:
            nan, const = np.zeros(a.shape[1], bool), np.zeros(a.shape[1], bool)
        nan |= ~np.isfinite(a).all(axis=0)
        const |= np.nanstd(a, axis=0) == 0
    const &= ~nan
    keep = np.flatnonzero(~(nan | const))
    if keep.size == 0:
        raise DataError(f"participant '{participant}': every target is NaN or constant in runs {have}; nothing to fit")
    if nan.any() or const.any():
        log.warning("%s: excluded %d NaN and %d constant targets of %d", participant, nan.sum(), const.sum(), len(nan))
    return keep, {"nan": int(nan.sum()), "constant": int(const.sum())}, len(nan)


def kept_targets(a: np.ndarray, keep: np.ndarray, zscore_runs: bool) -> np.ndarray:
    """One run's (n_trs, n_targets) -> its kept targets (n_trs, len(keep)) float32, z-scored when ``zscore_runs``."""
    a = a[:, keep]
    return zscore(a) if zscore_runs else a.astype(np.float32)


def prepare_responses(study: Study, participants: list[str], runs: list[str], zscore_runs: bool = True) -> Responses:
    """Load every (participant, run) pair that exists, validate it, drop NaN/constant targets, z-score per run.

    Every array stays in this process's memory; training reads a node-wide store instead (``response_store``).
    """
    raw: dict[tuple[str, str], np.ndarray] = {}
    kept, n_original, excluded = {}, {}, {}
    for p in participants:
        have = check_widths(study, p, runs, {})  # refuses a participant with none of the runs
        arrays = {r: read_checked(study, p, r) for r in tqdm(have, desc=f"responses {p}", leave=False)}  # minutes on ds003020
        check_widths(study, p, have, {r: a.shape[1] for r, a in arrays.items()})
        keep, excluded[p], n_original[p] = excluded_targets(study, p, have, arrays)
        kept[p] = keep
        for r, a in arrays.items():
            raw[(p, r)] = kept_targets(a, keep, zscore_runs)
    return Responses(raw, kept, n_original, excluded)


def check_stack(arr, name: str, what: str) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(
            f"{name}: expected shape ({what}, n_TRs, n_targets) with at least 2 {what} and 2 TRs, "
            f"got {arr.shape}; stack them with np.stack(list_of_(n_TRs, n_targets)_arrays).")
    return arr


def signal_power(repeats) -> tuple[np.ndarray, np.ndarray]:
    """Schoppe et al. 2016 signal power SP and the variance of the repeat mean.

    SP = (N·Var(ȳ) − mean_i Var(y_i)) / (N − 1), variances over time (NaN TRs ignored).

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_TRs, n_targets)

    Returns
    -------
    sp, var_mean : arrays of shape (n_targets,)
    """
    repeats = check_stack(repeats, "signal_power", "n_repeats")
    n = repeats.shape[0]
    with warnings.catch_warnings():  # all-NaN columns give NaN, handled by the callers
        warnings.simplefilter("ignore", RuntimeWarning)
        var_mean = np.nanvar(np.nanmean(repeats, axis=0), axis=0)
        mean_var = np.nanmean(np.nanvar(repeats, axis=1), axis=0)
    sp = (n * var_mean - mean_var) / (n - 1)
    return sp, var_mean


def noise_ceiling(repeats) -> np.ndarray:
    """Highest correlation a model can reach with the N-repeat mean (Schoppe et al. 2016).

    cc_max = sqrt(SP / Var(ȳ)) = 1 / sqrt(1 + (TP/SP − 1)/N), with TP = mean_i Var(y_i).
    For signal variance s² and noise variance n², cc_max = sqrt(s² / (s² + n²/N)).

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_TRs, n_targets)
        Responses to the same stimulus, repeat by repeat (NaN TRs are ignored).

    Returns
    -------
    cc_max : array of shape (n_targets,)
        In [0, 1]; 0 where the signal power is not positive or the target is constant/NaN.
    """
    sp, var_mean = signal_power(repeats)
    ok = np.isfinite(sp) & np.isfinite(var_mean) & (var_mean > 0) & (sp > 0)
    cc = np.zeros_like(sp)
    cc[ok] = np.sqrt(sp[ok] / var_mean[ok])
    return np.clip(cc, 0.0, 1.0)
