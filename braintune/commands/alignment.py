"""``evaluate.py alignment`` / ``compare``: one model (``checkpoint=``, else the configured backbone) or several
(``alignment.models``) -> summary.json, per-target .npz and PNGs in out_dir.

Features are cached per model and run (``alignment.cache_dir``, ``evaluation.cache``). Efficiency curves
(``alignment.efficiency``, always on in compare) use the held-out participants, else every participant.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config import Config, save_config
from ..data.datamodule import Splits
from ..data.formats import target_space
from ..data.study import Study
from ..errors import ConfigError
from ..evaluation.alignment import measure_alignment
from ..evaluation.brainmaps import write_brain_maps
from ..evaluation.cache import FeatureCache
from ..evaluation.compare import compare_pair, efficiency_summary, participant_efficiency, run_counts
from ..evaluation.plots import plot_efficiency, plot_layers, plot_regions
from ..evaluation.results import AlignmentResult
from ..evaluation.rows import skip_start_rows
from ..models import Model, checkpoint_entry, load_model, unique_names
from .common import alignment_settings, open_splits, write_summary

log = logging.getLogger(__name__)


def feature_cache(cfg: Config, model: Model) -> FeatureCache | None:
    """The ``FeatureCache`` of ``model``, or None when ``alignment.cache_dir`` is None."""
    return None if cfg.alignment.cache_dir is None else FeatureCache(cfg.alignment.cache_dir, model.key)


def brain_maps(cfg: Config, study: Study, result: AlignmentResult, out_dir: Path, prefix: str = "r_map",
               base: AlignmentResult | None = None, significant: dict[str, np.ndarray] | None = None) -> dict | str:
    """Brain maps of every participant under ``out_dir/brain_maps`` (``evaluation.brainmaps.write_brain_maps``): r and
    normalised r, or with ``base`` tuned - base r where ``significant`` ({participant: bool per kept target}, e.g.
    ``block_sign_flip_test(...).reject``); the summary entry (files, notes), or the reason there are none."""
    spaces = {p: target_space(study, p, cfg.data) for p in result.participants}
    return write_brain_maps(result, study, spaces, Path(out_dir) / "brain_maps", prefix, base, significant, out_dir)


def efficiency_curves(cfg: Config, study: Study, splits: Splits, result: AlignmentResult) -> dict:
    """{participant: EfficiencyCurve} at the headline layer for the held-out participants (else every participant)."""
    participants = splits.heldout or splits.participants
    n_train = min(len([r for r in study.runs_of(p) if r not in splits.test_runs]) for p in participants)
    n_runs = run_counts(list(cfg.alignment.efficiency_runs), n_train)
    settings = alignment_settings(cfg)
    study = skip_start_rows(study, splits.test_runs, settings.test_skip_trs)  # the rows result.features has
    params = settings.encoder_params()
    return {p: participant_efficiency(study, p, result.features, result.layers.index(result.layer), splits.test_runs,
                                      n_runs, params, cfg.trainer.seed) for p in participants}


def measure_model(cfg: Config, study: Study, splits: Splits, model: Model) -> tuple[AlignmentResult, dict]:
    """One model -> its alignment result and summary."""
    if cfg.alignment.ceiling != "repeats":  # read by evaluate.py instructions only: never silently ignored here
        raise ConfigError(f"alignment.ceiling={cfg.alignment.ceiling} is used by evaluate.py instructions; evaluate.py "
                          "alignment and compare normalise by the repeat-based noise ceiling: set alignment.ceiling=repeats (the default)")
    cache = feature_cache(cfg, model)
    settings = alignment_settings(cfg)
    result = measure_alignment(model.backbone, model.layer, study, splits.participants + splits.heldout,
                               splits.test_runs, settings, model.device, cache)
    summary = result.summary()
    summary.update(model=model.entry, checkpoint=cfg.checkpoint, backbone=model.config.backbone.name,
                   recipe=cfg.alignment.recipe)
    if cache is not None:
        summary["feature_cache"] = cache.summary()
    return result, summary


def alignment(cfg: Config) -> dict:
    """Measure every participant (tuned and held out) on the test runs; write summary.json, alignment.npz, PNGs."""
    out_dir = Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    study, splits = open_splits(cfg)
    model = load_model(checkpoint_entry(cfg), cfg)
    result, summary = measure_model(cfg, study, splits, model)
    summary.update(test_runs=splits.test_runs, heldout_participants=splits.heldout)
    plots = [plot_layers({model.name: summary}, out_dir / "alignment_by_layer.png").name]
    if plot_regions({model.name: summary}, out_dir / "alignment_by_region.png"):
        plots.append("alignment_by_region.png")
    if cfg.alignment.efficiency:
        summary["efficiency"] = efficiency_summary({model.name: efficiency_curves(cfg, study, splits, result)}, model.name)
        plots.append(plot_efficiency(summary["efficiency"], out_dir / "data_efficiency.png").name)
    summary["plots"], summary["brain_maps"] = plots, brain_maps(cfg, study, result, out_dir)
    np.savez(out_dir / "alignment.npz", **result.arrays())
    write_summary(summary, out_dir, study)
    return summary


def file_safe(name: str) -> str:
    """A model name as part of a file name."""
    return name.replace("/", "_").replace("#", "_").replace(":", "_")


def compare(cfg: Config) -> dict:
    """Alignment of every ``alignment.models`` entry, then each one against the first with statistics."""
    entries = list(cfg.alignment.models)
    if len(entries) < 2:
        raise ConfigError("evaluate.py compare needs two or more models: alignment.models=[base,runs/x/checkpoints/best.ckpt]")
    out_dir = Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    study, splits = open_splits(cfg)
    models, results, curves, maps = {}, {}, {}, {}
    for name, entry in zip(unique_names(entries), entries):
        log.info("alignment of %s", name)
        model = load_model(entry, cfg)
        results[name], models[name] = measure_model(cfg, study, splits, model)
        safe = file_safe(name)
        np.savez(out_dir / f"alignment_{safe}.npz", **results[name].arrays())
        curves[name] = efficiency_curves(cfg, study, splits, results[name])
        maps[name] = brain_maps(cfg, study, results[name], out_dir, f"r_map_{safe}")
        del model
    reference = next(iter(results))
    differences, tests = {}, {}
    for name in list(results)[1:]:
        key = f"{name} - {reference}"
        pair = compare_pair(results[reference], results[name], cfg.alignment.block_trs, cfg.alignment.n_boot,
                            cfg.trainer.seed, heldout=splits.heldout, n_perm=cfg.alignment.n_boot)
        differences[key], tests[key] = pair.differences, pair.tests
        tests[key]["per_target"] = f"tests_{file_safe(name)}.npz"  # diff, p and rejections per target (max, BH)
        np.savez(out_dir / tests[key]["per_target"], **pair.arrays())
        # tuned - reference r, shown only where the block sign-flip test rejects (max-statistic correction)
        maps[key] = brain_maps(cfg, study, results[name], out_dir, f"diff_{file_safe(name)}", results[reference],
                               {p: pair.reject(p) for p in pair.block_tests})
    eff_ref = "base" if "base" in curves else reference
    summary = {"models": models, "reference": reference, "recipe": cfg.alignment.recipe, "differences": differences,
               "tests": tests, "efficiency": efficiency_summary(curves, eff_ref), "test_runs": splits.test_runs,
               "heldout_participants": splits.heldout, "brain_maps": maps}
    plots = [plot_layers(models, out_dir / "alignment_by_layer.png").name,
             plot_efficiency(summary["efficiency"], out_dir / "data_efficiency.png").name]
    if plot_regions(models, out_dir / "alignment_by_region.png"):
        plots.append("alignment_by_region.png")
    summary["plots"] = plots
    write_summary(summary, out_dir, study)
    return summary
