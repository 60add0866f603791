"""Linear probes on planted features, bootstrap CI coverage, paired comparison vs scipy/closed form."""
from __future__ import annotations

import numpy as np

from braintune.downstream import probe as P


def planted(n=120, d=10, signal=2.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 2, d))
    x[:, 1, :3] += signal * np.eye(3)[y]  # layer 1 carries the class, layer 0 is noise
    splits = np.where(np.arange(n) % 4 == 0, "test", "train")
    return x, np.asarray([f"c{k}" for k in y]), splits


def test_probe_beats_chance_on_signal_and_not_on_shuffled_labels():
    x, y, splits = planted()
    test_idx, preds, scores, chance_pred = P.layerwise_predictions(x, y, splits, "classification", seed=0)
    acc = [P.metrics(y[test_idx], p, "classification")["accuracy"] for p in preds]
    chance = P.metrics(y[test_idx], chance_pred, "classification")["accuracy"]
    assert acc[1] > 0.8 and acc[1] > chance + 0.3
    assert np.argmax(scores) == 1  # the CV score on training items picks the informative layer
    shuffled = np.random.default_rng(1).permutation(y)
    test_idx, preds, _, _ = P.layerwise_predictions(x, shuffled, splits, "classification", seed=0)
    assert P.metrics(shuffled[test_idx], preds[1], "classification")["accuracy"] < 0.55


def test_ridge_regression_multilabel_and_folds():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 1, 6))
    target = x[:, 0, 0] + 0.3 * rng.standard_normal(100)
    splits = np.asarray([f"fold{i % 5}" for i in range(100)])
    idx, preds, _, _ = P.layerwise_predictions(x, target, splits, "regression")
    assert sorted(idx) == list(range(100))  # cross-validated: every item tested once
    assert P.metrics(target[idx], preds[0], "regression")["r"] > 0.8
    labels = (x[:, 0, :3] > 0).astype(int)  # three labels, each read from one feature
    idx, preds, _, _ = P.layerwise_predictions(x, labels, splits, "multilabel")
    assert P.metrics(labels[idx], preds[0], "multilabel")["accuracy"] > 0.85
    idx, preds, _, _ = P.layerwise_predictions(x, np.where(x[:, 0, 1] > 0, "a", "b"), splits, "classification", probe="ridge")
    assert P.metrics(np.where(x[idx, 0, 1] > 0, "a", "b"), preds[0], "classification")["accuracy"] > 0.85


def test_bootstrap_ci_covers_true_accuracy_at_nominal_rate():
    """A simulated classifier right with probability 0.7 on 200 items: the 95% CI covers 0.7 about 95% of the time."""
    rng = np.random.default_rng(0)
    hits, sims = 0, 300
    for s in range(sims):
        y = rng.integers(0, 2, 200)
        pred = np.where(rng.random(200) < 0.7, y, 1 - y)
        lo, hi = P.bootstrap_ci(y, pred, "classification", n_boot=400, seed=s, accuracy_only=True)["accuracy"]
        hits += lo <= 0.7 <= hi
    assert 0.90 <= hits / sims <= 0.99


def test_paired_comparison_matches_mcnemar_exact():
    from scipy.stats import binomtest

    y = np.zeros(100, dtype=int)
    a = y.copy()
    b = y.copy()
    b[:15] = 1  # b wrong on 15 items, a right there
    a[95:] = 1  # a wrong on 5 items where b is right
    out = P.paired_comparison(y, a, b, "classification", n_boot=500, seed=0)
    assert (out["only_a_correct"], out["only_b_correct"]) == (15, 5)
    assert abs(out["difference"] - 0.10) < 1e-12
    assert np.isclose(out["mcnemar_p"], binomtest(15, 20, 0.5).pvalue)
    assert out["ci"][0] < 0.10 < out["ci"][1]
