"""Waveforms (B, S) at 16 kHz -> hidden states (B, L, T, D) of a HuggingFace speech model.

wav2vec2, HuBERT and WavLM take the raw waveform; the Whisper encoder takes log-mel features,
computed here in torch so that the whole input path runs on the accelerator.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import (
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
)

from ..data.modalities import AUDIO
from .hub import config_from_overrides, load_pretrained

WAVEFORM_MODELS = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
    "hubert": (HubertConfig, HubertModel),
    "wavlm": (WavLMConfig, WavLMModel),
}


def waveform(inputs) -> torch.Tensor:
    """The (B, S) waveform of a backbone's inputs (a ``backbone_inputs`` dict, or the tensor itself)."""
    return inputs[AUDIO] if isinstance(inputs, dict) else inputs


class WaveformBackbone(nn.Module):
    """wav2vec2 / HuBERT / WavLM behind the backbone protocol (hidden states out)."""

    modalities = (AUDIO,)
    lora_targets = ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.out_proj")  # the recipe's q/k/v/out

    def __init__(self, model: nn.Module, normalize: bool = True, sample_rate: int = 16000):
        super().__init__()
        self.model = model
        model.config.layerdrop = 0.0  # dropped layers would shift hidden-state indices between steps
        self.normalize = normalize
        self.sample_rate = sample_rate
        cfg = model.config
        stride = 1
        for s in cfg.conv_stride:
            stride *= s
        self.frame_rate = sample_rate / stride  # 50 Hz for the usual conv stack
        self.hidden_size = cfg.hidden_size
        self.num_layers = cfg.num_hidden_layers + 1  # embeddings + every transformer layer

    def forward(self, inputs, layers: list[int] | None = None) -> torch.Tensor:
        """Waveform (B, S) -> (B, L, T, D) for the requested hidden-state indices (all when None)."""
        audio = waveform(inputs)
        if self.normalize:  # the HF processor's per-utterance normalisation, done on the device
            audio = (audio - audio.mean(-1, keepdim=True)) / torch.sqrt(audio.var(-1, keepdim=True) + 1e-7)
        out = self.model(input_values=audio, output_hidden_states=True)
        states = out.hidden_states
        picked = range(len(states)) if layers is None else layers
        return torch.stack([states[i] for i in picked], dim=1)

    def freeze_feature_encoder(self) -> None:
        for p in self.model.feature_extractor.parameters():
            p.requires_grad = False


class WhisperEncoderBackbone(nn.Module):
    """The Whisper encoder; inputs are padded to its fixed 30 s window, outputs cropped to the real length."""

    modalities = (AUDIO,)
    lora_targets = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")

    def __init__(self, model: WhisperModel, sample_rate: int = 16000):
        super().__init__()
        self.model = model.get_encoder()
        cfg = model.config
        self.sample_rate = sample_rate
        self.features = WhisperFeatureExtractor(feature_size=cfg.num_mel_bins, sampling_rate=sample_rate)
        self.max_seconds = cfg.max_source_positions * 2 * self.features.hop_length / sample_rate
        self.frame_rate = sample_rate / (2 * self.features.hop_length)  # conv2 has stride 2: 50 Hz
        self.hidden_size = cfg.d_model
        self.num_layers = cfg.encoder_layers + 1

    def forward(self, inputs, layers: list[int] | None = None) -> torch.Tensor:
        """Waveform (B, S) -> (B, L, T, D) at 50 Hz, cropped to the input's length."""
        audio = waveform(inputs)
        n_frames = int(audio.shape[-1] / self.sample_rate * self.frame_rate)
        if audio.shape[-1] > self.max_seconds * self.sample_rate:
            raise ValueError(
                f"Whisper sees at most {self.max_seconds:.0f} s of audio but got {audio.shape[-1] / self.sample_rate:.1f} s; "
                "lower data.segment_trs or data.context_s"
            )
        mel = self.features(
            list(audio.detach().float().cpu().numpy()), sampling_rate=self.sample_rate, return_tensors="pt",
            device=str(audio.device),
        ).input_features.to(audio.device, dtype=next(self.model.parameters()).dtype)
        out = self.model(mel, output_hidden_states=True)
        states = out.hidden_states
        picked = range(len(states)) if layers is None else layers
        return torch.stack([states[i][:, :n_frames] for i in picked], dim=1)

    def freeze_feature_encoder(self) -> None:
        for module in (self.model.conv1, self.model.conv2, self.model.embed_positions):
            for p in module.parameters():
                p.requires_grad = False


def build_waveform(arch: str, name: str | None, overrides: dict) -> WaveformBackbone:
    config_cls, model_cls = WAVEFORM_MODELS[arch]
    if name is None:
        model = model_cls(config_from_overrides(config_cls, overrides, arch))
        return WaveformBackbone(model, normalize=True)
    model = load_pretrained(model_cls, name)
    return WaveformBackbone(model, normalize=_hub_normalize(name))


def build_whisper(name: str | None, overrides: dict) -> WhisperEncoderBackbone:
    if name is None:
        return WhisperEncoderBackbone(WhisperModel(config_from_overrides(WhisperConfig, overrides, "whisper")))
    return WhisperEncoderBackbone(load_pretrained(WhisperModel, name))


def _hub_normalize(name: str) -> bool:
    """Whether the checkpoint's own feature extractor normalises waveforms (wav2vec2-base: yes, hubert-base: no)."""
    from transformers import AutoFeatureExtractor

    try:
        return bool(getattr(AutoFeatureExtractor.from_pretrained(name), "do_normalize", True))
    except OSError:
        return True
