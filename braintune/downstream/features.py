"""Backbone + task items -> pooled per-layer features (N, L, D), cached as .npy per model, task and item.

Each item is read the way training reads a stimulus span (``data.modalities.read_span``, with the backbone's
``StimulusSpec``): a clip file (wav/flac/mp4/mkv) over ``[0, duration)``, as audio, video frames and/or words,
whichever the backbone reads. Words come from ``Item.text``, which has no timings: its words are spread evenly
over the clip, word ``i`` of ``n`` at ``i·duration/n`` s. Each item is encoded alone (no padding, so a clip's
mean is not diluted by zeros or changed by a missing attention mask) and every hidden state is mean-pooled over
time.

The cache lives at ``CACHE/<model key>/<task>/<digest>.npy``, the digest covering the item's id, the content
identity of its file (``provenance.file_identity``: a same-named file of another dataset misses) and the
stimulus spec; it holds all hidden states, so comparing ten checkpoints encodes each dataset once per checkpoint,
and a second run of a model re-uses its files. Entries are verified ``data.cache`` entries (atomic writes, a
trailer with the model/task/item key and a checksum): a truncated, foreign or corrupt one is recomputed, never served.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from ..data.cache import read_entry, write_entry
from ..data.modalities import AUDIO, VIDEO, WORDS, StimulusSpec, backbone_inputs, collate_stimulus, read_span
from ..data.stimuli import audio_info, load_audio
from ..data.study import Run
from ..data.timing import RunTiming
from ..errors import DataError
from ..provenance import digest, file_identity
from .tasks.base import Item

log = logging.getLogger(__name__)


def item_waveform(item: Item, sample_rate: int) -> np.ndarray:
    """(n_samples,) float32 mono waveform of an item at ``sample_rate``."""
    if item.array is None:  # audio files and the audio track of video clips (MUStARD's mp4)
        return load_audio(item.audio, sample_rate)
    wave, sr = np.asarray(item.array, dtype=np.float32), int(item.sample_rate or sample_rate)
    if sr != sample_rate:
        wave = AF.resample(torch.from_numpy(wave), sr, sample_rate).numpy()
    return wave


def spread_words(text: str, duration_s: float) -> list[tuple[float, str]]:
    """[(onset_s, word)] of ``text`` spread evenly over the clip: word ``i`` of ``n`` at ``i·duration_s/n``."""
    words = text.split()
    return [(i * duration_s / len(words), w) for i, w in enumerate(words)]


def item_stimulus(item: Item, spec: StimulusSpec) -> dict:
    """One item as a ``read_span`` dict over ``[0, duration)``: audio (S,), video (F, H, W, 3), words."""
    media = StimulusSpec(tuple(m for m in spec.modalities if m != WORDS), spec.sample_rate, spec.video_fps, spec.frame_size)
    if item.array is not None:  # in-memory waveform (e.g. Hugging Face datasets): audio only
        if VIDEO in media.modalities:
            raise DataError(f"item '{item.id}' is an in-memory waveform but the backbone also reads video; "
                            "probe an audio or text backbone on this task")
        wave = item_waveform(item, spec.sample_rate)
        stim = {"start_s": 0.0, "span_s": len(wave) / spec.sample_rate, **({AUDIO: wave} if media.modalities else {})}
    else:
        duration = audio_info(item.audio)[0]
        clip = Run(name=item.id, stimulus=Path(item.audio), timing=RunTiming(tr=duration, n_trs=1), duration_s=duration)
        stim = read_span(clip, 0.0, duration, media)
    if WORDS in spec.modalities:
        if not item.text:
            raise DataError(f"item '{item.id}' has no text but the backbone reads words; probe an audio backbone on this task")
        stim[WORDS] = spread_words(item.text, stim["span_s"])
    return stim


@torch.no_grad()
def encode_item(backbone, stim: dict, device: str) -> np.ndarray:
    """One ``item_stimulus`` dict -> (L, D) time-mean of every hidden state."""
    batch = collate_stimulus([stim])  # audio (1, S), video (1, F, H, W, 3), words [list]
    inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in backbone_inputs(batch, backbone.modalities).items()}
    states = backbone(inputs, None)  # (1, L, T, D)
    return states[0].float().mean(dim=1).cpu().numpy()  # (L, D)


def item_key(item: Item, spec: StimulusSpec) -> str:
    """Cache file name of an item: its id, its file's content identity and what the backbone reads of it."""
    source = file_identity(item.audio)[1:] if item.audio else None  # not the path: a copied dataset still hits
    array = None if item.array is None else hashlib.sha1(np.ascontiguousarray(item.array).tobytes()).hexdigest()
    return digest([item.id, source, array, spec.tag()], 40)


def _entry_key(path: Path) -> str:
    """The key a cached item is written for: model key / task / item key (a file copied from another model or task
    directory is foreign)."""
    return "/".join(path.parts[-3:])


def extract(get_backbone: Callable[[], torch.nn.Module], items: list[Item], spec: StimulusSpec, device: str,
            cache: Path | None = None) -> np.ndarray:
    """(N, L, D) pooled features of ``items`` read as ``spec`` says; read from / written to ``cache`` when given.

    ``get_backbone`` is called on the first cache miss only, so a fully cached model is never loaded.
    """
    out, hits, backbone, was_training = [], 0, None, False
    try:
        for item in items:
            path = cache / f"{item_key(item, spec)}.npy" if cache else None
            feats = read_entry(path, _entry_key(path)) if path is not None else None
            if feats is not None:
                out.append(feats)
                hits += 1
                continue
            if backbone is None:
                backbone = get_backbone()
                was_training = backbone.training
                backbone.eval()
            feats = encode_item(backbone, item_stimulus(item, spec), device)
            if path is not None:
                write_entry(path, feats.astype(np.float32), _entry_key(path))
            out.append(feats)
    finally:
        if backbone is not None:
            backbone.train(was_training)
    if cache is not None:
        log.info("%s: %d of %d items read from the feature cache", cache, hits, len(items))
    return np.stack(out).astype(np.float32)
