"""RidgeEncoder, make_delayed and correlation against oracles and planted answers."""
import numpy as np
import pytest
import scipy.stats
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from braintune.evaluation.encoding import RidgeEncoder, bootstrap_splits, make_delayed
from braintune.evaluation.metrics import correlation


def _planted(n=240, p=12, n_targets=30, noise=2.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 100, p))
    W = rng.standard_normal((p, n_targets)) * rng.uniform(0.05, 1.0, n_targets)
    Y = X @ W + noise * rng.standard_normal((n + 100, n_targets))
    return X[:n], Y[:n], X[n:], Y[n:]


def _sklearn_loop(X, Y, alphas, splits, X_test):
    """Oracle: per-fold, per-alpha sklearn Ridge; per-target argmax of mean validation r."""
    scores = np.zeros((len(alphas), Y.shape[1]))
    for train, val in splits:
        for a, alpha in enumerate(alphas):
            ridge = Ridge(alpha=alpha, fit_intercept=False).fit(X[train], Y[train])
            scores[a] += correlation(Y[val], ridge.predict(X[val]))
    best = scores.argmax(0)
    pred = np.column_stack([
        Ridge(alpha=alphas[b], fit_intercept=False).fit(X, Y[:, t]).predict(X_test)
        for t, b in enumerate(best)])
    return alphas[best], pred


def test_correlation_matches_scipy_and_zero_for_constant_columns():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    b[:, 1] += a[:, 1]
    a[:, 3] = 7.0
    r = correlation(a, b)
    for j in range(3):
        assert r[j] == pytest.approx(scipy.stats.pearsonr(a[:, j], b[:, j])[0], abs=1e-12)
    assert r[3] == 0.0
    assert correlation(a[:, 0], a[:, 0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="y_pred has shape"):
        correlation(a, b[:, :2])


def test_make_delayed_zero_fills_and_never_crosses_runs():
    X = np.arange(1, 13, dtype=float).reshape(6, 2)
    groups = np.array([0, 0, 0, 1, 1, 1])
    out = make_delayed(X, (0, 1, 2), groups)
    assert out.shape == (6, 6)
    np.testing.assert_array_equal(out[:, :2], X)
    np.testing.assert_array_equal(out[:, 2:4], [[0, 0], [1, 2], [3, 4], [0, 0], [7, 8], [9, 10]])
    np.testing.assert_array_equal(out[:, 4:], [[0, 0], [0, 0], [1, 2], [0, 0], [0, 0], [7, 8]])
    lead = make_delayed(X, (-1,))
    np.testing.assert_array_equal(lead[:, :], np.vstack([X[1:], [[0, 0]]]))
    with pytest.raises(ValueError, match="groups has shape"):
        make_delayed(X, (1,), groups[:4])


@pytest.mark.parametrize("solver", ["svd", "himalaya"])
def test_ridge_encoder_matches_sklearn_per_target_loop(solver):
    X, Y, X_test, Y_test = _planted()
    alphas = np.logspace(0, 4, 9)
    cv = KFold(5)
    Xd, Xd_test = make_delayed(X, (0, 1)), make_delayed(X_test, (0, 1))
    oracle_alphas, oracle_pred = _sklearn_loop(Xd, Y, alphas, list(cv.split(Xd)), Xd_test)
    enc = RidgeEncoder(alphas=alphas, delays=(0, 1), cv=cv, alpha_convention="himalaya",
                       scoring="r", solver=solver, backend="numpy").fit(X, Y)
    np.testing.assert_allclose(enc.alphas_, oracle_alphas)
    assert enc.coef_.shape == (2 * X.shape[1], Y.shape[1])
    np.testing.assert_allclose(enc.score(X_test, Y_test), correlation(Y_test, oracle_pred),
                               atol=1e-4)
    # Huth convention: the same penalties given as sqrt(alpha) are reported as such.
    huth = RidgeEncoder(alphas=np.sqrt(alphas), delays=(0, 1), cv=cv, solver=solver,
                        backend="numpy").fit(X, Y)
    np.testing.assert_allclose(huth.alphas_ ** 2, oracle_alphas, rtol=1e-6)


def test_svd_solver_matches_himalaya_ridgecv_and_torch_backend():
    from himalaya.backend import get_backend
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import correlation_score
    X, Y, X_test, _ = _planted(n_targets=60, seed=3)
    alphas = np.logspace(-1, 4, 12)
    ref = RidgeCV(alphas=alphas, cv=KFold(4),
                  solver_params=dict(score_func=correlation_score)).fit(make_delayed(X, (1, 2)), Y)
    kw = dict(alphas=alphas, delays=(1, 2), cv=KFold(4), alpha_convention="himalaya",
              dtype="float64", n_targets_batch=7)
    for solver, backend in [("svd", "numpy"), ("svd", "torch"), ("himalaya", "torch")]:
        enc = RidgeEncoder(solver=solver, backend=backend, **kw).fit(X, Y)
        np.testing.assert_allclose(enc.alphas_, ref.best_alphas_, rtol=1e-9)
        np.testing.assert_allclose(enc.coef_, ref.coef_, atol=1e-9)
        np.testing.assert_allclose(enc.cv_scores_, ref.cv_scores_, atol=1e-8)
    assert get_backend().name == "numpy"  # the caller's himalaya backend is restored


def test_bootstrap_matches_naive_bootstrap_ridge():
    """Naive re-implementation of Huth's bootstrap_ridge (α² penalty, R² in corr units)."""
    X, Y, X_test, _ = _planted(n=300, n_targets=25, seed=4)
    Y = (Y - Y.mean(0)) / Y.std(0)
    alphas, nboots, chunklen, nchunks, seed = np.logspace(0, 2.5, 8), 4, 10, 7, 11
    n_chunks = len(X) // chunklen
    rng = np.random.default_rng(seed)
    boot_scores = []
    for _ in range(nboots):
        held = rng.permutation(n_chunks)[:nchunks]
        val = np.concatenate([np.arange(c * chunklen, (c + 1) * chunklen) for c in held])
        train = np.array([i for i in range(len(X)) if i not in set(val)])
        per_alpha = []
        for alpha in alphas:
            A = X[train].T @ X[train] + alpha ** 2 * np.eye(X.shape[1])
            pred = X[val] @ np.linalg.solve(A, X[train].T @ Y[train])
            rsq = 1 - (Y[val] - pred).var(0) / ((1 + Y[val].var(0)) / 2)
            per_alpha.append(np.sign(rsq) * np.sqrt(np.abs(rsq)))
        boot_scores.append(per_alpha)
    best = np.mean(boot_scores, axis=0).argmax(0)
    coef = np.column_stack([
        np.linalg.solve(X.T @ X + alphas[b] ** 2 * np.eye(X.shape[1]), X.T @ Y[:, t])
        for t, b in enumerate(best)])

    enc = RidgeEncoder(alphas=alphas, delays=(0,), cv="bootstrap", scoring="r2_huth",
                       nboots=nboots, chunklen=chunklen, nchunks=nchunks, random_state=seed,
                       dtype="float64", backend="numpy").fit(X, Y)
    assert enc.n_splits_ == nboots
    np.testing.assert_allclose(enc.alphas_, alphas[best])
    np.testing.assert_allclose(enc.coef_, coef, atol=1e-8)


def test_bootstrap_splits_hold_out_contiguous_chunks():
    splits = bootstrap_splits(105, nboots=3, chunklen=10, nchunks=4, random_state=0)
    for train, val in splits:
        assert len(val) == 40 and len(train) == 65
        assert set(train) | set(val) == set(range(105))
        starts = val[::10]
        assert np.all(starts % 10 == 0) and np.all(val < 100)  # tail chunk never held out
        np.testing.assert_array_equal(val, (starts[:, None] + np.arange(10)).ravel())
    with pytest.raises(ValueError, match="fewer than the 10 chunks"):
        bootstrap_splits(105, nboots=1, chunklen=10, nchunks=10)


def test_fir_recovers_planted_delay_three():
    rng = np.random.default_rng(5)
    n, p, n_targets = 600, 8, 10
    X = rng.standard_normal((n, p))
    Y = make_delayed(X, (3,)) @ rng.standard_normal((p, n_targets))
    Y += 0.5 * rng.standard_normal(Y.shape)
    enc = RidgeEncoder(alphas=np.logspace(-1, 3, 9), delays=(1, 2, 3, 4, 5), cv=5).fit(X, Y)
    energy = (enc.coef_.reshape(5, p, n_targets) ** 2).sum(axis=(1, 2))
    assert energy[2] / energy.sum() > 0.9
    norms = np.linalg.norm(enc.coef_.reshape(5, p * n_targets), axis=1)
    assert norms.argmax() == 2 and norms[2] / norms.sum() > 0.9


def test_leave_runs_out_scores_zero_on_autocorrelated_noise_where_shuffled_kfold_leaks():
    rng = np.random.default_rng(6)
    n_runs, run_len, n_targets = 8, 150, 40
    t = np.arange(n_runs * run_len)
    groups = t // run_len
    # "time-trend" features: smooth bumps over session time, able to interpolate slow drifts
    centers = np.linspace(0, t[-1], 60)
    X = np.exp(-0.5 * ((t[:, None] - centers[None, :]) / 15.0) ** 2)
    Y = np.zeros((len(t), n_targets))
    eps = rng.standard_normal(Y.shape)
    for i in range(1, len(t)):  # AR(1) noise, rho = 0.97, independent of X
        Y[i] = 0.97 * Y[i - 1] * (groups[i] == groups[i - 1]) + eps[i]
    kw = dict(alphas=[1.0], delays=(0,), alpha_convention="himalaya")
    runs = RidgeEncoder(cv="leave_runs_out", **kw).fit(X, Y, groups)
    shuffled = RidgeEncoder(cv=KFold(5, shuffle=True, random_state=0), **kw).fit(X, Y)
    assert runs.n_splits_ == n_runs
    assert abs(runs.cv_scores_.mean()) < 0.05
    assert shuffled.cv_scores_.mean() > 0.3


def test_errors_name_the_argument_and_the_fix():
    X, Y, _, _ = _planted(n=60)
    groups = np.repeat([0, 1, 2], 20)
    with pytest.raises(ValueError, match="X has 60 samples .* Y has 59"):
        RidgeEncoder().fit(X, Y[:59])
    Y_nan = Y.copy()
    Y_nan[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"Y has NaN/inf in 1 of 30 columns \(first: \[4\]\)"):
        RidgeEncoder().fit(X, Y_nan)
    with pytest.raises(ValueError, match="cv=5 folds but groups has only 3 runs"):
        RidgeEncoder(cv=5).fit(X, Y, groups)
    with pytest.raises(ValueError, match="scoring='pearson' is not one of"):
        RidgeEncoder(scoring="pearson").fit(X, Y)
    with pytest.raises(ValueError, match="needs groups"):
        RidgeEncoder(cv="leave_runs_out").fit(X, Y)
    enc = RidgeEncoder(cv=3, delays=(1,)).fit(X, Y, groups)
    with pytest.raises(ValueError, match="X has 5 features but the model was fit on 12"):
        enc.predict(X[:, :5])
    assert clone(enc).get_params()["cv"] == 3 and not hasattr(clone(enc), "coef_")


@pytest.mark.gpu
def test_torch_cuda_backends_match_numpy():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    X, Y, X_test, Y_test = _planted(n_targets=50, seed=7)
    kw = dict(alphas=np.logspace(0, 4, 9), cv=KFold(5), n_targets_batch=16)
    ref = RidgeEncoder(solver="svd", backend="numpy", **kw).fit(X, Y)
    for solver in ("svd", "himalaya"):
        enc = RidgeEncoder(solver=solver, backend="torch_cuda", **kw).fit(X, Y)
        np.testing.assert_allclose(enc.alphas_, ref.alphas_)
        np.testing.assert_allclose(enc.score(X_test, Y_test), ref.score(X_test, Y_test),
                                   atol=1e-4)


# ------------------------------------------------------------------------------------------
# The spectral ("svd") solver of issue 14: against himalaya, scikit-learn and itself.

def _alpha_groups(n=400, n_test=200, p=40, per_group=250, seed=8):
    """Four groups of targets whose best α differs by design: strong, medium, weak signal, noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_test, p)) * np.linspace(1.0, 0.2, p)
    gains = np.repeat([3.0, 0.6, 0.15, 0.0], per_group)
    W = rng.standard_normal((p, len(gains))) / np.sqrt(p) * gains
    Y = X @ W + rng.standard_normal((n + n_test, len(gains)))
    Y -= Y[:n].mean(0)
    return (X[:n].astype(np.float32), Y[:n].astype(np.float32), X[n:].astype(np.float32),
            Y[n:].astype(np.float32), np.repeat(np.arange(4), per_group))


def test_spectral_solver_matches_himalaya_float32_on_planted_alpha_groups():
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import r2_score
    X, Y, X_test, Y_test, group = _alpha_groups()
    alphas = np.logspace(-1, 4, 11)
    ref = RidgeCV(alphas=alphas, cv=KFold(5), solver_params=dict(score_func=r2_score)).fit(X, Y)
    enc = RidgeEncoder(alphas=alphas, delays=(0,), cv=KFold(5), alpha_convention="himalaya",
                       scoring="r2", solver="svd", backend="numpy", dtype="float32").fit(X, Y)
    assert np.mean(np.isclose(enc.alphas_, ref.best_alphas_, rtol=1e-4)) >= 0.999
    r_ref = correlation(Y_test, np.asarray(ref.predict(X_test)))
    assert np.abs(enc.score(X_test, Y_test) - r_ref).max() <= 1e-4
    # the planted structure is recovered: weaker signal, larger α; noise-only at the top
    medians = [np.median(np.log10(enc.alphas_[group == g])) for g in range(4)]
    assert medians[0] < medians[1] < medians[2] < medians[3] == np.log10(alphas[-1])


@pytest.mark.parametrize("case", ["kfold", "time_series", "wide"])
def test_spectral_solver_matches_sklearn_loop_for_any_split_and_shape(case):
    """Train sets that are not the complement of validation, and p > n_train (dual Gram)."""
    from sklearn.model_selection import TimeSeriesSplit
    X, Y, X_test, _ = _planted(n=100 if case == "wide" else 240, p=130 if case == "wide" else 12,
                               n_targets=10, seed=9)
    cv = TimeSeriesSplit(4) if case == "time_series" else KFold(4)
    splits, alphas = list(cv.split(X)), np.logspace(-1, 4, 9)
    oracle_alphas, oracle_pred = _sklearn_loop(X, Y, alphas, splits, X_test)
    enc = RidgeEncoder(alphas=alphas, delays=(0,), cv=splits, alpha_convention="himalaya",
                       dtype="float64", backend="numpy").fit(X, Y)
    np.testing.assert_allclose(enc.alphas_, oracle_alphas)
    np.testing.assert_allclose(enc.predict(X_test), oracle_pred, atol=1e-8)


def _naive_cv_scores(X, Y, splits, penalties, scoring):
    """Oracle: mean validation score (n_alphas, n_targets) from explicit normal equations."""
    from braintune.evaluation.solvers import SCORE_FUNCS
    scores = np.zeros((len(penalties), Y.shape[1]))
    for train, val in splits:
        for a, pen in enumerate(penalties):
            W = np.linalg.solve(X[train].T @ X[train] + pen * np.eye(X.shape[1]), X[train].T @ Y[train])
            scores[a] += SCORE_FUNCS[scoring](Y[val], X[val] @ W)
    return scores / len(splits)


@pytest.mark.parametrize("scoring", ["r", "r2", "r2_huth"])
def test_pole_expansion_near_pairs_and_direct_fallback_agree(scoring, monkeypatch):
    """The three ways of scoring the α grid (`solvers._pole_expansion`) against an oracle.

    A one-hot block balanced in every fold (its six training eigenvalues exactly equal: the
    partial fractions would divide by zero) beside graded features orthogonal to it; α from
    1e-4 to 1e8; targets with an offset. The near-pair tolerance picks the path: poles with
    the exact-degenerate cluster paired exactly (1e-7), poles with larger clusters of small
    eigenvalues (1e-2), or the stacked predictions when clusters cover the spectrum (10).
    """
    from braintune.evaluation import solvers
    rng = np.random.default_rng(10)
    n, splits = 300, list(KFold(5).split(np.zeros(300)))
    category = np.arange(n) % 6
    graded = rng.standard_normal((n, 10)) * np.logspace(0, -3, 10)
    for _, val in splits:  # centred per category in every fold: orthogonal to the one-hot block
        for c in range(6):
            rows = val[category[val] == c]
            graded[rows] -= graded[rows].mean(0)
    X = np.hstack([2.0 * np.eye(6)[category], graded])
    Y = X @ rng.standard_normal((16, 12)) + rng.standard_normal((n, 12)) + 3.0
    alphas = np.logspace(-4, 8, 13)
    oracle = _naive_cv_scores(X, Y, splits, alphas, scoring)
    n_near = []
    for tol in (1e-7, 1e-2, 10.0):
        monkeypatch.setattr(solvers, "_NEAR_RTOL", tol)
        fold = solvers._fold_basis(solvers._Xp("numpy"), X, X.T @ X, *splits[0], alphas, "float64")
        n_near.append(None if fold["poles"] is None else len(fold["poles"]["near"]))
        best, cv_scores, _ = solvers._fit_svd_path(X, Y, splits, alphas, scoring, 5, "numpy", "float64")
        np.testing.assert_array_equal(best, oracle.argmax(0))
        np.testing.assert_allclose(cv_scores, oracle.max(0), rtol=1e-9, atol=1e-12)
    assert n_near[0] == 6 and n_near[1] > 6 and n_near[2] is None


def test_pole_expansion_matches_explicit_predictions_from_tiny_to_huge_alpha():
    """Σ ŷc·yc and Σ ŷc² of every α from the poles equal those of the predictions themselves."""
    from braintune.evaluation import solvers
    rng = np.random.default_rng(11)
    X = rng.standard_normal((400, 30)) * np.logspace(0, -2.5, 30)
    Y = rng.standard_normal((400, 25))
    train, val = next(iter(KFold(4).split(X)))
    alphas, xp = np.logspace(-6, 12, 10), solvers._Xp("numpy")
    fold = solvers._fold_basis(xp, X, X.T @ X, train, val, alphas, "float64")
    B = fold["V"].T @ X[train].T @ Y[train]
    Yc = Y[val] - Y[val].mean(0)
    num, pp, _ = solvers._pole_stats(xp, fold, B, fold["XvV"].T @ Yc, Yc)
    P = np.stack([fold["XvV"] @ (B * d[:, None]) for d in fold["D1"]])  # (A, n_val, T)
    np.testing.assert_allclose(num, np.einsum("ant,nt->at", P, Yc), rtol=1e-9)
    np.testing.assert_allclose(pp, (P ** 2).sum(1), rtol=1e-9)


def test_spectral_solver_torch_cpu_and_target_batches_match_one_numpy_batch(monkeypatch):
    """The torch backend on the CPU gives numpy's answer; target batches and chunks change nothing."""
    from braintune.evaluation import solvers
    X, Y, _, _, _ = _alpha_groups(per_group=40)
    kw = dict(alphas=np.logspace(-1, 4, 11), delays=(0, 1), cv=KFold(5), alpha_convention="himalaya",
              dtype="float64")
    ref = RidgeEncoder(n_targets_batch=None, backend="numpy", **kw).fit(X, Y)
    assert len(np.unique(ref.alphas_)) >= 4
    monkeypatch.setattr(solvers, "_CHUNK_ELEMENTS", {False: 1000, True: 1000})  # chunks of 3 targets
    for backend, batch in [("numpy", 7), ("torch", None), ("torch", 33)]:
        enc = RidgeEncoder(n_targets_batch=batch, backend=backend, **kw).fit(X, Y)
        np.testing.assert_array_equal(enc.alphas_, ref.alphas_)
        np.testing.assert_allclose(enc.coef_, ref.coef_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(enc.cv_scores_, ref.cv_scores_, rtol=1e-10, atol=1e-12)
