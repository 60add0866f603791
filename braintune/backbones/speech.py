"""Waveforms (B, S) at 16 kHz -> hidden states (B, L, T, D) of a HuggingFace speech model.

wav2vec2, HuBERT and WavLM take the raw waveform; the Whisper encoder takes log-mel features.

Look-ahead: attention is block-causal when the inputs carry ``blocks`` (``backbones.band``). The paths that see the
future without attention are bounded or declared: the waveform normalisation and the first convolution's GroupNorm
(``feat_extract_norm="group"``, the default of the base models) use the statistics of the whole run
(``data.stimuli.run_audio_moments``, computed once per run; the GroupNorm's from the run's window moments in closed
form: mean ``w·μ + b``, variance ``wᵀΣw``) instead of the span's; the positional convolution's reach (half its
kernel) and the CNN's receptive field past a frame are declared in ``future_reach_s`` and added to the bound.

Speed (issue 14), each exact to float tolerance (tests/test_speed.py): a frozen CNN builds no autograd graph (HF
marks its input as requiring grad whenever the encoder's ``_requires_grad`` flag is up, which ``requires_grad_`` does
not lower: the frozen CNN then ran a backward pass for nothing); spans that start on the CNN's stride take their CNN
frames from a per-run cache (``backbones.frames``); the positional convolution is computed by FFT
(``backbones.posconv``; ``use_pos_conv`` picks another method).
"""
from __future__ import annotations

from functools import lru_cache, partial

import numpy as np
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
from ..data.stimuli import load_audio, run_audio_moments
from . import band, posconv
from .frames import FrameCache, span_start_sample
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
        reach, stride = 1, 1  # receptive field of the CNN stack and its total stride, in samples
        for k, s in zip(cfg.conv_kernel, cfg.conv_stride):
            reach, stride = reach + (k - 1) * stride, stride * s
        self.frame_rate = sample_rate / stride  # 50 Hz for the usual conv stack
        self.sample_stride, self.receptive_field = stride, reach  # samples between frames, samples a frame reads
        self.hidden_size = cfg.hidden_size
        self.num_layers = cfg.num_hidden_layers + 1  # embeddings + every transformer layer
        pos_reach = (getattr(cfg, "num_conv_pos_embeddings", 0) // 2) / self.frame_rate  # the positional convolution
        self.future_reach_s = pos_reach + (reach - stride) / sample_rate
        self.first_conv = model.feature_extractor.conv_layers[0].conv
        norm = getattr(model.feature_extractor.conv_layers[0], "layer_norm", None)
        self.run_norm = norm if isinstance(norm, nn.GroupNorm) else None
        if self.run_norm is not None:
            self.run_norm.__class__ = RunStatsGroupNorm  # same parameters and state-dict keys, statistics given
            self.run_norm.stats = None
        self.attention = band.install(model)
        self.encoder = model.feature_extractor
        self.encoder.forward = partial(_encoder_forward, self.encoder)  # serves cached frames when given
        self.frame_cache: FrameCache | None = None
        self.use_frame_cache(True)
        self.pos_conv = getattr(model.encoder, "pos_conv_embed", None)
        self.use_pos_conv("auto")

    def use_frame_cache(self, on: bool, limit_gib: float = 16.0) -> None:
        """Take a frozen CNN's frames of stride-aligned spans from a per-run cache (``backbones.frames``)."""
        self.frame_cache = FrameCache(self.sample_stride, self.receptive_field, limit_gib) if on else None

    def use_pos_conv(self, method: str) -> bool:
        """Compute the positional convolution with ``method`` (``posconv.METHODS``); False when the model has none
        that the method supports (it keeps its own)."""
        return self.pos_conv is not None and posconv.install(self.pos_conv, method)

    def forward(self, inputs, layers: list[int] | None = None) -> torch.Tensor:
        """Waveform (B, S) -> (B, L, T, D) for the requested hidden-state indices (all when None)."""
        audio = waveform(inputs)
        moments = _run_moments(inputs, self.sample_rate, self.first_conv)
        if self.normalize:  # the HF processor's per-utterance normalisation, with a run's statistics when known
            audio = _normalize(audio, moments)
        if self.run_norm is not None:
            self.run_norm.stats = None if moments is None else _first_conv_stats(self.first_conv, moments, self.normalize)
        blocks = inputs.get("blocks") if isinstance(inputs, dict) else None
        n_frames = int(self.model._get_feat_extract_output_lengths(torch.tensor(audio.shape[-1])))
        band.set_band(self.attention, None if blocks is None else
                      band.FrameBand.from_blocks(blocks, self.frame_rate, n_frames, audio.device))
        trains = any(p.requires_grad for p in self.encoder.parameters())
        self.encoder._requires_grad = trains  # HF's flag: a frozen CNN's input needs no gradient
        self.encoder._braintune_frames = None if trains else self._cached_frames(inputs, audio, moments, n_frames)
        try:
            out = self.model(input_values=audio, output_hidden_states=True)
        finally:
            self.encoder._braintune_frames = None
        states = out.hidden_states
        picked = range(len(states)) if layers is None else layers
        return torch.stack([states[i] for i in picked], dim=1)

    def _cached_frames(self, inputs, audio: torch.Tensor, moments: list | None, n_frames: int) -> torch.Tensor | None:
        """(B, C, T) CNN frames of the batch from the run cache, or None when a span cannot use it (no run
        statistics, a start off the stride, no start time, the cache off or full)."""
        starts = inputs.get("start_s") if isinstance(inputs, dict) else None
        if self.frame_cache is None or moments is None or starts is None:
            return None
        i0 = [span_start_sample(float(s), self.sample_rate) for s in starts]
        if any(i % self.sample_stride for i in i0):
            return None
        kind = audio.device.type
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else self.first_conv.weight.dtype
        tag = f"{self.sample_rate}Hz|norm={self.normalize}|{dtype}"
        out = []
        for b, (run, m) in enumerate(zip(inputs["audio_run"], moments)):
            encode = partial(self._encode, [m])
            wave = partial(self._run_wave, run, m, audio.device)
            frames = self.frame_cache.run_frames(self.encoder, run, wave, encode, tag, dtype, audio.device)
            if frames is None:
                self.frame_cache.stats["spans_uncached"] += 1
                return None
            out.append(self.frame_cache.span_frames(i0[b], n_frames, frames, audio[b], encode))
        return torch.stack(out)  # (B, C, T)

    def _run_wave(self, run: str, moments, device) -> torch.Tensor:
        """(S,) the whole run's samples on ``device``, normalised as its spans are."""
        wave = torch.as_tensor(np.asarray(load_audio(run, self.sample_rate)), device=device)[None]
        return _normalize(wave, [moments])[0] if self.normalize else wave[0]

    def _encode(self, moments: list, audio: torch.Tensor, n_frames: int) -> torch.Tensor:
        """The CNN on normalised samples (1, S) of one run -> (1, C, n_frames), with that run's GroupNorm statistics."""
        saved = self.run_norm.stats if self.run_norm is not None else None
        if self.run_norm is not None:
            self.run_norm.stats = _first_conv_stats(self.first_conv, moments, self.normalize)
        try:
            frames = type(self.encoder).forward(self.encoder, audio)
        finally:
            if self.run_norm is not None:
                self.run_norm.stats = saved
        if frames.shape[-1] != n_frames:
            raise RuntimeError(f"the CNN gave {frames.shape[-1]} frames where {n_frames} were expected")
        return frames

    def freeze_feature_encoder(self) -> None:
        for p in self.encoder.parameters():
            p.requires_grad = False


def _encoder_forward(encoder: nn.Module, input_values: torch.Tensor) -> torch.Tensor:
    """A CNN feature encoder's forward that returns ``encoder._braintune_frames`` (B, C, T) when the backbone set them."""
    given = getattr(encoder, "_braintune_frames", None)
    return type(encoder).forward(encoder, input_values) if given is None else given


class RunStatsGroupNorm(nn.GroupNorm):
    """The first convolution's GroupNorm over time, normalising with given statistics ``stats`` = (mean, var), each
    (B, C), when set (a run's); with ``stats`` None it is the plain GroupNorm over the input span."""

    stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        if self.stats is None:
            return super().forward(x)
        mean, var = self.stats
        x = (x - mean[..., None].to(x.dtype)) / torch.sqrt(var[..., None].to(x.dtype) + self.eps)
        return x * self.weight[:, None] + self.bias[:, None]


def _run_moments(inputs, sample_rate: int, conv: nn.Conv1d) -> list | None:
    """Each item's run ``AudioMoments`` for windows of the first convolution, or None when a span names no run."""
    runs = inputs.get("audio_run") if isinstance(inputs, dict) else None
    if not runs or any(r is None for r in runs):
        return None
    return [run_audio_moments(r, sample_rate, conv.kernel_size[0], conv.stride[0]) for r in runs]


def _normalize(audio: torch.Tensor, moments: list | None) -> torch.Tensor:
    """Zero mean, unit variance: each run's statistics when given, else the span's own (as the HF processor)."""
    if moments is None:
        return (audio - audio.mean(-1, keepdim=True)) / torch.sqrt(audio.var(-1, keepdim=True) + 1e-7)
    stats = torch.tensor([[m.mean, m.std] for m in moments], device=audio.device, dtype=audio.dtype)  # (B, 2)
    return (audio - stats[:, :1]) / torch.sqrt(stats[:, 1:] ** 2 + 1e-7)


def _first_conv_stats(conv: nn.Conv1d, moments: list, normalized: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C) mean and variance over a whole run of the first convolution's output: w·μ + b and wᵀΣw of its windows."""
    w = conv.weight[:, 0].double()  # (C, k)
    means, variances = [], []
    for m in moments:
        scale = float(np.sqrt(m.std**2 + 1e-7)) if normalized else 1.0
        shift = m.mean if normalized else 0.0
        mu = torch.as_tensor((m.window_mean - shift) / scale, device=w.device)  # (k,)
        cov = torch.as_tensor(m.window_cov / scale**2, device=w.device)  # (k, k)
        means.append(w @ mu + (conv.bias.double() if conv.bias is not None else 0.0))
        variances.append(((w @ cov) * w).sum(-1))
    return torch.stack(means).float(), torch.stack(variances).float()


class WhisperEncoderBackbone(nn.Module):
    """The Whisper encoder; inputs are padded to its fixed 30 s window, outputs cropped to the real length.

    The log-mel is Whisper's (``WhisperFeatureExtractor``'s STFT, mel filters and scaling), computed in torch; its
    floor (the maximum minus 8, in log10 units) is the whole run's maximum when the span names its run, not the
    span's, so quiet spans are not rescaled by what comes after them. Reach past a frame: half the STFT window
    plus the two convolutions (``future_reach_s``).
    """

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
        hop = self.features.hop_length
        self.future_reach_s = (self.features.n_fft // 2 + 2 * hop) / sample_rate
        self.attention = band.install(self.model)

    def log_mel(self, audio: torch.Tensor, runs: list | None) -> torch.Tensor:
        """(B, S) -> (B, n_mels, 3000) Whisper log-mel of the audio padded to 30 s, floored at the run's max - 8."""
        f = self.features
        padded = nn.functional.pad(audio.float(), (0, f.n_samples - audio.shape[-1]))
        window = torch.hann_window(f.n_fft, device=audio.device)
        power = torch.stft(padded, f.n_fft, f.hop_length, window=window, return_complex=True)[..., :-1].abs() ** 2
        filters = torch.as_tensor(f.mel_filters, dtype=torch.float32, device=audio.device)  # (n_freq, n_mels)
        log = torch.clamp(filters.T @ power, min=1e-10).log10()  # (B, n_mels, frames)
        if runs and all(r is not None for r in runs):
            top = torch.tensor([_run_log_mel_max(r, self.sample_rate, f) for r in runs], device=audio.device)
        else:
            top = log.amax(dim=(1, 2))
        return (torch.maximum(log, (top - 8.0)[:, None, None]) + 4.0) / 4.0

    def forward(self, inputs, layers: list[int] | None = None) -> torch.Tensor:
        """Waveform (B, S) -> (B, L, T, D) at 50 Hz, cropped to the input's length."""
        audio = waveform(inputs)
        n_frames = int(audio.shape[-1] / self.sample_rate * self.frame_rate)
        if audio.shape[-1] > self.max_seconds * self.sample_rate:
            raise ValueError(
                f"Whisper sees at most {self.max_seconds:.0f} s of audio but got {audio.shape[-1] / self.sample_rate:.1f} s; "
                "lower data.segment_trs or data.context_s"
            )
        runs = inputs.get("audio_run") if isinstance(inputs, dict) else None
        mel = self.log_mel(audio, runs).to(dtype=next(self.model.parameters()).dtype)
        blocks = inputs.get("blocks") if isinstance(inputs, dict) else None
        total = self.model.config.max_source_positions  # encoder frames of the padded 30 s
        band.set_band(self.attention, None if blocks is None else
                      band.FrameBand.from_blocks(blocks, self.frame_rate, total, audio.device))
        out = self.model(mel, output_hidden_states=True)
        states = out.hidden_states
        picked = range(len(states)) if layers is None else layers
        return torch.stack([states[i][:, :n_frames] for i in picked], dim=1)

    def freeze_feature_encoder(self) -> None:
        for module in (self.model.conv1, self.model.conv2, self.model.embed_positions):
            for p in module.parameters():
                p.requires_grad = False


@lru_cache(maxsize=256)
def _run_log_mel_max(path: str, sample_rate: int, features: WhisperFeatureExtractor) -> float:
    """The maximum of Whisper's log10 mel power over a whole run (30 s chunks)."""
    from ..data.stimuli import load_audio

    wave = torch.as_tensor(np.asarray(load_audio(path, sample_rate), dtype=np.float32))
    window = torch.hann_window(features.n_fft)
    filters = torch.as_tensor(features.mel_filters, dtype=torch.float32)
    top = -10.0
    for i in range(0, max(len(wave), 1), features.n_samples):
        power = torch.stft(wave[i : i + features.n_samples], features.n_fft, features.hop_length, window=window,
                           return_complex=True)[..., :-1].abs() ** 2
        top = max(top, float(torch.clamp(filters.T @ power, min=1e-10).log10().max()))
    return top


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
