"""CMU-MOSEI sentiment from a simple documented layout -> TaskData (binary or regression).

CMU-MOSEI ships as SDK feature files (``.csd``); braintune reads a flattened export instead:
``ROOT/labels.csv`` with columns ``segment,sentiment,split`` (sentiment in [-3, 3], split in
train / validation / test; an optional ``text`` column) and ``ROOT/audio/<segment>.wav``. ``mosei``
is the usual binary "Acc-2" task (sentiment >= 0 is positive); ``mosei_score`` regresses the score.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ...data.paths import inside_root
from ...errors import DataError
from .base import Item, TaskData, require_file

LAYOUT = ("CMU-MOSEI needs ROOT/labels.csv (columns segment,sentiment,split[,text]) and ROOT/audio/<segment>.wav; "
          "export them from the CMU-MultimodalSDK (.csd) release")


def _read(root: str, binary: bool) -> TaskData:
    path = require_file(Path(root) / "labels.csv", LAYOUT)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"segment", "sentiment", "split"} <= set(rows[0]):
        raise DataError(f"'{path}' must have columns segment,sentiment,split; {LAYOUT}")
    items, missing = [], 0
    for n, row in enumerate(rows, start=2):
        try:
            score = float(row["sentiment"])
        except ValueError as err:
            raise DataError(f"'{path}' line {n}: sentiment '{row['sentiment']}' is not a number") from err
        if row["split"] not in ("train", "validation", "test"):
            raise DataError(f"'{path}' line {n}: split '{row['split']}' is not train, validation or test")
        audio = inside_root(root, Path("audio") / f"{row['segment']}.wav", f"'{path}' line {n}")
        if not audio.is_file():
            missing += 1
            continue
        label = ("positive" if score >= 0 else "negative") if binary else score
        items.append(Item(id=row["segment"], label=label, split=row["split"], audio=str(audio), text=row.get("text")))
    skipped = {"segment listed in labels.csv without audio/<segment>.wav": missing} if missing else {}
    name, kind = ("mosei", "classification") if binary else ("mosei_score", "regression")
    return TaskData(name, kind, items, skipped, "labels.csv split column")


def read_binary(root: str, seed: int = 0) -> TaskData:
    return _read(root, binary=True)


def read_score(root: str, seed: int = 0) -> TaskData:
    return _read(root, binary=False)
