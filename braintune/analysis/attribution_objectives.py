"""A fitted ridge encoder and recorded responses in; the differentiable objectives of the attribution out: `RidgeHead`
(the encoder as a linear map on raw per-TR features, its z-scoring folded in), `BrainObjective` (BA: MSE or negative
correlation to the response per TR) and `NextWordObjective` (NWP) (Proietti, Capobianco & Toneva 2025;
analysis_methods.md §3.5).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class RidgeHead(nn.Module):
    """A fitted ridge encoder as a linear map from raw per-TR features of TRs ``t - d`` to the response at ``t``.

    Parameters
    ----------
    coef : array (n_features * n_delays, n_targets), delay-major blocks (`RidgeEncoder.coef_`)
    delays : sequence of int, the encoder's FIR delays in TRs
    feature_mean, feature_std : arrays (n_features,)
        The per-run statistics the caller z-scored the features with; columns with ``std`` ≈ 0 were z-scored to 0
        (as `data.responses.zscore` does) and get no weight.
    """

    def __init__(self, coef, delays, feature_mean, feature_std):
        super().__init__()
        self.delays = tuple(int(d) for d in delays)
        mean, std = np.asarray(feature_mean, np.float64), np.asarray(feature_std, np.float64)
        k, f = len(self.delays), len(mean)
        coef = np.asarray(coef, np.float64)
        if coef.shape[0] != k * f or std.shape != mean.shape:
            raise ValueError(f"RidgeHead: coef has {coef.shape[0]} rows but {k} delays x {f} features "
                             f"(feature_mean {mean.shape}, feature_std {std.shape}); pass the statistics of the "
                             f"features the encoder was fit on.")
        inv = np.where(std <= 1e-12 * np.maximum(np.abs(mean), 1.0), 0.0, 1.0 / np.where(std > 0, std, 1.0))
        weight = coef.reshape(k, f, -1) * inv[None, :, None]  # (K, F, V): z-scoring folded into the weights
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32))
        self.register_buffer("shift", torch.as_tensor(np.einsum("f,kfv->kv", mean, weight), dtype=torch.float32))

    @classmethod
    def from_encoder(cls, encoder, feature_mean, feature_std) -> RidgeHead:
        """Head of a fitted `braintune.evaluation.encoding.RidgeEncoder`."""
        return cls(encoder.coef_, encoder.delays, feature_mean, feature_std)

    def select(self, targets) -> RidgeHead:
        """A copy restricted to ``targets`` (int array)."""
        new = copy.copy(self)
        new._buffers = {"weight": self.weight[..., targets], "shift": self.shift[:, targets]}
        return new

    def forward(self, feats: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """feats (B, K, F) raw features of TRs ``t - delays[k]``; present (B, K) False before the run -> (B, V)."""
        z = torch.einsum("bkf,kfv->bkv", feats.to(self.weight.dtype), self.weight) - self.shift  # (B, K, V)
        return (z * present[..., None].float()).sum(1)  # zero-filled delays, as make_delayed


class BrainObjective(nn.Module):
    """BA objective per TR: ``"mse"`` to the response, or ``"negcorr"``, minus TR t's share of the mean Pearson r.

    ``negcorr`` is ``-mean_v((ŷ_tv - m_v) / s_v · y_tv)``: with ``y`` z-scored and ``m, s`` the mean/std of the
    run's predictions held fixed, summing it over TRs gives ``-T`` times the mean r over targets.

    Parameters
    ----------
    head : RidgeHead
    responses : array (n_trs, n_targets), in the space the encoder was fit in (z-scored per run)
    layer : int, the hidden-state index (0 = embeddings) whose TR features the head was fit on
    targets : int array or None, targets kept (see `top_targets`); None keeps all
    kind : {"mse", "negcorr"}
    pred_mean, pred_std : arrays (n_targets,) for ``negcorr``
    """

    def __init__(self, head: RidgeHead, responses, layer: int = -1, targets=None, kind: str = "mse", pred_mean=None,
                 pred_std=None):
        super().__init__()
        if kind not in ("mse", "negcorr") or (kind == "negcorr" and (pred_mean is None or pred_std is None)):
            raise ValueError(f"BrainObjective: kind={kind!r} must be 'mse' or 'negcorr' (which needs pred_mean and "
                             f"pred_std of the run's predictions).")
        keep = np.arange(head.weight.shape[-1]) if targets is None else np.asarray(targets, dtype=np.int64)
        self.head, self.kind, self.delays, self.layer = head.select(keep), kind, head.delays, int(layer)
        stats = [np.zeros(len(keep)), np.ones(len(keep))] if kind == "mse" else [
            np.asarray(pred_mean)[keep], np.asarray(pred_std)[keep]]
        self.register_buffer("responses", torch.as_tensor(np.asarray(responses)[:, keep], dtype=torch.float32))
        self.register_buffer("pred_mean", torch.as_tensor(stats[0], dtype=torch.float32))
        self.register_buffer("pred_std", torch.as_tensor(stats[1], dtype=torch.float32))

    def forward(self, feats: torch.Tensor, present: torch.Tensor, trs: torch.Tensor) -> torch.Tensor:
        """feats (B, K, F), present (B, K), trs (B,) -> objective (B,)."""
        pred, y = self.head(feats, present), self.responses[trs]  # (B, V)
        if self.kind == "mse":
            return ((pred - y) ** 2).mean(1)
        return -(((pred - self.pred_mean) / self.pred_std) * y).mean(1)


@dataclass(frozen=True)
class NextWordObjective:
    """NWP objective: mean cross-entropy of the next word's sub-tokens; ``masked`` for masked LMs (BERT)."""
    delays: tuple = (1, 2, 3, 4)
    masked: bool = False


def top_targets(test_r, k: int) -> np.ndarray:
    """Indices of the ``k`` targets with the highest held-out r (the BA objective's target set)."""
    return np.argsort(-np.nan_to_num(np.asarray(test_r, float), nan=-np.inf))[:k]
