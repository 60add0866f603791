"""A study + selection rules (region labels, noise-ceiling threshold) -> the same study with fewer target columns.

Selection happens once, when the study is opened, by wrapping each response source in ``ColumnsSource``;
every later stage sees only the kept targets. What was dropped is counted in ``study.problems``.
Mask- and atlas-based selection of volume voxels lives in ``formats.bids`` (it changes what a target is).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError
from .study import ResponseSource, Study


@dataclass(frozen=True)
class ColumnsSource:
    """``inner`` restricted to target columns ``columns`` (indices into the file's targets)."""

    inner: ResponseSource
    columns: tuple[int, ...]

    @property
    def path(self) -> Path:
        return self.inner.path

    @property
    def key(self) -> str:
        """The inner source's dataset key (runs sharing one file differ only by it; cache keys need it)."""
        return getattr(self.inner, "key", "")

    def read(self) -> np.ndarray:
        return self.inner.read()[:, list(self.columns)]

    def read_repeats(self) -> np.ndarray | None:
        reps = self.inner.read_repeats()
        return None if reps is None else reps[..., list(self.columns)]

    def shape(self) -> tuple[int, int]:
        return self.inner.shape()[0], len(self.columns)


def read_labels(path: str | Path) -> dict[int, str]:
    """``id -> name`` from a TSV with columns (index|id, name|label), or a headerless ``id name`` text file."""
    path = Path(path)
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as err:
        raise DataError(f"cannot read label file '{path}': {err}") from err
    header = lines[0].lower().split("\t") if lines else []
    if {"name", "label"} & set(header):
        rows = list(csv.DictReader(lines, delimiter="\t"))
        id_col = next((c for c in ("index", "id", "label_id") if c in header), None)
        name_col = "name" if "name" in header else "label"
        if id_col is None:
            raise DataError(f"label file '{path}' has columns {header}; it needs an 'index' (or 'id') column and a 'name' column")
        return {int(r[id_col]): r[name_col] for r in rows}
    out = {}
    for ln in lines:
        parts = ln.split(None, 1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"label file '{path}': line {ln[:60]!r} is not 'id name'; use a TSV with columns index, name")
        out[int(parts[0])] = parts[1].strip()
    return out


def region_columns(labels: dict[int, str], n_targets: int, regions: list) -> np.ndarray:
    """Columns whose label (ids ``1..n_targets`` <-> columns ``0..n-1``, as in Schaefer/Glasser) matches ``regions``.

    An integer region keeps that id; a string keeps every label containing it (case-insensitive).
    """
    keep = []
    for col in range(n_targets):
        name = labels.get(col + 1, "")
        if any((isinstance(r, int) and r == col + 1) or (isinstance(r, str) and r.lower() in name.lower()) for r in regions):
            keep.append(col)
    return np.asarray(keep, dtype=np.int64)


def ceiling_columns(repeats: np.ndarray, threshold: float) -> np.ndarray:
    """Columns whose repeat-based noise ceiling (Schoppe cc_max over ``repeats`` (R, T, N)) is at least ``threshold``."""
    from .responses import noise_ceiling

    return np.flatnonzero(noise_ceiling(repeats) >= threshold)


def select_targets(study: Study, regions: list | None = None, labels_of: Callable[[str], Path | None] | None = None,
                   ceiling_threshold: float | None = None) -> Study:
    """Restrict every participant's targets; raise ``DataError`` when a rule cannot apply or keeps nothing.

    ``labels_of(participant)`` gives that participant's label file (regions need one).
    """
    for p in study.participants:
        runs = study.runs_of(p)
        n = study.sources[(p, runs[0])].shape()[1]
        keep = np.arange(n)
        if regions:
            path = labels_of(p) if labels_of else None
            if path is None:
                raise DataError(f"data.regions={regions} but participant '{p}' has no label file; set data.labels to a TSV of index, name")
            keep = np.intersect1d(keep, region_columns(read_labels(path), n, list(regions)))
            if keep.size == 0:
                raise DataError(f"data.regions={regions} match no label of '{path}' for participant '{p}'; check the names")
        if ceiling_threshold is not None:
            reps = next((r for r in (study.sources[(p, run)].read_repeats() for run in runs) if r is not None), None)
            if reps is None:
                raise DataError(f"data.ceiling_threshold is set but participant '{p}' has no repeated run; unset it or add repeats")
            keep = np.intersect1d(keep, ceiling_columns(reps, ceiling_threshold))
            if keep.size == 0:
                raise DataError(f"no target of participant '{p}' has a noise ceiling >= {ceiling_threshold}; lower data.ceiling_threshold")
        if keep.size < n:
            study.problems.append(f"{p}: kept {keep.size} of {n} targets (regions={regions}, ceiling_threshold={ceiling_threshold})")
            for run in runs:
                study.sources[(p, run)] = ColumnsSource(study.sources[(p, run)], tuple(int(k) for k in keep))
    return study
