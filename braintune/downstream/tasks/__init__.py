"""Downstream task registry ``TASKS``: task name -> reader ``(root, seed) -> TaskData`` (see ``base``).

Tasks from other packages register through the ``braintune.tasks`` entry point group (docs/extending.md).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...data.paths import allow_outside_root
from ...errors import DataError
from ...registry import Registry
from . import manifest, mosei, mustard, speech, timit
from .base import Item, TaskData

TASKS: Registry[Callable[[str, int], TaskData]] = Registry("braintune.tasks", "downstream task", {
    "mustard": mustard.read_speaker_independent,
    "mustard_dependent": mustard.read_speaker_dependent,
    "speech_commands": speech.read_speech_commands,
    "crema_d": speech.read_crema_d,
    "slurp": speech.read_slurp,
    "timit_phones": timit.read_phones,
    "timit_sentence_type": timit.read_sentence_type,
    "mosei": mosei.read_binary,
    "mosei_score": mosei.read_score,
    "csv": manifest.read_manifest,
})

__all__ = ["TASKS", "Item", "TaskData", "read_task"]


def read_task(name: str, root: str | Path, seed: int = 0, outside_root: bool = False) -> TaskData:
    """Read task ``name`` from ``root``; an unknown name lists the known ones. Files that the task's own lists name
    outside ``root`` are refused unless ``outside_root`` (``downstream.allow_outside_root``, ``data.paths``)."""
    reader = TASKS[name]  # an unknown name lists the known ones
    if root is None or not Path(root).exists():
        raise DataError(f"downstream task '{name}': root '{root}' does not exist; set downstream.root (or downstream.roots.{name})")
    with allow_outside_root(outside_root, "downstream.allow_outside_root"):
        data = reader(str(root), seed)
    if not data.items:
        raise DataError(f"downstream task '{name}' found no usable items under '{root}' (skipped: {data.skipped})")
    return data
