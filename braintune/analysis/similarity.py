"""A layer's representation X (T, D) and responses Y (T, V) on the same test TRs in, one similarity
number out (linear / RBF CKA, RSA, Procrustes, Gromov–Wasserstein, PCA-reduced ridge brain score),
with block-permutation nulls (Parra 2025, analysis_methods.md §2).

HRF delay. The ridge brain score learns its lag from FIR delays. The other measures pair TR t of X
with TR t of Y, so `delay_features` gives them the features the ridge sees, ``make_delayed(X,
delays)`` (default 1–4 TRs, concatenated), and drops each run's first ``max(delays)`` TRs, whose
delayed features are partly zero-filled. No single lag is assumed right for every region; one
fixed lag is ``delays=(k,)``.

Nulls (`permutation_test`). Y's TRs are reordered in blocks of ``block_len`` (≥ 20) TRs, the same
order for every target, and the measure is recomputed. GW never uses which TR is paired with
which, so reordering TRs leaves it unchanged: its null permutes each target with its own block
order instead (``per_target=True``), which keeps each target's autocorrelation but also breaks the
targets' shared geometry, so it tests "Y has no geometry shared with X, nor any of its own".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import ot
import scipy.linalg
import scipy.stats
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA

from braintune.evaluation.encoding import DEFAULT_ALPHAS, RidgeEncoder, make_delayed
from braintune.evaluation.metrics import correlation

MIN_BLOCK_TRS = 20  # BOLD autocorrelation spans ~10-20 TRs; shorter blocks make the null too narrow


def delay_features(X, Y, delays=(1, 2, 3, 4), groups=None) -> tuple[np.ndarray, np.ndarray]:
    """FIR-delayed X and the matching Y, without each run's first ``max(delays)`` TRs.

    X : (T, D), Y : (T, V), groups : (T,) run label per TR. Returns (T', D·len(delays)), (T', V).
    """
    X, Y = _check_pair(X, Y, "delay_features", same_width=False)
    delays = [int(d) for d in np.atleast_1d(delays)]
    if min(delays) < 0:
        raise ValueError(f"delay_features: delays {delays} must be >= 0 (features lead responses).")
    groups = np.zeros(len(X), int) if groups is None else np.asarray(groups)
    keep = np.ones(len(X), bool)
    for g in np.unique(groups):
        keep[np.flatnonzero(groups == g)[:max(delays)]] = False
    return make_delayed(X, delays, groups)[keep], Y[keep]


def _check_pair(X, Y, where: str, same_width: bool = False) -> tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or len(X) < 3 or (same_width and X.shape != Y.shape):
        raise ValueError(f"{where}: X and Y must be 2-D with the same TRs (rows){' and shape' * same_width}, "
                         f"got {X.shape} and {Y.shape}; compare them on the same test TRs.")
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise ValueError(f"{where}: X or Y has NaN/inf; mask those targets first.")
    return X, Y


def _unit(a: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(a)
    if norm == 0:
        raise ValueError("similarity: a representation is constant over TRs; nothing to compare.")
    return a / norm


# Prepared forms are row-permutation equivariant: prepare(A[π]) == prepare(A)[π] (rows; rows and
# columns for the (T, T) ones), so a null reorders them instead of recomputing from scratch.

def _linear_kernel(A):
    Ac = A - A.mean(0)
    return _unit(Ac @ Ac.T)  # column-centred, so already the doubly centred Gram H K H


def _rbf_kernel(A, sigma_frac: float = 0.8):
    d2 = cdist(A, A, "sqeuclidean")
    sigma = sigma_frac * np.median(np.sqrt(d2[np.triu_indices(len(A), 1)]))
    K = np.exp(-d2 / (2 * sigma ** 2))
    return _unit(K - K.mean(0) - K.mean(1)[:, None] + K.mean())


def _rdm_ranks(A, rdm_method: str = "correlation"):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm
    d = calc_rdm(Dataset(A), method=rdm_method).get_matrices()[0]
    upper = _upper(len(A))
    out = np.zeros_like(d)
    out[upper] = scipy.stats.rankdata(d[upper])
    return out + out.T


@lru_cache(maxsize=8)
def _upper(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


def _upper_corr(a, b):
    x, y = a[_upper(len(a))], b[_upper(len(b))]
    x, y = x - x.mean(), y - y.mean()
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def _procrustes_coords(A, n_components: int | None = None):
    """Centred, unit-Frobenius A in the coordinates of its own principal axes (T, r)."""
    U, s, _ = np.linalg.svd(_unit(A - A.mean(0)), full_matrices=False)
    r = int((s > s[0] * 1e-10).sum()) if n_components is None else min(n_components, len(s))
    return _unit(U[:, :r] * s[:r])


def _procrustes(a, b):
    width = max(a.shape[1], b.shape[1])
    a, b = (np.pad(m, ((0, 0), (0, width - m.shape[1]))) for m in (a, b))
    rot, _ = scipy.linalg.orthogonal_procrustes(a, b)
    return float(np.linalg.norm(a @ rot - b))


def _distances(A, metric: str = "euclidean"):
    C = cdist(A, A, metric)
    return C / C[np.triu_indices(len(A), 1)].mean()


def _gw(Cx, Cy):
    p = ot.unif(len(Cx))
    return float(ot.gromov.gromov_wasserstein2(Cx, Cy, p, p, loss_fun="square_loss"))


@dataclass(frozen=True)
class _Measure:
    prepare: Callable
    compare: Callable
    square: bool  # prepared form is (T, T)
    higher_is_similar: bool


def _measure(name: str, **kw) -> _Measure:
    table = {
        "linear_cka": lambda: _Measure(_linear_kernel, lambda a, b: float(np.sum(a * b)), True, True),
        "rbf_cka": lambda: _Measure(lambda A: _rbf_kernel(A, kw.get("sigma_frac", 0.8)),
                                    lambda a, b: float(np.sum(a * b)), True, True),
        "rsa": lambda: _Measure(lambda A: _rdm_ranks(A, kw.get("rdm_method", "correlation")),
                                _upper_corr, True, True),
        "procrustes": lambda: _Measure(lambda A: _procrustes_coords(A, kw.get("n_components")),
                                       _procrustes, False, False),
        "gw": lambda: _Measure(lambda A: _distances(A, kw.get("metric", "euclidean")), _gw, True, False),
        "brain_score": lambda: _Measure(np.asarray, lambda a, b: float(correlation(b, a).mean()), False, True),
    }
    allowed = {"rbf_cka": {"sigma_frac"}, "rsa": {"rdm_method"}, "procrustes": {"n_components"}, "gw": {"metric"}}
    if name not in table:
        raise ValueError(f"similarity: unknown measure {name!r}; choose one of {sorted(table)}.")
    if set(kw) - allowed.get(name, set()):
        raise ValueError(f"similarity: {name} takes no option(s) {sorted(set(kw) - allowed.get(name, set()))}; "
                         f"it accepts {sorted(allowed.get(name, set()))}.")
    return table[name]()


def linear_cka(X, Y) -> float:
    """Linear CKA ``‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)`` on column-centred X (T, D), Y (T, V), in [0, 1].

    Computed from the T × T Gram matrices (``‖YᵀX‖²_F = ⟨XXᵀ, YYᵀ⟩_F``), cheap for many voxels.
    """
    X, Y = _check_pair(X, Y, "linear_cka")
    return float(np.sum(_linear_kernel(X) * _linear_kernel(Y)))


def rbf_cka(X, Y, sigma_frac: float = 0.8) -> float:
    """CKA with Gaussian kernels, bandwidth ``sigma_frac`` × the median distance between TRs
    (Kornblith et al. 2019); tends to linear CKA as ``sigma_frac`` grows. X (T, D), Y (T, V)."""
    X, Y = _check_pair(X, Y, "rbf_cka")
    return float(np.sum(_rbf_kernel(X, sigma_frac) * _rbf_kernel(Y, sigma_frac)))


def rsa(X, Y, rdm_method: str = "correlation") -> float:
    """Spearman correlation of the two TR × TR RDMs (rsatoolbox ``calc_rdm`` / ``compare``).

    ``rdm_method`` is rsatoolbox's: "correlation" (1 − Pearson between TR patterns) or
    "euclidean" (squared distance / n_columns). X (T, D), Y (T, V).
    """
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, compare
    X, Y = _check_pair(X, Y, "rsa")
    rdms = [calc_rdm(Dataset(A), method=rdm_method) for A in (X, Y)]
    return float(compare(rdms[0], rdms[1], method="spearman")[0, 0])


def procrustes_distance(X, Y, n_components: int | None = None) -> float:
    """Orthogonal Procrustes distance ``min_Q ‖X̂ Q − Ŷ‖_F`` of centred, unit-Frobenius X̂, Ŷ, in [0, √2].

    D ≠ V: each matrix is first written in its own principal axes (an exact rotation, at most T
    columns), and the narrower one is zero-padded: padding does not change norms or the optimal
    fit, so the distance equals ``sqrt(2 − 2‖X̂ᵀŶ‖_*)``. ``n_components=k`` keeps only each side's
    first k principal components (then renormalised), i.e. compares the dominant subspaces.
    """
    X, Y = _check_pair(X, Y, "procrustes_distance")
    return _procrustes(_procrustes_coords(X, n_components), _procrustes_coords(Y, n_components))


def gw_distance(X, Y, metric: str = "euclidean") -> float:
    """Gromov–Wasserstein discrepancy between the TR × TR distance matrices (POT, square loss,
    uniform marginals); each matrix is divided by its mean off-diagonal distance, since the two
    spaces have different units. 0 for isometric point clouds; lower is more similar."""
    X, Y = _check_pair(X, Y, "gw_distance")
    return _gw(_distances(X, metric), _distances(Y, metric))


@dataclass(frozen=True)
class PCABrainScore:
    """Ridge brain score on PCA-reduced inputs: ``r`` (n_targets,), ``prediction`` and ``target``
    (T_test, n_targets); targets are voxels, or Y's components when Y is reduced."""

    r: np.ndarray
    prediction: np.ndarray
    target: np.ndarray


def ridge_pca(X_train, Y_train, X_test, Y_test, n_components: int, n_components_y: int | None = None,
              groups_train=None, groups_test=None, encoder_params: dict | None = None) -> PCABrainScore:
    """Brain score with X (and optionally Y) reduced to PCA components fitted on training TRs only.

    The PCA never sees a test TR; the test rows are projected with the training fit. Inputs are
    z-scored per run, as for `RidgeEncoder` (no intercept). ``r`` is Pearson per target
    (`metrics.correlation`) on the test TRs.

    Parameters
    ----------
    X_train : (T_train, D); Y_train : (T_train, V); X_test : (T_test, D); Y_test : (T_test, V)
    n_components : int, components of X; n_components_y : int or None (Y unreduced)
    groups_train, groups_test : run label per TR (delays stay in runs; int ``cv`` holds out runs)
    encoder_params : keywords of `RidgeEncoder` (default: its alphas, delays (1, 2, 3, 4), cv=5)
    """
    X_train, Y_train = _check_pair(X_train, Y_train, "ridge_pca")
    X_test, Y_test = _check_pair(X_test, Y_test, "ridge_pca")
    pca_x = PCA(n_components).fit(X_train)  # training rows only
    Xtr, Xte = pca_x.transform(X_train), pca_x.transform(X_test)
    if n_components_y is not None:
        pca_y = PCA(n_components_y).fit(Y_train)
        Y_train, Y_test = pca_y.transform(Y_train), pca_y.transform(Y_test)
    params = {"alphas": DEFAULT_ALPHAS, "delays": (1, 2, 3, 4), "cv": 5, **(encoder_params or {})}
    enc = RidgeEncoder(**params).fit(Xtr, Y_train, groups=groups_train)
    pred = enc.predict(Xte, groups=groups_test)
    return PCABrainScore(correlation(Y_test, pred), pred, Y_test)


@dataclass(frozen=True)
class NullResult:
    """Observed value, permutation p-value and the null distribution's summary."""

    observed: float
    p_value: float
    null_mean: float
    null_sd: float
    null_quantiles: tuple[float, float, float]  # 2.5 %, 50 %, 97.5 %
    n_perm: int
    n_blocks: int
    higher_is_similar: bool


def block_orders(n: int, block_len: int, n_perm: int, seed: int = 0, n_columns: int | None = None):
    """``n_perm`` row orders that shuffle whole blocks of ``block_len`` TRs.

    The last ``n % block_len`` TRs stay in place, so the orders form a group (shuffles of equal
    blocks) and ``p = (1 + #{null at least as similar}) / (1 + n_perm)`` is exact when TRs are
    exchangeable. Yields int arrays of shape (n,), or (n, n_columns) with an independent order
    per column when ``n_columns`` is given.
    """
    n_blocks = n // block_len
    if block_len < MIN_BLOCK_TRS or n_blocks < 2:
        raise ValueError(f"block permutation: block_len={block_len} must be >= {MIN_BLOCK_TRS} TRs "
                         f"and leave >= 2 blocks in {n} TRs; compare on more test TRs.")
    rng = np.random.default_rng(seed)
    cols = 1 if n_columns is None else n_columns
    tail = np.repeat(np.arange(n_blocks * block_len, n)[:, None], cols, axis=1)
    for _ in range(n_perm):
        starts = rng.permuted(np.tile(np.arange(n_blocks), (cols, 1)), axis=1) * block_len  # (cols, n_blocks)
        rows = (starts[:, :, None] + np.arange(block_len)).reshape(cols, -1).T  # (n_blocks·block_len, cols)
        order = np.vstack([rows, tail])
        yield order[:, 0] if n_columns is None else order


def permutation_test(measure: str, X, Y, block_len: int = MIN_BLOCK_TRS, n_perm: int = 999, seed: int = 0,
                     per_target: bool = False, **measure_kwargs) -> NullResult:
    """Block-permutation null of a measure between X (T, D) and Y (T, V).

    measure : "linear_cka", "rbf_cka", "rsa", "procrustes", "gw" or "brain_score" (X is then the
        ridge prediction (T, V) of Y, e.g. ``PCABrainScore.prediction``, and the value the mean r)
    per_target : reorder each column of Y with its own block order (required for "gw")
    measure_kwargs : ``sigma_frac``, ``rdm_method``, ``n_components``, ``metric``
    """
    X, Y = _check_pair(X, Y, f"permutation_test({measure})", same_width=measure == "brain_score")
    m = _measure(measure, **measure_kwargs)
    if measure == "gw" and not per_target:
        raise ValueError("permutation_test('gw'): GW ignores which TR is paired with which, so a shared "
                         "reordering of TRs cannot change it; pass per_target=True.")
    px, py = m.prepare(X), m.prepare(Y)
    observed = m.compare(px, py)
    null = np.empty(n_perm)
    orders = block_orders(len(X), block_len, n_perm, seed, Y.shape[1] if per_target else None)
    for k, order in enumerate(orders):
        if per_target:  # order: (T, V), one block order per target
            null[k] = m.compare(px, m.prepare(np.take_along_axis(Y, order, axis=0)))
        else:
            null[k] = m.compare(px, py[order][:, order] if m.square else py[order])
    hits = (null >= observed) if m.higher_is_similar else (null <= observed)
    return NullResult(observed, float((1 + hits.sum()) / (1 + n_perm)), float(null.mean()), float(null.std()),
                      tuple(float(q) for q in np.percentile(null, [2.5, 50, 97.5])), n_perm,
                      len(X) // block_len, m.higher_is_similar)
