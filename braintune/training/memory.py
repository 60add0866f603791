"""A model, a way to draw a batch, a memory budget -> the micro-batch, accumulation and checkpointing that fit it.

``trainer.max_memory_gib``: before training, one training step (forward + backward, no optimizer step) is measured
on a real batch; while its peak (plus AdamW's two moments of every trained parameter, which exist only after the
first optimizer step) exceeds the budget, the micro-batch is halved and gradient accumulation doubled (the batch per
optimizer step stays the same), then gradient checkpointing is turned on; if one segment with checkpointing still
does not fit, a ``ConfigError`` says so. The plan is chosen before Lightning's first step, so an over-budget setting
never reaches an out-of-memory error mid-run; an OOM during a probe counts as over budget.

Measured peak: on CUDA the caching allocator's ``max_memory_allocated``; elsewhere the bytes of the tensors autograd
saves for backward (each storage once) + parameters + gradients, the activation memory a CPU step holds at its peak.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError

log = logging.getLogger(__name__)
GIB = 2**30


@dataclass
class MemoryPlan:
    batch_size: int  # segments per micro-batch
    accumulate: int  # micro-batches per optimizer step
    checkpointing: bool
    peak_gib: float  # measured peak of the chosen setting (+ optimizer moments)
    segment_seconds: float  # stimulus seconds per micro-batch
    probes: list[dict] = field(default_factory=list)  # every setting measured, in order

    @property
    def gib_per_segment_second(self) -> float:
        return self.peak_gib / max(self.segment_seconds, 1e-9)

    def summary(self) -> dict:
        return {"batch_size": self.batch_size, "accumulate_grad_batches": self.accumulate,
                "gradient_checkpointing": self.checkpointing, "peak_gib": round(self.peak_gib, 4),
                "gib_per_segment_second": round(self.gib_per_segment_second, 6), "probes": self.probes}


def step_peak_bytes(module: nn.Module, batch: dict, device: torch.device, autocast_dtype: torch.dtype | None) -> int:
    """Peak bytes of one forward + backward of ``module.training_step`` on ``batch`` (gradients cleared after)."""
    autocast = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    module.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        with autocast:
            loss = module.training_step(batch, 0)
        loss.backward()
        peak = torch.cuda.max_memory_allocated(device)
    else:
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
            loss = module.training_step(batch, 0)
        loss.backward()
        params = sum(p.numel() * p.element_size() for p in module.parameters())
        grads = sum(p.grad.numel() * p.grad.element_size() for p in module.parameters() if p.grad is not None)
        peak = sum(saved.values()) + params + grads
    module.zero_grad(set_to_none=True)
    return int(peak)


def _halved(batch_size: int) -> int:
    """The largest divisor of ``batch_size`` that is at most half of it (1 for primes): the batch per optimizer step
    stays ``batch_size`` × accumulation exactly."""
    return max(d for d in range(1, batch_size // 2 + 1) if batch_size % d == 0)


def plan_memory(module: nn.Module, draw: Callable[[int], dict], batch_size: int, accumulate: int, budget_gib: float,
                measure: Callable[[nn.Module, dict], int], checkpointing: Callable[[], bool]) -> MemoryPlan:
    """Shrink the micro-batch (and then turn on ``checkpointing()``, which returns whether it could) until one
    measured step of ``draw(batch_size)`` fits ``budget_gib``; see the module docstring."""
    moments = 2 * sum(p.numel() * 4 for p in module.parameters() if p.requires_grad) / GIB  # AdamW's float32 m and v
    probes, ckpt = [], False
    while True:
        batch = draw(batch_size)
        try:
            peak = measure(module, batch) / GIB + moments
        except torch.OutOfMemoryError:
            peak = float("inf")
            torch.cuda.empty_cache()
        seconds = float(sum(batch["span_s"]))
        probes.append({"batch_size": batch_size, "accumulate": accumulate, "checkpointing": ckpt, "peak_gib": round(peak, 4)})
        if peak <= budget_gib:
            plan = MemoryPlan(batch_size, accumulate, ckpt, peak, seconds, probes)
            log.info("memory: %.2f GiB at %d segments x %d accumulation%s (budget %.2f GiB, %.4f GiB per segment-second)",
                     peak, batch_size, accumulate, ", gradient checkpointing" if ckpt else "", budget_gib,
                     plan.gib_per_segment_second)
            return plan
        if batch_size > 1:
            half = _halved(batch_size)
            batch_size, accumulate = half, accumulate * (batch_size // half)
        elif not ckpt and checkpointing():
            ckpt = True
        else:
            raise ConfigError(f"trainer.max_memory_gib={budget_gib}: one segment needs {peak:.2f} GiB even with gradient "
                              f"checkpointing (measured: {probes}); raise the budget, or lower data.segment_trs or "
                              "data.context_s")


def enable_checkpointing(backbone: nn.Module) -> bool:
    """Turn on the backbone's gradient checkpointing (as ``backbone.gradient_checkpointing`` does); False if it has none."""
    target = backbone if hasattr(backbone, "gradient_checkpointing_enable") else getattr(backbone, "model", None)
    if target is None or not hasattr(target, "gradient_checkpointing_enable"):
        return False
    target.gradient_checkpointing_enable()
    return True


def _to(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def fit_memory(cfg, module: nn.Module, datamodule, device: str | torch.device) -> MemoryPlan:
    """``trainer.max_memory_gib`` applied: plan on ``device`` with the datamodule's first training segments, then set
    ``datamodule.batch_size``, ``cfg.trainer.accumulate_grad_batches`` (and checkpointing on the module) to the plan."""
    import warnings

    device = torch.device(device)
    precision = str(cfg.trainer.precision)
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16 if precision.startswith("16") else None
    if device.type == "cuda" and device.index is None:  # each DDP process probes its own card
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    module.to(device).train()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log.*")  # training_step logs; no trainer is attached yet
        plan = plan_memory(module, datamodule.sample_batch, cfg.data.batch_size, cfg.trainer.accumulate_grad_batches,
                           cfg.trainer.max_memory_gib, lambda m, b: step_peak_bytes(m, _to(b, device), device, dtype),
                           lambda: enable_checkpointing(module.backbone))
    datamodule.batch_size = plan.batch_size
    cfg.trainer.accumulate_grad_batches = plan.accumulate
    return plan
