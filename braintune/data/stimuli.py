"""Stimulus files -> float32 mono waveforms at the backbone's sample rate.

Audio files (wav/flac/...) are read with soundfile and resampled with torchaudio; video containers
(.mkv/.mp4/...) have their first audio track decoded, down-mixed and resampled with PyAV. Decoded waveforms
go through ``braintune.data.cache`` when a cache dir is configured.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..errors import StimulusError

log = logging.getLogger(__name__)


VIDEO_SUFFIXES = {".mkv", ".mp4", ".mov", ".avi", ".webm", ".m4v"}
TRUNCATION_TOLERANCE = 0.95  # decoded audio shorter than this fraction of the declared duration is refused


def audio_info(path: str | Path) -> tuple[float, int, int]:
    """(duration in seconds, sample rate, channels) of an audio file or a video's audio track, from its header."""
    if Path(path).suffix.lower() in VIDEO_SUFFIXES:
        return _container_info(Path(path))
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types for bad files
        raise StimulusError(f"cannot read audio file '{path}': {err}. Re-download or re-convert it (wav/flac).") from err
    _refuse_truncated(info.extra_info, path)
    return info.frames / info.samplerate, info.samplerate, info.channels


def _refuse_truncated(header_dump: str, path) -> None:
    """libsndfile reads a WAV cut short without complaint, noting only ``data : N (should be M)`` in its header dump."""
    for line in header_dump.splitlines():
        if line.startswith("data") and "should be" in line:
            raise StimulusError(f"audio file '{path}' is truncated (sample bytes: {line.split(':', 1)[1].strip()}); "
                                "re-download or re-convert it.")


@lru_cache(maxsize=256)
def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` as (n_samples,) float32 at ``sample_rate``; stereo is down-mixed and other rates resampled.

    Video containers give their first audio track. With a cache dir configured the result is a read-only memory map.
    """
    from .cache import cached_array

    path = Path(path)
    if not path.is_file():
        raise StimulusError(f"stimulus file '{path}' does not exist; check data.root and the dataset layout")
    decode = _decode_container if path.suffix.lower() in VIDEO_SUFFIXES else _decode_audio
    return cached_array(path, f"audio@{sample_rate}", lambda: decode(path, sample_rate))


def _decode_audio(path: Path, sample_rate: int) -> np.ndarray:
    audio_info(path)  # refuses unreadable and truncated files, naming them
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:
        raise StimulusError(
            f"cannot read audio file '{path}': {err}. The file is missing, truncated or not audio; "
            "re-download it or convert it to wav/flac."
        ) from err
    if wave.shape[0] == 0:
        raise StimulusError(f"audio file '{path}' holds no samples; re-download it.")
    if wave.shape[1] > 1:
        log.info("%s: %d channels down-mixed to mono", path.name, wave.shape[1])
        wave = wave.mean(axis=1, keepdims=True)
    wave = wave[:, 0]
    if sr != sample_rate:
        import torchaudio.functional as AF  # only when resampling: a 16 kHz dataset runs without torchaudio

        log.info("%s: resampled from %d Hz to %d Hz", path.name, sr, sample_rate)
        wave = AF.resample(torch.from_numpy(wave), sr, sample_rate).numpy()
    return np.ascontiguousarray(wave, dtype=np.float32)


def _open_container(path: Path):
    import av

    try:
        container = av.open(str(path))
    except Exception as err:  # PyAV raises OSError / InvalidDataError subclasses for broken files
        raise StimulusError(f"cannot open media file '{path}': {err}. It is truncated or corrupt; re-download it.") from err
    if not container.streams.audio:
        container.close()
        raise StimulusError(f"media file '{path}' has no audio track; audio backbones need one (check the file or use a video backbone)")
    return container


def _container_info(path: Path) -> tuple[float, int, int]:
    with _open_container(path) as c:
        stream = c.streams.audio[0]
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif c.duration is not None:
            duration = c.duration / 1_000_000  # container duration is in AV_TIME_BASE (microseconds)
        else:
            raise StimulusError(f"media file '{path}' declares no duration; remux it (e.g. ffmpeg -i in -c copy out.mkv)")
        return duration, int(stream.rate), int(stream.codec_context.channels)


def _decode_container(path: Path, sample_rate: int) -> np.ndarray:
    """First audio track of a video container -> (n_samples,) float32 mono at ``sample_rate`` (PyAV resampler)."""
    import av

    declared, native_rate, channels = _container_info(path)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks = []
    with _open_container(path) as c:
        try:
            for frame in c.decode(c.streams.audio[0]):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        except av.error.FFmpegError as err:
            raise StimulusError(f"cannot decode the audio of '{path}': {err}. The file is corrupt; re-download it.") from err
    wave = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if len(wave) < TRUNCATION_TOLERANCE * declared * sample_rate:
        raise StimulusError(f"media file '{path}' declares {declared:.2f} s but its audio track decodes to "
                            f"{len(wave) / sample_rate:.2f} s; it is truncated; re-download it")
    log.info("%s: audio track decoded (%d Hz, %d channel(s) -> mono %d Hz)", path.name, native_rate, channels, sample_rate)
    return wave


def crop(wave: np.ndarray, start_s: float, stop_s: float, sample_rate: int) -> np.ndarray:
    """Samples of ``[start_s, stop_s)`` with zeros where the window lies outside the recording."""
    from .timing import window_to_slice

    i0, i1 = window_to_slice(start_s, stop_s, sample_rate)
    out = np.zeros(i1 - i0, dtype=np.float32)
    lo, hi = max(i0, 0), min(i1, len(wave))
    if hi > lo:
        out[lo - i0 : hi - i0] = wave[lo:hi]
    return out


@dataclass(frozen=True)
class AudioMoments:
    """Whole-run statistics of a waveform: its mean and standard deviation, and the mean (k,) and covariance (k, k)
    of its windows of ``k`` samples taken every ``stride`` samples (what a first convolution of that kernel and
    stride sees). Normalisation that needs run-level statistics uses these, computed once per run, instead of the
    statistics of whichever span a forward pass happens to hold."""

    mean: float
    std: float
    window_mean: np.ndarray
    window_cov: np.ndarray


@lru_cache(maxsize=256)
def run_audio_moments(path: str | Path, sample_rate: int, kernel: int = 1, stride: int = 1) -> AudioMoments:
    """``AudioMoments`` of the stimulus at ``path`` (decoded as ``load_audio`` does), accumulated in chunks."""
    wave = np.asarray(load_audio(path, sample_rate), dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(wave, kernel)[::stride] if len(wave) >= kernel else np.zeros((1, kernel))
    total, outer = np.zeros(kernel), np.zeros((kernel, kernel))
    for i in range(0, len(windows), 1 << 16):  # bounded memory on hour-long runs
        chunk = windows[i : i + (1 << 16)]
        total += chunk.sum(0)
        outer += chunk.T @ chunk
    n = len(windows)
    mean = total / n
    return AudioMoments(float(wave.mean()), float(wave.std()), mean, outer / n - np.outer(mean, mean))
