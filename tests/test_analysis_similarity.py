"""Similarity measures against closed forms, PCA fitted on training TRs only, calibrated block-permutation nulls."""
import numpy as np
import pytest
import scipy.stats
from scipy.spatial.distance import pdist
from sklearn.decomposition import PCA

from braintune.analysis import similarity as sim
from braintune.evaluation.encoding import RidgeEncoder
from braintune.evaluation.metrics import correlation


def _rotation(d, rng):
    return np.linalg.qr(rng.standard_normal((d, d)))[0]


def test_linear_cka_closed_forms():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 6))
    assert sim.linear_cka(X, X) == pytest.approx(1, abs=1e-12)
    # Orthogonal transform, isotropic scale, translation, and extra zero columns (D != V): still 1.
    Y = np.hstack([3 * X @ _rotation(6, rng) + 5, np.zeros((80, 2))])
    assert sim.linear_cka(X, Y) == pytest.approx(1, abs=1e-12)
    # One column each: CKA = squared Pearson r.
    x, y = rng.standard_normal((80, 1)), rng.standard_normal((80, 1))
    y += 0.7 * x
    assert sim.linear_cka(x, y) == pytest.approx(scipy.stats.pearsonr(x[:, 0], y[:, 0]).statistic ** 2, abs=1e-12)
    # The feature-space formula on column-centred data equals the Gram-matrix computation.
    Z = rng.standard_normal((80, 9)) + X @ rng.standard_normal((6, 9))
    Xc, Zc = X - X.mean(0), Z - Z.mean(0)
    feature_space = np.linalg.norm(Zc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Zc.T @ Zc))
    assert sim.linear_cka(X, Z) == pytest.approx(feature_space, abs=1e-12)
    assert sim.linear_cka(X, rng.standard_normal((80, 9))) < 0.2


def test_rbf_cka_invariances_and_linear_limit():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 5))
    assert sim.rbf_cka(X, 2 * X @ _rotation(5, rng) - 1) == pytest.approx(1, abs=1e-12)
    Y = X @ rng.standard_normal((5, 7)) + rng.standard_normal((60, 7))
    assert 0.3 < sim.rbf_cka(X, Y) < 0.99
    # Very wide kernels: exp(-d²/2σ²) ≈ 1 - d²/2σ², whose centred Gram is the linear one.
    assert sim.rbf_cka(X, Y, sigma_frac=1e3) == pytest.approx(sim.linear_cka(X, Y), abs=1e-4)


def test_rsa_rotated_copy_and_scipy_oracle():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 8))
    assert sim.rsa(X, X @ _rotation(8, rng), rdm_method="euclidean") == pytest.approx(1, abs=1e-12)
    Y = X[:, :4] @ rng.standard_normal((4, 12)) + rng.standard_normal((50, 12))
    oracle = scipy.stats.spearmanr(pdist(X, "correlation"), pdist(Y, "correlation")).statistic
    assert sim.rsa(X, Y) == pytest.approx(oracle, abs=1e-10)
    # The null's fast path (ranked RDMs, reordered) starts from the same observed value.
    assert sim.permutation_test("rsa", X, Y, n_perm=5).observed == pytest.approx(oracle, abs=1e-10)


def test_procrustes_rotated_copy_and_nuclear_norm_form():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 5))
    assert sim.procrustes_distance(X, 4 * X @ _rotation(5, rng) + 2) < 1e-10
    padded = np.hstack([X @ _rotation(5, rng), np.zeros((40, 3))])  # D = 5, V = 8
    assert sim.procrustes_distance(X, padded) < 1e-10
    Y = rng.standard_normal((40, 11))
    Xn, Yn = (A - A.mean(0) for A in (X, Y))
    Xn, Yn = Xn / np.linalg.norm(Xn), Yn / np.linalg.norm(Yn)
    nuclear = np.linalg.svd(Xn.T @ Yn, compute_uv=False).sum()
    assert sim.procrustes_distance(X, Y) == pytest.approx(np.sqrt(2 - 2 * nuclear), abs=1e-10)
    low_rank = X[:, :2] @ rng.standard_normal((2, 6))
    assert sim.procrustes_distance(low_rank, low_rank @ _rotation(6, rng), n_components=2) < 1e-10


def test_gw_isometric_copy_and_row_order():
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((7, 2))
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    copy = 2 * (Z @ rot)[rng.permutation(7)] + 3  # rotated, scaled, moved, rows reordered
    assert abs(sim.gw_distance(Z, copy)) < 1e-10
    assert sim.gw_distance(Z, Z * [3, 1]) > 1e-3  # stretched: not isometric
    with pytest.raises(ValueError, match="per_target=True"):
        sim.permutation_test("gw", Z, copy)


def test_delay_features_drops_zero_filled_trs_per_run():
    X = np.arange(10, dtype=float)[:, None] + 1
    Y = 100 + np.arange(10, dtype=float)[:, None]
    groups = np.repeat([0, 1], 5)
    Xd, Yd = sim.delay_features(X, Y, delays=(1, 2), groups=groups)
    # Run 0 keeps TRs 2..4, run 1 keeps TRs 7..9; columns are X[t-1], X[t-2] within the run.
    np.testing.assert_array_equal(Yd[:, 0], [102, 103, 104, 107, 108, 109])
    np.testing.assert_array_equal(Xd, [[2, 1], [3, 2], [4, 3], [7, 6], [8, 7], [9, 8]])


def _orthogonal_pair(n, rng):
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    a -= a.mean()
    b -= b.mean() + (b - b.mean()) @ a / (a @ a) * a  # exactly uncorrelated in this sample
    return a / a.std(), b / b.std()


def test_pca_is_fitted_on_training_trs_only():
    """Test TRs carry most of their variance along a direction that is minor in training.

    X: training variance is 4 along a (unrelated to Y) and 1 along b (drives Y); test rows have
    variance 100 along b. A one-component PCA fitted on training rows keeps a (score ≈ 0);
    fitted with the test rows it keeps b and the score jumps (> 0.9). Same for Y's components.
    """
    rng = np.random.default_rng(5)
    a, b = _orthogonal_pair(300, rng)
    X_train = np.column_stack([2 * a, b])
    Y_train = (b + 0.3 * rng.standard_normal(300))[:, None]
    X_test = np.column_stack([2 * rng.standard_normal(200), 10 * rng.standard_normal(200)])
    Y_test = (X_test[:, 1] + 0.3 * rng.standard_normal(200))[:, None]
    score = sim.ridge_pca(X_train, Y_train, X_test, Y_test, n_components=1, encoder_params={"delays": (0,)})
    leaky = PCA(1).fit(np.vstack([X_train, X_test]))
    enc = RidgeEncoder(delays=(0,), cv=5).fit(leaky.transform(X_train), Y_train)
    leaky_r = correlation(Y_test, enc.predict(leaky.transform(X_test)))[0]
    assert abs(score.r[0]) < 0.25 and leaky_r > 0.9, (score.r, leaky_r)

    # Y side: training variance 9 along u (unpredictable), 1 along v (= x + noise); test v has 100.
    u, v = _orthogonal_pair(300, rng)
    x_train = v + 0.1 * rng.standard_normal(300)
    x_test = 10 * rng.standard_normal(200)
    Y_train = np.column_stack([3 * u, v])
    Y_test = np.column_stack([3 * rng.standard_normal(200), x_test + rng.standard_normal(200)])
    score = sim.ridge_pca(x_train[:, None], Y_train, x_test[:, None], Y_test, n_components=1,
                          n_components_y=1, encoder_params={"delays": (0,)})
    pca_y = PCA(1).fit(np.vstack([Y_train, Y_test]))
    enc = RidgeEncoder(delays=(0,), cv=5).fit(x_train[:, None], pca_y.transform(Y_train))
    leaky_r = correlation(pca_y.transform(Y_test), enc.predict(x_test[:, None]))[0]
    assert abs(score.r[0]) < 0.25 and leaky_r > 0.9, (score.r, leaky_r)


def test_block_orders_shuffle_whole_blocks():
    orders = list(sim.block_orders(65, 20, 50, seed=0))
    for order in orders:
        assert sorted(order) == list(range(65)) and list(order[60:]) == list(range(60, 65))
        starts = order[:60:20]
        np.testing.assert_array_equal(order[:60], (starts[:, None] + np.arange(20)).ravel())
    assert len({tuple(o) for o in orders}) > 1
    with pytest.raises(ValueError, match=">= 20 TRs"):
        next(sim.block_orders(100, 10, 1))


def _null_pvalues(measure, n_rep=150, T=160, seed=0):
    rng = np.random.default_rng(seed)
    pvals = []
    for rep in range(n_rep):
        if measure == "brain_score":  # ridge fitted on independent training TRs, scored on test TRs
            X_tr, Y_tr = rng.standard_normal((200, 5)), rng.standard_normal((200, 6))
            score = sim.ridge_pca(X_tr, Y_tr, rng.standard_normal((T, 5)), rng.standard_normal((T, 6)),
                                  n_components=3, encoder_params={"delays": (1, 2), "cv": 5})
            X, Y = score.prediction, score.target
        else:
            X, Y = rng.standard_normal((T, 4)), rng.standard_normal((T, 6))
        pvals.append(sim.permutation_test(measure, X, Y, n_perm=99, seed=rep).p_value)
    return np.array(pvals)


@pytest.mark.parametrize("measure", ["brain_score", "linear_cka", "rsa"])
def test_permutation_pvalues_uniform_on_null_data(measure):
    pvals = _null_pvalues(measure)
    ks = scipy.stats.kstest(pvals, "uniform")
    assert ks.pvalue > 0.01, (measure, ks, pvals.mean())
    assert 0.4 < pvals.mean() < 0.6


def test_permutation_detects_planted_relation():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((160, 4))
    Y = X @ rng.standard_normal((4, 6)) + rng.standard_normal((160, 6))
    for measure in ("linear_cka", "rbf_cka", "rsa", "procrustes", "brain_score"):
        pred = X @ np.linalg.lstsq(X, Y, rcond=None)[0] if measure == "brain_score" else X
        res = sim.permutation_test(measure, pred, Y, n_perm=99)
        assert res.p_value == pytest.approx(0.01), (measure, res)
        beyond = res.observed > res.null_quantiles[2] if res.higher_is_similar else res.observed < res.null_quantiles[0]
        assert beyond and res.n_blocks == 8
    res = sim.permutation_test("gw", X[:60], X[:60] @ _rotation(4, rng), n_perm=49, per_target=True)
    assert res.observed < 1e-8 and res.null_quantiles[1] > 0.01


def test_per_target_orders_differ_between_columns():
    orders = next(sim.block_orders(60, 20, 1, seed=1, n_columns=50))
    assert orders.shape == (60, 50)
    assert all(sorted(orders[:, v]) == list(range(60)) for v in range(50))
    assert len({tuple(orders[:, v]) for v in range(50)}) == 6  # all 3! block orders occur
