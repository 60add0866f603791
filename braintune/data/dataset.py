"""Runs + responses -> segments of K consecutive TRs: the stimulus span their pooling windows need (in the
modalities of a ``StimulusSpec``), and the targets of every participant who heard that run.

Each second of stimulus is encoded once per epoch (plus ``context_s`` of left context per segment), instead
of once per TR in a 10 s window as in the reference code.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .modalities import AUDIO, WORDS, StimulusSpec, collate_stimulus, read_span
from .study import Run
from .timing import window_to_slice


@dataclass(frozen=True)
class Segment:
    run: str
    start: int  # first TR row
    stop: int  # one past the last TR row


def make_segments(run: str, n_trs: int, k: int, full: bool = False) -> list[Segment]:
    """Segments of ``k`` TRs covering every row of the run, in order.

    ``full=False``: non-overlapping, the last one may be shorter (evaluation: every TR counted once).
    ``full=True``: the last one is moved back to end at the run's end, so every segment has ``k`` TRs and a
    batch needs no padding (training: padded audio would be normalised and attended to with the real audio).
    """
    segments = [Segment(run, s, min(s + k, n_trs)) for s in range(0, n_trs, k)]
    if full and n_trs > k and segments[-1].stop - segments[-1].start < k:
        segments[-1] = Segment(run, n_trs - k, n_trs)
    return segments


class SegmentDataset(Dataset):
    """Items: TR times (K,), targets {participant: (K, n_p)} for the participants with that run, and the span
    (``modalities.read_span``: ``start_s``, ``span_s`` and one entry per modality of ``spec``).

    ``span(first_tr_s, last_tr_s) -> (start_s, end_s)`` gives the stimulus seconds the TRs' pooling windows cover;
    ``context_s`` more seconds are read before that.
    """

    def __init__(self, runs: dict[str, Run], responses: dict[tuple[str, str], np.ndarray], participants: list[str],
                 segment_trs: int, span: Callable[[float, float], tuple[float, float]], context_s: float,
                 spec: StimulusSpec | None = None, full_segments: bool = False):
        self.runs, self.responses, self.participants = runs, responses, participants
        self.span, self.context_s, self.spec = span, context_s, spec or StimulusSpec()
        missing = [name for name, run in runs.items() if WORDS in self.spec.modalities and run.words is None]
        if missing:
            raise DataError(f"runs {missing} have no word timings (TextGrid / transcript) but the text backbone needs them; "
                            "add the transcripts or leave these runs out")
        self.segments = [seg for name, run in runs.items() for seg in make_segments(name, run.timing.n_trs, segment_trs, full_segments)]
        self.span_samples = self._longest_span() if AUDIO in self.spec.modalities and self.segments else None

    def _bounds(self, seg: Segment) -> tuple[np.ndarray, float, float]:
        """TR times of ``seg`` and the stimulus seconds ``[start, end)`` its windows and context need."""
        times = self.runs[seg.run].timing.times()[seg.start : seg.stop]
        start_s, end_s = self.span(times[0], times[-1])
        return times, start_s - self.context_s, end_s

    def _longest_span(self) -> int:
        """Samples of every span: the longest segment's need, plus ``start_stride - 1`` for the start's rounding."""
        need = max(np.subtract(*window_to_slice(*self._bounds(seg)[1:], self.spec.sample_rate)[::-1]) for seg in self.segments)
        return int(need) + self.spec.start_stride - 1

    def placed(self, start_s: float, end_s: float) -> tuple[float, float]:
        """Where a span needing ``[start_s, end_s)`` is read: ``span_samples`` long, ending at or after ``end_s``,
        starting at or before ``start_s`` on a multiple of ``spec.start_stride`` samples. Every span has one length
        (one batch shape, nothing padded), and a waveform CNN's frames of it are frames of the whole run (its
        stride divides the start), so a frozen CNN's output can be cached per run (``backbones.frames``). Pooling
        and blocks use the TRs' true times from the placed start, so the windows are unchanged."""
        sr, stride = self.spec.sample_rate, self.spec.start_stride
        _, i1 = window_to_slice(start_s, end_s, sr)
        i0 = (i1 - (self.span_samples - stride + 1)) // stride * stride
        return i0 / sr, (i0 + self.span_samples) / sr

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, i: int) -> dict:
        seg = self.segments[i]
        times, start_s, end_s = self._bounds(seg)
        if self.span_samples is not None:
            start_s, end_s = self.placed(start_s, end_s)
        targets = {p: np.array(self.responses[(p, seg.run)][seg.start : seg.stop]) for p in self.participants
                   if (p, seg.run) in self.responses}  # a copy of the segment's rows (memory-mapped responses)
        item = read_span(self.runs[seg.run], start_s, end_s, self.spec)
        return {**item, "tr_times": times, "targets": targets, "run": seg.run, "start": seg.start}


def collate_segments(items: list[dict], participants: list[str], n_targets: dict[str, int]) -> dict:
    """Pad to the longest stimulus and segment; a participant's rows are masked where it lacks that run.

    Returns start_s (B,), span_s (B,), tr_times (B, K) numpy, tr_mask (B, K), for each participant
    ``targets[p]`` (B, K, n_p) with ``present[p]`` (B,) bool, and the modalities the items carry:
    audio (B, S) float, video (B, F, H, W, 3) uint8, words [B lists of (onset_s, text)].
    """
    b = len(items)
    k = max(len(it["tr_times"]) for it in items)
    tr_times = np.zeros((b, k))
    tr_mask = torch.zeros(b, k, dtype=torch.bool)
    targets = {p: torch.zeros(b, k, n_targets[p]) for p in participants}
    present = {p: torch.zeros(b, dtype=torch.bool) for p in participants}
    for i, it in enumerate(items):
        n = len(it["tr_times"])
        tr_times[i, :n] = it["tr_times"]
        tr_times[i, n:] = it["tr_times"][-1]
        tr_mask[i, :n] = True
        for p, y in it["targets"].items():
            targets[p][i, :n] = torch.from_numpy(y)
            present[p][i] = True
    return {
        **collate_stimulus(items),
        "tr_times": tr_times,
        "tr_mask": tr_mask,
        "targets": targets,
        "present": present,
        "run": [it["run"] for it in items],
        "start": torch.tensor([it["start"] for it in items]),
    }
