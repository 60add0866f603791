"""Ridge solvers for ``RidgeEncoder``: (X, Y, CV splits, penalties) -> per-target best α, CV score and weights.

"svd" is braintune's SVD path (one SVD per fold, ``Uᵀ Y`` reused across penalties); "himalaya" wraps
``himalaya.ridge.solve_ridge_cv_svd``. Both run on numpy or torch (CPU / CUDA) arrays.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np


# ------------------------------------------------------------------------------------------
# Scores computed along the sample axis (-2), for numpy arrays and torch tensors alike.
# Inputs: y (n, T) and predictions (..., n, T); output (..., T). Constant columns score 0.

def _center(a):
    return a - a.mean(-2)[..., None, :]


def _score_r(y, pred):
    yc, pc = _center(y), _center(pred)
    num = (yc * pc).sum(-2)
    den = ((yc ** 2).sum(-2) * (pc ** 2).sum(-2)) ** 0.5
    ok = den > 0
    return num / (den + ~ok) * ok


def _score_r2(y, pred):
    ss_tot = (_center(y) ** 2).sum(-2)
    ok = ss_tot > 0
    return (1.0 - ((y - pred) ** 2).sum(-2) / (ss_tot + ~ok)) * ok


def _score_r2_huth(y, pred):
    # Huth ridge_corr(use_corr=False): R² = 1 − Var(y − ŷ) / ((1 + Var(y)) / 2), reported in
    # "correlation units" sign(R²)·sqrt|R²|. The (1+Var)/2 denominator assumes z-scored y.
    res_var = (_center(y - pred) ** 2).mean(-2)
    y_var = (_center(y) ** 2).mean(-2)
    r2 = 1.0 - res_var / ((1.0 + y_var) / 2.0)
    zero = r2 == 0
    return r2 / (abs(r2) ** 0.5 + zero)


SCORE_FUNCS = {"r": _score_r, "r2": _score_r2, "r2_huth": _score_r2_huth}


# ------------------------------------------------------------------------------------------
# Solvers. Both return (best alpha index (T,), CV score at that alpha (T,), coef (p, T)).

def _to_backend(a: np.ndarray, backend: str, dtype: str):
    a = np.ascontiguousarray(a, dtype=dtype)
    if backend == "numpy":
        return a
    import torch
    return torch.as_tensor(a, device="cuda" if backend == "torch_cuda" else "cpu")


def _to_numpy(a) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.detach().cpu().numpy()


def _svd(a):
    if isinstance(a, np.ndarray):
        return np.linalg.svd(a, full_matrices=False)
    import torch
    return torch.linalg.svd(a, full_matrices=False)


def _fit_svd_path(X, Y, splits, penalties, score, n_targets_batch, backend, dtype):
    """One SVD per fold; ``Uᵀ Y_train`` is formed once and reused for every α.

    Validation predictions for penalty α are ``(X_val V) diag(s / (s² + α)) (Uᵀ Y_train)``
    (Huth ``ridge_corr``; encoding_anchors.md §3): O(r·n_train·T + A·n_val·r·T) per fold
    instead of himalaya's O(A·n_val·n_train·T), and memory O(n_val·batch) per α. Huth's
    ``singcutoff`` is not needed: a direction with s → 0 gets weight s/(s²+α) → 0.
    """
    score_fn = SCORE_FUNCS[score]
    n_targets = Y.shape[1]
    batches = [slice(i, i + n_targets_batch) for i in range(0, n_targets, n_targets_batch)]
    pen = _to_backend(penalties, backend, dtype)
    Xb = _to_backend(X, backend, dtype)
    scores = np.zeros((len(penalties), n_targets))
    for train, val in splits:
        U, s, Vt = _svd(Xb[_to_backend(train, backend, "int64")])
        XvV = Xb[_to_backend(val, backend, "int64")] @ Vt.T  # (n_val, r)
        for batch in batches:
            UTY = U.T @ _to_backend(Y[train, batch], backend, dtype)  # (r, T_batch)
            Yval = _to_backend(Y[val, batch], backend, dtype)  # (n_val, T_batch)
            for a in range(len(penalties)):
                pred = (XvV * (s / (s ** 2 + pen[a]))) @ UTY  # (n_val, T_batch)
                scores[a, batch] += _to_numpy(score_fn(Yval, pred))
            del UTY, Yval
        del U, s, Vt, XvV
    scores /= len(splits)
    best = scores.argmax(0)
    cv_scores = scores[best, np.arange(n_targets)]

    U, s, Vt = _svd(Xb)
    coef = np.empty((X.shape[1], n_targets), dtype=dtype)
    for batch in batches:
        UTY = U.T @ _to_backend(Y[:, batch], backend, dtype)  # (r, T_batch)
        pen_t = _to_backend(penalties[best[batch]], backend, dtype)  # (T_batch,)
        shrink = s[:, None] / (s[:, None] ** 2 + pen_t[None, :])  # (r, T_batch)
        coef[:, batch] = _to_numpy(Vt.T @ (shrink * UTY))
    return best, cv_scores, coef


@contextmanager
def _himalaya_backend(name: str):
    # himalaya's backend is a global; restore the caller's choice afterwards.
    from himalaya.backend import get_backend, set_backend
    previous = get_backend().name
    try:
        yield set_backend(name)
    finally:
        set_backend(previous)


def _fit_himalaya(X, Y, splits, penalties, score, n_targets_batch, backend, dtype):
    """himalaya ``solve_ridge_cv_svd`` with ``local_alpha=True`` on precomputed splits."""
    from himalaya.ridge import solve_ridge_cv_svd
    with _himalaya_backend(backend) as hb:
        on_gpu = backend == "torch_cuda"
        best_alphas, coef, cv_scores = solve_ridge_cv_svd(
            hb.asarray(np.asarray(X, dtype=dtype)),
            hb.asarray(np.asarray(Y, dtype=dtype), device="cpu" if on_gpu else None),
            alphas=hb.asarray(np.asarray(penalties, dtype=dtype)), cv=splits,
            score_func=SCORE_FUNCS[score], local_alpha=True, n_targets_batch=n_targets_batch,
            Y_in_cpu=on_gpu, warn=False)
        best_alphas, coef = hb.to_numpy(best_alphas), hb.to_numpy(coef)
        cv_scores = hb.to_numpy(cv_scores).reshape(-1)
    best = np.abs(np.log(best_alphas)[None, :] - np.log(penalties)[:, None]).argmin(0)
    return best, cv_scores, coef.astype(dtype, copy=False)


SOLVER_FUNCS = {"svd": _fit_svd_path, "himalaya": _fit_himalaya}
