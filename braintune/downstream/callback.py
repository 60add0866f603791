"""Lightning callback: every N epochs, the module's current backbone -> linear probes -> ``downstream/<task>/<metric>`` logs.

Items are read by whoever builds the callback (the train command: a seeded subsample per task), encoded with the
live weights (no feature cache: the weights change) in the modalities the backbone reads (``backbone.spec``), and
probed at ``layers`` (default: the layer the heads read; out-of-range layers are refused). Runs on global rank 0
only and logs with ``rank_zero_only``.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from .evaluate import evaluate_features, label_array, select_layers
from .features import extract
from .tasks.base import TaskData

log = logging.getLogger(__name__)


class DownstreamProbeCallback(Callback):
    """Probes ``tasks`` (already read: name -> TaskData) every ``every_n_epochs`` epochs with the live backbone."""

    def __init__(self, tasks: dict[str, TaskData], every_n_epochs: int = 1, layers: list[int] | None = None,
                 probe: str = "logistic", cv_folds: int = 5, seed: int = 0):
        self.tasks, self.every_n_epochs, self.layers = tasks, every_n_epochs, layers
        self.probe, self.cv_folds, self.seed = probe, cv_folds, seed

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs or not trainer.is_global_zero:
            return
        layers = self.layers if self.layers is not None else [getattr(pl_module, "layer", -1)]
        for name, data in self.tasks.items():
            for key, value in self.measure(pl_module.backbone, data, layers, pl_module.device).items():
                pl_module.log(f"downstream/{name}/{key}", value, rank_zero_only=True)

    def measure(self, backbone, data: TaskData, layers: list[int], device) -> dict[str, float]:
        """Headline metrics of one task with the backbone's current weights."""
        with torch.no_grad():
            feats = extract(lambda: backbone, data.items, backbone.spec, str(device))  # (N, L, D)
        feats, ids = select_layers(feats, layers)
        splits = np.asarray([it.split for it in data.items])
        result, _, _ = evaluate_features(feats, label_array(data), splits, data.kind, ids, self.probe,
                                         self.cv_folds, self.seed, n_boot=0)
        keys = ("r",) if data.kind == "regression" else ("accuracy", "f1")
        return {k: float(result[k]) for k in keys} | {"chance": float(result["chance"])}
