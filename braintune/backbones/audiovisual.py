"""Waveforms (B, S) + video frames (B, F, H, W, 3) uint8 over the same span -> fused hidden states (B, L, T, D)
at the audio encoder's frame rate.

A video encoder (VideoMAE) and a speech encoder (wav2vec2 / HuBERT / WavLM) run side by side; a small learned
fusion projects both to ``width``, holds each video token over the audio frames it covers, sums them and
runs ``layers`` transformer layers. Hidden state 0 is the sum, hidden state ``i`` the output of fusion layer
``i``.

Video timing: VideoMAE encodes clips of a fixed ``num_frames`` frames. The span's frames (sampled at
``video_fps``) are cut into consecutive clips (the last one zero-padded); each clip gives
``num_frames / tubelet_size`` time steps (patch tokens averaged), so the video stream runs at
``video_fps / tubelet_size`` Hz, and step ``j`` covers ``[j·tubelet/fps, (j+1)·tubelet/fps)`` from the span start.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import VideoMAEConfig, VideoMAEModel

from ..data.modalities import AUDIO, VIDEO
from ..data.timing import time_to_index
from . import band
from .hub import BackboneError, config_from_overrides, load_pretrained
from .lora import add_lora
from .speech import WaveformBackbone, build_waveform

VIDEO_MODELS = {"videomae": (VideoMAEConfig, VideoMAEModel)}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # VideoMAE's image processor defaults


class AudioVideoBackbone(nn.Module):
    modalities = (AUDIO, VIDEO)

    def __init__(self, audio: WaveformBackbone, video: nn.Module, audio_layer: int, video_layer: int, width: int,
                 layers: int, heads: int, modality_dropout: float = 0.0, clips_per_pass: int = 16):
        super().__init__()
        self.audio, self.video = audio, video
        vc = video.config
        self.audio_layer, self.video_layer = audio_layer % audio.num_layers, video_layer % (vc.num_hidden_layers + 1)
        self.clip_frames, self.tubelet, self.image_size = vc.num_frames, vc.tubelet_size, vc.image_size
        self.modality_dropout, self.clips_per_pass = modality_dropout, clips_per_pass
        self.proj_audio = nn.Linear(audio.hidden_size, width)
        self.proj_video = nn.Linear(vc.hidden_size, width)
        self.fusion = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True) for _ in range(layers)
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)
        self.frame_rate = audio.frame_rate
        self.fusion_heads = heads
        self.hidden_size = width
        self.num_layers = layers + 1
        self.lora_targets: dict[str, list[str]] = {AUDIO: [], VIDEO: []}

    @property
    def sample_stride(self) -> int:
        """Samples between audio frames: spans start on a multiple of it (the audio CNN's frame cache)."""
        return self.audio.sample_stride

    @property
    def future_reach_s(self) -> float:
        """Seconds past a frame its state may depend on outside the block-causal attention: the audio encoder's
        declared reach, or the video clip holding the frame (VideoMAE attends jointly within each clip of
        ``num_frames`` frames; clips are placed one after another from the span start, so a video token sees at most
        the rest of its clip, one clip length)."""
        return max(self.audio.future_reach_s, self.clip_frames / self.spec.video_fps)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, H, W, 3) uint8 -> (B, n_steps, D_video): one token-averaged vector per tubelet of frames."""
        b, f, h, w, _ = frames.shape
        if (h, w) != (self.image_size, self.image_size):
            raise BackboneError(f"video frames are {h}x{w} but the video encoder expects {self.image_size}x{self.image_size}; "
                                f"set data.frame_size={self.image_size}")
        n_clips = -(-f // self.clip_frames)
        x = frames.permute(0, 1, 4, 2, 3).to(self.mean.dtype) / 255.0  # (B, F, 3, H, W)
        x = nn.functional.pad(x, (0, 0, 0, 0, 0, 0, 0, n_clips * self.clip_frames - f))
        x = ((x - self.mean) / self.std).to(self.proj_video.weight.dtype)
        clips = x.reshape(b * n_clips, self.clip_frames, 3, h, w)
        steps = self.clip_frames // self.tubelet
        out = []
        for i in range(0, len(clips), self.clips_per_pass):  # bounds activation memory on long spans
            states = self.video(pixel_values=clips[i : i + self.clips_per_pass], output_hidden_states=True).hidden_states
            tokens = states[self.video_layer]  # (n, steps·patches, Dv)
            out.append(tokens.reshape(len(tokens), steps, -1, tokens.shape[-1]).mean(2))  # (n, steps, Dv)
        return torch.cat(out).reshape(b, n_clips * steps, -1)

    def forward(self, inputs: dict, layers: list[int] | None = None) -> torch.Tensor:
        """{AUDIO: (B, S), VIDEO: (B, F, H, W, 3) uint8, "video_fps": float} -> (B, L, T, D) at ``frame_rate``."""
        audio_inputs = {AUDIO: inputs[AUDIO], "audio_run": inputs.get("audio_run"), "blocks": inputs.get("blocks"),
                        "start_s": inputs.get("start_s")}  # the start places a span's frames in the audio CNN's run cache
        a = self.proj_audio(self.audio(audio_inputs, [self.audio_layer])[:, 0])  # (B, T, W)
        v = self.proj_video(self.encode_video(inputs[VIDEO]))  # (B, Tv, W)
        video_rate = float(inputs["video_fps"]) / self.tubelet
        centres = (torch.arange(a.shape[1], dtype=torch.float64) + 0.5) / self.frame_rate
        idx = torch.as_tensor(time_to_index(centres.numpy(), video_rate)).clamp(0, v.shape[1] - 1).to(a.device)
        v = v[:, idx]  # (B, T, W): each video step held over the audio frames it covers
        if self.training and self.modality_dropout > 0 and torch.rand(()) < self.modality_dropout:
            if torch.rand(()) < 0.5:  # drop one modality for the whole batch, never both
                a = torch.zeros_like(a)
            else:
                v = torch.zeros_like(v)
        states = [a + v]
        blocks = inputs.get("blocks")
        mask = None if blocks is None else band.torch_layer_mask(
            band.FrameBand.from_blocks(blocks, self.frame_rate, a.shape[1], a.device), self.fusion_heads)
        for layer in self.fusion:
            states.append(layer(states[-1], src_mask=mask))
        picked = range(len(states)) if layers is None else layers
        return torch.stack([states[i] for i in picked], dim=1)

    def add_lora(self, rank: int, alpha: int, dropout: float) -> None:
        """LoRA on each encoder with target modules; an encoder without targets is frozen. The fusion trains fully."""
        for name, targets in self.lora_targets.items():
            if not targets:
                getattr(self, name).requires_grad_(False)
            elif name == AUDIO:
                self.audio.model = add_lora(self.audio.model, rank, alpha, dropout, targets)
            else:
                self.video = add_lora(self.video, rank, alpha, dropout, targets)

    def freeze_feature_encoder(self) -> None:
        self.audio.freeze_feature_encoder()

    def gradient_checkpointing_enable(self) -> None:
        self.audio.model.gradient_checkpointing_enable()
        self.video.gradient_checkpointing_enable()


def build_video(arch: str, name: str | None, overrides: dict) -> nn.Module:
    if arch not in VIDEO_MODELS:
        raise BackboneError(f"backbone.video.arch '{arch}' is not known; available: {', '.join(sorted(VIDEO_MODELS))}")
    config_cls, model_cls = VIDEO_MODELS[arch]
    if name is None:
        return model_cls(config_from_overrides(config_cls, overrides, arch))
    return load_pretrained(model_cls, name)


def build_av(cfg) -> AudioVideoBackbone:
    """``backbone.arch: av`` from a ``BackboneConfig`` (its ``audio``, ``video`` and ``fusion`` sections)."""
    a, v, f = cfg.audio, cfg.video, cfg.fusion
    if a.arch not in ("wav2vec2", "hubert", "wavlm"):
        raise BackboneError(f"backbone.audio.arch '{a.arch}' is not a waveform encoder; use wav2vec2, hubert or wavlm")
    audio = build_waveform(a.arch, a.name, dict(a.config))
    video = build_video(v.arch, v.name, dict(v.config))
    model = AudioVideoBackbone(audio, video, a.layer, v.layer, f.width, f.layers, f.heads, f.modality_dropout)
    model.lora_targets = {AUDIO: list(a.lora_target_modules), VIDEO: list(v.lora_target_modules)}
    return model
