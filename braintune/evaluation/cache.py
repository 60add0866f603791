"""A model's identity + a run + extraction settings -> a ``.npy`` file of that run's layer features (L, n_trs, D).

``evaluate.py alignment`` / ``compare`` / ``features`` write every run's features under
``CACHE/<model key>/<run>-<settings digest>.npy``, so measuring the same model again (another out_dir, more
participants, the comparison after a single alignment) encodes nothing. The model key (``models.Model.key``)
identifies the weights and the code version; the settings digest covers the content identity of the run's
stimulus and word timings (``provenance.file_identity``), its TR clock, the layers and every extraction setting,
so a change to any of them misses. Entries are written and read as ``data.cache`` writes its own
(``write_entry`` / ``read_entry``: unique temporary name, atomic rename, a trailer with the key and a checksum): a
truncated, foreign or corrupt entry is recomputed, never served, and runs sharing one cache directory never see
each other's half-written files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.cache import read_entry, write_entry
from ..data.study import Run
from ..provenance import CODE_VERSION, digest, file_identity


class FeatureCache:
    """Per-run feature files of one model under ``root/model``; ``hits`` / ``misses`` count look-ups."""

    def __init__(self, root: str | Path, model: str):
        self.dir = Path(root) / model
        self.hits = 0
        self.misses = 0

    def _entry(self, run: Run, settings: dict) -> tuple[Path, str]:
        """The entry's file and the key its trailer carries (``data.cache.write_entry``)."""
        ident = {"run": run.name, "stimulus": file_identity(run.stimulus),
                 "words": file_identity(run.words) if run.words else None,
                 "timing": [run.timing.tr, run.timing.n_trs, run.timing.first_tr_s], "code": CODE_VERSION, **settings}
        key = digest(ident)
        return self.dir / f"{run.name}-{key}.npy", f"{self.dir.name}/{key}"

    def path(self, run: Run, settings: dict) -> Path:
        return self._entry(run, settings)[0]

    def load(self, run: Run, settings: dict) -> np.ndarray | None:
        """The run's cached features, or None (a miss) when absent, truncated, foreign or corrupt."""
        features = read_entry(*self._entry(run, settings))
        if features is None:
            self.misses += 1
        else:
            self.hits += 1
        return features

    def save(self, run: Run, settings: dict, features: np.ndarray) -> None:
        path, key = self._entry(run, settings)
        write_entry(path, features, key)

    def summary(self) -> dict:
        """What summary.json records of the cache: its directory and the look-ups so far."""
        return {"dir": str(self.dir), "hits": self.hits, "misses": self.misses}
