"""Backbone registry: ``backbone.arch`` -> builder of a module that maps stimuli to hidden states (B, L, T, D).

Every backbone exposes ``hidden_size``, ``num_layers`` (hidden states incl. embeddings), ``frame_rate``
(hidden states per second from the span start) and ``forward(inputs, layers) -> (B, L, T, D)``.
``inputs`` is the waveform (B, S) for speech backbones, and for backbones with an ``inputs`` attribute
(audio-video, text) a dict of those batch entries plus ``span_s`` and ``video_fps`` (see ``model_inputs``).
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .audiovisual import build_av
from .hub import BackboneError
from .lora import add_lora
from .speech import build_waveform, build_whisper
from .text import build_text

# arch -> builder of the backbone from a ``BackboneConfig``
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "wav2vec2": lambda cfg: build_waveform("wav2vec2", cfg.name, dict(cfg.config)),
    "hubert": lambda cfg: build_waveform("hubert", cfg.name, dict(cfg.config)),
    "wavlm": lambda cfg: build_waveform("wavlm", cfg.name, dict(cfg.config)),
    "whisper": lambda cfg: build_whisper(cfg.name, dict(cfg.config)),
    "av": build_av,
    "text": build_text,
}
INPUTS = {"av": ("audio", "video"), "text": ("words",)}  # batch entries each arch reads; others read audio


def backbone_inputs(arch: str) -> tuple[str, ...]:
    """The stimulus modalities that segments must carry for ``arch``."""
    return INPUTS.get(arch, ("audio",))


def model_inputs(backbone: nn.Module, batch: dict):
    """The part of a segment batch that ``backbone`` reads: the waveform, or a dict of its modalities."""
    names = getattr(backbone, "inputs", None)
    if names is None:
        return batch["audio"]
    return {**{k: batch[k] for k in names}, "span_s": batch["span_s"], "video_fps": batch.get("video_fps")}


_SPEECH_ATTENTION = ["attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.out_proj"]
# LoRA on the attention projections, as the multi-participant brain-tuning recipe (q/k/v/out)
LORA_TARGETS: dict[str, list[str]] = {
    "wav2vec2": _SPEECH_ATTENTION, "hubert": _SPEECH_ATTENTION, "wavlm": _SPEECH_ATTENTION,
    "whisper": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"],
}


def build_backbone(cfg) -> nn.Module:
    """Backbone from a ``BackboneConfig``: weights, fine-tuning mode (full | lora | frozen), checkpointing."""
    if cfg.arch not in BACKBONES:
        raise BackboneError(f"backbone.arch '{cfg.arch}' is not known; available: {', '.join(sorted(BACKBONES))}")
    backbone = BACKBONES[cfg.arch](cfg)
    if cfg.gradient_checkpointing:
        (backbone if hasattr(backbone, "gradient_checkpointing_enable") else backbone.model).gradient_checkpointing_enable()
    lc = cfg.lora
    if cfg.finetune == "frozen":
        backbone.requires_grad_(False)
    elif cfg.finetune == "lora" and hasattr(backbone, "add_lora"):  # multi-encoder backbones: targets per encoder
        backbone.add_lora(lc.rank, lc.alpha, lc.dropout)
    elif cfg.finetune == "lora":
        targets = list(lc.target_modules) if lc.target_modules is not None else LORA_TARGETS.get(cfg.arch)
        if not targets:
            raise BackboneError(f"backbone.arch '{cfg.arch}' has no default LoRA targets; set backbone.lora.target_modules")
        backbone.model = add_lora(backbone.model, lc.rank, lc.alpha, lc.dropout, targets)
    if cfg.freeze_feature_encoder and cfg.finetune != "frozen":
        backbone.freeze_feature_encoder()
    return backbone


def resolve_layer(backbone: nn.Module, layer: int) -> int:
    """A possibly negative hidden-state index -> its non-negative index, with a clear error when out of range."""
    n = backbone.num_layers
    if not -n <= layer < n:
        raise BackboneError(f"backbone.layer {layer} is out of range: this backbone has {n} hidden states (0..{n - 1})")
    return layer % n
