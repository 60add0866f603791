"""Config -> a brain-tuned model: data, module, logger, callbacks, Lightning Trainer, alignment before/after.

``train(cfg)`` is what ``train.py`` runs; it writes ``out_dir/config.yaml``, checkpoints under
``out_dir/checkpoints`` and ends with ``out_dir/summary.json``.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

from ..config import Config, save_config, to_dict
from ..data.datamodule import build_datamodule
from ..evaluation.alignment import measure_alignment
from ..pooling import TRPooling
from .module import BrainTuner

log = logging.getLogger(__name__)


def build_logger(cfg: Config, out_dir: Path):
    lc = cfg.logger
    if lc.kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        offline = not os.environ.get("WANDB_API_KEY")  # no key: log offline, `wandb sync` later
        if offline:
            log.info("WANDB_API_KEY is not set: logging offline under %s/wandb (sync later with `wandb sync`)", out_dir)
        return WandbLogger(project=lc.project, name=lc.run_name, save_dir=str(out_dir), offline=offline)
    if lc.kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(str(out_dir), name="logs")
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(str(out_dir), name="logs")


def build_trainer(cfg: Config, out_dir: Path, callbacks: list) -> L.Trainer:
    t = cfg.trainer
    strategy = t.strategy
    if strategy == "ddp" and t.accelerator == "cpu":
        strategy = "ddp"  # gloo on CPU, nccl on GPUs: Lightning picks the backend
    return L.Trainer(
        default_root_dir=str(out_dir), max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=strategy, precision=t.precision, gradient_clip_val=cfg.optim.grad_clip or None,
        accumulate_grad_batches=t.accumulate_grad_batches, log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches, enable_progress_bar=t.progress_bar, logger=build_logger(cfg, out_dir),
        callbacks=callbacks, deterministic=False,
    )


def _alignment(cfg: Config, module: BrainTuner, dm, participants: list[str]) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    module.to(device)
    summary, _ = measure_alignment(module.backbone, dm.study, participants, dm.splits.test_runs, cfg, module.layer, device)
    return summary


def train(cfg: Config) -> dict:
    """Brain-tune as configured; returns (and writes) the summary."""
    out_dir = Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    started = time.time()
    L.seed_everything(cfg.trainer.seed, workers=True)
    p = cfg.pooling
    dm = build_datamodule(cfg, TRPooling(p.window_s, p.lag_s, p.n_windows, p.combine).span)
    module = BrainTuner(to_dict(cfg), dm.responses.n_targets)
    if cfg.init_from:
        module.load_state_dict(torch.load(cfg.init_from, map_location="cpu", weights_only=False)["state_dict"], strict=False)

    measure = cfg.alignment.after_training
    groups = {"tuned": dm.splits.participants, "heldout": dm.splits.heldout}
    before = {k: _alignment(cfg, module, dm, v) for k, v in groups.items() if v} if measure else {}

    ckpt = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best-{epoch}", monitor="val/pearson", mode="max", save_last=True)
    trainer = build_trainer(cfg, out_dir, [ckpt, LearningRateMonitor("step")])
    last = out_dir / "checkpoints" / "last.ckpt"
    resume = str(last) if cfg.resume and last.is_file() else None
    if resume:
        log.info("resuming from %s", resume)
    trainer.fit(module, dm, ckpt_path=resume)

    summary = {
        "checkpoint": ckpt.best_model_path or None,
        "best_val_pearson": float(ckpt.best_model_score) if ckpt.best_model_score is not None else None,
        "epochs": trainer.current_epoch, "optimizer_steps": trainer.global_step,
        "participants": dm.splits.participants, "heldout_participants": dm.splits.heldout,
        "runs": {"train": dm.splits.train_runs, "val": dm.splits.val_runs, "test": dm.splits.test_runs},
        "n_targets": dm.responses.n_targets, "excluded_targets": dm.responses.excluded,
    }
    if measure and trainer.is_global_zero:
        best = BrainTuner.load_from_checkpoint(ckpt.best_model_path, map_location="cpu") if ckpt.best_model_path else module
        after = {k: _alignment(cfg, best, dm, v) for k, v in groups.items() if v}
        summary["alignment"] = {"before": before["tuned"], "after": after["tuned"]}
        if "heldout" in before:
            summary["alignment"]["heldout_participant"] = {"before": before["heldout"], "after": after["heldout"]}
    summary["seconds"] = round(time.time() - started, 1)
    if trainer.is_global_zero:
        write_summary(summary, out_dir)
    return summary


def write_summary(summary: dict, out_dir: Path) -> Path:
    path = Path(out_dir) / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))
    return path
