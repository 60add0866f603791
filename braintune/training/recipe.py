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
from lightning.pytorch.utilities import rank_zero_only

from ..config import Config, ConfigError, save_config, to_dict
from ..data.datamodule import build_datamodule
from ..evaluation.alignment import measure_alignment, summarize
from ..pooling import TRPooling
from .callbacks import FrozenBackboneEval
from .module import BrainTuner

log = logging.getLogger(__name__)


def build_logger(cfg: Config, out_dir: Path):
    """The dashboard: wandb (offline under out_dir/wandb when no WANDB_API_KEY), TensorBoard or CSV."""
    lc = cfg.logger
    if lc.kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        offline = not os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "dryrun")
        if offline:  # no key: never touch the network; `wandb sync out_dir/wandb/offline-run-*` later
            os.environ["WANDB_MODE"] = "offline"
            log.info("WANDB_API_KEY is not set: logging offline under %s/wandb (sync later with `wandb sync`)", out_dir)
        os.environ.setdefault("WANDB_DIR", str(out_dir))
        return WandbLogger(project=lc.project, name=lc.run_name, save_dir=str(out_dir), offline=offline)
    if lc.kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(str(out_dir), name="logs")
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(str(out_dir), name="logs")  # out_dir/logs/version_N/metrics.csv


def n_devices(t) -> int:
    """Processes the trainer will launch: devices per node × nodes (``auto``/-1: every visible GPU)."""
    per_node = t.devices
    if per_node in ("auto", -1, "-1"):
        per_node = torch.cuda.device_count() if t.accelerator != "cpu" and torch.cuda.is_available() else 1
    elif isinstance(per_node, (list, tuple)):
        per_node = len(per_node)
    return int(per_node) * t.num_nodes


def build_strategy(t, find_unused: bool):
    """``trainer.strategy`` -> a Lightning strategy; several processes with ``auto`` mean DDP.

    DDP's ``find_unused_parameters`` (an extra graph traversal every step) is only switched on when a
    batch can miss a participant, whose head then gets no gradient; frozen parameters (CNN feature
    encoder, LoRA's base weights) have requires_grad False and never need it.
    """
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    if t.strategy == "fsdp":
        return FSDPStrategy(use_orig_params=True)  # LoRA mixes frozen and trained weights in one module
    if t.strategy == "ddp" or (t.strategy == "auto" and n_devices(t) > 1):
        return DDPStrategy(find_unused_parameters=find_unused)
    return "auto"


def build_trainer(cfg: Config, out_dir: Path, callbacks: list, find_unused: bool = True) -> L.Trainer:
    t = cfg.trainer
    return L.Trainer(
        default_root_dir=str(out_dir), max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=build_strategy(t, find_unused), precision=t.precision,
        gradient_clip_val=cfg.optim.grad_clip or None,
        accumulate_grad_batches=t.accumulate_grad_batches, log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches, enable_progress_bar=t.progress_bar, logger=build_logger(cfg, out_dir),
        callbacks=callbacks, deterministic=False,
    )


def init_from_checkpoint(module: BrainTuner, path: str) -> list[str]:
    """Copy a braintune checkpoint's backbone and known heads into ``module``; returns the participants it lacked.

    Heads of participants that the checkpoint does not know keep their fresh initialisation; heads of
    checkpoint participants absent from this run are ignored. Any other mismatch is a ``ConfigError``.
    """
    if not Path(path).is_file():
        raise ConfigError(f"init_from '{path}' is not a file; give a braintune checkpoint (out_dir/checkpoints/*.ckpt)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    known = set(ckpt.get("hyper_parameters", {}).get("n_targets", {}))
    state, own = ckpt["state_dict"], module.state_dict()
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state and not k.startswith("heads.maps.")]
    if wrong or missing:
        raise ConfigError(
            f"init_from '{path}' does not fit the configured model ({len(wrong)} shape mismatches, {len(missing)} missing "
            f"weights, e.g. {(wrong + missing)[:3]}); set backbone.*, pooling.* and head.* as in that run's config.yaml"
        )
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    new = [p for p in module.heads.participants if p not in known]
    log.info("init_from %s: backbone and heads of %s loaded; new heads for %s", path,
             sorted(known & set(module.heads.participants)), new or "nobody")
    return new


def freeze_for(module: BrainTuner, train_only: str, new: list[str] | None) -> None:
    """Leave trainable only what ``optim.train_only`` names (all | heads | new_heads)."""
    if train_only == "all":
        return
    module.backbone.requires_grad_(False)
    if train_only == "new_heads":
        if not new:
            raise ConfigError("optim.train_only is 'new_heads' but there is no new participant: set init_from to a "
                              "checkpoint and add participants it lacks to data.participants, or use 'heads'")
        for p, head in module.heads.maps.items():
            head.requires_grad_(p in new)
        module.heads.trunk.requires_grad_(False)  # the shared common space stays as tuned
        if hasattr(module.heads, "shared"):
            module.heads.shared.requires_grad_(False)
    trained = sum(q.numel() for q in module.parameters() if q.requires_grad)
    log.info("optim.train_only=%s: %d trainable parameters", train_only, trained)


def _alignment(cfg: Config, module: BrainTuner, dm, groups: dict[str, list[str]]) -> dict[str, dict]:
    """Alignment summary of each non-empty participant group, from one feature extraction for all of them."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    module.to(device)
    groups = {k: v for k, v in groups.items() if v}
    details: dict = {}
    measure_alignment(module.backbone, dm.study, [p for v in groups.values() for p in v], dm.splits.test_runs, cfg,
                      module.layer, device, details=details)
    a, results, names = cfg.alignment, details["results"], details["names"]
    return {k: summarize({p: results[p] for p in v}, module.layer, names and {p: names[p] for p in v}, list(a.regions),
                         a.min_ceiling) for k, v in groups.items()}


def train(cfg: Config) -> dict:
    """Brain-tune as configured; returns (and writes) the summary."""
    out_dir = Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    started = time.time()
    L.seed_everything(cfg.trainer.seed, workers=True)
    p = cfg.pooling
    dm = build_datamodule(cfg, TRPooling(p.window_s, p.lag_s, p.n_windows, p.combine).span)
    module = BrainTuner(to_dict(cfg), dm.responses.n_targets)
    new = init_from_checkpoint(module, cfg.init_from) if cfg.init_from else None
    freeze_for(module, cfg.optim.train_only, new)

    # measured once, by the first process (under DDP every process runs this function)
    measure = cfg.alignment.after_training and rank_zero_only.rank == 0
    groups = {"tuned": dm.splits.participants, "heldout": dm.splits.heldout}
    before = _alignment(cfg, module, dm, groups) if measure else {}

    ckpt = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best-{epoch}", monitor="val/pearson", mode="max", save_last=True)
    callbacks = [ckpt, LearningRateMonitor("step")] + ([FrozenBackboneEval()] if cfg.optim.train_only != "all" else [])
    from ..downstream.callback import build_downstream_callbacks  # probes every N epochs when downstream.callback_tasks is set

    callbacks += build_downstream_callbacks(cfg)
    # a participant who did not hear every training run is missing from some batches: its head gets no gradient
    uneven = any(set(dm.splits.train_runs) - set(dm.study.runs_of(p)) for p in dm.splits.participants)
    trainer = build_trainer(cfg, out_dir, callbacks, find_unused=uneven)
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
        after = _alignment(cfg, best, dm, groups)
        summary["alignment"] = {"before": before["tuned"], "after": after["tuned"]}
        if "heldout" in before:
            summary["alignment"]["heldout_participant"] = {"before": before["heldout"], "after": after["heldout"]}
    if new is not None:
        summary["new_participants"] = new
    summary["seconds"] = round(time.time() - started, 1)
    if cfg.logger.kind == "wandb":
        import wandb

        wandb.finish()  # close the run so that the offline directory is complete and a next run starts fresh
    if trainer.is_global_zero:
        write_summary(summary, out_dir)
    return summary


def write_summary(summary: dict, out_dir: Path) -> Path:
    path = Path(out_dir) / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))
    return path
