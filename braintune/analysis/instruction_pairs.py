"""Features of several instructions + responses -> variance partitioning of every instruction pair.

Oota et al. 2025 Appendix M (analysis_methods.md §4.8.4) fit A, B and the concatenation [A, B] and do the set
arithmetic on normalised brain alignment (NBA, r / ceiling): shared = NBA_A + NBA_B − NBA_{A∪B},
unique_A = NBA_{A∪B} − NBA_B. Correlations do not add, so braintune also gives the same arithmetic on R²
(variance does add; the sound choice), as ``braintune.evaluation.partition.variance_partition`` does for one
pair. One fit per space and per pair yields both units: each instruction is fitted once, not once per pair.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from braintune.evaluation.ceiling import normalized_r
from braintune.evaluation.encoding import RidgeEncoder
from braintune.evaluation.metrics import correlation
from braintune.evaluation.partition import r2_per_target
from braintune.evaluation.resample import zscore_runs

UNITS = ("r", "r2")


def _fit_scores(train: list, test: list, Y, groups, Y_test, groups_test, params) -> tuple[np.ndarray, np.ndarray]:
    """Test r and R² (each (n_targets,)) of one ridge fit on the z-scored, concatenated spaces."""
    X = np.hstack([zscore_runs(x, groups) for x in train])
    Xt = np.hstack([zscore_runs(x, groups_test) for x in test])
    pred = RidgeEncoder(**params).fit(X, Y, groups=groups).predict(Xt, groups=groups_test)
    return correlation(Y_test, pred), r2_per_target(Y_test, pred)


@dataclass
class PairScores:
    """Test scores of single spaces and of pairs.

    names : the spaces (instructions); pairs : list of (i, j) indices into ``names``
    r, r2 : (n_spaces, n_targets) of each space alone; r_joint, r2_joint : (n_pairs, n_targets) of [A, B]
    """
    names: list[str]
    pairs: list[tuple[int, int]]
    r: np.ndarray
    r2: np.ndarray
    r_joint: np.ndarray
    r2_joint: np.ndarray

    def partition(self, unit: str = "r2", ceiling=None, min_ceiling: float = 0.05) -> dict[str, np.ndarray]:
        """Set-theoretic partition of every pair, each entry (n_pairs, n_targets).

        unit "r2": R² (``variance_partition``'s definitions); "r": correlation, divided by ``ceiling``
        ((n_targets,), NaN below ``min_ceiling``) when given, i.e. the paper's NBA units.
        Keys: a, b, joint, unique_a, unique_b, shared.
        """
        if unit not in UNITS:
            raise ValueError(f"partition: unit='{unit}' is not one of {UNITS}")
        single, joint = (self.r2, self.r2_joint) if unit == "r2" else (self.r, self.r_joint)
        if unit == "r" and ceiling is not None:
            single, joint = normalized_r(single, ceiling, min_ceiling), normalized_r(joint, ceiling, min_ceiling)
        a, b = single[[i for i, _ in self.pairs]], single[[j for _, j in self.pairs]]
        return {"a": a, "b": b, "joint": joint, "unique_a": joint - b, "unique_b": joint - a,
                "shared": a + b - joint}


def partition_pairs(spaces: Mapping[str, np.ndarray], spaces_test: Mapping[str, np.ndarray], Y, groups, Y_test,
                    groups_test, pairs: list[tuple[str, str]] | None = None, **encoder_params) -> PairScores:
    """Fit every space alone and every pair jointly; score r and R² on the test runs.

    Parameters
    ----------
    spaces, spaces_test : name -> (n_TRs, p) features on the TR clock (z-scored per run here)
    Y, Y_test : (n_TRs, n_targets) responses (z-scored per run by the caller, as for ``variance_partition``)
    groups, groups_test : (n_TRs,) run labels
    pairs : name pairs; None is all n·(n−1)/2 pairs (78 for 13 instructions)
    encoder_params : ``RidgeEncoder`` settings; α is chosen on R² unless ``scoring`` says otherwise
    """
    names = list(spaces)
    missing = sorted(set(names) ^ set(spaces_test))
    if missing:
        raise ValueError(f"partition_pairs: spaces {missing} are not in both the training and the test features")
    pairs = list(combinations(names, 2)) if pairs is None else list(pairs)
    bad = sorted({n for p in pairs for n in p} - set(names))
    if bad:
        raise ValueError(f"partition_pairs: pairs name unknown spaces {bad}; known: {names}")
    encoder_params.setdefault("scoring", "r2")
    fit = lambda keys: _fit_scores([spaces[k] for k in keys], [spaces_test[k] for k in keys],  # noqa: E731
                                   Y, groups, Y_test, groups_test, encoder_params)
    singles = [fit([n]) for n in names]
    joints = [fit(list(p)) for p in pairs]
    return PairScores(names, [(names.index(a), names.index(b)) for a, b in pairs],
                      np.stack([s[0] for s in singles]), np.stack([s[1] for s in singles]),
                      np.stack([j[0] for j in joints]), np.stack([j[1] for j in joints]))


def region_percentages(parts: dict[str, np.ndarray], regions: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Shared / unique parts of each pair as percentages of the joint score, per region.

    Each component and the joint score are averaged over the region's targets (NaN ignored) first, so
    shared + unique_a + unique_b = 100 %. ``regions``: name -> (n_targets,) bool mask; "whole_brain" is added.
    Returns region -> {"shared", "unique_a", "unique_b"} -> (n_pairs,) percentages.
    """
    n_targets = parts["joint"].shape[1]
    masks = {"whole_brain": np.ones(n_targets, bool), **{k: np.asarray(m, bool) for k, m in regions.items()}}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # regions without a kept target give NaN
        for name, mask in masks.items():
            if mask.shape != (n_targets,):
                raise ValueError(f"region '{name}' mask has shape {mask.shape}, expected ({n_targets},)")
            joint = np.nanmean(parts["joint"][:, mask], 1)
            out[name] = {k: 100 * np.nanmean(parts[k][:, mask], 1) / joint for k in ("shared", "unique_a", "unique_b")}
    return out
