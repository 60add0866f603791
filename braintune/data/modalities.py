"""A run + a span of stimulus seconds -> what a backbone reads of it, one entry per modality; items -> a batch.

``StimulusSpec`` is the one description of a backbone's input, built once and consumed by training segments,
feature extraction and downstream probes: its modalities and their options (sample rate, video frame rate and
size, words of left context). ``MODALITIES`` maps each modality to its span reader and its collate function;
adding a modality means adding an entry here and a backbone that reads it.

A span dict holds ``start_s`` (stimulus time of the span's first sample / frame / word grid step), ``span_s``
(its length in seconds) and one entry per modality; every modality covers the same span, so one frame clock
(the backbone's ``frame_rate`` from ``start_s``) serves pooling for all of them. Audio spans also name their run
(``audio_run``): waveform and first-layer normalisation use that run's statistics, computed once per run, so a
frame never depends on how much future stimulus its forward pass happened to hold. A batch may carry ``blocks``
(``data.timing.Blocks``): block-causal attention, the look-ahead bound.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .stimuli import crop, load_audio
from .study import Run
from .video import crop_frames, load_frames
from .words import Word, read_textgrid, read_transcript_tsv

AUDIO, VIDEO, WORDS = "audio", "video", "words"


@dataclass(frozen=True)
class StimulusSpec:
    """What a backbone reads: ``modalities`` and their options."""

    modalities: tuple[str, ...] = (AUDIO,)
    sample_rate: int = 16000  # Hz of the waveform
    video_fps: float = 8.0  # frames per second sampled inside a span
    frame_size: int = 224  # frames are resized to frame_size x frame_size
    context_words: int = 64  # words before a span given to a text backbone as context
    start_stride: int = 1  # training spans start on a multiple of this many samples (a waveform CNN's stride)

    @classmethod
    def from_options(cls, modalities: tuple[str, ...], options=None) -> StimulusSpec:
        """The spec of a backbone reading ``modalities``, with every option that ``options`` (e.g. ``cfg.data``) sets."""
        names = [f.name for f in fields(cls) if f.name != "modalities"]
        return cls(tuple(modalities), **{n: getattr(options, n) for n in names if hasattr(options, n)})

    def tag(self) -> str:
        """The settings that change what is read, for cache keys."""
        parts = [m for m in self.modalities]
        if AUDIO in self.modalities:
            parts.append(f"{self.sample_rate}Hz")
        if VIDEO in self.modalities:
            parts.append(f"{self.video_fps}fps-{self.frame_size}px")
        if WORDS in self.modalities:
            parts.append(f"ctx{self.context_words}w")
        return "+".join(parts)


@dataclass(frozen=True)
class Modality:
    """How one modality is read over a span and batched."""

    read: Callable[[Run, float, float, StimulusSpec], Any]
    collate: Callable[[list], Any]


@lru_cache(maxsize=256)
def load_words(path: str, tr: float) -> tuple[Word, ...]:
    """Words of a TextGrid (LeBel) or per-TR transcript ``.tsv`` (Algonauts), sorted by onset."""
    words = read_transcript_tsv(path, tr) if str(path).endswith(".tsv") else read_textgrid(path)
    return tuple(sorted(words, key=lambda w: w.start_s))


@lru_cache(maxsize=256)
def word_onsets(path: str, tr: float) -> np.ndarray:
    """(n_words,) onsets of ``load_words(path, tr)``, built once per story rather than once per segment."""
    return np.array([w.start_s for w in load_words(path, tr)])


def span_words(words: tuple[Word, ...], start_s: float, end_s: float, context_words: int,
               onsets: np.ndarray | None = None) -> list[tuple[float, str]]:
    """(onset relative to ``start_s``, text) of the words starting in ``[start_s, end_s)`` and of the
    ``context_words`` words before them (negative onsets: context only, never placed on the frame grid)."""
    onsets = np.array([w.start_s for w in words]) if onsets is None else onsets
    i0, i1 = np.searchsorted(onsets, start_s), np.searchsorted(onsets, end_s)
    return [(w.start_s - start_s, w.text) for w in words[max(i0 - context_words, 0) : i1]]


def _read_audio(run: Run, start_s: float, end_s: float, spec: StimulusSpec) -> np.ndarray:
    return crop(load_audio(run.stimulus, spec.sample_rate), start_s, end_s, spec.sample_rate)  # (S,) float32


def _read_video(run: Run, start_s: float, end_s: float, spec: StimulusSpec) -> np.ndarray:
    frames = load_frames(run.stimulus, spec.video_fps, spec.frame_size)
    return crop_frames(frames, start_s, end_s, spec.video_fps)  # (F, H, W, 3) uint8


def _read_words(run: Run, start_s: float, end_s: float, spec: StimulusSpec) -> list[tuple[float, str]]:
    if run.words is None:
        raise DataError(f"run '{run.name}' has no word timings (TextGrid / transcript) but the text backbone needs them; "
                        "add the transcripts or leave this run out")
    path, tr = str(run.words), run.timing.tr
    return span_words(load_words(path, tr), start_s, end_s, spec.context_words, word_onsets(path, tr))


def pad_stack(arrays: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
    """Stack arrays that differ in their first dimension, zero-padded at the end -> (B, max_len, ...)."""
    out = torch.zeros(len(arrays), max(len(a) for a in arrays), *arrays[0].shape[1:], dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.from_numpy(np.ascontiguousarray(a))
    return out


MODALITIES: dict[str, Modality] = {
    AUDIO: Modality(_read_audio, lambda values: pad_stack(values, torch.float32)),  # (B, S)
    VIDEO: Modality(_read_video, lambda values: pad_stack(values, torch.uint8)),  # (B, F, H, W, 3)
    WORDS: Modality(_read_words, list),  # B lists of (onset_s, text)
}


def read_span(run: Run, start_s: float, end_s: float, spec: StimulusSpec) -> dict:
    """The stimulus of ``run`` in ``[start_s, end_s)`` in every modality of ``spec``."""
    item = {"start_s": start_s, "span_s": end_s - start_s}
    for name in spec.modalities:
        item[name] = MODALITIES[name].read(run, start_s, end_s, spec)
    if VIDEO in spec.modalities:
        item["video_fps"] = spec.video_fps
    if AUDIO in spec.modalities:
        item["audio_run"] = str(run.stimulus)  # whose whole-run statistics normalise this span (stimuli.run_audio_moments)
    return item


def collate_stimulus(items: list[dict]) -> dict:
    """``read_span`` items -> a batch: ``start_s`` and ``span_s`` (B,) and each modality collated."""
    batch = {"start_s": np.array([it["start_s"] for it in items]), "span_s": np.array([it["span_s"] for it in items])}
    for name, modality in MODALITIES.items():
        if name in items[0]:
            batch[name] = modality.collate([it[name] for it in items])
    for key in ("video_fps",):
        if key in items[0]:
            batch[key] = items[0][key]
    if "audio_run" in items[0]:
        batch["audio_run"] = [it.get("audio_run") for it in items]
    return batch


def backbone_inputs(batch: dict, modalities: tuple[str, ...]) -> dict:
    """The part of a batch a backbone reads: its modalities, the span, and the video frame rate when present."""
    missing = [m for m in modalities if m not in batch]
    if missing:
        raise DataError(f"the batch lacks the modalities {missing} the backbone reads (it has {sorted(batch)})")
    inputs = {m: batch[m] for m in modalities}
    inputs.update(start_s=batch["start_s"], span_s=batch["span_s"], video_fps=batch.get("video_fps"),
                  audio_run=batch.get("audio_run"), blocks=batch.get("blocks"))
    return inputs
