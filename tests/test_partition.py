"""Variance partitioning and banded ridge recover planted unique and shared variance shares."""
import numpy as np

from braintune.evaluation.partition import banded_ridge, variance_partition


def _planted(n_runs=6, n=150, seed=0):
    """Spaces A = [S, Ua], B = [S, Ub]; Y = S ws + Ua wa + Ub wb + noise with variances 0.3 / 0.2 / 0.1 / 0.4."""
    rng = np.random.default_rng(seed)
    N, V = n_runs * n, 30
    S, Ua, Ub = (rng.standard_normal((N, 3)) for _ in range(3))
    def part(Z, var):
        w = rng.standard_normal((3, V))
        y = Z @ w
        return y / y.std(0) * np.sqrt(var)
    Y = part(S, 0.3) + part(Ua, 0.2) + part(Ub, 0.1) + rng.standard_normal((N, V)) * np.sqrt(0.4)
    groups = np.repeat(np.arange(n_runs), n)
    return np.hstack([S, Ua]), np.hstack([S, Ub]), Y, groups


def test_variance_partition_recovers_planted_shares():
    Xa, Xb, Y, g = _planted()
    train, test = g < 4, g >= 4
    Yt = Y[test] - Y[test].mean(0)
    Ytr = Y[train] - Y[train].mean(0)
    out = variance_partition(Xa[train], Xb[train], Ytr, g[train], Xa[test], Xb[test], Yt, g[test],
                             delays=(0,), cv="leave_runs_out", alpha_convention="himalaya", alphas=np.logspace(-2, 4, 13))
    assert abs(out["shared"].mean() - 0.3) < 0.05
    assert abs(out["unique_a"].mean() - 0.2) < 0.05
    assert abs(out["unique_b"].mean() - 0.1) < 0.05
    assert abs(out["r2_joint"].mean() - 0.6) < 0.05


def test_banded_ridge_gives_a_pure_noise_space_no_variance():
    rng = np.random.default_rng(1)
    Xa, _, _, g = _planted()
    noise = rng.standard_normal((len(g), 20))
    Y = Xa @ rng.standard_normal((6, 10)) + rng.standard_normal((len(g), 10))
    train, test = g < 4, g >= 4
    out = banded_ridge([Xa[train], noise[train]], Y[train] - Y[train].mean(0), g[train],
                       [Xa[test], noise[test]], Y[test] - Y[test].mean(0), g[test], delays=(0,), n_iter=10)
    split = out["split_r2"]
    assert split.shape == (2, 10)
    np.testing.assert_allclose(split.sum(0), out["r2"], atol=1e-5)
    assert split[0].mean() > 0.7  # signal of 6 unit-variance features against unit noise: R² ≈ 6/7
    assert abs(split[1].mean()) < 0.03
