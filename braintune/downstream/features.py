"""Backbone + task items -> pooled per-layer features (N, L, D), cached as .npy per model, task and item.

Each item is read the way training reads a stimulus span (``braintune.data.dataset.read_span``): a clip file
(wav/flac/mp4/mkv) over ``[0, duration)``, as audio (``load_audio``), video frames (``data.video_fps``,
``data.frame_size``) and/or words, whichever the backbone reads (``backbone_inputs``). Words come from
``Item.text``, which has no timings: its words are spread evenly over the clip, word ``i`` of ``n`` at
``i·duration/n`` s. Each item is encoded alone (no padding, so a clip's mean is not diluted by zeros or
changed by a missing attention mask) and every hidden state is mean-pooled over time.

The cache lives at ``CACHE/<model key>/<task>/<sha1(item id)>.npy`` for waveform backbones, and
``sha1(item id|modality tag)`` (e.g. ``audio+video@8.0fps-32px``) for the others; it holds all hidden
states, so comparing ten checkpoints encodes each dataset once per checkpoint, and a second run of a model
re-uses its files. The model key hashes the checkpoint path + size + mtime (or the backbone config + seed).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torchaudio.functional as AF

from ..backbones import model_inputs
from ..data.dataset import collate_stimulus, read_span
from ..data.stimuli import audio_info, load_audio
from ..data.study import DataError, Run
from ..data.timing import RunTiming
from .tasks.base import Item

log = logging.getLogger(__name__)


def model_key(checkpoint: Optional[str] = None, backbone: Optional[dict] = None, seed: int = 0) -> str:
    """A short stable id of the weights: checkpoint path + size + mtime, or the backbone config (+ init seed)."""
    if checkpoint:
        path = Path(checkpoint).resolve()
        stat = path.stat()
        ident = {"checkpoint": str(path), "size": stat.st_size, "mtime": stat.st_mtime_ns}
    else:
        ident = {"backbone": backbone, "seed": seed}
        name = (backbone or {}).get("name")
        if name and Path(name).is_dir():  # an exported model directory: its files' mtimes identify the weights
            ident["files"] = sorted((p.name, p.stat().st_mtime_ns) for p in Path(name).iterdir() if p.is_file())
    return hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ClipInputs:
    """What to read of each item: the backbone's modalities (``backbone_inputs``) and the video sampling."""

    inputs: tuple[str, ...] = ("audio",)
    sample_rate: int = 16000  # used when the backbone has no ``sample_rate`` of its own (audio-video)
    video_fps: float = 8.0
    frame_size: int = 224

    def tag(self) -> str:
        """Modality tag in cache keys ('' for waveform backbones, whose keys predate it)."""
        if self.inputs == ("audio",):
            return ""
        video = f"@{self.video_fps}fps-{self.frame_size}px" if "video" in self.inputs else ""
        return "+".join(self.inputs) + video


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


def item_stimulus(item: Item, spec: ClipInputs, sample_rate: int) -> dict:
    """One item as a ``read_span`` dict over ``[0, duration)``: audio (S,), video (F, H, W, 3), words."""
    media = tuple(m for m in spec.inputs if m != "words")
    if item.array is not None:  # in-memory waveform (e.g. Hugging Face datasets): audio only
        if "video" in media:
            raise DataError(f"item '{item.id}' is an in-memory waveform but the backbone also reads video; "
                            "probe an audio or text backbone on this task")
        wave = item_waveform(item, sample_rate)
        stim = {"audio_start_s": 0.0, "span_s": len(wave) / sample_rate, **({"audio": wave} if media else {})}
    else:
        duration = audio_info(item.audio)[0]
        clip = Run(name=item.id, stimulus=Path(item.audio), timing=RunTiming(tr=duration, n_trs=1), duration_s=duration)
        stim = read_span(clip, 0.0, duration, media, sample_rate, spec.video_fps, spec.frame_size)
    if "words" in spec.inputs:
        if not item.text:
            raise DataError(f"item '{item.id}' has no text but the backbone reads words; probe an audio backbone on this task")
        stim["words"] = spread_words(item.text, stim["span_s"])
    return stim


@torch.no_grad()
def encode_item(backbone, stim: dict, device: str) -> np.ndarray:
    """One ``item_stimulus`` dict -> (L, D) time-mean of every hidden state."""
    batch = collate_stimulus([stim])  # audio (1, S), video (1, F, H, W, 3), words [list]
    inputs = model_inputs(backbone, batch)
    if isinstance(inputs, dict):
        inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}
    else:
        inputs = inputs.to(device)
    states = backbone(inputs, None)  # (1, L, T, D)
    return states[0].float().mean(dim=1).cpu().numpy()  # (L, D)


def extract(get_backbone: Callable[[], torch.nn.Module], items: list[Item], device: str,
            cache: Optional[Path] = None, spec: ClipInputs = ClipInputs()) -> np.ndarray:
    """(N, L, D) pooled features of ``items``; read from / written to ``cache`` when it is given.

    ``get_backbone`` is called on the first cache miss only, so a fully cached model is never loaded.
    ``spec`` says which modalities the backbone reads (``spec.inputs``) and how video is sampled.
    """
    out, hits, backbone, was_training = [], 0, None, False
    tag = spec.tag()
    try:
        for item in items:
            key = f"{item.id}|{tag}" if tag else item.id
            path = cache / f"{hashlib.sha1(key.encode()).hexdigest()}.npy" if cache else None
            if path is not None and path.is_file():
                out.append(np.load(path))
                hits += 1
                continue
            if backbone is None:
                backbone = get_backbone()
                was_training = backbone.training
                backbone.eval()
            stim = item_stimulus(item, spec, getattr(backbone, "sample_rate", spec.sample_rate))
            feats = encode_item(backbone, stim, device)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, feats.astype(np.float32))
            out.append(feats)
    finally:
        if backbone is not None:
            backbone.train(was_training)
    if cache is not None:
        log.info("%s: %d of %d items read from the feature cache", cache, hits, len(items))
    return np.stack(out).astype(np.float32)
