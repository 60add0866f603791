"""Responses of several participants to the same stimuli -> an extrapolated cross-subject noise ceiling.

Schrimpf et al. 2021 (Brain-Score), as Oota et al. 2025 Appendix D use it (analysis_methods.md §4.6): for each
target participant and subsets of the other participants, a ridge model predicts the target's responses from
the subset, scored by Pearson r per target on held-out runs; v = v0·(1 − e^{−x/τ0}) is fitted over subset
sizes x with 100 bootstraps of the (x, v) pairs, and the ceiling is the median v0 per target.

A subset predicts through the mean of its members' responses (``pool="mean"``): more participants average
out more noise, so v grows with x towards what the shared, stimulus-driven signal allows. The note's literal
wording, one model per source and the correlations averaged over the subset (``pool="each"``), has the same
expectation at every x (a mean of pairwise scores), so the fit is flat and v0 is the mean pairwise score.
The exponential approaches its asymptote faster than averaging removes noise (the score of a mean of x
noisy copies grows as sqrt(x / (x + k))), so at low signal-to-noise v0 underestimates the ceiling: with 5
simulated participants of unit signal and noise variance, 0.60 against the analytic 0.71. ``curve=
"pooled_noise"`` fits v = v0·sqrt(x / (x + k)) instead, the exact form for independent noise (not in the paper).
With fewer than 3 subset sizes (≤ 3 participants) two parameters cannot be fitted from the pairs; the
result is then the score of the largest pool, a lower bound (``kind="lower_bound"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .encoding import RidgeEncoder
from .metrics import correlation
from .resample import zscore_runs

POOLS = ("mean", "each")
CURVES = {  # v = v0 * g(x; shape): the saturation curves fitted over subset sizes
    "exponential": lambda x, shape: 1.0 - np.exp(-x / shape),  # Schrimpf et al. 2021, shape = tau0
    "pooled_noise": lambda x, shape: np.sqrt(x / (x + shape)),  # shape = noise / signal variance
}


@dataclass
class CrossSubjectCeiling:
    """Per-participant ceilings and what they rest on.

    ceiling : (n_participants, n_targets), median bootstrap v0 (clipped to [0, 1]), or the lower bound
    kind : "extrapolated" or "lower_bound"; note : one sentence saying which and why
    sizes : (n_pairs,) subset size x of each (x, v) pair; scores : (n_participants, n_pairs, n_targets) v
    v0_ci : (2, n_participants, n_targets) 5th / 95th bootstrap percentiles of v0 (NaN for a lower bound)
    shape : (n_participants, n_targets) median bootstrap τ0 (or k, see ``CURVES``; NaN for a lower bound)
    """
    ceiling: np.ndarray
    kind: str
    note: str
    sizes: np.ndarray
    scores: np.ndarray
    v0_ci: np.ndarray
    shape: np.ndarray


def fit_saturation(x: np.ndarray, v: np.ndarray, curve: str = "exponential",
                   shapes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares v = v0·g(x; shape) (default g = 1 − e^{−x/τ}) for many targets sharing x, vectorised.

    For a fixed shape the best v0 is closed-form (Σ g·v / Σ g²), so the shape is chosen on a fine log grid
    by the residual sum of squares and v0 follows. Fits with fewer than 2 distinct x are NaN.

    Parameters
    ----------
    x : (n,) subset sizes; v : (n, n_targets) scores
    curve : key of ``CURVES``
    shapes : (n_shapes,) candidate shapes; default 400 values log-spaced over [min(x)/50, 50·max(x)]

    Returns
    -------
    v0, shape : arrays of shape (n_targets,)
    """
    x, v = np.asarray(x, float), np.asarray(v, float)
    if len(np.unique(x)) < 2:
        return np.full(v.shape[1], np.nan), np.full(v.shape[1], np.nan)
    if curve not in CURVES:
        raise ValueError(f"cross_subject_ceiling: curve='{curve}' is not one of {sorted(CURVES)}")
    grid = np.logspace(np.log10(x.min() / 50), np.log10(50 * x.max()), 400) if shapes is None else shapes
    g = CURVES[curve](x[:, None], np.asarray(grid, float)[None, :])  # (n, n_shapes)
    den = (g ** 2).sum(0)[:, None]  # (n_shapes, 1)
    v0, shape = np.empty(v.shape[1]), np.empty(v.shape[1])
    for start in range(0, v.shape[1], 8192):  # bounds the (n_shapes, chunk) work arrays
        chunk = v[:, start:start + 8192]
        num = g.T @ chunk  # (n_shapes, chunk)
        best = np.argmin((chunk ** 2).sum(0)[None, :] - num ** 2 / den, axis=0)
        v0[start:start + 8192] = num[best, np.arange(chunk.shape[1])] / den[best, 0]
        shape[start:start + 8192] = grid[best]
    return v0, shape


def bootstrap_saturation(x, v, n_boot: int = 100, seed: int = 0,
                         curve: str = "exponential") -> tuple[np.ndarray, np.ndarray]:
    """``fit_saturation`` on ``n_boot`` resamples (with replacement) of the (x, v) pairs, the same resample
    for every target. Returns v0 and shape of shape (n_boot, n_targets); NaN where a resample has one x."""
    x, v = np.asarray(x, float), np.asarray(v, float)
    rng = np.random.default_rng(seed)
    out = [fit_saturation(x[idx], v[idx], curve) for idx in rng.integers(0, len(x), (n_boot, len(x)))]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def _prepare(responses, groups, name: str) -> list[np.ndarray]:
    arrays = [np.asarray(r, np.float64) for r in responses]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or len(arrays[0].shape) != 2:
        raise ValueError(f"cross_subject_ceiling: every participant's {name} responses must be (n_TRs, n_targets) "
                         f"on the same TRs and targets (a common space); got shapes {sorted(shapes)}")
    return [zscore_runs(a, groups) for a in arrays]


def _subsets(others: list[int], max_per_size: int | None, rng) -> list[tuple[int, ...]]:
    """All subsets of ``others`` by size, at most ``max_per_size`` of each size (drawn at random)."""
    out = []
    for k in range(1, len(others) + 1):
        combos = list(combinations(others, k))
        if max_per_size is not None and len(combos) > max_per_size:
            combos = [combos[i] for i in sorted(rng.choice(len(combos), max_per_size, replace=False))]
        out += combos
    return out


def _predictivity(train, test, sources, target, groups, groups_test, params) -> np.ndarray:
    """(n_targets,) r of a ridge model from the mean response of ``sources`` to participant ``target``."""
    X = zscore_runs(np.mean([train[s] for s in sources], axis=0), groups)
    Xt = zscore_runs(np.mean([test[s] for s in sources], axis=0), groups_test)
    enc = RidgeEncoder(**params).fit(X, train[target], groups=groups)
    return correlation(test[target], enc.predict(Xt, groups=groups_test))


def subset_scores(train, test, target: int, groups, groups_test, pool: str = "mean",
                  max_subsets_per_size: int | None = None, seed: int = 0, **encoder_params):
    """Sizes (n_pairs,) and scores (n_pairs, n_targets) of one target participant over subsets of the others.

    ``train`` / ``test`` are lists of z-scored (n_TRs, n_targets) arrays, one per participant.
    """
    if pool not in POOLS:
        raise ValueError(f"cross_subject_ceiling: pool='{pool}' is not one of {POOLS}")
    rng = np.random.default_rng(seed + target)
    others = [p for p in range(len(train)) if p != target]
    subsets = _subsets(others, max_subsets_per_size, rng)
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def score(sources: tuple[int, ...]) -> np.ndarray:
        if sources not in cache:
            cache[sources] = _predictivity(train, test, sources, target, groups, groups_test, encoder_params)
        return cache[sources]

    rows = [score(s) if pool == "mean" else np.mean([score((p,)) for p in s], axis=0) for s in subsets]
    return np.array([len(s) for s in subsets]), np.stack(rows)


def cross_subject_ceiling(train, test, groups, groups_test, n_boot: int = 100, pool: str = "mean",
                          curve: str = "exponential", max_subsets_per_size: int | None = None, seed: int = 0,
                          **encoder_params) -> CrossSubjectCeiling:
    """Cross-subject noise ceiling of every participant (Schrimpf et al. 2021).

    Parameters
    ----------
    train, test : sequences of (n_TRs, n_targets) arrays, one per participant, on common targets and TRs
    groups, groups_test : (n_TRs,) run labels of the training / test TRs (z-scoring, delays, CV folds)
    n_boot : bootstrap resamples of the (x, v) pairs
    pool : "mean" (a subset predicts through its mean response) or "each" (see the module docstring)
    curve : saturation curve fitted over subset sizes, key of ``CURVES`` ("exponential": the paper's)
    max_subsets_per_size : cap on subsets drawn per size (many participants); None uses them all
    encoder_params : ``RidgeEncoder`` settings; default ``delays=(0,)`` (responses share the stimulus clock)

    Returns
    -------
    CrossSubjectCeiling
    """
    if curve not in CURVES:
        raise ValueError(f"cross_subject_ceiling: curve='{curve}' is not one of {sorted(CURVES)}")
    if len(train) != len(test) or len(train) < 2:
        raise ValueError(f"cross_subject_ceiling: needs >= 2 participants with train and test responses, got "
                         f"{len(train)} train and {len(test)} test arrays")
    encoder_params.setdefault("delays", (0,))
    train, test = _prepare(train, groups, "training"), _prepare(test, groups_test, "test")
    per_target = [subset_scores(train, test, t, groups, groups_test, pool, max_subsets_per_size, seed,
                                **encoder_params) for t in range(len(train))]
    sizes, scores = per_target[0][0], np.stack([s for _, s in per_target])  # (n_pairs,), (P, n_pairs, V)
    nan = np.full(scores[:, 0].shape, np.nan)
    if len(np.unique(sizes)) < 3:
        ceiling = np.clip(scores[:, sizes == sizes.max()].mean(1), 0.0, 1.0)
        note = (f"lower bound: {len(train)} participants give {len(np.unique(sizes))} subset size(s), too few to "
                f"fit v0 and tau; the ceiling is the score of the largest pool ({sizes.max()} participants)")
        return CrossSubjectCeiling(ceiling, "lower_bound", note, sizes, scores, np.stack([nan, nan]), nan)
    boots = [bootstrap_saturation(sizes, s, n_boot, seed, curve) for s in scores]
    v0, shape = np.stack([b[0] for b in boots]), np.stack([b[1] for b in boots])  # (P, n_boot, V)
    ceiling = np.clip(np.nanmedian(v0, axis=1), 0.0, 1.0)
    note = (f"extrapolated: median v0 of {n_boot} bootstrap fits of the '{curve}' curve over subset sizes "
            f"1..{sizes.max()} (pool='{pool}')")
    return CrossSubjectCeiling(ceiling, "extrapolated", note, sizes, scores,
                               np.nanpercentile(v0, [5, 95], axis=1), np.nanmedian(shape, axis=1))
