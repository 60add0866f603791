"""``evaluate.py instructions -c CONFIG out_dir=OUT``: an instruction-tuned MLLM (``backbone.arch: mllm``) asked every
instruction of ``backbone.instructions`` about every TR-clip, and its baselines (``analysis.baselines``) through the
same path -> brain alignment per instruction × layer × participant × region, winner-take-all maps, pair partitioning
and the model-class comparison (Oota et al. 2025; docs/instructions.md).

1. Features (``evaluation.clips``): every TR-clip of every training and test run, per model, instruction and layer,
   cached under ``alignment.cache_dir`` and sharded over torchrun / SLURM processes (rank 0 analyses).
2. Responses (``analysis.instruction_data``): training runs = the split's train + validation runs (the encoding model
   chooses α by CV inside them), test = ``data.test_runs`` with every showing of their stimuli averaged; targets common
   to all participants; ceiling by ``alignment.ceiling``.
3. Scores and summaries (``analysis.instruction_models``), maps (``analysis.instruction_maps``).

summary.json: ``instructions.<name>.{mean_r_normalized, best_layer, per_region, ...}`` (the configured MLLM), ``wta``
(kind -> region -> label -> share), ``partition`` (``analysis.pairs``), ``models`` (every model at its best layer),
``class_comparison`` (pairing unit, p, FDR), ``ceiling``, ``maps``, ``extraction`` (clips/s, cache) and ``settings``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from itertools import combinations
from pathlib import Path

import numpy as np

from ..analysis.instruction_data import BrainData, brain_data, study_ceiling
from ..analysis.instruction_maps import write_wta_maps
from ..analysis.instruction_models import (
    ModelScores,
    class_comparison,
    instruction_entries,
    model_alignment,
    partition_summary,
    winner_maps,
    wta_shares,
)
from ..analysis.instruction_settings import no_instruction, resolve_instructions
from ..analysis.instructions import InstructionSet
from ..analysis.model_classes import best_layer, model_scores
from ..config import Config, from_dict, save_config, to_dict
from ..data.formats import target_space
from ..errors import ConfigError
from ..evaluation.alignment import study_columns, target_names
from ..evaluation.clips import ClipSettings, ClipStore, extract_clip_features, layers_of, process_shard, wait_for_entries
from ..evaluation.results import region_masks
from ..models import load_model, resolve_device
from .alignment import feature_cache
from .common import alignment_settings, open_splits, write_summary

log = logging.getLogger(__name__)


@dataclass
class Entry:
    """One model of the run: its name, class, config (its backbone section) and instructions; ``shares`` names the
    entry whose loaded model it reuses (the no-instruction control runs the configured MLLM itself)."""

    name: str
    kind: str
    config: Config
    instructions: InstructionSet
    shares: str | None = None


def _baseline(cfg: Config, index: int, b) -> Entry:
    where = f"analysis.baselines[{index}] ('{b.name}')"
    if not b.name:
        raise ConfigError(f"analysis.baselines[{index}] has no name; give each baseline a name (its summary key)")
    if b.backbone is None:  # the configured MLLM without an instruction
        return Entry(b.name, b.kind, cfg, no_instruction(), shares="main")
    section = {"finetune": "frozen", **dict(b.backbone)}
    values = to_dict(cfg)
    values["backbone"] = {**{k: v for k, v in section.items() if k != "instructions"}, "instructions": None}
    try:
        own = from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{where}.backbone: {err}") from err
    given = section.get("instructions")
    iset = resolve_instructions(given) if own.backbone.arch == "mllm" and given else no_instruction()
    return Entry(b.name, b.kind, own, iset)


def model_entries(cfg: Config) -> list[Entry]:
    """The configured MLLM first, then ``analysis.baselines``; every problem raised before any model is built."""
    if cfg.backbone.arch != "mllm":
        raise ConfigError(f"evaluate.py instructions measures an instruction-tuned MLLM (backbone.arch: mllm), not "
                          f"'{cfg.backbone.arch}'; put other models in analysis.baselines (e.g. {{name: av, kind: "
                          "multimodal, backbone: {arch: av, ...}}) and see configs/demo_instructions.yaml")
    iset = resolve_instructions(cfg.backbone.instructions)
    main = Entry("main", cfg.analysis.kind, replace(cfg, backbone=replace(cfg.backbone, instructions=None)), iset)
    entries = [main] + [_baseline(cfg, i, b) for i, b in enumerate(cfg.analysis.baselines)]
    names = [e.name for e in entries]
    if len(set(names)) < len(names):
        raise ConfigError(f"analysis.baselines names {names[1:]} repeat or use 'main' (the configured MLLM); make them unique")
    return entries


def partition_pairs_of(cfg: Config, iset: InstructionSet) -> list[tuple[str, str]]:
    """``analysis.pairs`` (or every pair with ``analysis.all_pairs``), checked against the instructions."""
    if cfg.analysis.all_pairs:
        return list(combinations(iset.keys, 2))
    bad = [p for p in cfg.analysis.pairs if len(p) != 2 or p[0] == p[1] or not set(p) <= set(iset.keys)]
    if bad:
        raise ConfigError(f"analysis.pairs {bad} are not pairs of two different instructions of backbone.instructions "
                          f"({list(iset.keys)})")
    return [tuple(p) for p in cfg.analysis.pairs]


def training_runs(cfg: Config, study, splits) -> list[str]:
    """``analysis.train_runs`` (names or glob patterns), or the split's training + validation runs."""
    patterns = list(cfg.analysis.train_runs)
    if not patterns:
        return splits.train_runs + splits.val_runs
    unmatched = [pat for pat in patterns if not any(fnmatch(r, pat) for r in study.runs)]
    chosen = [r for r in sorted(study.runs) if any(fnmatch(r, pat) for pat in patterns)]
    shown = set(study.with_showings(splits.test_runs))
    if unmatched or not chosen or shown & set(chosen):
        raise ConfigError(f"analysis.train_runs {patterns}: {unmatched or 'no run'} matches no run, or runs "
                          f"{sorted(shown & set(chosen))} show a test stimulus; runs under '{study.root}': "
                          f"{sorted(study.runs)[:20]}{' ...' if len(study.runs) > 20 else ''}")
    return chosen


def clip_settings(cfg: Config) -> ClipSettings:
    layers = tuple(cfg.alignment.layers) if cfg.alignment.layers is not None else None
    return ClipSettings(cfg.data.clip_s, cfg.data.clip_frames, cfg.analysis.embedding, cfg.analysis.max_new_tokens,
                        cfg.backbone.mllm.batch_size, layers)


def extract_all(cfg: Config, entries: list[Entry], runs: dict, shard: tuple[int, int, int]) -> tuple[dict, dict]:
    """Load each model once (the no-instruction control reuses the MLLM), extract this shard's features; rank 0
    waits for the others. Returns {entry name: ClipStore} and {entry name: extraction record}."""
    rank, world, local = shard
    device = resolve_device(cfg.trainer.accelerator)
    device = f"cuda:{local}" if device == "cuda" and world > 1 else device
    if world > 1 and cfg.alignment.cache_dir is None:
        raise ConfigError("sharded extraction (several processes) needs alignment.cache_dir on a filesystem every process "
                          "shares; set it")
    stores, records = {}, {}
    for e in [e for e in entries if e.shares is None]:
        model = load_model("base", e.config, device)
        settings = replace(clip_settings(cfg), layers=None) if e.name != "main" else clip_settings(cfg)
        store = ClipStore(model.backbone, settings, feature_cache(cfg, model))
        users = [x for x in entries if x.name == e.name or x.shares == e.name]
        unique = list(dict.fromkeys(p for x in users for p in x.instructions.prompts.values()))
        prompts = {f"prompt{i}": p for i, p in enumerate(unique)}
        log.info("features of %s (%s): %d instruction(s)", e.name, model.key, len(prompts))
        records[e.name] = extract_clip_features(model.backbone, runs, prompts, store, device, (rank, world))
        if world > 1 and rank == 0:
            wait_for_entries(store, runs, prompts, cfg.analysis.shard_timeout_s)
        stores.update({x.name: store for x in users})
    return stores, records


def _loader(store: ClipStore, runs: dict):
    return lambda run, prompt, layer: store.load(runs[run], prompt, layer)


def score_models(cfg: Config, entries: list[Entry], stores: dict, runs: dict, data: BrainData, ceiling) -> list[ModelScores]:
    params = {**alignment_settings(cfg).encoder_params(), "solver": cfg.analysis.solver}
    out = []
    for e in entries:
        layers = layers_of(stores[e.name].backbone, stores[e.name].settings)
        out.append(model_alignment(_loader(stores[e.name], runs), data, e.instructions, layers, ceiling,
                                   cfg.alignment.min_ceiling, params, e.name, e.kind))
    return out


def regions_of(cfg: Config, study, data: BrainData) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Region masks over the common targets (``alignment.regions``, by label name) and each target's label."""
    names = target_names(study, data.participants[0], cfg.data.labels)
    if names is None:
        if cfg.alignment.regions:
            log.warning("alignment.regions %s: no label table for %s; only whole-brain numbers", cfg.alignment.regions,
                        data.participants[0])
        return {}, None
    names = np.asarray(names)[data.targets]
    return (region_masks(names, list(cfg.alignment.regions)) if cfg.alignment.regions else {}), names


def _model_entry(ms: ModelScores, regions: dict) -> dict:
    pos = best_layer(ms.scores)
    at = model_scores(ms.scores, pos)  # (P, V): averaged over instructions
    mean = lambda x: float(np.nanmean(x)) if np.isfinite(x).any() else None  # noqa: E731
    return {"kind": ms.kind, "best_layer": ms.layers[pos], "n_instructions": len(ms.instructions.keys),
            "mean_r_normalized": mean(at) if ms.normalized else None, "mean_r": mean(model_scores(ms.r, pos)),
            "per_region": {k: mean(at[:, m]) for k, m in {"whole_brain": slice(None), **regions}.items()}}


def _file_targets(study, participant: str, targets: np.ndarray) -> tuple[np.ndarray, int]:
    source = study.sources[(participant, study.runs_of(participant)[0])]
    while hasattr(source, "inner"):  # cache / row-cut / column-selection wrappers
        source = source.inner
    return study_columns(study, participant)[targets], int(source.shape()[1])


def write_maps(cfg: Config, study, data: BrainData, main: ModelScores, regions: dict, out_dir: Path) -> tuple[dict, dict]:
    maps = winner_maps(main)
    shares = wta_shares(maps, regions)
    index, n_total = _file_targets(study, data.participants[0], data.targets)
    drawn = cfg.analysis.surface_pictures
    kinds = [k for k in maps if drawn == "all" or (drawn == "main" and not k.startswith("group-"))]
    with np.errstate(all="ignore"):
        mean = np.nanmean(main.scores, axis=2)  # (I, L, V) participant-averaged
    files = write_wta_maps(maps, shares, out_dir / "maps", target_space(study, data.participants[0], cfg.data), index,
                           n_total, kinds, mean)
    return shares, files


def save_scores(out_dir: Path, results: list[ModelScores], data: BrainData, ceiling) -> list[str]:
    """Per model ``scores_<name>.npz``: r and r / ceiling at each instruction's best layer (I, P, V), layer means (I, L, P)."""
    written = []
    for ms in results:
        with np.errstate(all="ignore"):
            layer_means = np.nanmean(ms.scores, axis=3)  # (I, L, P)
        best = np.nanargmax(np.where(np.isfinite(layer_means), layer_means, -np.inf).mean(2), axis=1)
        idx = np.arange(len(best))
        arrays = {"r": ms.r[idx, best].astype(np.float32), "scores": ms.scores[idx, best].astype(np.float32),
                  "best_layer": np.asarray(ms.layers)[best], "layer_means": layer_means.astype(np.float32),
                  "layers": np.asarray(ms.layers), "instructions": np.asarray(ms.instructions.keys),
                  "participants": np.asarray(data.participants), "targets": data.targets}
        if ceiling is not None:
            arrays["ceiling"] = np.asarray(ceiling, np.float32)
        np.savez(out_dir / f"scores_{ms.name}.npz", **arrays)
        written.append(f"scores_{ms.name}.npz")
    return written


def instructions(cfg: Config) -> dict:
    """Run the whole analysis; rank 0 writes OUT/summary.json, scores, maps and pictures (other ranks only extract)."""
    entries = model_entries(cfg)
    pairs = partition_pairs_of(cfg, entries[0].instructions)
    shard = process_shard()
    out_dir = Path(cfg.out_dir)
    if shard[0] == 0:
        save_config(cfg, out_dir / "config.yaml")
    study, splits = open_splits(cfg)
    participants, train = splits.participants + splits.heldout, training_runs(cfg, study, splits)
    runs = {r: study.runs[r] for r in train + splits.test_runs}
    stores, records = extract_all(cfg, entries, runs, shard)
    if shard[0] != 0:
        return {}
    data = brain_data(study, participants, train, splits.test_runs)
    a, an = cfg.alignment, cfg.analysis
    ceiling, ceiling_info = study_ceiling(data, a.ceiling, an.ceiling_boot, an.ceiling_curve, an.ceiling_max_subsets,
                                          cfg.trainer.seed, cv=a.cv, **({"alphas": np.asarray(a.alphas)} if a.alphas else {}))
    regions, labels = regions_of(cfg, study, data)
    results = score_models(cfg, entries, stores, runs, data, ceiling)
    main = results[0]
    layer = an.partition_layer if an.partition_layer is not None else main.layers[best_layer(main.scores)]
    params = {**alignment_settings(cfg).encoder_params(), "solver": an.solver}
    summary = {"model": cfg.backbone.name or f"{cfg.backbone.mllm.family} (offline, random weights)",
               "instructions": instruction_entries(main, regions, participants),
               "partition": partition_summary(_loader(stores["main"], runs), data, main.instructions, pairs, layer,
                                              ceiling, a.min_ceiling, params, regions) if pairs else {},
               "models": {ms.name: _model_entry(ms, regions) for ms in results},
               "class_comparison": class_comparison(results, an.kind, labels, an.pairing, cfg.trainer.seed),
               "ceiling": {**ceiling_info, "min_ceiling": a.min_ceiling, "n_targets_kept": {
                   p: int((c >= a.min_ceiling).sum()) for p, c in zip(participants, ceiling)} if ceiling is not None else None},
               "extraction": {name: {**rec.summary(), "cache_dir": str(stores[name].cache.dir) if stores[name].cache else None}
                              for name, rec in records.items()},
               "scores": save_scores(out_dir, results, data, ceiling)}
    summary["wta"], summary["maps"] = write_maps(cfg, study, data, main, regions, out_dir)
    summary["settings"] = settings_record(cfg, entries, data, params)
    write_summary(summary, out_dir, study)
    return summary


def settings_record(cfg: Config, entries: list[Entry], data: BrainData, params: dict) -> dict:
    """What the numbers rest on, for summary.json."""
    return {"clip": {**clip_settings(cfg).record(True), "layers": cfg.alignment.layers},
            "encoder": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in params.items()},
            "min_ceiling": cfg.alignment.min_ceiling, "ceiling": cfg.alignment.ceiling,
            "models": {e.name: {"kind": e.kind, "arch": e.config.backbone.arch, "backbone": e.config.backbone.name,
                                "instructions": dict(e.instructions.prompts)} for e in entries},
            "participants": data.participants, "train_runs": data.train_runs, "test_stimuli": data.test_groups,
            "test_rows": data.n_test, "n_targets": int(len(data.targets)), "regions": list(cfg.alignment.regions),
            "notes": data.notes}
