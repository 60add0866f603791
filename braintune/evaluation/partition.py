"""Two or more feature spaces + responses -> how much of each target's variance each space explains.

``variance_partition``: the set-theoretic partition from three ridge fits (A, B, A∪B): unique_A = R²_AB − R²_B,
unique_B = R²_AB − R²_A, shared = R²_A + R²_B − R²_AB (e.g. low-level acoustic features vs model features,
the residual analysis of the brain-tuning paper). ``banded_ridge``: one fit with a separate regularisation per
feature space (himalaya's ``BandedRidgeCV``), and the split R² of each space (product measure, sums to the joint R²).
"""
from __future__ import annotations

import numpy as np
from himalaya.ridge import BandedRidgeCV
from himalaya.scoring import r2_score_split
from sklearn.model_selection import PredefinedSplit

from .encoding import RidgeEncoder, make_delayed
from .resample import zscore_runs
from .solvers import SCORE_FUNCS


def r2_per_target(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(n, V), (n, V) -> (V,) coefficient of determination; 0 where the target is constant."""
    return SCORE_FUNCS["r2"](np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))


def variance_partition(Xa, Xb, Y, groups, Xa_test, Xb_test, Y_test, groups_test, **encoder_params) -> dict[str, np.ndarray]:
    """Test-set R² of A, B and A∪B, and the unique / shared parts, each (n_targets,).

    X arrays are (n_TRs, p) per space, already on the TR clock; they are z-scored per run here.
    ``encoder_params`` go to every ``RidgeEncoder`` (delays, alphas, cv, ...); α is selected on R² unless
    ``scoring`` says otherwise, since a correlation criterion ignores the shrinkage that R² pays for.
    """
    encoder_params.setdefault("scoring", "r2")
    def fit_r2(train: list, test: list) -> np.ndarray:
        X = np.hstack([zscore_runs(x, groups) for x in train])
        Xt = np.hstack([zscore_runs(x, groups_test) for x in test])
        enc = RidgeEncoder(**encoder_params).fit(X, Y, groups=groups)
        return r2_per_target(Y_test, enc.predict(Xt, groups=groups_test))

    r2_a, r2_b = fit_r2([Xa], [Xa_test]), fit_r2([Xb], [Xb_test])
    r2_ab = fit_r2([Xa, Xb], [Xa_test, Xb_test])
    return {"r2_a": r2_a, "r2_b": r2_b, "r2_joint": r2_ab, "unique_a": r2_ab - r2_b, "unique_b": r2_ab - r2_a,
            "shared": r2_a + r2_b - r2_ab}


BANDED_ALPHAS = np.logspace(-2, 8, 21)


def banded_ridge(Xs: list[np.ndarray], Y, groups, Xs_test: list[np.ndarray], Y_test, groups_test, delays=(1, 2, 3, 4),
                 alphas=BANDED_ALPHAS, n_iter: int = 20, random_state: int = 0) -> dict[str, np.ndarray]:
    """Banded ridge over the feature spaces ``Xs`` (each (n_TRs, p_i)), leave-one-run-out CV over ``groups``.

    Returns ``split_r2`` (n_spaces, n_targets) on the test set (sums to the joint R²), ``r2`` (n_targets,) and
    ``deltas`` (n_spaces, n_targets), the log-scalings himalaya chose per space and target.
    """
    def design(parts, g):
        blocks = [make_delayed(zscore_runs(x, g), delays, g) for x in parts]
        return np.hstack(blocks).astype(np.float32), np.concatenate([np.full(b.shape[1], i) for i, b in enumerate(blocks)])

    X, band = design(Xs, groups)
    Xt, _ = design(Xs_test, groups_test)
    cv = PredefinedSplit(np.unique(groups, return_inverse=True)[1])  # leave one run out
    model = BandedRidgeCV(groups=band, cv=cv, random_state=random_state,
                          solver_params=dict(alphas=np.asarray(alphas), n_iter=n_iter, progress_bar=False))
    model.fit(X, Y.astype(np.float32))
    split = np.asarray(r2_score_split(Y_test.astype(np.float32), model.predict(Xt, split=True)))
    return {"split_r2": split, "r2": split.sum(0), "deltas": np.asarray(model.deltas_)}
