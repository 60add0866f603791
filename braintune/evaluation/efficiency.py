"""Features, responses and run labels in, alignment as a function of encoding-data size out.

The "data-efficiency" analysis of Moussa & Toneva 2025 (analysis_methods.md §5.3): refit the
encoding model on nested subsets of the training runs (stories), always testing on the same
held-out runs, giving a curve A(f) over the fraction f of training runs. `fraction_to_match`
then finds the smallest f at which a model reaches a reference alignment (the pretrained
model with all data, τ = A_pre(1)); the data-reduction factor is 1/f*.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone

from braintune.evaluation.encoding import RidgeEncoder
from braintune.evaluation.metrics import correlation


@dataclass
class EfficiencyCurve:
    """Alignment per training-subset size.

    n_runs : (k,) training runs used; fractions : (k,) n_runs / all training runs;
    scores : (k,) alignment A = summary(r); r : (k, n_targets) test r per target;
    train_runs : the run labels of each subset (nested: each contains the previous one).
    """
    n_runs: np.ndarray
    fractions: np.ndarray
    scores: np.ndarray
    r: np.ndarray
    train_runs: list = field(default_factory=list)


def training_subsets(train_runs: Sequence, n_runs_list: Sequence[int], nested: bool = True,
                     seed: int = 0) -> list[np.ndarray]:
    """Random subsets of training runs, one per size in ``n_runs_list``.

    ``nested=True`` draws one random order and takes its first n runs, so a larger subset
    always contains the smaller ones (the curve then only reflects added data, not a new
    draw); ``nested=False`` draws each subset independently.
    """
    train_runs = np.asarray(train_runs)
    sizes = [int(n) for n in n_runs_list]
    if not sizes or min(sizes) < 1 or max(sizes) > len(train_runs):
        raise ValueError(f"training_subsets: n_runs_list={list(n_runs_list)} must lie in "
                         f"[1, {len(train_runs)}] (the number of training runs).")
    rng = np.random.default_rng(seed)
    order = rng.permutation(train_runs)
    return [order[:n] if nested else rng.permutation(train_runs)[:n] for n in sizes]


def efficiency_curve(X, Y, groups, test_groups: Sequence,
                     n_runs_list: Sequence[int] = (2, 3, 5, 10, 15, 20, 25),
                     encoder: RidgeEncoder | None = None,
                     summary: Callable[[np.ndarray], float] | None = None,
                     nested: bool = True, seed: int = 0) -> EfficiencyCurve:
    """Refit the encoding model on growing subsets of training runs; score on fixed test runs.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        TR-aligned features of all runs (train and test).
    Y : array of shape (n_samples, n_targets)
    groups : array of shape (n_samples,)
        Run label per sample.
    test_groups : sequence of run labels
        Held-out runs, never used for fitting; every other run is a training run.
    n_runs_list : sequence of int
        Subset sizes; sizes above the number of training runs are an error.
    encoder : RidgeEncoder or any estimator with fit(X, Y, groups) / predict(X, groups)
        Cloned for every fit. Default: the Moussa & Toneva recipe,
        ``RidgeEncoder(cv="bootstrap", scoring="r2_huth")``, which works with 2 runs.
    summary : callable r (n_targets,) -> float
        Alignment from per-target test r; default the mean (pass e.g. a ceiling-normalised
        ROI mean).
    nested, seed : see `training_subsets`.
    """
    groups = np.asarray(groups)
    test_mask = np.isin(groups, np.asarray(test_groups))
    if not test_mask.any():
        raise ValueError(f"efficiency_curve: none of test_groups={list(test_groups)} is in "
                         f"groups; pass labels of held-out runs.")
    train_runs = np.unique(groups[~test_mask])
    encoder = RidgeEncoder(cv="bootstrap", scoring="r2_huth") if encoder is None else encoder
    summary = np.mean if summary is None else summary
    X, Y = np.asarray(X), np.asarray(Y)
    subsets = training_subsets(train_runs, n_runs_list, nested, seed)
    rs = []
    for runs in subsets:
        rows = np.isin(groups, runs)
        model = clone(encoder).fit(X[rows], Y[rows], groups[rows])
        rs.append(correlation(Y[test_mask], model.predict(X[test_mask], groups[test_mask])))
    n_runs = np.array([len(s) for s in subsets])
    rs = np.asarray(rs)
    return EfficiencyCurve(n_runs=n_runs, fractions=n_runs / len(train_runs),
                           scores=np.array([float(summary(r)) for r in rs]), r=rs,
                           train_runs=[list(s) for s in subsets])


def fraction_to_match(curve, reference: float) -> tuple[float, float]:
    """Smallest training fraction f* at which the curve reaches ``reference``; and 1/f*.

    f* is the first crossing: at the first point i with A(f_i) ≥ reference, f* is linearly
    interpolated between (f_{i−1}, A_{i−1}) and (f_i, A_i). If the first point already
    reaches the reference, f* = f_0 (no extrapolation below measured data: an upper bound).
    If no point reaches it, f* and 1/f* are NaN.

    Parameters
    ----------
    curve : EfficiencyCurve or (fractions (k,), scores (k,))
        Fractions in increasing order.
    reference : float
        Alignment to match, e.g. τ = A_pretrained(1).
    """
    fractions, scores = ((curve.fractions, curve.scores) if isinstance(curve, EfficiencyCurve)
                         else curve)
    fractions, scores = np.asarray(fractions, float), np.asarray(scores, float)
    if fractions.shape != scores.shape or fractions.ndim != 1 or np.any(np.diff(fractions) <= 0):
        raise ValueError("fraction_to_match: fractions and scores must be 1-D of equal length, "
                         "fractions strictly increasing.")
    above = np.flatnonzero(scores >= reference)
    if len(above) == 0:
        return float("nan"), float("nan")
    i = above[0]
    if i == 0:
        f_star = fractions[0]
    else:
        f0, f1, a0, a1 = fractions[i - 1], fractions[i], scores[i - 1], scores[i]
        f_star = f0 + (reference - a0) * (f1 - f0) / (a1 - a0)
    return float(f_star), float(1.0 / f_star)
