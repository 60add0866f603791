"""``speed.*`` config -> the training-throughput levers of issue 14 applied to a built model, and the optimizer.

Each lever is exact, or equal to float tolerance, and tested so (tests/test_speed.py); what each saves is measured in
benchmarks/training_speed.py (CPU) and benchmarks/gpu_suite.sh (GPU), recorded in benchmarks/RESULTS.md.

* ``cnn_cache``: a frozen waveform CNN's frames come from a per-run cache (``backbones.frames``).
* ``pos_conv``: wav2vec2's grouped positional convolution by FFT, im2col + matmul, or the original convolution.
* ``frozen_lowp``: under autocast, a frozen ``Linear`` / ``Conv1d`` multiplies with a copy of its weight in the
  autocast dtype made once (autocast recasts a weight that needs no gradient on every call: its cast cache only
  keeps leaves that require grad). Autocast would cast to exactly those values, so outputs are bit-identical; the
  float32 weights stay the parameters (checkpoints, export and evaluation see the original values).
* ``fused_adamw``: torch's fused AdamW kernel (one launch for every parameter) instead of the multi-tensor loop.
* ``batched_heads``: per-participant heads as one matmul over the concatenated weights.
"""
from __future__ import annotations

import logging
from functools import partial

import torch
from torch import nn

log = logging.getLogger(__name__)


def apply_speed(backbone: nn.Module, heads: nn.Module, speed) -> dict:
    """Set the levers of ``speed`` (a ``SpeedConfig``) on a built backbone and heads; returns what was applied."""
    applied = {"cnn_cache": False, "pos_conv": "n/a", "frozen_lowp": 0, "batched_heads": bool(speed.batched_heads)}
    for wave in _waveform_encoders(backbone):
        wave.use_frame_cache(speed.cnn_cache, speed.cnn_cache_gib)
        applied["cnn_cache"] = bool(speed.cnn_cache)
        applied["pos_conv"] = speed.pos_conv if wave.use_pos_conv(speed.pos_conv) else "conv (unsupported)"
    if speed.frozen_lowp:
        applied["frozen_lowp"] = install_lowp(backbone)
    heads.batched = bool(speed.batched_heads)
    return applied


def _waveform_encoders(backbone: nn.Module) -> list[nn.Module]:
    """The waveform backbones inside ``backbone`` (itself, or an audio-video model's audio encoder)."""
    return [m for m in backbone.modules() if hasattr(m, "use_frame_cache") and hasattr(m, "use_pos_conv")]


def install_lowp(model: nn.Module) -> int:
    """Give every plain ``Linear`` / ``Conv1d`` of ``model`` the frozen-weight forward; returns how many."""
    count = 0
    for module in model.modules():
        if type(module) in (nn.Linear, nn.Conv1d) and not hasattr(module, "parametrizations"):
            module.forward = partial(_lowp_forward, module)
            module._braintune_lowp = None
            count += 1
    return count


def _lowp_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The module's forward; under autocast with a frozen weight, with its autocast-dtype copy made once."""
    kind = x.device.type
    weight, bias = module.weight, module.bias
    if not torch.is_autocast_enabled(kind) or weight.requires_grad or (bias is not None and bias.requires_grad):
        return type(module).forward(module, x)
    dtype = torch.get_autocast_dtype(kind)
    stamp = (dtype, weight._version, weight.data_ptr(), None if bias is None else (bias._version, bias.data_ptr()))
    if module._braintune_lowp is None or module._braintune_lowp[0] != stamp:
        module._braintune_lowp = (stamp, weight.detach().to(dtype), None if bias is None else bias.detach().to(dtype))
    _, w, b = module._braintune_lowp
    if isinstance(module, nn.Linear):
        return nn.functional.linear(x, w, b)
    return module._conv_forward(x, w, b)


def build_optimizer(groups: list[dict], weight_decay: float, fused: bool) -> torch.optim.Optimizer:
    """AdamW over parameter ``groups``; fused (one kernel for all parameters) when asked and every parameter's device
    has the fused kernel, else torch's default multi-tensor implementation."""
    params = [q for g in groups for q in g["params"]]
    devices = {q.device.type for q in params}
    use_fused = fused and bool(params) and devices <= {"cuda", "cpu", "xpu", "mps"} and len(devices) == 1
    return torch.optim.AdamW(groups, weight_decay=weight_decay, fused=True if use_fused else None)
