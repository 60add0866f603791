"""What a dataset format declares: how to open it, its config section, its defaults and its facts."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..study import Study


@dataclass(frozen=True)
class TargetSpace:
    """Where a participant's targets live in the brain, for maps: ``kind`` is ``volume`` (voxels of ``image``, a
    NIfTI mask), ``parcels`` (parcel ids 1..n of ``image``, a NIfTI atlas), ``surface`` (fsaverage vertices, left then
    right) or ``pycortex`` (``image`` is the pycortex database of ``subject``)."""

    kind: str
    image: Path | None = None
    subject: str | None = None


@dataclass(frozen=True)
class DatasetFormat:
    """One published layout.

    ``open(root, options)`` reads it (``options`` is the ``data.<name>`` section, an instance of ``options``, or None);
    ``trim_trs`` is the default of ``data.trim_trs`` (TRs dropped at each run edge before anything uses them);
    ``labels(study, participant)`` the label table the layout ships for a participant's targets, if any;
    ``space(study, participant, options)`` where its targets live (None: unknown, no brain map).
    """

    open: Callable[[Path, Any], Study]
    options: type | None = None
    trim_trs: int = 0
    labels: Callable[[Study, str], Path | None] | None = None
    space: Callable[[Study, str, Any], TargetSpace | None] | None = None
