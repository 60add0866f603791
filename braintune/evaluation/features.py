"""A backbone and a run's stimulus -> per-layer features on the run's TR clock (L, n_trs, D).

What the backbone reads of each run (audio, video frames, words) is its ``spec`` (``data.modalities.StimulusSpec``),
as in training; how the run is cut into forward passes is an ``Extraction``:

* ``segment``: the run is encoded in chunks of ``chunk_s`` seconds, each with ``context_s`` of left context, and
  every TR gets the mean of the frames in ``[t - window_s, t]``: each second of stimulus goes through the backbone
  about once.
* ``sliding`` (the reference recipe, analysis_methods.md §5.2): causal snippets of ``sliding_context_s`` seconds
  ending every ``sliding_stride_s`` seconds; the last frame's hidden state of each layer is the feature at the
  snippet's end time, Lanczos-resampled (3 lobes, cutoff 1/TR) to the TR times.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.modalities import backbone_inputs, collate_stimulus, read_span
from ..data.study import Run
from ..pooling import TRPooling
from .resample import lanczos_resample


@dataclass(frozen=True)
class Extraction:
    """How a run is cut into forward passes (see the module docstring)."""

    mode: str = "segment"  # segment | sliding
    window_s: float | None = None  # segment: feature window per TR; None: the run's TR
    chunk_s: float = 60.0  # segment: stimulus seconds per forward pass
    context_s: float = 8.0  # segment: left context before each chunk
    sliding_context_s: float = 16.0  # sliding: seconds each snippet ends with
    sliding_stride_s: float = 0.1  # sliding: seconds between snippet ends
    batch: int = 32  # sliding: snippets per forward pass

    def settings(self) -> dict:
        """The settings that change the features (for cache keys and summaries)."""
        keys = ("mode", "sliding_context_s", "sliding_stride_s") if self.mode == "sliding" else (
            "mode", "window_s", "chunk_s", "context_s")
        return {k: v for k, v in asdict(self).items() if k in keys}


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.no_grad()
def segment_features(backbone, run: Run, layers: list[int], ex: Extraction, device="cpu") -> np.ndarray:
    """(L, n_trs, D) float32: chunks of ``ex.chunk_s`` with ``ex.context_s`` of context, frames averaged per TR."""
    pooling = TRPooling(window_s=ex.window_s or run.timing.tr, lag_s=0.0, n_windows=1, combine="mean")
    times = run.timing.times()
    per_chunk = max(int(ex.chunk_s // run.timing.tr), 1)
    out = []
    for i in range(0, len(times), per_chunk):
        t = times[i : i + per_chunk]
        start, end = pooling.span(t[0], t[-1])
        start -= ex.context_s
        batch = _to(collate_stimulus([read_span(run, start, end, backbone.spec)]), device)
        hidden = backbone(backbone_inputs(batch, backbone.modalities), layers)  # (1, L, T, D)
        w = pooling.weights(t[None], np.array([start]), backbone.frame_rate, hidden.shape[2]).to(device)
        pooled = torch.stack([pooling(hidden[:, li], w) for li in range(hidden.shape[1])], dim=1)  # (1, L, k, D)
        out.append(pooled[0].float().cpu().numpy())
    return np.concatenate(out, axis=1)


@torch.no_grad()
def sliding_features(backbone, run: Run, layers: list[int], ex: Extraction, device="cpu") -> np.ndarray:
    """(L, n_trs, D) float32: last-frame states of causal snippets, Lanczos-resampled to the run's TR times."""
    times = run.timing.times()
    last = run.duration_s or times[-1] + run.timing.tr
    stride = ex.sliding_stride_s
    ends = np.arange(1, int(np.floor(last / stride + 1e-9)) + 1) * stride  # (n_events,) snippet end times
    out = []
    for i in range(0, len(ends), ex.batch):
        # every snippet has the full context (zeros before the stimulus starts), so the batch needs no padding mask
        items = [read_span(run, t - ex.sliding_context_s, t, backbone.spec) for t in ends[i : i + ex.batch]]
        b = _to(collate_stimulus(items), device)
        hidden = backbone(backbone_inputs(b, backbone.modalities), layers)  # (B, L, T, D)
        out.append(hidden[:, :, -1].float().cpu().numpy())  # (B, L, D): the frame ending at t
    events = np.concatenate(out)  # (n_events, L, D)
    n, n_layers, dim = events.shape
    resampled = lanczos_resample(events.reshape(n, -1), ends, times, window=3)  # (n_trs, L*D)
    return resampled.reshape(len(times), n_layers, dim).transpose(1, 0, 2).astype(np.float32)


EXTRACTORS = {"segment": segment_features, "sliding": sliding_features}


def study_features(backbone, runs: dict[str, Run], layers: list[int], ex: Extraction, device="cpu", cache=None,
                   progress: bool = True) -> dict[str, np.ndarray]:
    """{run: (L, n_trs, D)} for every run, with a progress bar. ``cache`` (a ``cache.FeatureCache``) is read first
    and written after each run that had to be encoded."""
    was_training = backbone.training
    backbone.eval()
    settings = {"layers": list(layers), "stimulus": backbone.spec.tag(), **ex.settings()}
    feats = {}
    for name, run in tqdm(runs.items(), desc="features", disable=not progress, leave=False):
        feats[name] = cache.load(run, settings) if cache is not None else None
        if feats[name] is None:
            feats[name] = EXTRACTORS[ex.mode](backbone, run, layers, ex, device)
            if cache is not None:
                cache.save(run, settings, feats[name])
    backbone.train(was_training)
    return feats
