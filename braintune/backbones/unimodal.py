"""Video frames (B, F, H, W, 3) uint8 -> VideoMAE hidden states; waveforms (B, S) -> AST hidden states; both (B, L, T, D).

The unimodal baselines of Oota et al. 2025 (analysis_methods.md §4.2, §4.4): VideoMAE reads video only, the Audio
Spectrogram Transformer (AST) audio only. Both are ordinary frame-rate backbones (``backbone.arch: videomae`` /
``ast``), usable in training, alignment and ``evaluate.py instructions`` (where their states are averaged over each
TR-clip, per layer).

VideoMAE: the span's frames (at ``data.video_fps``) are cut into consecutive clips of the model's ``num_frames``
(the last zero-padded); each clip gives ``num_frames / tubelet_size`` time steps (patch tokens averaged), so the
clock runs at ``video_fps / tubelet_size`` Hz. Attention is joint within a clip: the declared reach past a frame is
one clip, ``num_frames / video_fps`` seconds.

AST: the waveform is cut into chunks of ``max_length`` Kaldi filter-bank frames (10 ms hop, 25 ms window, the AST
feature extractor's AudioSet normalisation); each chunk's patch tokens (frequency × time, the two special tokens
dropped) are averaged over frequency, giving one step per ``time_stride`` frames (10 Hz for the released models).
Chunks start every ``time_out · time_stride`` frames so steps stay on one clock. Attention spans the chunk: the
declared reach is ``max_length`` frames (10.24 s for the released models).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import ASTConfig, ASTFeatureExtractor, ASTModel, VideoMAEConfig, VideoMAEModel

from ..data.modalities import AUDIO, VIDEO
from .hub import BackboneError, config_from_overrides, load_pretrained

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # VideoMAE's image processor defaults
HOP, WINDOW = 160, 400  # Kaldi filter banks at 16 kHz: 10 ms shift, 25 ms window (ASTFeatureExtractor)


def _stack(states, layers) -> torch.Tensor:
    """Tuple of L+1 hidden states -> the chosen ones stacked on dim 1."""
    return torch.stack([states[i] for i in (range(len(states)) if layers is None else layers)], 1)


class VideoMAEBackbone(nn.Module):
    """VideoMAE behind the backbone protocol (see the module docstring)."""

    modalities = (VIDEO,)
    lora_targets = ("attention.attention.query", "attention.attention.value")

    def __init__(self, model: VideoMAEModel, clips_per_pass: int = 16):
        super().__init__()
        self.model = model
        c = model.config
        self.clip_frames, self.tubelet, self.image_size = c.num_frames, c.tubelet_size, c.image_size
        self.hidden_size, self.num_layers = c.hidden_size, c.num_hidden_layers + 1
        self.clips_per_pass = clips_per_pass
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)

    @property
    def frame_rate(self) -> float:
        return self.spec.video_fps / self.tubelet

    @property
    def future_reach_s(self) -> float:
        return self.clip_frames / self.spec.video_fps

    def forward(self, inputs: dict, layers: list[int] | None = None) -> torch.Tensor:
        """{VIDEO: (B, F, H, W, 3) uint8} -> (B, L, T, D), T = clips · num_frames / tubelet_size."""
        frames = inputs[VIDEO]
        b, f, h, w, _ = frames.shape
        if (h, w) != (self.image_size, self.image_size):
            raise BackboneError(f"video frames are {h}x{w} but VideoMAE expects {self.image_size}x{self.image_size}; "
                                f"set data.frame_size={self.image_size}")
        n_clips, steps = -(-f // self.clip_frames), self.clip_frames // self.tubelet
        x = frames.permute(0, 1, 4, 2, 3).to(self.mean.dtype) / 255.0  # (B, F, 3, H, W)
        x = nn.functional.pad(x, (0, 0, 0, 0, 0, 0, 0, n_clips * self.clip_frames - f))
        x = ((x - self.mean) / self.std).to(next(self.model.parameters()).dtype)
        clips = x.reshape(b * n_clips, self.clip_frames, 3, h, w)
        out = []
        for i in range(0, len(clips), self.clips_per_pass):  # bounds activation memory on long spans
            states = _stack(self.model(pixel_values=clips[i: i + self.clips_per_pass], output_hidden_states=True)
                            .hidden_states, layers)  # (n, L, steps·patches, D)
            out.append(states.reshape(*states.shape[:2], steps, -1, states.shape[-1]).mean(3))  # (n, L, steps, D)
        states = torch.cat(out)  # (B·clips, L, steps, D)
        states = states.reshape(b, n_clips, *states.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, L, clips, steps, D)
        return states.reshape(b, states.shape[1], n_clips * steps, -1)

    def freeze_feature_encoder(self) -> None:
        self.model.embeddings.requires_grad_(False)


class ASTBackbone(nn.Module):
    """The Audio Spectrogram Transformer behind the backbone protocol (see the module docstring)."""

    modalities = (AUDIO,)
    lora_targets = ("attention.q_proj", "attention.v_proj")

    def __init__(self, model: ASTModel):
        super().__init__()
        self.model = model
        c = model.config
        self.hidden_size, self.num_layers = c.hidden_size, c.num_hidden_layers + 1
        self.max_length, self.stride = c.max_length, c.time_stride
        self.freq_out, self.time_out = model.embeddings.get_shape(c)
        self.extractor = ASTFeatureExtractor(num_mel_bins=c.num_mel_bins, max_length=c.max_length)
        self.frame_rate = 1000.0 / (10 * self.stride)  # one step per time_stride frames of 10 ms
        self.future_reach_s = self.max_length * HOP / 16000

    def _chunks(self, audio: np.ndarray) -> tuple[torch.Tensor, int]:
        """(B, S) at 16 kHz -> (B·n, max_length, mel) normalised filter banks and n chunks per waveform."""
        advance = self.time_out * self.stride * HOP  # samples between chunk starts: a whole number of steps
        n = max(1, -(-(audio.shape[1] - (WINDOW - HOP)) // advance))
        span = self.max_length * HOP + WINDOW - HOP  # samples of max_length frames
        padded = np.pad(audio, ((0, 0), (0, max(0, (n - 1) * advance + span - audio.shape[1]))))
        pieces = [padded[i, k * advance: k * advance + span] for i in range(len(audio)) for k in range(n)]
        values = self.extractor(pieces, sampling_rate=16000, return_tensors="pt")["input_values"]
        return values, n

    def forward(self, inputs: dict, layers: list[int] | None = None) -> torch.Tensor:
        """{AUDIO: (B, S) at 16 kHz} -> (B, L, T, D), T = S / (time_stride · 160) steps (at least 1)."""
        audio = inputs[AUDIO]
        values, n = self._chunks(audio.detach().float().cpu().numpy())
        param = next(self.model.parameters())
        states = _stack(self.model(input_values=values.to(param.device, param.dtype), output_hidden_states=True)
                        .hidden_states, layers)[:, :, 2:]  # (B·n, L, freq·time, D): special tokens dropped
        states = states.reshape(*states.shape[:2], self.freq_out, self.time_out, -1).mean(2)  # (B·n, L, time, D)
        b, n_layers = audio.shape[0], states.shape[1]
        states = states.reshape(b, n, n_layers, self.time_out, -1).permute(0, 2, 1, 3, 4).reshape(b, n_layers, -1,
                                                                                                  states.shape[-1])
        keep = max(1, int(round(audio.shape[1] / (self.stride * HOP))))
        return states[:, :, :keep]

    def freeze_feature_encoder(self) -> None:
        self.model.embeddings.requires_grad_(False)


def build_videomae(cfg) -> VideoMAEBackbone:
    """``backbone.arch: videomae``: ``backbone.name`` (e.g. MCG-NJU/videomae-base), or ``backbone.config`` fields."""
    if cfg.name is None:
        return VideoMAEBackbone(VideoMAEModel(config_from_overrides(VideoMAEConfig, dict(cfg.config), "videomae")))
    return VideoMAEBackbone(load_pretrained(VideoMAEModel, cfg.name))


def build_ast(cfg) -> ASTBackbone:
    """``backbone.arch: ast``: ``backbone.name`` (e.g. MIT/ast-finetuned-audioset-10-10-0.4593), or ``backbone.config``."""
    if cfg.name is None:
        return ASTBackbone(ASTModel(config_from_overrides(ASTConfig, dict(cfg.config), "ast")))
    return ASTBackbone(load_pretrained(ASTModel, cfg.name))
