"""Stimulus files -> float32 mono waveforms at the backbone's sample rate (soundfile + torchaudio)."""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

log = logging.getLogger(__name__)


class StimulusError(ValueError):
    """A stimulus file cannot be used; the message names the file and what to do."""


def audio_info(path: str | Path) -> tuple[float, int, int]:
    """(duration in seconds, sample rate, channels) of an audio file, read from its header."""
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types for bad files
        raise StimulusError(f"cannot read audio file '{path}': {err}. Re-download or re-convert it (wav/flac).") from err
    return info.frames / info.samplerate, info.samplerate, info.channels


@lru_cache(maxsize=256)
def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` as (n_samples,) float32 at ``sample_rate``; stereo is down-mixed and other rates resampled."""
    path = Path(path)
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
        log.info("%s: resampled from %d Hz to %d Hz", path.name, sr, sample_rate)
        wave = AF.resample(torch.from_numpy(wave), sr, sample_rate).numpy()
    return np.ascontiguousarray(wave, dtype=np.float32)


def crop(wave: np.ndarray, start_s: float, stop_s: float, sample_rate: int) -> np.ndarray:
    """Samples of ``[start_s, stop_s)`` with zeros where the window lies outside the recording."""
    from .timing import window_to_slice

    i0, i1 = window_to_slice(start_s, stop_s, sample_rate)
    out = np.zeros(i1 - i0, dtype=np.float32)
    lo, hi = max(i0, 0), min(i1, len(wave))
    if hi > lo:
        out[lo - i0 : hi - i0] = wave[lo:hi]
    return out
