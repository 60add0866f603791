"""Runs + responses -> segments of K consecutive TRs: the stimulus span their pooling windows need (as audio,
video frames and/or timed words, whichever the backbone reads), and the targets of every participant who
heard that run.

Each second of stimulus is encoded once per epoch (plus ``context_s`` of left context per segment), instead
of once per TR in a 10 s window as in the reference code. Every modality covers the same span
``[audio_start_s, audio_start_s + span_s)``, so one frame clock (the backbone's ``frame_rate`` from
``audio_start_s``) serves pooling for all of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from .stimuli import crop, load_audio
from .study import DataError, Run
from .video import crop_frames, load_frames
from .words import Word, read_textgrid, read_transcript_tsv


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


@lru_cache(maxsize=256)
def load_words(path: str, tr: float) -> tuple[Word, ...]:
    """Words of a TextGrid (LeBel) or per-TR transcript ``.tsv`` (Algonauts), sorted by onset."""
    words = read_transcript_tsv(path, tr) if str(path).endswith(".tsv") else read_textgrid(path)
    return tuple(sorted(words, key=lambda w: w.start_s))


@lru_cache(maxsize=256)
def word_onsets(path: str, tr: float) -> np.ndarray:
    """(n_words,) onsets of ``load_words(path, tr)``, built once per story rather than once per segment."""
    return np.array([w.start_s for w in load_words(path, tr)])


def span_words(words: tuple[Word, ...], start_s: float, end_s: float, context_words: int,
               onsets: np.ndarray | None = None) -> list[tuple[float, str]]:
    """(onset relative to ``start_s``, text) of the words starting in ``[start_s, end_s)`` and of the
    ``context_words`` words before them (negative onsets: context only, never placed on the frame grid).
    ``onsets`` (the words' start times, e.g. ``word_onsets``) saves rebuilding them."""
    onsets = np.array([w.start_s for w in words]) if onsets is None else onsets
    i0, i1 = np.searchsorted(onsets, start_s), np.searchsorted(onsets, end_s)
    return [(w.start_s - start_s, w.text) for w in words[max(i0 - context_words, 0) : i1]]


class SegmentDataset(Dataset):
    """Items: TR times (K,), targets {participant: (K, n_p)} for the participants with that run, the span start
    and length in seconds, and per modality in ``inputs``: ``audio`` (S,) float32, ``video`` (F, H, W, 3) uint8
    frames at ``video_fps``, ``words`` [(onset_s relative to the span start, text)]."""

    def __init__(
        self,
        runs: dict[str, Run],
        responses: dict[tuple[str, str], np.ndarray],
        participants: list[str],
        segment_trs: int,
        span: "callable",
        context_s: float,
        sample_rate: int,
        inputs: tuple[str, ...] = ("audio",),
        video_fps: float = 8.0,
        frame_size: int = 224,
        context_words: int = 64,
        full_segments: bool = False,
    ):
        self.runs, self.responses, self.participants = runs, responses, participants
        self.span, self.context_s, self.sample_rate = span, context_s, sample_rate
        self.inputs, self.video_fps, self.frame_size, self.context_words = tuple(inputs), video_fps, frame_size, context_words
        missing = [name for name, run in runs.items() if "words" in self.inputs and run.words is None]
        if missing:
            raise DataError(f"runs {missing} have no word timings (TextGrid / transcript) but the text backbone needs them; "
                            "add the transcripts or leave these runs out")
        self.segments = [seg for name, run in runs.items() for seg in make_segments(name, run.timing.n_trs, segment_trs, full_segments)]

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, i: int) -> dict:
        seg = self.segments[i]
        run = self.runs[seg.run]
        times = run.timing.times()[seg.start : seg.stop]
        start_s, end_s = self.span(times[0], times[-1])
        start_s -= self.context_s
        targets = {p: self.responses[(p, seg.run)][seg.start : seg.stop] for p in self.participants if (p, seg.run) in self.responses}
        item = read_span(run, start_s, end_s, self.inputs, self.sample_rate, self.video_fps, self.frame_size, self.context_words)
        return {**item, "tr_times": times, "targets": targets, "run": seg.run, "start": seg.start}


def read_span(run: Run, start_s: float, end_s: float, inputs: tuple[str, ...], sample_rate: int, video_fps: float = 8.0,
              frame_size: int = 224, context_words: int = 64) -> dict:
    """The stimulus of ``run`` in ``[start_s, end_s)`` for each modality in ``inputs`` (see ``SegmentDataset``)."""
    item = {"audio_start_s": start_s, "span_s": end_s - start_s}
    if "audio" in inputs:
        item["audio"] = crop(load_audio(run.stimulus, sample_rate), start_s, end_s, sample_rate)
    if "video" in inputs:
        frames = load_frames(run.stimulus, video_fps, frame_size)
        item["video"], item["video_fps"] = crop_frames(frames, start_s, end_s, video_fps), video_fps
    if "words" in inputs:
        if run.words is None:
            raise DataError(f"run '{run.name}' has no word timings (TextGrid / transcript) but the text backbone needs them")
        path, tr = str(run.words), run.timing.tr
        item["words"] = span_words(load_words(path, tr), start_s, end_s, context_words, word_onsets(path, tr))
    return item


def collate_stimulus(items: list[dict]) -> dict:
    """Stimulus entries of ``read_span`` items -> batch: span starts and lengths (B,), padded audio (B, S) and video
    (B, F, H, W, 3) uint8, words as B lists."""
    batch = {"audio_start_s": np.array([it["audio_start_s"] for it in items]), "span_s": np.array([it["span_s"] for it in items])}
    if "audio" in items[0]:
        batch["audio"] = _pad([it["audio"] for it in items], torch.float32)
    if "video" in items[0]:
        batch["video"], batch["video_fps"] = _pad([it["video"] for it in items], torch.uint8), items[0]["video_fps"]
    if "words" in items[0]:
        batch["words"] = [it["words"] for it in items]
    return batch


def _pad(arrays: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
    """Stack arrays that differ in their first dimension, zero-padded at the end -> (B, max_len, ...)."""
    out = torch.zeros(len(arrays), max(len(a) for a in arrays), *arrays[0].shape[1:], dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.from_numpy(np.ascontiguousarray(a))
    return out


def collate_segments(items: list[dict], participants: list[str], n_targets: dict[str, int]) -> dict:
    """Pad to the longest stimulus and segment; a participant's rows are masked where it lacks that run.

    Returns audio_start_s (B,), span_s (B,), tr_times (B, K) numpy, tr_mask (B, K), for each participant
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
