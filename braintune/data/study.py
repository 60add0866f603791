"""One internal shape for every dataset layout: a study of runs x participants on a TR clock in seconds.

Format adapters (``braintune.data.formats``) build a ``Study``; training and evaluation never know
which layout the data came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np

from .timing import RunTiming


class DataError(ValueError):
    """The dataset cannot be used as given; the message names the file / participant / run and what to do."""


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
        if self.repeats_key is None:
            return None
        with self.open() as f:
            return np.asarray(self._dataset(f, self.repeats_key)[()], dtype=np.float32)


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

    @property
    def participants(self) -> list[str]:
        return sorted({p for p, _ in self.sources})

    def runs_of(self, participant: str) -> list[str]:
        return sorted(r for p, r in self.sources if p == participant)

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
