"""A backbone and a run's stimulus -> per-layer features on the run's TR clock (L, n_trs, D).

Segment approach: the run is encoded in chunks of ``chunk_s`` seconds, each with ``context_s`` of left
context, and every TR gets the mean of the frames in ``[t - window_s, t]`` — each second of stimulus goes
through the backbone about once. The chunk carries whichever modalities the backbone reads (audio, video
frames, words; ``stimulus`` gives video_fps / frame_size / context_words), as training segments do.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backbones import backbone_inputs, model_inputs
from ..data.dataset import collate_stimulus, read_span
from ..data.study import Run
from ..pooling import TRPooling


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


def study_features(backbone, runs: dict[str, Run], layers: list[int], window_s: float | None, chunk_s: float,
                   context_s: float, sample_rate: int, device="cpu", progress: bool = True,
                   stimulus: dict | None = None) -> dict[str, np.ndarray]:
    """{run: (L, n_trs, D)} for every run, with a progress bar; ``window_s=None`` uses each run's TR."""
    was_training = backbone.training
    backbone.eval()
    feats = {}
    for name, run in tqdm(runs.items(), desc="features", disable=not progress, leave=False):
        feats[name] = run_features(backbone, run, layers, window_s or run.timing.tr, chunk_s, context_s, sample_rate, device, stimulus)
    backbone.train(was_training)
    return feats
