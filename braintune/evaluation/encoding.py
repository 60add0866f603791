"""TR-aligned features and responses in, per-target ridge encoding models and Pearson r out.

The encoding model of every brain-alignment number in braintune (analysis_methods.md §0):
FIR delays applied per run (`make_delayed`), then ridge regression with one α per target
chosen by cross-validation (`RidgeEncoder`), scored with `metrics.correlation`.

Alpha conventions. himalaya and scikit-learn penalise ``α‖w‖²`` (shrinkage ``s/(s²+α)``);
the Huth-lab ``ridge.py``/``bootstrap_ridge`` penalises ``α²‖w‖²`` (``s/(s²+α²)``). The
papers' grid ``logspace(1, 4, 15)`` is in Huth units, i.e. penalties 1e2…1e8.
`RidgeEncoder(alpha_convention="huth")` (the default) squares the grid before solving and
reports ``alphas_`` in the units it was given; ``alpha_convention="himalaya"`` uses α as is.

Inputs are expected z-scored per run (`resample.zscore_runs`); no intercept is fitted, as in
himalaya ``RidgeCV(fit_intercept=False)`` and Huth's ``bootstrap_ridge``.
"""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut

from braintune.evaluation.metrics import correlation
from braintune.evaluation.solvers import SOLVER_FUNCS

DEFAULT_ALPHAS = np.logspace(1, 4, 15)  # Moussa & Toneva 2025 grid, Huth units (α²: 1e2..1e8)
SCORES = ("r", "r2", "r2_huth")
SOLVERS = ("auto", "svd", "himalaya")
BACKENDS = ("auto", "numpy", "torch", "torch_cuda")


def make_delayed(X: np.ndarray, delays, groups: np.ndarray | None = None) -> np.ndarray:
    """Stack copies of ``X`` shifted by each delay (in TRs), zero-filled, run by run.

    Row ``t`` of block ``k`` holds ``X[t - delays[k]]`` of the same run, or zeros when that
    TR falls before the run's start (after its end for negative delays). Samples of one
    run must be in time order; runs may be interleaved.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    delays : sequence of int
        Shifts in TRs, e.g. ``(1, 2, 3, 4)`` (Huth ``make_delayed(stim, range(1, 5))``).
    groups : array of shape (n_samples,), optional
        Run label of each sample; shifted values never cross from one run to another.
        ``None`` treats all samples as one run.

    Returns
    -------
    X_delayed : array of shape (n_samples, n_features * len(delays))
        Blocks ordered as ``delays``: columns ``k*n_features:(k+1)*n_features`` are delay k.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"make_delayed: X must be 2-D (n_samples, n_features), got shape {X.shape}.")
    delays = [int(d) for d in np.atleast_1d(delays)]
    if len(delays) == 0:
        raise ValueError("make_delayed: delays is empty; pass at least one delay, e.g. (1, 2, 3, 4).")
    n, d = X.shape
    out = np.zeros((n, d * len(delays)), dtype=X.dtype)
    runs = [np.arange(n)] if groups is None else [
        np.flatnonzero(groups == g) for g in np.unique(_check_groups(groups, n, "make_delayed"))]
    for idx in runs:
        for k, delay in enumerate(delays):
            block = slice(k * d, (k + 1) * d)
            if abs(delay) >= len(idx):
                continue
            if delay >= 0:
                out[idx[delay:], block] = X[idx[:len(idx) - delay]]
            else:
                out[idx[:delay], block] = X[idx[-delay:]]
    return out


def bootstrap_splits(n_samples: int, nboots: int, chunklen: int, nchunks: int,
                     random_state: int | None = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Held-out chunk splits of the Huth-lab ``bootstrap_ridge``.

    The samples are cut into ``n_samples // chunklen`` contiguous chunks of ``chunklen``
    (a shorter tail chunk is never held out, as in ``zip(*[iter(inds)] * chunklen)``); each
    bootstrap holds out ``nchunks`` chunks drawn without replacement.

    Returns
    -------
    splits : list of nboots (train_indices, validation_indices), both sorted.
    """
    n_chunks = n_samples // chunklen
    if chunklen < 1 or nchunks < 1 or nchunks >= n_chunks:
        raise ValueError(
            f"bootstrap: nchunks={nchunks} chunks of chunklen={chunklen} TRs must be >= 1 and "
            f"fewer than the {n_chunks} chunks in {n_samples} training TRs; lower nchunks or "
            f"chunklen.")
    rng = np.random.default_rng(random_state)
    splits = []
    for _ in range(nboots):
        held = rng.permutation(n_chunks)[:nchunks]
        val = np.sort((held[:, None] * chunklen + np.arange(chunklen)).ravel())
        train = np.setdiff1d(np.arange(n_samples), val, assume_unique=True)
        splits.append((train, val))
    return splits


def _check_groups(groups, n_samples: int, where: str) -> np.ndarray:
    groups = np.asarray(groups)
    if groups.shape != (n_samples,):
        raise ValueError(
            f"{where}: groups has shape {groups.shape} but X has {n_samples} samples; pass one "
            f"run label per sample (shape ({n_samples},)).")
    return groups


class RidgeEncoder(BaseEstimator):
    """FIR-delayed ridge regression with one α per target, chosen by cross-validation.

    Parameters
    ----------
    alphas : array of shape (n_alphas,), default ``logspace(1, 4, 15)``
        Regularisation grid, in the units of ``alpha_convention``.
    delays : sequence of int, default (1, 2, 3, 4)
        FIR delays in TRs, applied inside ``fit``/``predict`` run by run (`make_delayed`).
    cv : int, "leave_runs_out", "bootstrap", scikit-learn splitter or list of (train, val)
        How α is chosen. An int k is ``GroupKFold(k)`` over ``groups`` (whole runs held
        out), or contiguous ``KFold(k)`` when ``groups`` is None. "leave_runs_out" is
        ``LeaveOneGroupOut``. "bootstrap" is Huth's ``bootstrap_ridge`` selection:
        ``nboots`` draws of ``nchunks`` random contiguous chunks of ``chunklen`` TRs held
        out (`bootstrap_splits`). A splitter gets ``split(X, groups=groups)``.
    alpha_convention : {"huth", "himalaya"}
        "huth": the penalty is α² (``bootstrap_ridge``); "himalaya": the penalty is α.
    scoring : {"r", "r2", "r2_huth"}
        Validation criterion (``score`` is taken by the method), averaged over folds
        before the per-target argmax. "r2_huth" is ``ridge_corr(use_corr=False)``:
        sign(R²)·sqrt|R²| with Huth's (1+Var)/2 denominator (Moussa & Toneva 2025 select α
        this way with ``cv="bootstrap"``).
    solver : {"auto", "svd", "himalaya"}
        "svd": braintune's SVD-path solver (one SVD per fold, ``Uᵀ Y`` reused across α).
        "himalaya": ``himalaya.ridge.solve_ridge_cv_svd``. Both give the same α and weights;
        "auto" is "svd": ``benchmarks/ridge.py`` (3,000 TRs × 768 features × 20k targets,
        10 α, 5 folds, 1 CPU thread) measured 15 vs 40 CPU s and 0.35 vs 1.29 GiB extra
        RSS against himalaya ``RidgeCV``, with identical α and |Δr| < 4e-7.
    backend : {"auto", "numpy", "torch", "torch_cuda"}
        "auto" is "torch_cuda" when a CUDA GPU is visible, else "numpy".
    n_targets_batch : int or None
        Targets solved at once; bounds memory. None solves all targets together.
    nboots, chunklen, nchunks : int
        Bootstrap settings; ``nchunks=None`` holds out 25 % of the training TRs.
    dtype : {"float32", "float64"}
        Precision of the solve (float32 is ~3× faster and half the memory).
    random_state : int or None
        Seed of the bootstrap chunk draws.

    Attributes
    ----------
    alphas_ : array of shape (n_targets,)
        Chosen α per target, in ``alpha_convention`` units.
    coef_ : array of shape (n_features * n_delays, n_targets)
        Weights on the delayed features (delay-major blocks, as `make_delayed`).
    cv_scores_ : array of shape (n_targets,)
        Mean validation score at the chosen α.
    n_features_in_, n_splits_, solver_, backend_ : fitted settings, for the run record.
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, delays=(1, 2, 3, 4), cv=5,
                 alpha_convention="huth", scoring="r", solver="auto", backend="auto",
                 n_targets_batch=10000, nboots=3, chunklen=20, nchunks=None,
                 dtype="float32", random_state=0):
        self.alphas = alphas
        self.delays = delays
        self.cv = cv
        self.alpha_convention = alpha_convention
        self.scoring = scoring
        self.solver = solver
        self.backend = backend
        self.n_targets_batch = n_targets_batch
        self.nboots = nboots
        self.chunklen = chunklen
        self.nchunks = nchunks
        self.dtype = dtype
        self.random_state = random_state

    def fit(self, X, Y, groups=None):
        """Choose α per target by CV on delayed ``X`` and refit on all samples.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        Y : array of shape (n_samples, n_targets) (1-D is one target)
        groups : array of shape (n_samples,), optional
            Run label of each sample: delays stay within runs and int ``cv`` holds out runs.
        """
        X, Y = self._check_xy(X, Y)
        groups = None if groups is None else _check_groups(groups, len(X), "RidgeEncoder.fit")
        alphas = self._check_params()
        Xd = make_delayed(X, self.delays, groups)
        splits = self._splits(len(Xd), groups)
        penalties = alphas ** 2 if self.alpha_convention == "huth" else alphas
        self.solver_ = "svd" if self.solver == "auto" else self.solver
        self.backend_ = _resolve_backend(self.backend)
        batch = self.n_targets_batch or Y.shape[1]
        best, self.cv_scores_, self.coef_ = SOLVER_FUNCS[self.solver_](
            Xd, Y, splits, penalties, self.scoring, batch, self.backend_, self.dtype)
        self.alphas_ = alphas[best]
        self.n_features_in_ = X.shape[1]
        self.n_splits_ = len(splits)
        return self

    def predict(self, X, groups=None) -> np.ndarray:
        """Predicted responses, shape (n_samples, n_targets)."""
        if not hasattr(self, "coef_"):
            raise RuntimeError("RidgeEncoder.predict: call fit(X, Y, groups) first.")
        X = _check_2d(X, "X", "RidgeEncoder.predict")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"RidgeEncoder.predict: X has {X.shape[1]} features but the model was fit on "
                f"{self.n_features_in_}; pass features from the same layer/feature space.")
        groups = None if groups is None else _check_groups(groups, len(X), "RidgeEncoder.predict")
        Xd = make_delayed(X.astype(self.coef_.dtype, copy=False), self.delays, groups)
        return Xd @ self.coef_

    def score(self, X, Y, groups=None) -> np.ndarray:
        """Pearson r per target between ``Y`` and the prediction, shape (n_targets,)."""
        Y = np.asarray(Y)
        pred = self.predict(X, groups)
        return correlation(Y.reshape(len(Y), -1), pred)

    def _check_xy(self, X, Y):
        X = _check_2d(X, "X", "RidgeEncoder.fit")
        Y = np.asarray(Y)
        Y = _check_2d(Y.reshape(len(Y), -1) if Y.ndim == 1 else Y, "Y", "RidgeEncoder.fit")
        if len(X) != len(Y):
            raise ValueError(
                f"RidgeEncoder.fit: X has {len(X)} samples (TRs) but Y has {len(Y)}; features "
                f"and responses must be aligned on the same TRs (see resample.lanczos_resample).")
        return X, Y

    def _check_params(self) -> np.ndarray:
        choices = {"alpha_convention": ("huth", "himalaya"), "scoring": SCORES,
                   "solver": SOLVERS, "backend": BACKENDS, "dtype": ("float32", "float64")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"RidgeEncoder: {name}={getattr(self, name)!r} is not one of "
                                 f"{allowed}.")
        alphas = np.asarray(self.alphas, dtype=np.float64)
        if alphas.ndim != 1 or len(alphas) == 0 or not np.all(alphas > 0):
            raise ValueError(f"RidgeEncoder: alphas must be a non-empty 1-D array of positive "
                             f"values, got {self.alphas!r}.")
        if self.n_targets_batch is not None and int(self.n_targets_batch) < 1:
            raise ValueError(f"RidgeEncoder: n_targets_batch={self.n_targets_batch} must be a "
                             f"positive int or None.")
        return alphas

    def _splits(self, n_samples: int, groups) -> list[tuple[np.ndarray, np.ndarray]]:
        cv = self.cv
        n_groups = 0 if groups is None else len(np.unique(groups))
        if isinstance(cv, str) and cv == "bootstrap":
            nchunks = self.nchunks or max(1, int(0.25 * n_samples / self.chunklen))
            return bootstrap_splits(n_samples, self.nboots, self.chunklen, nchunks,
                                    self.random_state)
        if isinstance(cv, str) and cv == "leave_runs_out":
            if n_groups < 2:
                raise ValueError(f"RidgeEncoder: cv='leave_runs_out' needs groups with at least "
                                 f"2 runs, got {n_groups}; pass groups= (run label per TR).")
            splitter = LeaveOneGroupOut()
        elif isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
            if groups is not None and n_groups < cv:
                raise ValueError(f"RidgeEncoder: cv={cv} folds but groups has only {n_groups} "
                                 f"runs; pass cv={n_groups} or cv='leave_runs_out'.")
            splitter = KFold(cv) if groups is None else GroupKFold(cv)
        elif hasattr(cv, "split"):
            splitter = cv
        elif isinstance(cv, str):
            raise ValueError(f"RidgeEncoder: cv={cv!r} is not one of: an int, "
                             f"'leave_runs_out', 'bootstrap', a splitter, a list of splits.")
        else:
            return _check_splits([(np.asarray(tr), np.asarray(va)) for tr, va in cv], n_samples)
        dummy = np.zeros((n_samples, 1))
        return _check_splits(list(splitter.split(dummy, groups=groups)), n_samples)


def _check_splits(splits, n_samples: int):
    for k, (train, val) in enumerate(splits):
        if len(train) == 0 or len(val) == 0 or max(train.max(), val.max()) >= n_samples:
            raise ValueError(f"RidgeEncoder: CV split {k} has {len(train)} train and {len(val)} "
                             f"validation samples or indices beyond {n_samples} samples; check cv.")
    return splits


def _check_2d(a, name: str, where: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] < 2 or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{where}: {name} must be a numeric 2-D array (n_samples, n_columns) "
                         f"with n_samples >= 2, got shape {a.shape} and dtype {a.dtype}.")
    if np.isfinite(a.sum()):  # one pass, no (n, T) temporary: a NaN/inf anywhere makes the sum non-finite
        return a
    bad = ~np.isfinite(a).all(0)
    if bad.any():
        raise ValueError(
            f"{where}: {name} has NaN/inf in {bad.sum()} of {a.shape[1]} columns (first: "
            f"{np.flatnonzero(bad)[:5].tolist()}); drop those columns (e.g. mask the voxels) or "
            f"impute them before fitting.")
    return a


def _resolve_backend(backend: str) -> str:
    if backend != "auto":
        return backend
    import importlib.util
    if importlib.util.find_spec("torch") is not None:
        import torch
        if torch.cuda.is_available():
            return "torch_cuda"
    return "numpy"
