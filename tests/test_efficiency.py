"""Data-efficiency curves: nested subsets, planted better features, analytic crossings."""
import numpy as np
import pytest

from braintune.evaluation.efficiency import EfficiencyCurve, efficiency_curve, fraction_to_match, training_subsets
from braintune.evaluation.encoding import RidgeEncoder


def test_fraction_to_match_on_analytic_learning_curve():
    fractions = np.arange(1, 11) / 10

    def curve(f):
        return 0.3 * (1 - np.exp(-f / 0.25))

    f_true = 0.37  # the reference is the curve's value there: a known crossing
    f_star, factor = fraction_to_match((fractions, curve(fractions)), curve(f_true))
    assert abs(f_star - f_true) < 0.1  # within one fraction step
    assert 0.3 < f_star < 0.4 and factor == pytest.approx(1 / f_star)
    # piecewise-linear curve: linear interpolation is exact
    lin = EfficiencyCurve(n_runs=np.arange(1, 5), fractions=np.array([0.25, 0.5, 0.75, 1.0]),
                          scores=np.array([0.1, 0.2, 0.4, 0.5]), r=np.zeros((4, 1)))
    assert fraction_to_match(lin, 0.3) == pytest.approx((0.625, 1.6))
    assert fraction_to_match(lin, 0.05) == pytest.approx((0.25, 4.0))  # no extrapolation
    assert np.isnan(fraction_to_match(lin, 0.6)[0])


def test_training_subsets_are_nested_and_seeded():
    runs = [f"story{i:02d}" for i in range(25)]
    sizes = (2, 3, 5, 10, 15, 20, 25)
    subsets = training_subsets(runs, sizes, nested=True, seed=4)
    assert [len(s) for s in subsets] == list(sizes)
    for small, big in zip(subsets, subsets[1:]):
        assert set(small) < set(big)
    again = training_subsets(runs, sizes, nested=True, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(subsets, again))
    independent = training_subsets(runs, sizes, nested=False, seed=4)
    assert not all(set(a) <= set(b) for a, b in zip(independent, independent[1:]))
    with pytest.raises(ValueError, match=r"must lie in \[1, 25\]"):
        training_subsets(runs, (2, 30))


def test_efficiency_curve_planted_better_features_need_less_data():
    rng = np.random.default_rng(0)
    n_runs, run_len, k, n_targets = 14, 50, 6, 30
    groups = np.repeat(np.arange(n_runs), run_len)
    latent = rng.standard_normal((len(groups), k))
    Y = latent @ rng.standard_normal((k, n_targets)) + 3.0 * rng.standard_normal((len(groups), n_targets))
    pretrained = latent @ rng.standard_normal((k, 40)) + 4.0 * rng.standard_normal((len(groups), 40))
    tuned = latent @ rng.standard_normal((k, 40)) + 0.5 * rng.standard_normal((len(groups), 40))
    encoder = RidgeEncoder(alphas=np.logspace(0, 2.5, 8), delays=(0,), cv="bootstrap",
                           chunklen=10)
    kw = dict(groups=groups, test_groups=[12, 13], n_runs_list=(2, 3, 6, 9, 12),
              encoder=encoder, seed=1)
    pre = efficiency_curve(pretrained, Y, **kw)
    tun = efficiency_curve(tuned, Y, **kw)
    assert pre.r.shape == (5, n_targets)
    np.testing.assert_allclose(pre.fractions, np.array([2, 3, 6, 9, 12]) / 12)
    for small, big in zip(tun.train_runs, tun.train_runs[1:]):
        assert set(small) < set(big) and not {12, 13} & set(big)
    assert np.all(tun.scores > pre.scores)
    assert pre.scores[-1] > pre.scores[0]
    f_star, factor = fraction_to_match(tun, reference=pre.scores[-1])
    assert f_star <= 0.5 and factor >= 2
    with pytest.raises(ValueError, match="none of test_groups"):
        efficiency_curve(pretrained, Y, groups, test_groups=[99], encoder=encoder)
