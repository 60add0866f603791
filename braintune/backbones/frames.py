"""A frozen CNN feature encoder's output over whole runs -> the frames (B, C, T) of stride-aligned spans, without the CNN.

In the LoRA recipe the waveform CNN is frozen, and with run-level normalisation (``speech.WaveformBackbone``: the
waveform and the first GroupNorm use the run's statistics) every frame is a function of its own receptive field
only. A span whose first sample sits on the CNN's stride (``StimulusSpec.start_stride``: training segments are
placed so) then holds frames that are exactly frames of the whole run: frame ``j`` of a span starting at sample
``s`` is run frame ``s / stride + j``. So each run is encoded once (in chunks, under whatever autocast the first
forward that needs it runs in) and every later span slices it; frames whose receptive field leaves the recording
(zero-padded context before the first sample or after the last) are computed from the span's own samples, as
the uncached path computes them.

Keys: the encoder's weights (a digest of their bytes, refreshed when a parameter's version changes, e.g. a
checkpoint loaded into the model), the audio file's identity, the sample rate, the normalisation, the compute
dtype and ``provenance.CODE_VERSION``. With a cache dir (``data.cache_dir``) the runs are also written to disk
(``data.cache.write_entry``: atomic, verified), so other runs of the same weights read them instead of encoding.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from ..data.cache import cache_dir, read_entry, write_entry
from ..data.timing import time_to_index
from ..provenance import CODE_VERSION, digest, file_identity

log = logging.getLogger(__name__)


class FrameCache:
    """Frames of whole runs on the encoder's device, ``limit_gib`` at most (runs beyond it are encoded per span).

    ``encode(audio (1, S) normalised, run) -> (1, C, T)`` runs the CNN (the backbone supplies it, with the run's
    normalisation set); ``n_frames(S)`` is the CNN's output length for S samples.
    """

    def __init__(self, stride: int, receptive: int, limit_gib: float = 16.0, chunk_frames: int = 3000):
        self.stride, self.receptive, self.chunk_frames = stride, receptive, chunk_frames
        self.limit_bytes = int(limit_gib * 2**30)
        self.runs: dict[tuple, torch.Tensor] = {}  # key -> (C, T_run)
        self.over_budget: set[tuple] = set()
        self.stats = {"hits": 0, "runs_encoded": 0, "runs_read": 0, "spans_uncached": 0}
        self._weights: tuple | None = None  # (parameter versions, digest)

    def weights_key(self, encoder: torch.nn.Module) -> str:
        """Digest of the encoder's parameters, recomputed only when one of them changed in place."""
        params = list(encoder.parameters())
        versions = tuple((p._version, p.data_ptr()) for p in params)
        if self._weights is None or self._weights[0] != versions:
            h = hashlib.sha1()
            for p in params:
                h.update(p.detach().float().cpu().numpy().tobytes())
            self._weights = (versions, h.hexdigest()[:16])
            self.runs.clear()
            self.over_budget.clear()
        return self._weights[1]

    def run_frames(self, encoder, run: str, wave, encode, tag: str, dtype: torch.dtype, device) -> torch.Tensor | None:
        """(C, T_run) frames of ``run`` on ``device``, as the encoder outputs them under this forward's autocast
        (``dtype``: its dtype, part of the key): cached, read from the cache dir, or encoded from ``wave()`` ((S,) the
        run's normalised samples); None when they do not fit the budget."""
        key = (run, tag, self.weights_key(encoder), str(dtype), str(device))
        if key in self.runs or key in self.over_budget:
            return self.runs.get(key)
        entry = digest([file_identity(run), tag, key[2], key[3], CODE_VERSION], 20)
        path = None if cache_dir() is None else Path(cache_dir()) / "frames" / f"{Path(run).stem[:40]}-{entry}.npy"
        stored = None if path is None else read_entry(path, entry)
        if stored is not None:  # float32 on disk holds the encoder's output values exactly; back to its dtype
            out_dtype = encode(torch.zeros(1, self.receptive, device=device), 1).dtype
            frames = torch.from_numpy(np.asarray(stored, np.float32)).to(device, out_dtype)
            self.stats["runs_read"] += 1
        else:
            frames = self._encode(wave(), encode)
            self.stats["runs_encoded"] += 1
            if path is not None:
                write_entry(path, frames.float().cpu().numpy(), entry)
        used = sum(f.numel() * f.element_size() for f in self.runs.values())
        if used + frames.numel() * frames.element_size() > self.limit_bytes:
            self.over_budget.add(key)  # this run's spans run the CNN from now on
            return None
        self.runs[key] = frames
        return frames

    def _encode(self, wave: torch.Tensor, encode) -> torch.Tensor:
        """(S,) -> (C, T_run), ``chunk_frames`` frames per CNN pass (each chunk reads its frames' receptive fields)."""
        total = (wave.shape[0] - self.receptive) // self.stride + 1
        parts = []
        with torch.no_grad():
            for f0 in range(0, max(total, 0), self.chunk_frames):
                f1 = min(f0 + self.chunk_frames, total)
                piece = wave[f0 * self.stride : (f1 - 1) * self.stride + self.receptive]
                parts.append(encode(piece[None], f1 - f0)[0])
        return torch.cat(parts, dim=-1)

    def span_frames(self, i0: int, n_frames: int, frames: torch.Tensor, audio: torch.Tensor, encode) -> torch.Tensor:
        """(C, n_frames) of a span starting at run sample ``i0`` (a multiple of the stride) with samples ``audio`` (S,):
        run frames where the receptive field lies in the recording, the CNN on the span's samples elsewhere."""
        f0 = i0 // self.stride
        lo, hi = max(0, -f0), max(min(n_frames, frames.shape[1] - f0), max(0, -f0))
        parts = []
        if lo > 0:  # frames reading zero padding before the recording
            parts.append(encode(audio[None, : (lo - 1) * self.stride + self.receptive], lo)[0])
        parts.append(frames[:, f0 + lo : f0 + hi])
        if hi < n_frames:  # ... or after it
            parts.append(encode(audio[None, hi * self.stride : (n_frames - 1) * self.stride + self.receptive], n_frames - hi)[0])
        self.stats["hits"] += 1
        return torch.cat([p.to(frames.dtype) for p in parts], dim=-1) if len(parts) > 1 else parts[0]


def span_start_sample(start_s: float, sample_rate: int) -> int:
    """The run sample at which a span starting at ``start_s`` seconds begins (``data.stimuli.crop``'s first index)."""
    return int(time_to_index(start_s, sample_rate))
