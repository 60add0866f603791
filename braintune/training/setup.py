"""Config -> the pieces of a training run: logger, DDP/FSDP strategy, Lightning Trainer, weights from another run,
and which parameters train (``optim.train_only``)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
import torch

from ..errors import ConfigError
from ..models import identity_mismatches, load_checkpoint, model_identity, recorded_identity
from .checkpoints import AtomicCheckpointIO
from .module import BrainTuner

log = logging.getLogger(__name__)


def build_logger(cfg, out_dir: Path):
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
        # gradients as views into DDP's all-reduce buckets: no copy in and out of them every step, and no second
        # copy of the heads' ~93 MB of gradients (exact; benchmarks/ddp_overhead.py)
        return DDPStrategy(find_unused_parameters=find_unused, gradient_as_bucket_view=True)
    return "auto"


def build_trainer(cfg, out_dir: Path, callbacks: list, find_unused: bool = True) -> L.Trainer:
    t = cfg.trainer
    return L.Trainer(
        default_root_dir=str(out_dir), max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=build_strategy(t, find_unused), precision=t.precision,
        gradient_clip_val=cfg.optim.grad_clip or None,
        accumulate_grad_batches=t.accumulate_grad_batches, log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches, enable_progress_bar=t.progress_bar, logger=build_logger(cfg, out_dir),
        callbacks=callbacks, deterministic=False, plugins=[AtomicCheckpointIO()],
    )


def init_from_checkpoint(module: BrainTuner, path: str) -> list[str]:
    """Copy a braintune checkpoint's backbone and known heads into ``module``; returns the participants it lacked.

    Heads of participants that the checkpoint does not know keep their fresh initialisation; heads of
    checkpoint participants absent from this run are ignored. The checkpoint's model must be the configured one
    (``models.model_identity``: backbone architecture and config, fine-tuning, pooling, heads, the target counts of
    shared participants; the layer the heads read may differ); any mismatch is a ``ConfigError`` naming each key.
    """
    ckpt = load_checkpoint(path)
    wrong = identity_mismatches(recorded_identity(path, ckpt), model_identity(module.hparams["config"], module.hparams["n_targets"]),
                                targets="shared", ignore=("backbone.layer",))
    if wrong:
        raise ConfigError(f"init_from '{path}' was made with another model than configured ({'; '.join(wrong[:6])}); set "
                          "these keys as in that run's config.yaml")
    known = set(ckpt["n_targets"])
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
