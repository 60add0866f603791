"""Runs + responses -> segments of K consecutive TRs: the audio span their pooling windows need, and the
targets of every participant who heard that run.

Each second of audio is encoded once per epoch (plus ``context_s`` of left context per segment), instead of
once per TR in a 10 s window as in the reference code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .stimuli import crop, load_audio
from .study import Run


@dataclass(frozen=True)
class Segment:
    run: str
    start: int  # first TR row
    stop: int  # one past the last TR row


def make_segments(run: str, n_trs: int, k: int) -> list[Segment]:
    """Non-overlapping segments of ``k`` TRs covering every row of the run; the last may be shorter."""
    return [Segment(run, s, min(s + k, n_trs)) for s in range(0, n_trs, k)]


class SegmentDataset(Dataset):
    """Items: audio (S,), TR times (K,), and targets {participant: (K, n_p)} for the participants with that run."""

    def __init__(
        self,
        runs: dict[str, Run],
        responses: dict[tuple[str, str], np.ndarray],
        participants: list[str],
        segment_trs: int,
        span: "callable",
        context_s: float,
        sample_rate: int,
    ):
        self.runs, self.responses, self.participants = runs, responses, participants
        self.span, self.context_s, self.sample_rate = span, context_s, sample_rate
        self.segments = [seg for name, run in runs.items() for seg in make_segments(name, run.timing.n_trs, segment_trs)]

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, i: int) -> dict:
        seg = self.segments[i]
        run = self.runs[seg.run]
        times = run.timing.times()[seg.start : seg.stop]
        start_s, end_s = self.span(times[0], times[-1])
        start_s -= self.context_s
        audio = crop(load_audio(run.stimulus, self.sample_rate), start_s, end_s, self.sample_rate)
        targets = {p: self.responses[(p, seg.run)][seg.start : seg.stop] for p in self.participants if (p, seg.run) in self.responses}
        return {"audio": audio, "audio_start_s": start_s, "tr_times": times, "targets": targets, "run": seg.run, "start": seg.start}


def collate_segments(items: list[dict], participants: list[str], n_targets: dict[str, int]) -> dict:
    """Pad to the longest audio and segment; a participant's rows are masked where it lacks that run.

    Returns audio (B, S), audio_start_s (B,), tr_times (B, K) numpy, tr_mask (B, K), and for each participant
    ``targets[p]`` (B, K, n_p) with ``present[p]`` (B,) bool.
    """
    b = len(items)
    s = max(len(it["audio"]) for it in items)
    k = max(len(it["tr_times"]) for it in items)
    audio = torch.zeros(b, s)
    tr_times = np.zeros((b, k))
    tr_mask = torch.zeros(b, k, dtype=torch.bool)
    targets = {p: torch.zeros(b, k, n_targets[p]) for p in participants}
    present = {p: torch.zeros(b, dtype=torch.bool) for p in participants}
    for i, it in enumerate(items):
        n = len(it["tr_times"])
        audio[i, : len(it["audio"])] = torch.from_numpy(it["audio"])
        tr_times[i, :n] = it["tr_times"]
        tr_times[i, n:] = it["tr_times"][-1]
        tr_mask[i, :n] = True
        for p, y in it["targets"].items():
            targets[p][i, :n] = torch.from_numpy(y)
            present[p][i] = True
    return {
        "audio": audio,
        "audio_start_s": np.array([it["audio_start_s"] for it in items]),
        "tr_times": tr_times,
        "tr_mask": tr_mask,
        "targets": targets,
        "present": present,
        "run": [it["run"] for it in items],
        "start": torch.tensor([it["start"] for it in items]),
    }
