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
