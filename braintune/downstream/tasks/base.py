"""Task readers' common types: a published layout -> ``TaskData`` (labelled audio ``Item``s + splits).

Each reader parses one published on-disk layout. ``Item.split`` is ``train`` / ``validation`` / ``test``
for datasets with a published split, or ``fold0`` .. ``fold{k-1}`` for cross-validated tasks (every item
is then tested once, by a probe fitted on the other folds). Items a reader cannot use are counted in
``TaskData.skipped`` (reason -> count) and reported in summary.json, never dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...errors import DataError


@dataclass
class Item:
    """One labelled example: audio file (or in-memory waveform) + label + split + speaker."""

    id: str
    label: Any  # str class name, float (regression) or tuple of str (multi-label)
    split: str
    audio: Optional[str] = None  # path of a wav/flac/sphere/mp4 file
    array: Optional[np.ndarray] = None  # (n_samples,) waveform instead of a path
    sample_rate: Optional[int] = None
    text: Optional[str] = None
    speaker: Optional[str] = None


@dataclass
class TaskData:
    """What a reader returns: the items, the label kind and anything it excluded."""

    name: str
    kind: str  # classification | regression | multilabel
    items: list[Item]
    skipped: dict[str, int] = field(default_factory=dict)
    split_rule: str = ""  # one sentence, copied into summary.json
    label_names: Optional[list[str]] = None  # multilabel: the label set (column order)


def require_file(path: Path, what: str) -> Path:
    """``path`` if it exists, else a DataError naming it and the layout the reader expects."""
    if not path.exists():
        raise DataError(f"'{path}' does not exist; {what}")
    return path


def stratified_folds(labels: list, n_folds: int, seed: int) -> list[str]:
    """``fold{k}`` per item from a seeded StratifiedKFold over ``labels``; every label needs ``n_folds`` items."""
    from collections import Counter

    from sklearn.model_selection import StratifiedKFold

    rare = {str(label): n for label, n in Counter(labels).items() if n < n_folds}
    if rare:
        raise DataError(f"{n_folds}-fold cross-validation needs at least {n_folds} items of every label, but {rare} have "
                        "fewer; add items, drop those labels, or give the task a published split")

    folds = [""] * len(labels)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        for i in test:
            folds[i] = f"fold{k}"
    return folds
