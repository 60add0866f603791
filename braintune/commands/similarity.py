"""``evaluate.py similarity``: how similar a model's layers are to the brain by several measures (Parra 2025,
analysis_methods.md §2), per layer, participant and region on the test runs' TRs, each with a block-permutation
null (``similarity.block_trs`` >= 20 TRs, ``similarity.n_perm`` permutations).

Measures (``similarity.measures``): ``ridge`` (the alignment ridge's mean r), ``ridge_pca`` (the representation, and
with ``similarity.pca_components_y`` the responses, reduced by PCA fitted on training TRs only), ``cka`` (linear),
``rbf_cka``, ``rsa`` (rsatoolbox RDMs, Spearman), ``procrustes`` (distance: lower is more similar), ``gw``
(Gromov-Wasserstein distance, POT; its null permutes each target on its own). HRF delay: the ridge measures learn
it with the FIR delays ``alignment.delays``; the others compare the same FIR-delayed features (``make_delayed`` with
``alignment.delays``, concatenated) with the responses TR by TR, without each run's first max(delay) TRs.

Features (``similarity.features``): ``words`` = the removal analysis's word-level features on the TR clock
(``removal.context_words``, ``removal.to_trs``), the default for text backbones; ``backbone`` = the alignment
features (``alignment.extraction``) of any backbone.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..analysis import layerwise, plots
from ..analysis.word_features import lookahead_s
from ..config import Config, save_config
from ..data.modalities import WORDS
from ..errors import ConfigError
from ..evaluation.alignment import stack_features
from ..evaluation.cache import FeatureCache
from ..evaluation.features import study_features
from ..evaluation.stats import mean_sem
from ..models import checkpoint_entry, load_model
from .common import alignment_settings, extraction, open_splits, write_summary
from .remove import model_layers, run_words, to_trs, word_level

log = logging.getLogger(__name__)


def tr_features(cfg: Config, model, study, runs: list[str], layers: list[int]) -> tuple[dict, dict]:
    """{run: (L, n_trs, D)} on the TR clock and a record of how they were made (mode, look-ahead)."""
    mode = cfg.similarity.features
    if mode == "auto":
        mode = "words" if WORDS in model.backbone.modalities and hasattr(model.backbone, "word_states") else "backbone"
    if mode == "words":
        words = run_words(study, runs)
        feats = to_trs(cfg, study, words, word_level(cfg, model, study, words, layers), cfg.removal.to_trs)
        reach = max(lookahead_s(cfg.removal.to_trs, w, study.runs[r].timing.tr) for r, w in words.items())
        return feats, {"mode": "words", "context_words": cfg.removal.context_words, "to_trs": cfg.removal.to_trs,
                       "lookahead_s": reach}
    cache = None if cfg.alignment.cache_dir is None else FeatureCache(cfg.alignment.cache_dir, model.key)
    ex = extraction(cfg)
    feats = study_features(model.backbone, {r: study.runs[r] for r in runs}, layers, ex, model.device, cache)
    return feats, {"mode": "backbone", **ex.settings()}


def settings_of(cfg: Config) -> layerwise.SimilaritySettings:
    sc = cfg.similarity
    unknown = [m for m in sc.measures if m not in layerwise.SIMILARITY_MEASURES]
    if unknown or not sc.measures:
        raise ConfigError(f"similarity.measures {unknown or '[]'}: choose from {sorted(layerwise.SIMILARITY_MEASURES)}")
    if sc.block_trs < 20:
        raise ConfigError(f"similarity.block_trs is {sc.block_trs}; blocks shorter than 20 TRs make the null too narrow")
    options = {"rbf_cka": {"sigma_frac": sc.rbf_sigma}, "rsa": {"rdm_method": sc.rdm_method},
               "procrustes": {"n_components": sc.procrustes_components}, "gw": {"metric": sc.gw_metric}}
    return layerwise.SimilaritySettings(alignment_settings(cfg).encoder_params(), tuple(cfg.alignment.delays),
                                        sc.pca_components, sc.pca_components_y, sc.n_perm, sc.block_trs, cfg.trainer.seed,
                                        options)


def _mean_sem(values: list) -> tuple[float, float]:
    """Mean and SEM over participants (``stats.mean_sem``); the SEM of one participant is reported as 0."""
    if len(values) < 2:
        return float(np.mean(values)), 0.0
    mean, sem = mean_sem(values)
    return float(mean), float(sem)


def measure_summary(results: dict, layers: list[int]) -> dict:
    """results[participant][layer][region] = NullResult -> per-region means over participants and per-participant detail."""
    participants = list(results)
    regions = list(results[participants[0]][layers[0]])
    out = {k: {reg: {} for reg in regions} for k in ("layers", "layers_sem", "null_mean", "null_low", "null_high",
                                                      "p_value_median")}
    for reg in regions:
        for l in layers:
            res = [results[p][l][reg] for p in participants]
            out["layers"][reg][str(l)], out["layers_sem"][reg][str(l)] = _mean_sem([r.observed for r in res])
            out["null_mean"][reg][str(l)] = float(np.mean([r.null_mean for r in res]))
            out["null_low"][reg][str(l)] = float(np.mean([r.null_quantiles[0] for r in res]))
            out["null_high"][reg][str(l)] = float(np.mean([r.null_quantiles[2] for r in res]))
            out["p_value_median"][reg][str(l)] = float(np.median([r.p_value for r in res]))
    out["higher_is_similar"] = results[participants[0]][layers[0]][regions[0]].higher_is_similar
    out["participants"] = {p: {reg: {str(l): {"value": r.observed, "p_value": r.p_value, "null_mean": r.null_mean,
                                              "null_sd": r.null_sd, "null_quantiles": list(r.null_quantiles),
                                              "n_perm": r.n_perm, "n_blocks": r.n_blocks}
                                     for l in layers for r in [results[p][l][reg]]} for reg in regions}
                           for p in participants}
    return out


def similarity(cfg: Config) -> dict:
    """Every ``similarity.measures`` entry per layer, participant and region; summary.json + similarity_by_layer.png."""
    out = Path(cfg.out_dir)
    save_config(cfg, out / "config.yaml")
    s = settings_of(cfg)
    study, splits = open_splits(cfg)
    model = load_model(checkpoint_entry(cfg), cfg)
    participants = splits.participants + splits.heldout
    runs = sorted({r for p in participants for r in study.runs_of(p)})
    layers = model_layers(cfg, model)
    feats, made = tr_features(cfg, model, study, runs, layers)
    regions = list(cfg.alignment.regions)
    results = {m: {} for m in cfg.similarity.measures}
    for p in participants:
        data = layerwise.participant_data(study, p, splits.test_runs, cfg.data.labels, bool(regions))
        masks = layerwise.target_masks(data.names, data.y_test.shape[1], regions)
        for pos, l in enumerate(layers):
            x = (stack_features(feats, pos, data.train_runs), stack_features(feats, pos, data.test_runs))
            for m in cfg.similarity.measures:
                log.info("similarity %s: %s layer %d", m, p, l)
                results[m].setdefault(p, {})[l] = layerwise.layer_similarity(m, x, data, masks, s)
    measures = {m: measure_summary(results[m], layers) for m in results}
    summary = {"model": model.entry, "layers": layers, "measures": measures, "test_runs": splits.test_runs,
               "participants": participants, "features": made,
               "settings": {"similarity": dict(vars(cfg.similarity)), "delays": list(cfg.alignment.delays),
                            "hrf": "ridge measures: FIR delays alignment.delays fitted by the ridge; others: the test "
                                   "features FIR-delayed by alignment.delays (concatenated), first max(delay) TRs of "
                                   "each run dropped"}}
    summary["plots"] = [plots.plot_similarity(measures, out / "similarity_by_layer.png").name]
    write_summary(summary, out, study)
    return summary
