"""``evaluate.py remove``: linguistic properties removed from a model's word-level features, probes before/after,
brain alignment before/after per layer, participant and region, the drop's significance, and the paper's key
statistic (Oota et al. 2023, analysis_methods.md §1).

Pipeline: the words of every run (TextGrids / transcripts) -> word features (each word with its preceding
``removal.context_words`` words, ``analysis.word_features``; cached under ``alignment.cache_dir``) -> per property:
labels (``removal.label_file`` columns, else computed from the transcript) -> classes -> removal from every layer
(``removal.method``) -> probes on the training runs' words -> both feature sets to the TR clock
(``removal.to_trs``) -> the alignment ridge (``alignment.*``) per participant and layer -> summary.json + PNGs.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from ..analysis import layerwise, plots, properties
from ..analysis.removal import RESIDUAL_ALPHAS, removal_effect_corr, remove_from_layers
from ..analysis.word_features import lookahead_s, word_features, words_to_trs
from ..config import Config, save_config
from ..data.modalities import load_words
from ..data.study import Study
from ..errors import ConfigError, DataError
from ..evaluation.blocktest import block_sign_flip_test
from ..evaluation.cache import FeatureCache
from ..models import Model, checkpoint_entry, load_model
from .common import alignment_settings, open_splits, write_summary

log = logging.getLogger(__name__)


def model_layers(cfg: Config, model: Model) -> list[int]:
    """``alignment.layers`` (or every hidden state), as non-negative indices."""
    n = model.backbone.num_layers
    layers = list(range(n)) if cfg.alignment.layers is None else [l % n for l in cfg.alignment.layers]
    return sorted(set(layers))


def run_words(study: Study, runs: list[str]) -> dict:
    """{run: the run's timed words}; a run without word timings is an error naming it."""
    missing = [r for r in runs if study.runs[r].words is None]
    if missing:
        raise DataError(f"runs {missing} of '{study.root}' have no word timings (TextGrid / transcript); word-level "
                        "features need them: add the transcripts or leave those participants / runs out")
    return {r: load_words(str(study.runs[r].words), study.runs[r].timing.tr) for r in runs}


def word_level(cfg: Config, model: Model, study: Study, words: dict, layers: list[int]) -> dict[str, np.ndarray]:
    """{run: (L, n_words, D)} word features, read from / written to the feature cache."""
    cache = None if cfg.alignment.cache_dir is None else FeatureCache(cfg.alignment.cache_dir, model.key)
    settings = {"word_features": cfg.removal.context_words, "layers": layers, "stimulus": model.spec.tag()}
    feats = {}
    for r, ws in words.items():
        feats[r] = cache.load(study.runs[r], settings) if cache is not None else None
        if feats[r] is None:
            feats[r] = word_features(model.backbone, ws, layers, cfg.removal.context_words, cfg.removal.batch_words,
                                     study.runs[r], model.device)
            if cache is not None:
                cache.save(study.runs[r], settings, feats[r])
    return feats


def to_trs(cfg: Config, study: Study, words: dict, feats: dict, method: str) -> dict[str, np.ndarray]:
    """{run: (L, n_trs, D)}: word features on each run's TR clock (``removal.to_trs``)."""
    return {r: words_to_trs(feats[r], words[r], study.runs[r].timing.times(), method) for r in feats}


def split_runs(R: np.ndarray, words: dict) -> dict[str, np.ndarray]:
    """(L, n_all_words, D) concatenated in ``words``' run order -> {run: (L, n_words, D)}."""
    bounds = np.cumsum([0] + [len(w) for w in words.values()])
    return {r: R[:, a:b] for r, a, b in zip(words, bounds[:-1], bounds[1:])}


def property_classes(cfg: Config, words: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{property: (class per word over all runs (n_all,), class names)}, classes balanced over all runs' words."""
    rc = cfg.removal
    values = {name: [] for name in rc.properties}
    for run, ws in words.items():
        texts = [w.text for w in ws]
        try:
            table = None
            if rc.label_file:
                path = rc.label_file.replace("{run}", run)
                if "{run}" not in rc.label_file and len(words) > 1:
                    raise ValueError(f"removal.label_file '{rc.label_file}' names one file but {len(words)} runs are "
                                     "used; put {run} in the path (e.g. labels/{run}.csv)")
                table = properties.read_label_table(path, texts, index_column=rc.index_column)
            sentences = None
            if rc.sentences == "pauses":
                sentences = properties.pause_sentence_ids([w.start_s for w in ws], [w.end_s for w in ws], rc.pause_s)
            elif any(n in properties.SURFACE_PROPERTIES and n not in (table or {}) for n in rc.properties) and len(ws) > 50 \
                    and properties.sentence_ids(texts).max() == 0:
                raise ValueError(f"run '{run}': the transcript has no sentence-final punctuation, so sen_len would be one "
                                 "sentence; set removal.sentences=pauses (removal.pause_s) or give removal.label_file")
            got = properties.word_properties(rc.properties, texts, table, sentences,
                                             lambda: properties.load_spacy(rc.spacy_model))
        except (ValueError, FileNotFoundError, RuntimeError) as err:
            raise ConfigError(f"removal.properties for run '{run}': {err}") from err
        for name in rc.properties:
            values[name].append(got[name])
    out = {}
    for name, parts in values.items():
        classes, names = properties.to_classes(np.concatenate(parts), rc.n_bins)
        if len(names) < 2:
            raise ConfigError(f"removal.properties: '{name}' has one value ({names[0]!r}) over every word; nothing to remove")
        out[name] = (classes, names)
    return out


def _by_layer(values, layers: list[int]) -> dict[str, float]:
    return {str(l): float(v) for l, v in zip(layers, values)}


def alignment_table(fits: dict, masks: dict, min_ceiling: float) -> dict:
    """{participant: {region: (L,) values}} (r / ceiling where a ceiling exists, else r)."""
    return {p: {reg: np.array([layerwise.region_values(r, f.ceiling, {reg: m}, min_ceiling)[reg] for r in f.r], float)
                for reg, m in masks[p].items()} for p, f in fits.items()}


def drop_summary(before: dict, after: dict, fits_before: dict, fits_after: dict, layers: list[int], cfg: Config) -> dict:
    """Mean alignment before/after per region and layer, tests of the drop across participants (Wilcoxon, paired t)
    and within each participant (block sign-flip of r_before - r_after over all targets)."""
    participants = list(before)
    regions = list(before[participants[0]])
    out = {"alignment_before": {}, "alignment_after": {}, "tests": {}, "block_tests": {}}
    for reg in regions:
        b = np.array([before[p][reg] for p in participants])  # (P, L)
        a = np.array([after[p][reg] for p in participants])
        out["alignment_before"][reg] = _by_layer(np.nanmean(b, 0), layers)
        out["alignment_after"][reg] = _by_layer(np.nanmean(a, 0), layers)
        out["tests"][reg] = {str(l): layerwise.paired_tests(b[:, i], a[:, i]) for i, l in enumerate(layers)}
    for p in participants:
        fb, fa = fits_before[p], fits_after[p]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tests = [block_sign_flip_test(fb.y_test, fa.pred[i], fb.pred[i], cfg.alignment.block_trs, cfg.removal.n_perm,
                                          cfg.trainer.seed, run_lengths=fb.test_lengths) for i in range(len(layers))]
        out["block_tests"][p] = {str(l): {"drop": t.statistic, "pvalue": t.pvalue, "min_p": t.min_p, "n_blocks": t.n_blocks}
                                 for l, t in zip(layers, tests)}
    out["participants"] = {p: {reg: {"before": _by_layer(before[p][reg], layers), "after": _by_layer(after[p][reg], layers)}
                               for reg in regions} for p in participants}
    return out


def probe_summary(rem, layers: list[int], tol: float, name: str) -> dict:
    """Probe accuracy before/after and chance per layer, and a warning where removal did not reach chance."""
    pb, pa = rem.probe_before, rem.probe_after
    at_chance = pa["accuracy"] <= pa["chance"] + tol
    out = {"probe_before": _by_layer(pb["accuracy"], layers), "probe_after": _by_layer(pa["accuracy"], layers),
           "probe_chance": _by_layer(pa["chance"], layers), "probe_sd_before": _by_layer(pb["sd"], layers),
           "probe_sd_after": _by_layer(pa["sd"], layers),
           "reached_chance": {str(l): bool(c) for l, c in zip(layers, at_chance)}}
    if rem.inlp_iterations is not None:
        out["inlp_iterations"] = {str(l): int(n) for l, n in zip(layers, rem.inlp_iterations)}
    if not at_chance.all():
        out["warning"] = (f"removing '{name}' left the probe above chance + {tol} at layers "
                          f"{[l for l, c in zip(layers, at_chance) if not c]}")
        log.warning(out["warning"])
    return out


def key_statistic(summary: dict, layers: list[int]) -> tuple[dict, dict]:
    """The paper's statistic per region: Pearson r across layers of (probe drop, alignment drop)."""
    probe_drop = np.array([summary["probe_before"][str(l)] - summary["probe_after"][str(l)] for l in layers])
    r_out, p_out = {}, {}
    for reg in summary["alignment_before"]:
        drop = np.array([summary["alignment_before"][reg][str(l)] - summary["alignment_after"][reg][str(l)] for l in layers])
        if len(layers) < 3 or not np.isfinite(drop).all() or np.std(drop) == 0 or np.std(probe_drop) == 0:
            r_out[reg] = p_out[reg] = None
            continue
        r, p = removal_effect_corr(probe_drop, drop)
        r_out[reg], p_out[reg] = float(r[0]), float(p[0])
    return r_out, p_out


def remove(cfg: Config) -> dict:
    """Remove every ``removal.properties`` entry from the model's word features; write summary.json and PNGs."""
    rc, out = cfg.removal, Path(cfg.out_dir)
    save_config(cfg, out / "config.yaml")
    study, splits = open_splits(cfg)
    model = load_model(checkpoint_entry(cfg), cfg)
    participants = splits.participants + splits.heldout
    runs = sorted({r for p in participants for r in study.runs_of(p)})
    layers, words = model_layers(cfg, model), run_words(study, runs)
    R_runs = word_level(cfg, model, study, words, layers)
    R = np.concatenate([R_runs[r] for r in words], axis=1)  # (L, n_all_words, D)
    train = np.concatenate([np.full(len(ws), r not in splits.test_runs) for r, ws in words.items()])
    labels = property_classes(cfg, words)
    params, regions = alignment_settings(cfg).encoder_params(), list(cfg.alignment.regions)
    data = {p: layerwise.participant_data(study, p, splits.test_runs, cfg.data.labels, bool(regions)) for p in participants}
    masks = {p: layerwise.target_masks(d.names, d.y_test.shape[1], regions) for p, d in data.items()}
    fits_before = {p: layerwise.fit_layers(d, to_trs(cfg, study, words, R_runs, rc.to_trs), params) for p, d in data.items()}
    before = alignment_table(fits_before, masks, cfg.alignment.min_ceiling)
    props = {}
    for name, (classes, class_names) in labels.items():
        log.info("removing %s (%d classes) from %d layers", name, len(class_names), len(layers))
        rem = remove_from_layers(R, classes, rc.method, rc.fit_on, train, rc.probe_folds, rc.inlp_max_iter, rc.chance_tol,
                                 rc.residual_alphas or RESIDUAL_ALPHAS)
        after_feats = to_trs(cfg, study, words, split_runs(rem.removed, words), rc.to_trs)
        fits_after = {p: layerwise.fit_layers(d, after_feats, params) for p, d in data.items()}
        after = alignment_table(fits_after, masks, cfg.alignment.min_ceiling)
        entry = {"classes": [str(c) for c in class_names], "class_counts": np.bincount(classes).tolist(),
                 **probe_summary(rem, layers, rc.chance_tol, name),
                 **drop_summary(before, after, fits_before, fits_after, layers, cfg)}
        entry["drop_vs_probe_r"], entry["drop_vs_probe_p"] = key_statistic(entry, layers)
        props[name] = entry
    metric = "r/ceiling" if all(d.ceiling is not None for d in data.values()) else "r"
    for entry in props.values():
        entry["alignment_metric"] = metric
    summary = {"model": model.entry, "layers": layers, "properties": props, "test_runs": splits.test_runs,
               "participants": participants, "method": rc.method, "fit_on": rc.fit_on,
               "alignment_metric": metric, "n_words": int(len(train)),
               "n_train_words": int(train.sum()), "word_features": {"context_words": rc.context_words},
               "to_trs": {"method": rc.to_trs, "lookahead_s": max(lookahead_s(rc.to_trs, w, study.runs[r].timing.tr)
                                                                  for r, w in words.items())},
               "settings": {**alignment_settings(cfg).record(), "removal": dict(vars(rc))}}
    summary["plots"] = [plots.plot_removal(props, out / "removal_by_layer.png").name,
                        plots.plot_removal_correlation(props, out / "removal_correlation.png").name]
    write_summary(summary, out, study)
    return summary
