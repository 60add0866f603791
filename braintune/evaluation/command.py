"""``evaluate.py alignment``: a checkpoint (or the untuned backbone) -> alignment summary.json + per-target .npz."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..backbones import build_backbone, resolve_layer
from ..config import Config, save_config
from ..data.datamodule import make_splits
from ..data.formats import open_study

log = logging.getLogger(__name__)


def load_backbone(cfg: Config):
    """The backbone to measure: from ``cfg.checkpoint`` (a braintune checkpoint) or built from ``cfg.backbone``."""
    if cfg.checkpoint:
        from ..training.module import BrainTuner

        path = Path(cfg.checkpoint)
        if not path.is_file():
            from ..data.study import DataError

            raise DataError(f"checkpoint '{path}' does not exist; train.py writes them under OUT_DIR/checkpoints/")
        module = BrainTuner.load_from_checkpoint(str(path), map_location="cpu")
        return module.backbone, module.layer
    backbone = build_backbone(cfg.backbone)
    return backbone, resolve_layer(backbone, cfg.backbone.layer)


def alignment(cfg: Config) -> dict:
    """Measure every participant (tuned and held out) on the test runs; write summary.json and alignment.npz."""
    from ..evaluation.alignment import measure_alignment
    from ..training.recipe import write_summary

    out_dir = Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    study = open_study(cfg.data)
    splits = make_splits(study, cfg.data)
    backbone, layer = load_backbone(cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone.to(device)
    participants = splits.participants + splits.heldout
    summary, arrays = measure_alignment(backbone, study, participants, splits.test_runs, cfg, layer, device)
    summary["checkpoint"] = cfg.checkpoint
    summary["test_runs"] = splits.test_runs
    summary["heldout_participants"] = splits.heldout
    np.savez(out_dir / "alignment.npz", **arrays)
    write_summary(summary, out_dir)
    return summary
