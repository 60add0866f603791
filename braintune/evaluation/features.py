"""A backbone and a run's stimulus -> per-layer features on the run's TR clock (L, n_trs, D).

Segment approach: the run is encoded in chunks of ``chunk_s`` seconds, each with ``context_s`` of left
context, and every TR gets the mean of the frames in ``[t - window_s, t]`` — each second of stimulus goes
through the backbone about once. The chunk carries whichever modalities the backbone reads (audio, video
frames, words; ``stimulus`` gives video_fps / frame_size / context_words), as training segments do.

Sliding approach (the reference recipe, analysis_methods.md §5.2): causal snippets of ``context_s`` seconds
ending every ``stride_s`` seconds; the last frame's hidden state of each layer is the feature at the snippet's
end time, and the feature series is Lanczos-resampled (3 lobes, cutoff 1/TR) to the TR times.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backbones import backbone_inputs, model_inputs
from ..data.dataset import collate_stimulus, read_span
from ..data.study import Run
from ..pooling import TRPooling
from .resample import lanczos_resample


@torch.no_grad()
def run_features(backbone, run: Run, layers: list[int], window_s: float, chunk_s: float, context_s: float,
                 sample_rate: int, device: torch.device | str = "cpu", stimulus: dict | None = None) -> np.ndarray:
    """(L, n_trs, D) float32 features of ``run`` for the hidden-state indices ``layers``."""
    pooling = TRPooling(window_s=window_s, lag_s=0.0, n_windows=1, combine="mean")
    names = getattr(backbone, "inputs", backbone_inputs("speech"))
    times = run.timing.times()
    per_chunk = max(int(chunk_s // run.timing.tr), 1)
    out = []
    for i in range(0, len(times), per_chunk):
        t = times[i : i + per_chunk]
        start, end = pooling.span(t[0], t[-1])
        start -= context_s
        batch = collate_stimulus([read_span(run, start, end, names, sample_rate, **(stimulus or {}))])
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        hidden = backbone(model_inputs(backbone, batch), layers)  # (1, L, T, D)
        w = pooling.weights(t[None], np.array([start]), backbone.frame_rate, hidden.shape[2]).to(device)
        pooled = torch.stack([pooling(hidden[:, li], w) for li in range(hidden.shape[1])], dim=1)  # (1, L, k, D)
        out.append(pooled[0].float().cpu().numpy())
    return np.concatenate(out, axis=1)


@torch.no_grad()
def sliding_run_features(backbone, run: Run, layers: list[int], context_s: float, stride_s: float, sample_rate: int,
                         device: torch.device | str = "cpu", stimulus: dict | None = None, batch: int = 32) -> np.ndarray:
    """(L, n_trs, D) float32: last-frame states of causal ``context_s`` snippets ending every ``stride_s`` seconds,
    Lanczos-resampled from the snippet end times to the run's TR times."""
    names = getattr(backbone, "inputs", backbone_inputs("speech"))
    times = run.timing.times()
    last = run.duration_s or times[-1] + run.timing.tr
    ends = np.arange(1, int(np.floor(last / stride_s + 1e-9)) + 1) * stride_s  # (n_events,) snippet end times
    out = []
    for i in range(0, len(ends), batch):
        # every snippet has the full context (zeros before the stimulus starts), so the batch needs no padding mask
        items = [read_span(run, t - context_s, t, names, sample_rate, **(stimulus or {})) for t in ends[i : i + batch]]
        b = collate_stimulus(items)
        b = {k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}
        hidden = backbone(model_inputs(backbone, b), layers)  # (B, L, T, D)
        out.append(hidden[:, :, -1].float().cpu().numpy())  # (B, L, D): the frame ending at t
    events = np.concatenate(out)  # (n_events, L, D)
    n, n_layers, dim = events.shape
    resampled = lanczos_resample(events.reshape(n, -1), ends, times, window=3)  # (n_trs, L*D)
    return resampled.reshape(len(times), n_layers, dim).transpose(1, 0, 2).astype(np.float32)


def study_features(backbone, runs: dict[str, Run], layers: list[int], window_s: float | None, chunk_s: float,
                   context_s: float, sample_rate: int, device="cpu", progress: bool = True,
                   stimulus: dict | None = None, sliding: dict | None = None, cache=None) -> dict[str, np.ndarray]:
    """{run: (L, n_trs, D)} for every run, with a progress bar; ``window_s=None`` uses each run's TR.

    ``sliding`` = {context_s, stride_s, batch} switches to the sliding approach. ``cache`` (a
    ``cache.FeatureCache``) is read first and written after each run that had to be encoded.
    """
    was_training = backbone.training
    backbone.eval()
    settings = {"layers": list(layers), "sample_rate": sample_rate, "stimulus": stimulus,
                **({"sliding": sliding} if sliding else {"window_s": window_s, "chunk_s": chunk_s, "context_s": context_s})}
    feats = {}
    for name, run in tqdm(runs.items(), desc="features", disable=not progress, leave=False):
        feats[name] = cache.load(run, settings) if cache is not None else None
        if feats[name] is not None:
            continue
        if sliding:
            feats[name] = sliding_run_features(backbone, run, layers, sliding["context_s"], sliding["stride_s"],
                                               sample_rate, device, stimulus, sliding.get("batch", 32))
        else:
            feats[name] = run_features(backbone, run, layers, window_s or run.timing.tr, chunk_s, context_s, sample_rate,
                                       device, stimulus)
        if cache is not None:
            cache.save(run, settings, feats[name])
    backbone.train(was_training)
    return feats
