"""A model's identity + a run + extraction settings -> a ``.npy`` file of that run's layer features (L, n_trs, D).

``evaluate.py alignment`` / ``compare`` / ``features`` write every run's features under
``CACHE/<model key>/<run>-<settings digest>.npy``, so measuring the same model again (another out_dir, more
participants, the comparison after a single alignment) encodes nothing. The model key (``models.Model.key``)
identifies the weights and the code version; the settings digest covers the content identity of the run's
stimulus and word timings (``provenance.file_identity``), its TR clock, the layers and every extraction setting,
so a change to any of them misses. Entries are written to a unique temporary name and renamed (atomic); an
entry that cannot be read back is recomputed, never served.
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import numpy as np

from ..data.study import Run
from ..provenance import CODE_VERSION, digest, file_identity

log = logging.getLogger(__name__)


class FeatureCache:
    """Per-run feature files of one model under ``root/model``; ``hits`` / ``misses`` count look-ups."""

    def __init__(self, root: str | Path, model: str):
        self.dir = Path(root) / model
        self.hits = 0
        self.misses = 0

    def path(self, run: Run, settings: dict) -> Path:
        ident = {"run": run.name, "stimulus": file_identity(run.stimulus),
                 "words": file_identity(run.words) if run.words else None,
                 "timing": [run.timing.tr, run.timing.n_trs, run.timing.first_tr_s], "code": CODE_VERSION, **settings}
        return self.dir / f"{run.name}-{digest(ident)}.npy"

    def load(self, run: Run, settings: dict) -> np.ndarray | None:
        path = self.path(run, settings)
        if path.is_file():
            try:
                features = np.load(path)
                self.hits += 1
                return features
            except (OSError, ValueError, EOFError) as err:  # truncated or foreign: recompute, never serve
                log.warning("feature cache entry '%s' unreadable (%s); recomputing", path, err)
        self.misses += 1
        return None

    def save(self, run: Run, settings: dict, features: np.ndarray) -> None:
        path = self.path(run, settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.npy")  # unique per writer
        np.save(tmp, features)
        os.replace(tmp, path)
