"""``evaluate.py alignment`` / ``compare``: one model (a checkpoint, an exported HF directory or the untuned
backbone), or several (``alignment.models``), -> summary.json, per-target .npz and PNGs in out_dir.

Features are cached per model and run (``alignment.cache_dir``); see ``cache.py``. Efficiency curves
(``alignment.efficiency``, always on in compare) use the held-out participants, else every participant.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..backbones import build_backbone, resolve_layer
from ..config import Config, ConfigError, save_config, to_dict
from ..data.datamodule import make_splits
from ..data.formats import open_study
from .alignment import study_columns

log = logging.getLogger(__name__)


def load_backbone(cfg: Config):
    """The backbone to measure: from ``cfg.checkpoint`` (a braintune checkpoint) or built from ``cfg.backbone``."""
    if cfg.checkpoint:
        from ..training.module import BrainTuner

        path = Path(cfg.checkpoint)
        if not path.is_file():
            from ..data.study import DataError

            raise DataError(f"checkpoint '{path}' does not exist; train.py writes them under OUT_DIR/checkpoints/")
        module = BrainTuner.load_from_checkpoint(str(path), map_location="cpu")
        return module.backbone, module.layer
    torch.manual_seed(cfg.trainer.seed)  # a backbone built from its config alone is randomly initialised: reproducible
    backbone = build_backbone(cfg.backbone)
    return backbone, resolve_layer(backbone, cfg.backbone.layer)


def model_specs(cfg: Config, entries: list[str]) -> list[dict]:
    """["base" | .ckpt file | exported model dir] -> [{name, cfg}] with unique names (summary.json keys)."""
    from dataclasses import replace

    from ..data.study import DataError

    specs = []
    for entry in entries:
        if entry == "base":
            specs.append({"name": "base", "cfg": replace(cfg, checkpoint=None)})
        elif Path(entry).is_file():
            path = Path(entry).resolve()  # OUT_DIR/checkpoints/best.ckpt -> "OUT_DIR/best": which run, which checkpoint
            run = path.parent.parent.name + "/" if path.parent.name == "checkpoints" else ""
            specs.append({"name": run + path.stem, "cfg": replace(cfg, checkpoint=entry)})
        elif Path(entry).is_dir():
            specs.append({"name": Path(entry).name, "cfg": replace(cfg, checkpoint=None, backbone=replace(cfg.backbone, name=entry))})
        else:
            raise DataError(f"alignment.models entry '{entry}' is neither 'base', a checkpoint file nor a model directory")
    for i, spec in enumerate(specs):
        if [s["name"] for s in specs[:i]].count(spec["name"]):
            spec["name"] = f"{spec['name']}#{i}"
    return specs


def feature_cache(cfg: Config):
    """The ``FeatureCache`` of the model ``cfg`` describes, or None when ``alignment.cache_dir`` is None."""
    from ..downstream.features import model_key  # the same weights id as the downstream feature cache
    from .cache import FeatureCache

    if cfg.alignment.cache_dir is None:
        return None
    return FeatureCache(cfg.alignment.cache_dir, model_key(cfg.checkpoint, to_dict(cfg)["backbone"], cfg.trainer.seed))


def brain_maps(cfg: Config, study, results: dict, layer_of, out_dir: Path, prefix: str = "r_map") -> list[str] | str:
    """r maps per participant for BIDS volumes behind data.mask; otherwise the reason there are none."""
    from .plots import brain_map

    if cfg.data.format != "bids" or cfg.data.mask is None or cfg.data.atlas is not None:
        return "no brain maps: targets are not voxels of a BIDS volume mask (parcels, surfaces or h5 data)"
    files = []
    for p, res in results.items():
        targets = study_columns(study, p)[res["kept"]]
        nii, png = brain_map(res["r"][layer_of], targets, cfg.data.mask, out_dir / f"{prefix}_{p}")
        files += [nii.name, png.name]
    return files


def efficiency_curves(cfg: Config, study, splits, feats: dict, layers: list[int], layer: int) -> dict:
    """{participant: EfficiencyCurve} at ``layer`` for the held-out participants (else every participant)."""
    from .alignment import encoder_params
    from .compare import participant_efficiency, run_counts

    participants = splits.heldout or splits.participants
    n_train = min(len([r for r in study.runs_of(p) if r not in splits.test_runs]) for p in participants)
    n_runs = run_counts(list(cfg.alignment.efficiency_runs), n_train)
    return {p: participant_efficiency(study, p, feats, layers.index(layer), splits.test_runs, n_runs,
                                      encoder_params(cfg), cfg.trainer.seed) for p in participants}


def measure_model(cfg: Config, study, splits, device: str) -> tuple[dict, dict, dict]:
    """One model -> (summary, per-target arrays, details with results / features / layers / cache counts)."""
    from .alignment import measure_alignment

    backbone, layer = load_backbone(cfg)
    backbone.to(device)
    cache = feature_cache(cfg)
    details = {}
    summary, arrays = measure_alignment(backbone, study, splits.participants + splits.heldout, splits.test_runs, cfg,
                                        layer, device, cache=cache, details=details)
    summary["checkpoint"] = cfg.checkpoint
    summary["backbone"] = cfg.backbone.name
    summary["extraction"] = cfg.alignment.extraction
    if cache is not None:
        summary["feature_cache"] = {"dir": str(cache.dir), "hits": cache.hits, "misses": cache.misses}
    details["layer"] = layer
    return summary, arrays, details


def alignment(cfg: Config) -> dict:
    """Measure every participant (tuned and held out) on the test runs; write summary.json, alignment.npz, PNGs."""
    from ..training.recipe import write_summary
    from .compare import efficiency_summary
    from .plots import plot_efficiency, plot_layers, plot_regions

    out_dir = Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    study = open_study(cfg.data)
    splits = make_splits(study, cfg.data)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    summary, arrays, details = measure_model(cfg, study, splits, device)
    summary["test_runs"] = splits.test_runs
    summary["heldout_participants"] = splits.heldout
    name = Path(cfg.checkpoint).stem if cfg.checkpoint else (cfg.backbone.name or "base")
    plots = [plot_layers({name: summary}, out_dir / "alignment_by_layer.png").name]
    if plot_regions({name: summary}, out_dir / "alignment_by_region.png"):
        plots.append("alignment_by_region.png")
    if cfg.alignment.efficiency:
        curves = efficiency_curves(cfg, study, splits, details["features"], details["layers"], details["layer"])
        summary["efficiency"] = efficiency_summary({name: curves}, name)
        plots.append(plot_efficiency(summary["efficiency"], out_dir / "data_efficiency.png").name)
    maps = brain_maps(cfg, study, details["results"], details["layer"], out_dir)
    summary["plots"], summary["brain_maps"] = plots, maps
    np.savez(out_dir / "alignment.npz", **arrays)
    write_summary(summary, out_dir)
    return summary


def compare(cfg: Config) -> dict:
    """Alignment of every ``alignment.models`` entry, then each one against the first with statistics."""
    from ..training.recipe import write_summary
    from .compare import compare_pair, efficiency_summary
    from .plots import plot_efficiency, plot_layers, plot_regions

    if len(cfg.alignment.models) < 2:
        raise ConfigError("evaluate.py compare needs two or more models: alignment.models=[base,runs/x/checkpoints/best.ckpt]")
    out_dir = Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    study = open_study(cfg.data)
    splits = make_splits(study, cfg.data)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    specs = model_specs(cfg, list(cfg.alignment.models))
    models, results, curves, maps = {}, {}, {}, {}
    for spec in specs:
        log.info("alignment of %s", spec["name"])
        summary, arrays, details = measure_model(spec["cfg"], study, splits, device)
        models[spec["name"]], results[spec["name"]] = summary, details["results"]
        safe = spec["name"].replace("/", "_").replace("#", "_")
        np.savez(out_dir / f"alignment_{safe}.npz", **arrays)
        curves[spec["name"]] = efficiency_curves(cfg, study, splits, details["features"], details["layers"], details["layer"])
        maps[spec["name"]] = brain_maps(cfg, study, details["results"], details["layer"], out_dir, f"r_map_{safe}")
    reference = specs[0]["name"]
    differences, tests = {}, {}
    for spec in specs[1:]:
        key = f"{spec['name']} - {reference}"
        differences[key], tests[key] = compare_pair(results[reference], results[spec["name"]], cfg.alignment.block_trs,
                                                    cfg.alignment.n_boot, cfg.trainer.seed)
    eff_ref = "base" if "base" in curves else reference
    summary = {"models": models, "reference": reference, "differences": differences, "tests": tests,
               "efficiency": efficiency_summary(curves, eff_ref), "test_runs": splits.test_runs,
               "heldout_participants": splits.heldout, "brain_maps": maps}
    plots = [plot_layers(models, out_dir / "alignment_by_layer.png").name,
             plot_efficiency(summary["efficiency"], out_dir / "data_efficiency.png").name]
    if plot_regions(models, out_dir / "alignment_by_region.png"):
        plots.append("alignment_by_region.png")
    summary["plots"] = plots
    write_summary(summary, out_dir)
    return summary
