"""Predictions and targets (N, n_targets) -> scalar training loss: MSE, per-target Pearson over time, or a mix."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def pearson_per_target(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(N, V), (N, V) -> (V,) Pearson r of each column over the N time points."""
    p = pred - pred.mean(0, keepdim=True)
    t = target - target.mean(0, keepdim=True)
    return (p * t).sum(0) / torch.sqrt((p.square().sum(0) + eps) * (t.square().sum(0) + eps))


def pearson_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean over targets of the temporal Pearson r (needs several time points in the batch)."""
    return 1.0 - pearson_per_target(pred, target).mean()


def build_loss(name: str, pearson_weight: float = 0.5) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "mse":
        return F.mse_loss
    if name == "pearson":
        return pearson_loss
    if name == "mix":
        return lambda pred, target: (1 - pearson_weight) * F.mse_loss(pred, target) + pearson_weight * pearson_loss(pred, target)
    raise ValueError(f"loss.name '{name}' is not known; available: mse, pearson, mix")
