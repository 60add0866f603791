"""One internal shape for every dataset layout: a study of runs x participants on a TR clock in seconds.

Format adapters (``braintune.data.formats``) build a ``Study``; training and evaluation never know
which layout the data came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np

from ..errors import DataError
from .timing import RunTiming

__all__ = ["DataError", "H5Response", "ResponseSource", "RowSlice", "Run", "Study", "check_rows"]


class ResponseSource(Protocol):
    """Where one participant's responses to one run live."""

    path: Path

    def read(self) -> np.ndarray:
        """(n_trs, n_targets) float32."""

    def read_repeats(self) -> np.ndarray | None:
        """(n_repeats, n_trs, n_targets) float32, or None when the run was not repeated."""

    def shape(self) -> tuple[int, int]:
        """(n_trs, n_targets) without reading the data."""


@dataclass(frozen=True)
class H5Response:
    """A 2-D HDF5 dataset ``key`` (TRs x targets), optionally with repeats under ``repeats_key``, optionally cut to
    its first ``n_rows`` rows (e.g. Algonauts runs whose participants differ by a trailing TR)."""

    path: Path
    key: str = "data"
    repeats_key: str | None = None
    n_rows: int | None = None

    def open(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r")
        except OSError as err:
            raise DataError(f"cannot open response file '{self.path}': {err}. It is truncated or not HDF5; re-download it.") from err

    def _dataset(self, f: h5py.File, key: str) -> h5py.Dataset:
        if key not in f:
            raise DataError(f"response file '{self.path}' has no dataset '{key}' (it has: {', '.join(list(f)[:10])})")
        ds = f[key]
        return ds

    def shape(self) -> tuple[int, int]:
        with self.open() as f:
            shape = self._dataset(f, self.key).shape
            if self.repeats_key is not None:  # refused when the study is opened, before any feature is extracted
                self._repeats(f)
        if len(shape) != 2:
            raise DataError(f"'{self.path}' dataset '{self.key}' has shape {shape}; expected (TRs, targets)")
        return (int(shape[0]) if self.n_rows is None else self.n_rows), int(shape[1])

    def read(self) -> np.ndarray:
        with self.open() as f:
            try:
                data = self._dataset(f, self.key)[: self.n_rows]
            except OSError as err:
                raise DataError(f"cannot read '{self.key}' from '{self.path}': {err}. The file is corrupt; re-download it.") from err
        return np.asarray(data, dtype=np.float32)

    def read_repeats(self) -> np.ndarray | None:
        """(n_repeats, n_trs, n_targets), cut like ``read``; repeats whose shape does not fit the data are refused (a
        noise ceiling from mismatched rows would be silently wrong)."""
        if self.repeats_key is None:
            return None
        with self.open() as f:
            return np.asarray(self._repeats(f)[:, : self.n_rows], dtype=np.float32)

    def _repeats(self, f: h5py.File) -> h5py.Dataset:
        """The repeats dataset, refused unless it is (repeats, rows, targets) of the data, row for row."""
        reps, shape = self._dataset(f, self.repeats_key), self._dataset(f, self.key).shape
        if reps.ndim != 3 or tuple(reps.shape[1:]) != tuple(shape):
            raise DataError(f"'{self.path}': repeats '{self.repeats_key}' have shape {reps.shape} but '{self.key}' is "
                            f"{shape}; repeats must be (repeats, {', '.join(map(str, shape))}), row for row. Re-export the "
                            "file, or remove the repeats to measure without a noise ceiling")
        return reps


@dataclass(frozen=True)
class RowSlice:
    """``inner`` restricted to rows ``[start, stop)`` (e.g. the edge TRs that ``data.trim_trs`` drops)."""

    inner: ResponseSource
    start: int
    stop: int

    @property
    def path(self) -> Path:
        return self.inner.path

    @property
    def key(self) -> str:
        """The inner source's dataset key and the cut: what tells this run's rows apart in a shared file (cache keys)."""
        return f"{getattr(self.inner, 'key', '')}[{self.start}:{self.stop}]"

    def read(self) -> np.ndarray:
        return self.inner.read()[self.start : self.stop]

    def read_repeats(self) -> np.ndarray | None:
        reps = self.inner.read_repeats()
        return None if reps is None else reps[:, self.start : self.stop]

    def shape(self) -> tuple[int, int]:
        return self.stop - self.start, self.inner.shape()[1]


def check_rows(n_rows: int, timing: RunTiming, duration_s: float | None, where: str, problems: list[str],
               past_end_s: float, expected_rows: int | None = None) -> None:
    """The one check of a response's rows against its stimulus length, for every layout.

    A gross mismatch raises ``DataError``: rows whose times run more than ``past_end_s`` seconds past the end of
    the stimulus (each layout declares how far its scans may outlast the stimulus), or rows covering under half of
    it. A row count that differs from the ``expected_rows`` the layout's convention implies is only reported (in
    ``problems``, for ``inspect`` and the logs, with both numbers): a convention must never refuse real data.
    """
    if duration_s is None:
        return
    last = timing.first_tr_s + (n_rows - 1) * timing.tr
    if last > duration_s + past_end_s:
        raise DataError(f"{where} has {n_rows} rows: the last sits at {last:.1f} s of stimulus time (TR {timing.tr} s) but the "
                        f"stimulus lasts {duration_s:.1f} s; check that the response and the stimulus belong to the same run")
    if n_rows * timing.tr < 0.5 * duration_s:
        raise DataError(f"{where} has {n_rows} rows ({n_rows * timing.tr:.1f} s at TR {timing.tr} s), under half of its "
                        f"{duration_s:.1f} s stimulus; check that the response and the stimulus belong to the same run")
    if expected_rows is not None and n_rows != expected_rows:
        problems.append(f"{where} has {n_rows} rows; its {duration_s:.1f} s stimulus implies {expected_rows} by the layout's convention")


@dataclass(frozen=True)
class Run:
    """One stimulus presentation (a story, an episode part) and its TR clock."""

    name: str
    stimulus: Path
    timing: RunTiming
    duration_s: float | None = None
    words: Path | None = None  # word timings (TextGrid / per-TR transcript), when the layout has them


@dataclass
class Study:
    """Runs x participants. ``sources[(participant, run)]`` gives that participant's responses to that run."""

    format: str
    root: Path
    runs: dict[str, Run]
    sources: dict[tuple[str, str], ResponseSource]
    default_test_runs: list[str] = field(default_factory=list)
    default_val_runs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # excluded / skipped items, for `inspect` and logs
    trimmed_trs: int = 0  # TRs dropped at each run edge by ``trim`` (data.trim_trs)

    @property
    def participants(self) -> list[str]:
        return sorted({p for p, _ in self.sources})

    def runs_of(self, participant: str) -> list[str]:
        return sorted(r for p, r in self.sources if p == participant)

    def showings(self) -> dict[str, list[str]]:
        """Stimuli presented in more than one run -> those runs (two showings of Life or Hidden Figures in Algonauts
        2025, a repeated story given as separate runs). Runs showing one stimulus file are one stimulus."""
        groups: dict[Path, list[str]] = {}
        for name, run in sorted(self.runs.items()):
            groups.setdefault(run.stimulus, []).append(name)
        return {str(stimulus): names for stimulus, names in groups.items() if len(names) > 1}

    def with_showings(self, runs: list[str]) -> list[str]:
        """``runs`` followed by every other run that showed one of their stimuli: what a split must keep together."""
        stimuli = {self.runs[r].stimulus for r in runs if r in self.runs}
        return list(runs) + [r for r, run in sorted(self.runs.items()) if run.stimulus in stimuli and r not in runs]

    def trim(self, n: int) -> None:
        """Drop ``n`` TRs at each edge of every run (run-start transients, windows before the stimulus starts)."""
        if n <= 0:
            return
        short = [f"{r} ({run.timing.n_trs} TRs)" for r, run in self.runs.items() if run.timing.n_trs <= 2 * n + 1]
        if short:
            raise DataError(f"data.trim_trs={n} leaves no TR in runs {short}; lower data.trim_trs")
        for name, run in self.runs.items():
            t = run.timing
            self.runs[name] = replace(run, timing=RunTiming(t.tr, t.n_trs - 2 * n, t.first_tr_s + n * t.tr))
        self.sources = {(p, r): RowSlice(src, n, src.shape()[0] - n) for (p, r), src in self.sources.items()}
        self.trimmed_trs += n

    def check_names(self, participants: list[str] = (), runs: list[str] = ()) -> None:
        """Raise ``DataError`` naming every participant or run that is not in the study."""
        problems = []
        unknown_p = [p for p in participants if p not in self.participants]
        if unknown_p:
            problems.append(f"unknown participant(s) {unknown_p}; found under '{self.root}': {self.participants}")
        unknown_r = [r for r in runs if r not in self.runs]
        if unknown_r:
            problems.append(f"unknown run(s) {unknown_r}; found under '{self.root}': {sorted(self.runs)}")
        if problems:
            raise DataError("; ".join(problems))
