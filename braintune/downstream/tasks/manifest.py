"""A CSV manifest ``path,label[,split]`` (paths relative to the CSV) -> TaskData (classification).

Without a ``split`` column the items are cross-validated in seeded stratified 5 folds. ``root`` is the
CSV file itself or a directory holding ``manifest.csv``. A ``path`` that leaves the CSV's directory (``..``, an
absolute path) is refused, naming the line, unless ``downstream.allow_outside_root`` (``data.paths``).
"""
from __future__ import annotations

import csv
from pathlib import Path

from ...data.paths import inside_root
from ...errors import DataError
from .base import Item, TaskData, require_file, stratified_folds

SPLITS = ("train", "validation", "test")


def read_manifest(root: str, seed: int = 0) -> TaskData:
    path = Path(root)
    if path.is_dir():
        path = path / "manifest.csv"
    require_file(path, "the csv task needs a CSV file with header 'path,label[,split]' (or a directory holding manifest.csv)")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = set(rows[0]) if rows else set()
    if not {"path", "label"} <= header:
        raise DataError(f"'{path}' must have a header with columns path,label[,split]; found {sorted(header)}")
    items, skipped = [], {}
    for n, row in enumerate(rows, start=2):
        if not row.get("path") or row.get("label") in (None, ""):
            raise DataError(f"'{path}' line {n}: empty path or label; every row needs path,label[,split]")
        audio = inside_root(path.parent, row["path"], f"'{path}' line {n}")
        if not audio.is_file():
            raise DataError(f"'{path}' line {n}: audio file '{audio}' does not exist")
        split = (row.get("split") or "").strip()
        if "split" in header and split not in SPLITS:
            raise DataError(f"'{path}' line {n}: split '{split}' is not one of {', '.join(SPLITS)}")
        items.append(Item(id=row["path"], label=row["label"], split=split, audio=str(audio), speaker=row.get("speaker")))
    rule = "the manifest's split column"
    if "split" not in header:
        for it, fold in zip(items, stratified_folds([it.label for it in items], 5, seed)):
            it.split = fold
        rule = f"stratified 5-fold (seed {seed}); the manifest has no split column"
    return TaskData("csv", "classification", items, skipped, rule)
