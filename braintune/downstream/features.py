"""Backbone + task items -> pooled per-layer features (N, L, D), cached as .npy per model, task and item.

Each item is encoded alone (no padding, so a clip's mean is not diluted by zeros or changed by a
missing attention mask) and every hidden state is mean-pooled over time. The cache lives at
``CACHE/<model key>/<task>/<sha1(item id)>.npy`` and holds all hidden states, so comparing ten
checkpoints encodes each dataset once per checkpoint, and a second run of a model re-uses its files.
The model key hashes the checkpoint path + size + mtime (or the backbone config + seed).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torchaudio.functional as AF

from ..data.stimuli import load_audio
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


def item_waveform(item: Item, sample_rate: int) -> np.ndarray:
    """(n_samples,) float32 mono waveform of an item at ``sample_rate``."""
    if item.array is None:  # audio files and the audio track of video clips (MUStARD's mp4)
        return load_audio(item.audio, sample_rate)
    wave, sr = np.asarray(item.array, dtype=np.float32), int(item.sample_rate or sample_rate)
    if sr != sample_rate:
        wave = AF.resample(torch.from_numpy(wave), sr, sample_rate).numpy()
    return wave


@torch.no_grad()
def encode_item(backbone, wave: np.ndarray, device: str) -> np.ndarray:
    """(n_samples,) -> (L, D) time-mean of every hidden state."""
    audio = torch.from_numpy(wave).to(device)[None]  # (1, S)
    states = backbone(audio, None)  # (1, L, T, D)
    return states[0].float().mean(dim=1).cpu().numpy()  # (L, D)


def extract(get_backbone: Callable[[], torch.nn.Module], items: list[Item], device: str,
            cache: Optional[Path] = None) -> np.ndarray:
    """(N, L, D) pooled features of ``items``; read from / written to ``cache`` when it is given.

    ``get_backbone`` is called on the first cache miss only, so a fully cached model is never loaded.
    """
    out, hits, backbone, was_training = [], 0, None, False
    try:
        for item in items:
            path = cache / f"{hashlib.sha1(item.id.encode()).hexdigest()}.npy" if cache else None
            if path is not None and path.is_file():
                out.append(np.load(path))
                hits += 1
                continue
            if backbone is None:
                backbone = get_backbone()
                was_training = backbone.training
                backbone.eval()
            wave = item_waveform(item, getattr(backbone, "sample_rate", 16000))
            feats = encode_item(backbone, wave, device)
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
