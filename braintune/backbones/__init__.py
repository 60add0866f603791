"""Backbone registry: ``backbone.arch`` -> builder of a module that maps stimuli to hidden states (B, L, T, D).

Every backbone declares ``modalities`` (what it reads: ``data.modalities.AUDIO`` / ``VIDEO`` / ``WORDS``) and exposes
``hidden_size``, ``num_layers`` (hidden states incl. embeddings), ``frame_rate`` (hidden states per second from the
span start), ``lora_targets`` (its default LoRA target modules) and ``forward(inputs, layers) -> (B, L, T, D)``,
where ``inputs`` is ``data.modalities.backbone_inputs(batch, modalities)``: one entry per modality plus ``start_s``,
``span_s`` and ``video_fps``. ``build_backbone`` attaches ``spec``, the ``StimulusSpec`` every reader consumes.
Backbones from other packages register through the ``braintune.backbones`` entry point group (docs/extending.md).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from torch import nn

from ..data.modalities import StimulusSpec
from ..errors import BackboneError
from ..registry import Registry
from .audiovisual import build_av
from .lora import add_lora
from .speech import build_waveform, build_whisper
from .text import build_text
from .unimodal import build_ast, build_videomae

__all__ = ["BACKBONES", "BackboneError", "build_backbone", "resolve_layer"]

BACKBONES: Registry[Callable[..., nn.Module]] = Registry("braintune.backbones", "backbone.arch", {
    "wav2vec2": lambda cfg: build_waveform("wav2vec2", cfg.name, dict(cfg.config)),
    "hubert": lambda cfg: build_waveform("hubert", cfg.name, dict(cfg.config)),
    "wavlm": lambda cfg: build_waveform("wavlm", cfg.name, dict(cfg.config)),
    "whisper": lambda cfg: build_whisper(cfg.name, dict(cfg.config)),
    "av": build_av,
    "text": build_text,
    "videomae": build_videomae,  # video only (a baseline of evaluate.py instructions)
    "ast": build_ast,  # audio only, Audio Spectrogram Transformer (idem)
    "mllm": lambda cfg: _build_mllm(cfg),  # instruction-tuned MLLMs: evaluate.py instructions only (not trainable)
})


def _build_mllm(cfg) -> nn.Module:
    from .mllm.backbone import build_mllm_backbone  # the MLLM families' classes load only when one is used

    return build_mllm_backbone(cfg)


def build_backbone(cfg, data_cfg=None) -> nn.Module:
    """Backbone from a ``BackboneConfig``: weights, fine-tuning mode (full | lora | frozen), checkpointing, and its
    ``spec`` from the stimulus options of ``data_cfg`` (a ``DataConfig``)."""
    backbone = BACKBONES[cfg.arch](cfg)
    backbone.spec = replace(StimulusSpec.from_options(backbone.modalities, data_cfg),  # spans start on the CNN's stride
                            start_stride=int(getattr(backbone, "sample_stride", 1)))
    if cfg.gradient_checkpointing:
        (backbone if hasattr(backbone, "gradient_checkpointing_enable") else backbone.model).gradient_checkpointing_enable()
    lc = cfg.lora
    if cfg.finetune == "frozen":
        backbone.requires_grad_(False)
    elif cfg.finetune == "lora" and hasattr(backbone, "add_lora"):  # multi-encoder backbones: targets per encoder
        backbone.add_lora(lc.rank, lc.alpha, lc.dropout)
    elif cfg.finetune == "lora":
        if not hasattr(backbone, "model"):
            raise BackboneError(f"backbone.arch '{cfg.arch}' does not wrap a HuggingFace model in `.model`, where LoRA adapters "
                                "go; use backbone.finetune=full or frozen, or give the backbone an add_lora method")
        targets = list(lc.target_modules) if lc.target_modules is not None else list(getattr(backbone, "lora_targets", []))
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
