"""``evaluate.py features -c CONFIG [checkpoint=PATH] out_dir=OUT``: a model's layer features of every run, on the
TR clock, for users and analyses that need the features themselves.

Writes ``OUT/features/<run>.npz`` with ``features`` (layers × rows × dims, float32), ``layers`` (hidden-state indices)
and ``row_times_s`` (the stimulus time of each row: the middle of its volume), and ``OUT/summary.json`` with the
extraction settings (context, look-ahead and its bound, extraction mode, TR per run). Features are extracted as
``evaluate.py alignment`` extracts them (``alignment.extraction``, default ``bounded``) and go through the same cache.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Config, save_config
from ..evaluation.alignment import measured_layers
from ..evaluation.features import study_features
from ..models import checkpoint_entry, load_model
from .alignment import feature_cache
from .common import alignment_settings, open_splits, write_summary


def features(cfg: Config) -> dict:
    """Extract and write every run's features; return the summary."""
    out_dir = Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    study, splits = open_splits(cfg)
    model = load_model(checkpoint_entry(cfg), cfg)
    settings = alignment_settings(cfg)
    layers = measured_layers(settings, model.backbone.num_layers, model.layer)
    runs = {r: study.runs[r] for p in splits.participants + splits.heldout for r in study.runs_of(p)}
    cache = feature_cache(cfg, model)
    feats = study_features(model.backbone, runs, layers, settings.extraction, model.device, cache)
    (out_dir / "features").mkdir(parents=True, exist_ok=True)
    files = {}
    for name, run in runs.items():
        path = out_dir / "features" / f"{name}.npz"
        np.savez(path, features=feats[name].astype(np.float32), layers=np.asarray(layers),
                 row_times_s=run.timing.times())
        files[name] = str(path.relative_to(out_dir))
    tr = {name: run.timing.tr for name, run in runs.items()}
    summary = {"model": model.entry, "layers": layers, "headline_layer": model.layer, "files": files, "tr": tr,
               "extraction": settings.extraction.record(model.backbone, next(iter(tr.values()))),
               "n_rows": {name: run.timing.n_trs for name, run in runs.items()}}
    if cache is not None:
        summary["feature_cache"] = cache.summary()
    write_summary(summary, out_dir, study)
    return summary
