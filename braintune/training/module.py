"""Segment batches -> brain-tuning loss: backbone -> TR pooling -> participant heads, in one LightningModule.

The module is rebuilt from ``hparams`` (the resolved config dict and the target count of every
participant), so a checkpoint alone is enough to evaluate, resume or fine-tune it.
"""
from __future__ import annotations

import math

import lightning as L
import torch
from torch import nn
from torchmetrics.regression import PearsonCorrCoef

from ..backbones import build_backbone, resolve_layer
from ..config import from_dict
from ..data.modalities import backbone_inputs
from ..errors import ConfigError
from ..heads import ParticipantHeads
from ..losses import build_loss
from ..models import checkpoint_record, identity_mismatches, model_identity
from ..pooling import TRPooling
from .speed import apply_speed, build_optimizer


class BrainTuner(L.LightningModule):
    def __init__(self, config: dict, n_targets: dict[str, int]):
        super().__init__()
        self.save_hyperparameters()
        cfg = from_dict(config)
        self.optim_cfg = cfg.optim
        self.backbone = build_backbone(cfg.backbone, cfg.data)
        self.layer = resolve_layer(self.backbone, cfg.backbone.layer)
        p = cfg.pooling
        self.pooling = TRPooling(p.window_s, p.lag_s, p.n_windows, p.combine)
        h = cfg.head
        self.heads = ParticipantHeads(self.pooling.out_features(self.backbone.hidden_size), dict(n_targets), h.kind, h.rank, h.dropout)
        self.speed_cfg = cfg.speed
        self.speed = apply_speed(self.backbone, self.heads, cfg.speed)  # issue 14's throughput levers (training/speed.py)
        self.loss_fn = build_loss(cfg.loss.name, cfg.loss.pearson_weight)
        self.val_r = nn.ModuleDict({p: PearsonCorrCoef(num_outputs=n) for p, n in n_targets.items()})
        self.seed = cfg.trainer.seed
        b = cfg.band  # block-causal attention in training segments: (lookahead_s, past_s), or None (full attention)
        self.band = (b.lookahead_s, b.past_s) if b.training else None

    def add_participant(self, name: str, n_targets: int, train_only_new: bool = True) -> nn.Module:
        """Add (and return) the head of a new participant; with ``train_only_new`` every other weight is frozen.

        The new target count goes into ``hparams`` so that checkpoints rebuild the model with this head.
        """
        if name in self.heads.maps:
            raise ValueError(f"participant '{name}' already has a head; heads exist for {self.heads.participants}")
        if train_only_new and self.heads.kind == "shared":
            raise ValueError("head.kind 'shared' gives a new participant no weights of its own to fit; use per_participant or low_rank")
        head = self.heads.add_participant(name, n_targets)
        self.val_r[name] = PearsonCorrCoef(num_outputs=n_targets)
        self.hparams["n_targets"] = {**self.hparams["n_targets"], name: n_targets}
        if train_only_new:
            self.requires_grad_(False)
            head.requires_grad_(True)
        return head

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # what the weights are (backbone architecture and config, pooling, heads, target counts) and which braintune
        # wrote them: init_from, resume and evaluation compare it with the model they build (models.model_identity)
        checkpoint["braintune"] = checkpoint_record(self.hparams["config"], self.hparams["n_targets"])

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Lightning restores into this module (resume, load_from_checkpoint): refuse weights of another model by name
        recorded = (checkpoint.get("braintune") or {}).get("identity")
        wrong = identity_mismatches(recorded, model_identity(self.hparams["config"], self.hparams["n_targets"])) \
            if isinstance(recorded, dict) else []
        if wrong:
            path = getattr(self._trainer, "ckpt_path", None) if self._trainer is not None else None
            raise ConfigError(f"checkpoint '{path or 'being loaded'}' holds another model than this one: {'; '.join(wrong[:5])}; "
                              "use the config it was trained with (its run's config.yaml)")

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        # Epoch e's dropout and masking depend only on (seed, e), so a run resumed from a checkpoint at epoch e
        # continues exactly as the uninterrupted run (Lightning skips on_train_epoch_start on such a resume; the
        # order of segments is seeded by (seed, e) in the datamodule). Ranks differ so DDP replicas don't share masks.
        if batch_idx == 0:
            L.seed_everything(self.seed + 1000 * self.current_epoch + self.global_rank, workers=True, verbose=False)

    def features(self, batch: dict) -> torch.Tensor:
        """Batch -> pooled features (B, K, F) of the tuned layer; with ``band.training``, each TR's features see at most
        ``band.lookahead_s`` (+ the backbone's declared reach) past its pooling window."""
        inputs = backbone_inputs(batch, self.backbone.modalities)
        if self.band is not None:
            inputs["blocks"] = self.pooling.blocks(batch["tr_times"], batch["start_s"], *self.band)
        hidden = self.backbone(inputs, [self.layer])[:, 0]  # (B, T, D)
        w = self.pooling.weights(batch["tr_times"], batch["start_s"], self.backbone.frame_rate, hidden.shape[1])
        return self.pooling(hidden, w.to(hidden.device))  # (B, K, F)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Batch -> {participant: (B, K, n_p)} for the participants present in the batch."""
        present = [p for p, m in batch["present"].items() if bool(m.any()) and p in self.heads.maps]
        return self.heads(self.features(batch), present)

    def _rows(self, batch: dict, participant: str) -> torch.Tensor:
        return batch["present"][participant][:, None] & batch["tr_mask"]  # (B, K)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        preds = self(batch)
        losses = [self.loss_fn(pred[self._rows(batch, p)], batch["targets"][p][self._rows(batch, p)]) for p, pred in preds.items()]
        loss = torch.stack(losses).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["tr_times"]), sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        preds = self(batch)
        losses = []
        for p, pred in preds.items():
            rows = self._rows(batch, p)
            y_hat, y = pred[rows].float(), batch["targets"][p][rows]
            self.val_r[p].update(y_hat, y)
            losses.append(self.loss_fn(y_hat, y))
        self.log("val/loss", torch.stack(losses).mean(), batch_size=len(batch["tr_times"]), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        rs = []
        for p, metric in self.val_r.items():
            if not metric.update_called:
                continue
            r = torch.nan_to_num(metric.compute(), nan=0.0).mean()
            self.log(f"val/pearson/{p}", r, sync_dist=True)
            rs.append(r)
            metric.reset()
        if rs:
            self.log("val/pearson", torch.stack(rs).mean(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        o = self.optim_cfg
        groups = [
            {"params": [q for q in self.backbone.parameters() if q.requires_grad], "lr": o.backbone_lr},
            {"params": [q for q in self.heads.parameters() if q.requires_grad], "lr": o.head_lr},
        ]
        optimizer = build_optimizer([g for g in groups if g["params"]], o.weight_decay, self._fused_adamw())
        total = max(int(self.trainer.estimated_stepping_batches), 1)  # real optimizer steps, not stories
        schedule = lr_lambda(total, o.warmup_fraction, o.schedule)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


    def _fused_adamw(self) -> bool:
        """``speed.fused_adamw``, except where the precision plugin scales gradients (fp16) or FSDP shards them."""
        t = self._trainer
        scaled = t is not None and str(t.precision).startswith("16")
        sharded = t is not None and "FSDP" in type(t.strategy).__name__
        return self.speed_cfg.fused_adamw and not scaled and not sharded

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # Lightning's mixed-precision plugin refuses to clip for an optimizer that unscales its own gradients (fused
        # AdamW); bf16 and fp32 never scale them, so the norm is clipped here as the plugin would.
        if optimizer.defaults.get("fused") and gradient_clip_val and gradient_clip_algorithm in (None, "norm"):
            params = [q for g in optimizer.param_groups for q in g["params"] if q.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)


def lr_lambda(total_steps: int, warmup_fraction: float, schedule: str):
    """Multiplier of the base LR at each optimizer step: linear warm-up, then linear / cosine decay or constant."""
    warmup = int(round(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
