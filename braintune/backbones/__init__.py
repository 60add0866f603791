"""Backbone registry: ``backbone.arch`` -> builder of a module that maps stimuli to hidden states (B, L, T, D).

Every backbone exposes ``hidden_size``, ``num_layers`` (hidden states incl. embeddings), ``frame_rate``
(hidden states per second) and ``forward(inputs, layers) -> (B, L, T, D)``.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .hub import BackboneError
from .lora import add_lora
from .speech import build_waveform, build_whisper

BACKBONES: dict[str, Callable[[str | None, dict], nn.Module]] = {
    "wav2vec2": lambda name, cfg: build_waveform("wav2vec2", name, cfg),
    "hubert": lambda name, cfg: build_waveform("hubert", name, cfg),
    "wavlm": lambda name, cfg: build_waveform("wavlm", name, cfg),
    "whisper": build_whisper,
}


def build_backbone(cfg) -> nn.Module:
    """Backbone from a ``BackboneConfig``: weights, fine-tuning mode (full | lora | frozen), checkpointing."""
    if cfg.arch not in BACKBONES:
        raise BackboneError(f"backbone.arch '{cfg.arch}' is not known; available: {', '.join(sorted(BACKBONES))}")
    backbone = BACKBONES[cfg.arch](cfg.name, dict(cfg.config))
    if cfg.gradient_checkpointing:
        backbone.model.gradient_checkpointing_enable()
    if cfg.finetune == "frozen":
        backbone.requires_grad_(False)
    elif cfg.finetune == "lora":
        lc = cfg.lora
        backbone.model = add_lora(backbone.model, lc.rank, lc.alpha, lc.dropout, list(lc.target_modules))
    if cfg.freeze_feature_encoder and cfg.finetune != "frozen":
        backbone.freeze_feature_encoder()
    return backbone


def resolve_layer(backbone: nn.Module, layer: int) -> int:
    """A possibly negative hidden-state index -> its non-negative index, with a clear error when out of range."""
    n = backbone.num_layers
    if not -n <= layer < n:
        raise BackboneError(f"backbone.layer {layer} is out of range: this backbone has {n} hidden states (0..{n - 1})")
    return layer % n
