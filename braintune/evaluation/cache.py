"""A model's identity + a run + extraction settings -> a ``.npy`` file of that run's layer features (L, n_trs, D).

``evaluate.py alignment`` / ``compare`` write every run's features under
``CACHE/<model id>/<run>-<settings hash>.npy``, so measuring the same model again (another out_dir, more
participants, the comparison after a single alignment) encodes nothing. The model id hashes the checkpoint
path + size + mtime, an exported directory's file names + mtimes, or the backbone config + init seed
(``braintune.downstream.features.model_key``); the settings hash covers the run's stimulus (path, size, mtime,
word timings), its TR clock, the layers and every extraction setting, so a change to any of them misses.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np

from ..data.study import Run

log = logging.getLogger(__name__)


def _file_stamp(path) -> Optional[list]:
    if path is None or not Path(path).exists():
        return None
    stat = Path(path).stat()
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


class FeatureCache:
    """Per-run feature files of one model under ``root/model``; ``hits`` / ``misses`` count look-ups."""

    def __init__(self, root: str | Path, model: str):
        self.dir = Path(root) / model
        self.hits = 0
        self.misses = 0

    def path(self, run: Run, settings: dict) -> Path:
        ident = {"run": run.name, "stimulus": _file_stamp(run.stimulus), "words": _file_stamp(run.words),
                 "timing": [run.timing.tr, run.timing.n_trs, run.timing.first_tr_s], **settings}
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return self.dir / f"{run.name}-{digest}.npy"

    def load(self, run: Run, settings: dict) -> Optional[np.ndarray]:
        path = self.path(run, settings)
        if path.is_file():
            self.hits += 1
            return np.load(path)
        self.misses += 1
        return None

    def save(self, run: Run, settings: dict, features: np.ndarray) -> None:
        path = self.path(run, settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")  # a crash mid-write must not leave a truncated file that later "hits"
        np.save(tmp, features)
        tmp.replace(path)
