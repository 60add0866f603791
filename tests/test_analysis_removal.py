"""Property removal: a planted categorical property leaves the probe at chance after the residual
approach and after INLP, while an independent property in other directions stays decodable."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from braintune.analysis import removal

H = 24


def _words(n=1200, seed=0):
    """Sentence-level labels (copied to words) planted in orthogonal subspaces of R.

    R = mean of property A (3 classes, 2-D subspace) + mean of property B (2 classes, 1 direction)
        + 5 latent factors in their own directions + isotropic noise.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 13, size=n)
    sent = np.repeat(np.arange(n), lengths)[:n]
    a = rng.integers(0, 3, size=n)[sent]
    b = rng.integers(0, 2, size=n)[sent]
    Q, _ = np.linalg.qr(rng.standard_normal((H, H)))
    simplex = 3.0 * np.array([[1, 0], [-0.5, np.sqrt(3) / 2], [-0.5, -np.sqrt(3) / 2]])
    R = (simplex[a] @ Q[:, :2].T + 1.5 * (2 * b - 1)[:, None] * Q[:, 2]
         + rng.standard_normal((n, 5)) @ Q[:, 3:8].T + 0.5 * rng.standard_normal((n, H)))
    return R, a, b, Q


def test_residual_removal_probe_falls_to_chance_other_property_kept():
    R, a, b, Q = _words()
    before = removal.probe_accuracy(R, a)
    assert before.accuracy > 0.95 and not removal.reached_chance(before)
    Rr = removal.remove_property(R, a)
    after = removal.probe_accuracy(Rr, a)
    assert removal.reached_chance(after, tol=0.03), after
    assert removal.probe_accuracy(Rr, b).accuracy > 0.9
    # The latent factors (no class-mean signal) are kept: each direction correlates > 0.99.
    kept = [np.corrcoef(Rr @ Q[:, k], R @ Q[:, k])[0, 1] for k in range(3, 8)]
    assert min(kept) > 0.99, kept


def test_residual_in_sample_closed_form_and_ridge_oracle():
    R, a, _, _ = _words(600, seed=1)
    R = R + 5.0  # a common offset: the centred fit shrinks class means towards the mean, not towards 0
    rem = removal.ResidualRemover().fit(R, a)
    Rr = rem.transform(R, a)
    m = R.mean(0)
    np.testing.assert_allclose(rem.mean_, m)
    P, _ = removal.one_hot(a)
    counts = P.sum(0)
    # Ridge normal equations: Pᵀ(R̃ − m) = λ (PᵀP + λ)⁻¹ Pᵀ(R − m) per dimension, PᵀP = diag(class counts).
    shrink = rem.alphas_[None, :] / (counts[:, None] + rem.alphas_[None, :])
    np.testing.assert_allclose(P.T @ (Rr - m), shrink * (P.T @ (R - m)), atol=1e-8)
    for j in (0, 5, H - 1):  # per-dimension weights = scikit-learn Ridge at the chosen λ
        ref = Ridge(alpha=rem.alphas_[j], fit_intercept=False).fit(P, R[:, j] - m[j]).coef_
        np.testing.assert_allclose(rem.coef_[:, j], ref, rtol=1e-8, atol=1e-10)
    # In the OLS limit every class keeps the same mean, m (the residual is orthogonal to the design once centred).
    ols = removal.ResidualRemover(alphas=[1e-12]).fit_transform(R, a)
    assert np.abs(P.T @ (ols - m)).max() < 1e-9 * np.abs(P.T @ (R - m)).max()
    # CV picks a small λ where the property lives (class sums shrink by λ/(n_c + λ) ≈ 0) and a
    # large one on dimensions without it, which keep only their sampling-noise class means.
    energy = np.linalg.norm(P.T @ (Rr - m)) ** 2 / np.linalg.norm(P.T @ (R - m)) ** 2
    assert energy < 0.02, energy


def test_uncentred_residual_leaves_class_size_offsets_a_scaled_probe_decodes():
    """The paper's uncentred fit shrinks class means towards 0: with unequal class sizes and a common offset, the
    residual class means differ along the offset, which a standardised probe reads; the centred fit does not."""
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1, 0, 1, 0], [300, 60, 300, 60, 280])  # unequal classes, sentence-like runs
    R = rng.standard_normal((len(labels), 8)) * 0.01 + 1.0 + 0.5 * labels[:, None]
    R[:, 3] = 3.0 + 0.0001 * rng.standard_normal(len(labels))  # a near-constant offset direction
    alphas = [1.0]  # a penalty the size of the classes' counts, as CV picks on dimensions without the property
    paper = removal.ResidualRemover(alphas=alphas, center=False).fit_transform(R, labels)
    centred = removal.ResidualRemover(alphas=alphas).fit_transform(R, labels)
    probe = removal.scaled_probe()
    assert removal.probe_accuracy(paper[:, [3]], labels, estimator=probe).accuracy > 0.95
    assert removal.reached_chance(removal.probe_accuracy(centred[:, [3]], labels, estimator=probe))


def test_residual_fit_on_train_applies_to_test_words():
    R, a, b, _ = _words(2000, seed=2)
    train = np.arange(len(R)) < 1600
    assert LogisticRegression(max_iter=1000).fit(R[train], a[train]).score(R[~train], a[~train]) > 0.95
    Rr = removal.remove_property(R, a, fit_on="train", train=train)
    clf = LogisticRegression(max_iter=1000).fit(Rr[train], a[train])
    best_constant = np.bincount(a[~train]).max() / (~train).sum()  # chance on these test words
    assert clf.score(Rr[~train], a[~train]) <= best_constant + 0.05
    assert LogisticRegression(max_iter=1000).fit(Rr[train], b[train]).score(Rr[~train], b[~train]) > 0.9
    with pytest.raises(ValueError, match="boolean train mask"):
        removal.remove_property(R, a, fit_on="train")
    with pytest.raises(ValueError, match="not among the fitted classes"):
        removal.ResidualRemover().fit(R[a < 2], a[a < 2]).transform(R, a)


def test_inlp_reaches_chance_keeps_other_property():
    R, a, b, _ = _words()
    inlp = removal.INLP(max_iter=15, tol=0.01).fit(R, a)
    assert inlp.n_iter_ >= 1 and inlp.accuracies_[0] > 0.95
    assert inlp.accuracies_[-1] <= inlp.majority_ + 0.01
    Rp = inlp.transform(R)
    assert removal.reached_chance(removal.probe_accuracy(Rp, a), tol=0.03)
    assert removal.probe_accuracy(Rp, b).accuracy > 0.9
    Pi = inlp.projection_
    np.testing.assert_allclose(Pi, Pi.T, atol=1e-12)
    assert np.abs(Pi @ Pi - Pi).max() < 1e-10
    assert round(np.trace(Pi)) == H - inlp.directions_.shape[1]


def test_probe_chance_on_unrelated_labels():
    R, _, _, _ = _words(900, seed=3)
    noise_labels = np.random.default_rng(4).integers(0, 2, size=len(R))
    score = removal.probe_accuracy(R, noise_labels)
    assert abs(score.chance - 0.5) < 0.06 and removal.reached_chance(score, tol=0.03)
    layers = removal.probe_layers([R, R[:, ::-1]], noise_labels)
    assert layers["accuracy"].shape == (2,) and np.all(layers["chance"] == score.chance)


def test_removal_effect_corr_closed_form():
    # x = (1, 2, 3), y = (1, 3, 2): deviations (-1, 0, 1) and (-1, 1, 0) -> r = 1 / sqrt(2·2) = 0.5
    r, p = removal.removal_effect_corr([1, 2, 3], [1, 3, 2])
    np.testing.assert_allclose(r, [0.5])
    np.testing.assert_allclose(p, [2 / 3], rtol=1e-10)  # two-sided, n = 3: p = 1 − 2·asin(r)/π·... = 2/3
    x = np.array([0.30, 0.10, 0.25, 0.05, 0.40])
    r, _ = removal.removal_effect_corr(x, np.column_stack([2 * x + 1, -x]))
    np.testing.assert_allclose(r, [1.0, -1.0])
    with pytest.raises(ValueError, match="n_layers >= 3"):
        removal.removal_effect_corr([1, 2], [1, 2])
