"""Study responses -> validated, per-run z-scored float32 targets, with excluded targets counted.

NaN and constant targets are excluded per participant (over every run used) and reported, never
silently zeroed as the reference code does.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .study import DataError, Study

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


def _load_checked(study: Study, participant: str, run: str) -> np.ndarray:
    source = study.sources[(participant, run)]
    data = source.read()
    expected = study.runs[run].timing.n_trs
    if data.shape[0] != expected:
        raise DataError(
            f"'{source.path}' ({participant}, run '{run}') has {data.shape[0]} TRs but the run's stimulus "
            f"implies {expected}; check that the file belongs to this run and was not trimmed differently"
        )
    return data


def prepare_responses(study: Study, participants: list[str], runs: list[str], zscore_runs: bool = True) -> Responses:
    """Load every (participant, run) pair that exists, validate it, drop NaN/constant targets, z-score per run."""
    raw: dict[tuple[str, str], np.ndarray] = {}
    kept, n_original, excluded = {}, {}, {}
    for p in participants:
        have = [r for r in runs if (p, r) in study.sources]
        if not have:
            raise DataError(f"participant '{p}' has no responses for any of the runs {runs} under '{study.root}'")
        arrays = {r: _load_checked(study, p, r) for r in tqdm(have, desc=f"responses {p}", leave=False)}  # minutes on ds003020
        widths = {r: a.shape[1] for r, a in arrays.items()}
        if len(set(widths.values())) > 1:
            listing = ", ".join(f"{study.sources[(p, r)].path}: {w}" for r, w in widths.items())
            raise DataError(f"participant '{p}' has different target counts across runs ({listing}); all runs must share one target space")
        width = next(iter(widths.values()))
        nan = np.zeros(width, bool)
        const = np.zeros(width, bool)
        for a in arrays.values():
            nan |= ~np.isfinite(a).all(axis=0)
            const |= np.nanstd(a, axis=0) == 0
        const &= ~nan
        keep = np.flatnonzero(~(nan | const))
        if keep.size == 0:
            raise DataError(f"participant '{p}': every target is NaN or constant in runs {have}; nothing to fit")
        excluded[p] = {"nan": int(nan.sum()), "constant": int(const.sum())}
        if nan.any() or const.any():
            log.warning("%s: excluded %d NaN and %d constant targets of %d", p, nan.sum(), const.sum(), width)
        kept[p], n_original[p] = keep, width
        for r, a in arrays.items():
            a = a[:, keep]
            raw[(p, r)] = zscore(a) if zscore_runs else a.astype(np.float32)
    return Responses(raw, kept, n_original, excluded)
