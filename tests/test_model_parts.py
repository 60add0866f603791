"""Pooling weights, heads, losses and the LR schedule against hand-computed values and numpy/scipy oracles."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import pearsonr

from braintune.heads import ParticipantHeads
from braintune.losses import build_loss, pearson_loss, pearson_per_target
from braintune.pooling import TRPooling
from braintune.training.module import lr_lambda


def test_pooling_weights_are_exact_frame_averages():
    # 10 Hz frames, frame 0 starts at stimulus second 1.0 -> frame i covers [1 + i/10, 1 + (i+1)/10).
    pool = TRPooling(window_s=0.5, lag_s=0.2, n_windows=2, combine="concat")
    tr_times = np.array([[3.0, 3.3]])
    w = pool.weights(tr_times, np.array([1.0]), frame_rate=10.0, n_frames=40).numpy()
    assert w.shape == (1, 2, 2, 40)
    # TR 3.0, k=0: [2.3, 2.8] -> frames 13..17; k=1: [1.8, 2.3] -> frames 8..12.
    expect = np.zeros((2, 40))
    expect[0, 13:18] = 1 / 5
    expect[1, 8:13] = 1 / 5
    np.testing.assert_allclose(w[0, 0], expect, atol=1e-7)
    # TR 3.3, k=0: [2.6, 3.1] -> frames 16..20.
    assert np.flatnonzero(w[0, 1, 0]).tolist() == [16, 17, 18, 19, 20]
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)


def test_pooling_window_outside_frames_is_zero_and_partial_edges():
    pool = TRPooling(window_s=2.0, lag_s=0.0, n_windows=2)
    w = pool.weights(np.array([[1.0]]), np.array([0.0]), frame_rate=4.0, n_frames=8).numpy()
    # k=0: [-1, 1] clipped to frames 0..3 (4 frames); k=1: [-3, -1] lies before the first frame.
    np.testing.assert_allclose(w[0, 0, 0, :4], 0.25)
    assert w[0, 0, 0, 4:].sum() == 0 and w[0, 0, 1].sum() == 0


def test_pooling_forward_concat_vs_mean():
    torch.manual_seed(0)
    hidden = torch.randn(2, 30, 3)  # (B, T, D)
    tr_times = np.array([[2.0, 3.0, 4.0]] * 2)
    concat = TRPooling(1.0, 0.0, 2, "concat")
    mean = TRPooling(1.0, 0.0, 2, "mean")
    w = concat.weights(tr_times, np.zeros(2), frame_rate=5.0, n_frames=30)
    out_c, out_m = concat(hidden, w), mean(hidden, w)
    assert out_c.shape == (2, 3, 6) and concat.out_features(3) == 6
    assert out_m.shape == (2, 3, 3) and mean.out_features(3) == 3
    # TR at 2.0 s, k=0: [1, 2] -> frames 5..9; k=1: [0, 1] -> frames 0..4.
    torch.testing.assert_close(out_c[1, 0, :3], hidden[1, 5:10].mean(0))
    torch.testing.assert_close(out_c[1, 0, 3:], hidden[1, 0:5].mean(0))
    torch.testing.assert_close(out_m[0, 2], (hidden[0, 15:20].mean(0) + hidden[0, 10:15].mean(0)) / 2)


def test_pooling_span_covers_every_window():
    pool = TRPooling(2.0, 1.0, 5)
    assert pool.span(20.0, 30.0) == (20.0 - 1.0 - 10.0, 29.0)


@pytest.mark.parametrize("kind", ["per_participant", "low_rank"])
def test_heads_with_different_target_counts(kind):
    heads = ParticipantHeads(12, {"a": 3, "b": 7}, kind=kind, rank=4)
    out = heads(torch.randn(2, 5, 12))
    assert {p: tuple(y.shape) for p, y in out.items()} == {"a": (2, 5, 3), "b": (2, 5, 7)}
    assert list(heads(torch.randn(1, 1, 12), ["b"])) == ["b"]
    heads.add_participant("c", 2)
    assert heads(torch.randn(1, 4, 12))["c"].shape == (1, 4, 2)
    if kind == "low_rank":
        assert heads.trunk.out_features == 4 and heads.maps["a"].in_features == 4
        n_params = sum(p.numel() for p in heads.parameters())
        assert n_params == (12 * 4 + 4) + (4 * 3 + 3) + (4 * 7 + 7) + (4 * 2 + 2)


def test_shared_head():
    heads = ParticipantHeads(6, {"a": 4, "b": 4}, kind="shared")
    x = torch.randn(2, 3, 6)
    out = heads(x)
    torch.testing.assert_close(out["a"], out["b"])  # one map for everyone
    torch.testing.assert_close(out["a"], heads.shared(x))
    with pytest.raises(ValueError, match="target counts differ"):
        ParticipantHeads(6, {"a": 4, "b": 5}, kind="shared")


def test_pearson_against_scipy():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((50, 4))
    y_hat = 0.6 * y + rng.standard_normal((50, 4))
    r = pearson_per_target(torch.tensor(y_hat), torch.tensor(y)).numpy()
    oracle = [pearsonr(y_hat[:, j], y[:, j])[0] for j in range(4)]
    np.testing.assert_allclose(r, oracle, rtol=1e-6)
    loss = pearson_loss(torch.tensor(y_hat), torch.tensor(y)).item()
    assert loss == pytest.approx(1 - np.mean(oracle), rel=1e-6)
    assert pearson_loss(torch.tensor(y), torch.tensor(y)).item() == pytest.approx(0.0, abs=1e-6)


def test_losses_mse_and_mix_against_numpy():
    rng = np.random.default_rng(1)
    y, y_hat = rng.standard_normal((30, 5)), rng.standard_normal((30, 5))
    t, t_hat = torch.tensor(y), torch.tensor(y_hat)
    mse = np.mean((y - y_hat) ** 2)
    assert build_loss("mse")(t_hat, t).item() == pytest.approx(mse)
    r = np.mean([pearsonr(y_hat[:, j], y[:, j])[0] for j in range(5)])
    assert build_loss("pearson")(t_hat, t).item() == pytest.approx(1 - r, rel=1e-6)
    assert build_loss("mix", 0.25)(t_hat, t).item() == pytest.approx(0.75 * mse + 0.25 * (1 - r), rel=1e-6)
    with pytest.raises(ValueError, match="available"):
        build_loss("huber")
    assert F.mse_loss is build_loss("mse")


def test_lr_schedule_sized_from_total_steps():
    total, frac = 100, 0.1  # warm-up = 10 optimizer steps
    f = lr_lambda(total, frac, "linear")
    assert f(0) == pytest.approx(0.1)  # first step already has a non-zero LR
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)  # peak at the end of warm-up
    assert f(55) == pytest.approx(0.5)  # half-way through the decay
    assert f(100) == pytest.approx(0.0)
    assert f(500) == pytest.approx(0.0)  # never negative past the end
    c = lr_lambda(total, frac, "cosine")
    assert c(10) == pytest.approx(1.0) and c(55) == pytest.approx(0.5) and c(100) == pytest.approx(0.0, abs=1e-12)
    k = lr_lambda(total, frac, "constant")
    assert k(4) == pytest.approx(0.5) and k(10) == 1.0 and k(99) == 1.0
    assert lr_lambda(10, 0.0, "linear")(0) == pytest.approx(1.0)  # no warm-up


def test_segments_cover_every_tr_once_for_evaluation_and_are_full_for_training():
    from braintune.data.dataset import make_segments

    exact = make_segments("r", 23, 8)
    assert [(s.start, s.stop) for s in exact] == [(0, 8), (8, 16), (16, 23)]
    full = make_segments("r", 23, 8, full=True)
    assert [(s.start, s.stop) for s in full] == [(0, 8), (8, 16), (15, 23)]
    assert [(s.start, s.stop) for s in make_segments("r", 5, 8, full=True)] == [(0, 5)]  # a run shorter than K stays whole
