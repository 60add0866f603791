"""A backbone and a run's stimulus -> per-layer features on the run's TR clock (L, n_trs, D).

What the backbone reads of each run (audio, video frames, words) is its ``spec`` (``data.modalities.StimulusSpec``),
as in training; how the run is cut into forward passes is an ``Extraction``:

* ``bounded`` (the default): the run is encoded in chunks of ``chunk_s`` seconds, each with ``past_s`` of left
  context, under block-causal attention with one block per TR ending at ``t + lookahead_s``; every TR gets the mean
  of the frames in ``[t - window_s, t]``. A TR's feature depends on no stimulus later than ``t + lookahead_s`` +
  the backbone's declared ``future_reach_s`` (``record()`` writes that bound), and each second of stimulus goes
  through the backbone about once.
* ``unbounded``: the same chunks (``context_s`` of context) with full attention: a TR's feature may see up to the
  chunk's end, ~``chunk_s`` ahead. Kept for comparison and for backbones whose look-ahead does not matter.
* ``sliding`` (the reference recipe, analysis_methods.md §5.2): causal snippets of ``sliding_context_s`` seconds
  ending every ``sliding_stride_s`` seconds; the last frame's hidden state of each layer is the feature at the
  snippet's end time, Lanczos-resampled (3 lobes, cutoff 1/TR) to the TR times. The snippets are causal, but the
  Lanczos kernel is symmetric: a TR's feature mixes snippets ending up to 3 TRs after it (recorded as its bound).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.modalities import backbone_inputs, collate_stimulus, read_span
from ..data.study import Run
from ..errors import ConfigError
from ..pooling import TRPooling
from .resample import lanczos_resample


@dataclass(frozen=True)
class Extraction:
    """How a run is cut into forward passes (see the module docstring)."""

    mode: str = "bounded"  # bounded | unbounded | sliding
    window_s: float | None = None  # bounded/unbounded: feature window per TR; None: the run's TR
    chunk_s: float = 60.0  # bounded/unbounded: stimulus seconds per forward pass
    context_s: float = 8.0  # unbounded: left context before each chunk
    past_s: float = 8.0  # bounded: how far before its block a frame attends (and the context read before a chunk)
    lookahead_s: float = 0.0  # bounded: how far past its TR a block reaches
    sliding_context_s: float = 16.0  # sliding: seconds each snippet ends with
    sliding_stride_s: float = 0.1  # sliding: seconds between snippet ends
    batch: int = 32  # sliding: snippets per forward pass

    def settings(self) -> dict:
        """The settings that change the features (for cache keys and summaries)."""
        keys = {"sliding": ("mode", "sliding_context_s", "sliding_stride_s"),
                "unbounded": ("mode", "window_s", "chunk_s", "context_s"),
                "bounded": ("mode", "window_s", "chunk_s", "past_s", "lookahead_s")}[self.mode]
        return {k: v for k, v in asdict(self).items() if k in keys}

    def record(self, backbone, tr: float | None = None) -> dict:
        """What summary.json records: the settings and the look-ahead bound in seconds past each TR (None: unbounded)."""
        reach = float(getattr(backbone, "future_reach_s", 0.0))
        bound = {"bounded": self.lookahead_s + reach, "unbounded": None,
                 "sliding": None if tr is None else 3 * tr + reach}[self.mode]  # Lanczos: 3 lobes of 1/TR
        return {**self.settings(), "declared_reach_s": reach, "lookahead_bound_s": bound}


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.no_grad()
def segment_features(backbone, run: Run, layers: list[int], ex: Extraction, device="cpu") -> np.ndarray:
    """(L, n_trs, D) float32: chunks of ``ex.chunk_s`` with left context, frames averaged per TR; block-causal in
    ``bounded`` mode (one block per TR), full attention in ``unbounded`` mode."""
    pooling = TRPooling(window_s=ex.window_s or run.timing.tr, lag_s=0.0, n_windows=1, combine="mean")
    times = run.timing.times()
    per_chunk = max(int(ex.chunk_s // run.timing.tr), 1)
    bounded = ex.mode == "bounded"
    out = []
    for i in range(0, len(times), per_chunk):
        t = times[i : i + per_chunk]
        start, end = pooling.span(t[0], t[-1])
        start -= ex.past_s if bounded else ex.context_s
        end += ex.lookahead_s if bounded else 0.0
        batch = _to(collate_stimulus([read_span(run, start, end, backbone.spec)]), device)
        inputs = backbone_inputs(batch, backbone.modalities)
        if bounded:
            inputs["blocks"] = pooling.blocks(t[None], np.array([start]), ex.lookahead_s, ex.past_s)
        hidden = backbone(inputs, layers)  # (1, L, T, D)
        w = pooling.weights(t[None], np.array([start]), backbone.frame_rate, hidden.shape[2]).to(device)
        pooled = torch.stack([pooling(hidden[:, li], w) for li in range(hidden.shape[1])], dim=1)  # (1, L, k, D)
        out.append(pooled[0].float().cpu().numpy())
    return np.concatenate(out, axis=1)


@torch.no_grad()
def sliding_features(backbone, run: Run, layers: list[int], ex: Extraction, device="cpu") -> np.ndarray:
    """(L, n_trs, D) float32: last-frame states of causal snippets, Lanczos-resampled to the run's TR times."""
    times = run.timing.times()
    if ex.sliding_context_s < run.timing.tr:
        raise ConfigError(f"alignment.sliding_context_s is {ex.sliding_context_s} s, shorter than one TR of run "
                          f"'{run.name}' ({run.timing.tr} s); allowed: at least {run.timing.tr} s (the reference uses 16)")
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


EXTRACTORS = {"bounded": segment_features, "unbounded": segment_features, "sliding": sliding_features}


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
