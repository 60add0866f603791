"""Lightning callback: every N epochs, the module's current backbone -> linear probes -> ``downstream/<task>/<metric>`` logs.

Items are read once (a seeded subsample of ``max_items`` per task), encoded with the live weights
(no feature cache: the weights change) in the modalities the backbone reads (``features.item_stimulus``:
audio, video frames at ``video_fps``/``frame_size``, words), and probed at ``layers`` (default: the layer
the heads read). With ``downstream.synthetic`` a missing MUStARD root is written first (``synthetic_mustard``).
Runs on global rank 0 only and logs with ``rank_zero_only``.
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from .command import evaluate_features, label_array, subsample
from .features import ClipInputs, extract
from .tasks import read_task
from .tasks.synthetic_mustard import write_if_missing

log = logging.getLogger(__name__)


class DownstreamProbeCallback(Callback):
    def __init__(self, tasks: dict[str, str], every_n_epochs: int = 1, max_items: int = 200,
                 layers: Optional[list[int]] = None, probe: str = "logistic", cv_folds: int = 5, seed: int = 0,
                 sample_rate: int = 16000, video_fps: float = 8.0, frame_size: int = 224):
        self.tasks = tasks  # task name -> dataset root
        self.every_n_epochs = every_n_epochs
        self.max_items = max_items
        self.layers = layers
        self.probe, self.cv_folds, self.seed = probe, cv_folds, seed
        self.sample_rate, self.video_fps, self.frame_size = sample_rate, video_fps, frame_size
        self._data: dict = {}

    def setup(self, trainer, pl_module, stage: str) -> None:
        # read (and fail on bad layouts) before the first epoch, not after it
        self._data = {name: subsample(read_task(name, root, self.seed), self.max_items, self.seed)
                      for name, root in self.tasks.items()}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs or not trainer.is_global_zero:
            return
        layers = self.layers if self.layers is not None else [getattr(pl_module, "layer", -1)]
        for name, data in self._data.items():
            for key, value in self.measure(pl_module.backbone, data, layers, pl_module.device).items():
                pl_module.log(f"downstream/{name}/{key}", value, rank_zero_only=True)

    def measure(self, backbone, data, layers: list[int], device) -> dict[str, float]:
        """Headline metrics of one task with the backbone's current weights."""
        with torch.no_grad():
            spec = ClipInputs(tuple(getattr(backbone, "inputs", ("audio",))), self.sample_rate, self.video_fps, self.frame_size)
            feats = extract(lambda: backbone, data.items, str(device), spec=spec)  # (N, L, D)
        n = feats.shape[1]
        ids = [l % n for l in layers]
        splits = np.asarray([it.split for it in data.items])
        result, _, _ = evaluate_features(feats[:, ids], label_array(data), splits, data.kind, ids, self.probe,
                                         self.cv_folds, self.seed, n_boot=0)
        keys = ("r",) if data.kind == "regression" else ("accuracy", "f1")
        return {k: float(result[k]) for k in keys} | {"chance": float(result["chance"])}


def build_downstream_callbacks(cfg) -> list[Callback]:
    """[DownstreamProbeCallback] when ``downstream.callback_tasks`` is set, else []; roots from ``downstream.roots``/``root``."""
    dc = cfg.downstream
    if not dc.callback_tasks:
        return []
    roots = {name: dc.roots.get(name, dc.root) for name in dc.callback_tasks}
    for name, root in roots.items():
        if dc.synthetic and write_if_missing(name, root, dc.seed):
            log.info("downstream.synthetic: wrote a planted MUStARD-layout dataset to %s", root)
    d = cfg.data
    return [DownstreamProbeCallback(roots, dc.every_n_epochs, dc.callback_max_items, dc.layers, dc.probe, dc.cv_folds, dc.seed,
                                    d.sample_rate, d.video_fps, d.frame_size)]
