"""``braintune train`` / ``python train.py -c CONFIG``: data, module, logger, callbacks, Lightning Trainer, and the
alignment before and after tuning; writes ``out_dir/config.yaml``, checkpoints under ``out_dir/checkpoints`` and
ends with ``out_dir/summary.json``."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.utilities import rank_zero_only

from ..config import Config, save_config, to_dict
from ..data.datamodule import build_datamodule
from ..downstream.callback import DownstreamProbeCallback
from ..evaluation.alignment import measure_alignment
from ..evaluation.results import AlignmentResult
from ..models import check_layers, check_pooling, load_model, resolve_device
from ..pooling import TRPooling
from ..training.callbacks import FrozenBackboneEval
from ..training.checkpoints import resume_checkpoint, run_checkpoint
from ..training.dashboard import Dashboard
from ..training.memory import fit_memory
from ..training.module import BrainTuner
from ..training.setup import build_trainer, freeze_for, init_from_checkpoint
from .common import alignment_settings, parse_args, run_command, write_summary
from .downstream import task_roots
from .inspect import summarize

log = logging.getLogger(__name__)


def downstream_callbacks(cfg: Config) -> list[Callback]:
    """[DownstreamProbeCallback] when ``downstream.callback_tasks`` is set; tasks are read (and bad layouts refused)
    here, before any training step."""
    from ..downstream.evaluate import read_tasks

    dc = cfg.downstream
    if not dc.callback_tasks:
        return []
    names = list(dc.callback_tasks)
    tasks = read_tasks(names, task_roots(dc, names), dc.callback_max_items, dc.seed, dc.synthetic, dc.allow_outside_root)
    return [DownstreamProbeCallback(tasks, dc.every_n_epochs, dc.layers, dc.probe, dc.cv_folds, dc.seed)]


def training_lookahead(cfg: Config, backbone) -> dict:
    """What training segments let each TR see: block-causal (``band``) or full attention, and the bound in seconds
    past each TR's pooling-window end (None: up to the segment's end)."""
    b, reach = cfg.band, float(getattr(backbone, "future_reach_s", 0.0))
    return {"block_causal": b.training, "past_s": b.past_s, "lookahead_s": b.lookahead_s, "declared_reach_s": reach,
            "lookahead_bound_s": b.lookahead_s + reach if b.training else None, "context_s": cfg.data.context_s}


def _alignment(cfg: Config, backbone, layer: int, dm, groups: dict[str, list[str]]) -> tuple[dict[str, dict], AlignmentResult]:
    """Alignment summary of each non-empty participant group, from one feature extraction for all of them, and the
    ``AlignmentResult`` of everyone (the dashboard draws its brain maps)."""
    backbone.to(resolve_device(cfg.trainer.accelerator))
    groups = {k: v for k, v in groups.items() if v}
    result = measure_alignment(backbone, layer, dm.study, [p for v in groups.values() for p in v], dm.splits.test_runs,
                               alignment_settings(cfg), next(backbone.parameters()).device)
    return {k: result.subset(v).summary() for k, v in groups.items()}, result


def _check_run(cfg: Config, module: BrainTuner, out_dir: Path) -> Path | None:
    """What can only be checked once the model exists, before any heavy work: layers and pooling against the backbone,
    and the checkpoint to resume from (a safe braintune checkpoint of this very model, or None)."""
    if cfg.alignment.after_training:
        check_layers(module.backbone, "alignment.layers", cfg.alignment.layers, "the configured backbone")
    check_pooling(module.backbone, cfg.pooling.window_s)
    if not cfg.resume:
        return None
    return resume_checkpoint(out_dir / "checkpoints", module.hparams["config"], module.hparams["n_targets"])


def train(cfg: Config, callbacks: list[Callback] = ()) -> dict:
    """Brain-tune as configured, with extra Lightning ``callbacks``; returns (and writes) the summary."""
    out_dir = Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    started = time.time()
    L.seed_everything(cfg.trainer.seed, workers=True)
    p = cfg.pooling
    dm = build_datamodule(cfg, TRPooling(p.window_s, p.lag_s, p.n_windows, p.combine).span)
    module = BrainTuner(to_dict(cfg), dm.responses.n_targets)
    dm.spec = module.backbone.spec
    new = init_from_checkpoint(module, cfg.init_from) if cfg.init_from else None
    freeze_for(module, cfg.optim.train_only, new)
    resume = _check_run(cfg, module, out_dir)
    # trainer.max_memory_gib: micro-batch / accumulation / checkpointing from one measured step, before any OOM
    memory = fit_memory(cfg, module, dm, resolve_device(cfg.trainer.accelerator)) if cfg.trainer.max_memory_gib else None

    # measured once, by the first process (under DDP every process runs this function)
    measure = cfg.alignment.after_training and rank_zero_only.rank == 0
    groups = {"tuned": dm.splits.participants, "heldout": dm.splits.heldout}
    before, before_result = _alignment(cfg, module.backbone, module.layer, dm, groups) if measure else ({}, None)

    ckpt = run_checkpoint(out_dir / "checkpoints")  # paths follow the run directory when it was copied and resumed
    callbacks = [ckpt, LearningRateMonitor("step"), *callbacks]
    callbacks += [FrozenBackboneEval()] if cfg.optim.train_only != "all" else []
    # a participant who did not hear every training run is missing from some batches: its head gets no gradient
    uneven = any(set(dm.splits.train_runs) - set(dm.study.runs_of(p)) for p in dm.splits.participants)
    trainer = build_trainer(cfg, out_dir, callbacks, find_unused=uneven)
    dashboard = Dashboard(trainer, cfg, dm.study, out_dir)  # pictures and tables for TensorBoard / W&B
    dashboard.start(to_dict(cfg), summarize(dm.study))
    maps = {"before": dashboard.alignment("before", before_result, before)} if before else {}
    if resume:
        log.info("resuming from %s", resume)
    trainer.fit(module, dm, ckpt_path=resume, weights_only=True)  # validated above; never unpickles code

    summary = {
        "checkpoint": ckpt.best_model_path or None,
        "best_val_pearson": float(ckpt.best_model_score) if ckpt.best_model_score is not None else None,
        "epochs": trainer.current_epoch, "optimizer_steps": trainer.global_step,
        "participants": dm.splits.participants, "heldout_participants": dm.splits.heldout,
        "runs": {"train": dm.splits.train_runs, "val": dm.splits.val_runs, "test": dm.splits.test_runs},
        "n_targets": dm.responses.n_targets, "excluded_targets": dm.responses.excluded,
        "lookahead": training_lookahead(cfg, module.backbone),
    }
    if measure and trainer.is_global_zero:
        best = load_model(ckpt.best_model_path, cfg) if ckpt.best_model_path else None
        after, after_result = _alignment(cfg, best.backbone if best else module.backbone, best.layer if best else module.layer,
                                         dm, groups)
        maps["after"] = dashboard.alignment("after", after_result, after)
        summary["brain_maps"] = maps
        summary["alignment"] = {"before": before["tuned"], "after": after["tuned"]}
        if "heldout" in before:
            summary["alignment"]["heldout_participant"] = {"before": before["heldout"], "after": after["heldout"]}
    if new is not None:
        summary["new_participants"] = new
    if memory is not None:
        summary["memory"] = memory.summary()
    summary["seconds"] = round(time.time() - started, 1)
    if cfg.logger.kind == "wandb":
        import wandb

        wandb.finish()  # close the run so that the offline directory is complete and a next run starts fresh
    if trainer.is_global_zero:
        write_summary(summary, out_dir, dm.study)
    return summary


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_args(argv, prog="braintune train", command="train")
    return run_command(lambda: train(cfg, downstream_callbacks(cfg)), cfg.out_dir, args.debug)
