"""Per-TR-clip features of a model's instructions + ``BrainData`` -> its normalised alignment per instruction × layer ×
participant × target, and the summaries of ``evaluate.py instructions``: per instruction (best layer, region means),
winner-take-all shares, pairwise variance partitioning and the model-class comparison.

Oota et al. 2025 (analysis_methods.md §4.5, §4.8): per instruction and layer, a ridge encoding model over FIR-delayed
features (one feature space per fit, so banded ridge has one band: ridge, α chosen per target by CV on the training
movies), Pearson r on the held-out movie divided by the ceiling (targets whose ceiling is below ``min_ceiling`` are
NaN). Each model is reported at its best layer, averaged over its instructions and participants.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..evaluation.ceiling import normalized_r
from ..evaluation.resample import zscore_runs
from ..evaluation.stats import fdr_bh
from .instruction_data import BrainData
from .instruction_pairs import partition_pairs, region_percentages
from .instructions import InstructionSet, WinnerMap, group_maps, instruction_alignment, instruction_map, layer_map, region_shares
from .model_classes import compare_classes, model_scores

log = logging.getLogger(__name__)
Loader = Callable[[str, "str | None", int], np.ndarray]  # (run, prompt, layer) -> (n_trs, D) features


@dataclass
class ModelScores:
    """One model's test scores: ``r`` raw Pearson r and ``scores`` r / ceiling (raw r when ``normalized`` is False),
    each (n_instructions, n_layers, n_participants, n_targets), on ``layers`` of ``instructions``."""

    name: str
    kind: str
    instructions: InstructionSet
    layers: list[int]
    r: np.ndarray
    scores: np.ndarray
    normalized: bool


def clip_matrices(load: Loader, data: BrainData, prompt: str | None, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Training (sum of n_trs, D) and test features (the first showing of each test stimulus, cut like its responses)."""
    X = np.concatenate([load(r, prompt, layer) for r in data.train_runs])
    Xt = np.concatenate([load(g[0], prompt, layer)[:n] for g, n in zip(data.test_groups, data.n_test)])
    return X, Xt


def model_alignment(load: Loader, data: BrainData, iset: InstructionSet, layers: list[int], ceiling, min_ceiling: float,
                    encoder_params: dict, name: str = "model", kind: str = "") -> ModelScores:
    """Fit and score every instruction × layer (one fit per pair serves every participant: α is per target)."""
    r = np.empty((len(iset.keys), len(layers), len(data.participants), len(data.targets)))
    for i, key in enumerate(iset.keys):
        for pos, layer in enumerate(layers):
            X, Xt = clip_matrices(load, data, iset.prompts[key], layer)
            r[i, pos] = instruction_alignment(X[None, None], Xt[None, None], data.Y, data.Yt, data.groups,
                                              data.groups_test, **encoder_params)[0, 0]
        log.info("%s: instruction %s fitted at %d layers", name, key, len(layers))
    scores = r if ceiling is None else normalized_r(r, np.asarray(ceiling)[None, None], min_ceiling)
    return ModelScores(name, kind, iset, list(layers), r, scores, ceiling is not None)


def _mean(values) -> float | None:
    values = np.asarray(values, float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def _best(scores: np.ndarray) -> int:
    """Position of the layer with the highest mean over participants and targets of (L, P, V) scores."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(scores, axis=(1, 2))
    return int(np.nanargmax(np.where(np.isfinite(means), means, -np.inf)))


def instruction_entries(ms: ModelScores, regions: dict[str, np.ndarray], participants: list[str]) -> dict[str, dict]:
    """``instructions.<name>``: best layer, mean normalised r there (and raw r), per region, per layer, per participant."""
    out = {}
    for i, key in enumerate(ms.instructions.keys):
        b = _best(ms.scores[i])
        at = ms.scores[i, b]  # (P, V)
        out[key] = {"name": ms.instructions.names[key], "prompt": ms.instructions.prompts[key],
                    "group": ms.instructions.groups[key], "best_layer": ms.layers[b],
                    "mean_r_normalized": _mean(at) if ms.normalized else None, "mean_r": _mean(ms.r[i, b]),
                    "per_region": {k: _mean(at[:, m]) for k, m in {"whole_brain": slice(None), **regions}.items()},
                    "per_layer": {str(l): _mean(ms.scores[i, pos]) for pos, l in enumerate(ms.layers)},
                    "per_participant": {p: _mean(at[j]) for j, p in enumerate(participants)}}
    return out


def _relabel(wmap: WinnerMap, layers: list[int]) -> WinnerMap:
    return WinnerMap(wmap.winner, wmap.best, [str(layers[int(k)]) for k in wmap.labels])


def winner_maps(ms: ModelScores) -> dict[str, WinnerMap]:
    """Winner-take-all maps on the participant-averaged scores: ``instruction`` (each at its best layer per target),
    ``layer`` (averaged over instructions), and within each task group of two or more of the instructions
    ``group-<g>-instruction`` / ``group-<g>-layer``."""
    keys = list(ms.instructions.keys)
    maps = {"instruction": instruction_map(ms.scores, keys), "layer": _relabel(layer_map(ms.scores), ms.layers)}
    for group, wmap in (group_maps(ms.scores, ms.instructions) if ms.instructions.group_labels else {}).items():
        members = [keys.index(k) for k in ms.instructions.members(group)]
        if len(members) < 2:  # one instruction wins everywhere: no map
            continue
        maps[f"group-{group}-instruction"] = wmap
        maps[f"group-{group}-layer"] = _relabel(layer_map(ms.scores, members), ms.layers)
    return maps


def wta_shares(maps: dict[str, WinnerMap], regions: dict[str, np.ndarray]) -> dict[str, dict]:
    """``wta``: for each map, the share of each region's mapped targets won by each label."""
    return {kind: region_shares(wmap, regions) for kind, wmap in maps.items()}


def partition_summary(load: Loader, data: BrainData, iset: InstructionSet, pairs: list[tuple[str, str]], layer: int,
                      ceiling, min_ceiling: float, encoder_params: dict, regions: dict[str, np.ndarray]) -> dict:
    """``partition["a|b"][unit][region]``: shared / unique_a / unique_b as % of the joint score, averaged over
    participants; units "r" (normalised correlation, the paper's NBA; raw r without a ceiling) and "r2" (variance)."""
    names = sorted({n for p in pairs for n in p}, key=list(iset.keys).index)
    mats = {n: clip_matrices(load, data, iset.prompts[n], layer) for n in names}
    train, test = {n: m[0] for n, m in mats.items()}, {n: m[1] for n, m in mats.items()}
    per = []  # per participant: unit -> region -> part -> (n_pairs,)
    for j in range(len(data.participants)):
        res = partition_pairs(train, test, data.Y[j], data.groups, zscore_runs(data.Yt[j], data.groups_test),
                              data.groups_test, pairs, **encoder_params)
        per.append({u: region_percentages(res.partition(u, None if ceiling is None or u == "r2" else ceiling[j],
                                                        min_ceiling), regions) for u in ("r", "r2")})
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k, (a, b) in enumerate(pairs):
            out[f"{a}|{b}"] = {u: {reg: {part: _mean([pp[u][reg][part][k] for pp in per]) for part in parts}
                                   for reg, parts in per[0][u].items()} for u in ("r", "r2")}
    return {"layer": layer, "pairs": out, "units": {"r": "normalised r (NBA), the paper's arithmetic",
                                                    "r2": "R², variance (sound: variances add)"}}


def class_comparison(models: list[ModelScores], main_kind: str, labels, pairing: str, seed: int = 0) -> dict:
    """Is the ``main_kind`` class more aligned than each other class? Each model at its best layer, averaged over its
    instructions; a class is the mean of its models; a one-sided sign-flip test over the stated pairs, BH over classes."""
    kinds = list(dict.fromkeys(m.kind for m in models))
    if main_kind not in kinds or len(kinds) < 2:
        return {"note": f"no comparison: needs the '{main_kind}' class and another (classes: {kinds})"}
    note = None
    if pairing == "participant_x_region" and labels is None:
        pairing, note = "participant", "no label table: pairs are participants (p cannot go below 1/2^P)"
    with warnings.catch_warnings():  # targets excluded by every model stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        per_class = {k: np.nanmean([model_scores(m.scores) for m in models if m.kind == k], axis=0) for k in kinds}
    out, ps = {}, []
    for other in [k for k in kinds if k != main_kind]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = compare_classes(per_class[main_kind], per_class[other], labels, pairing, "greater", seed=seed)
        out[f"{main_kind} > {other}"] = {"mean_diff": res.mean_diff, "p": res.pvalue, "min_p": res.min_pvalue,
                                        "n_pairs": res.n_pairs, "test": res.test,
                                        "warnings": [str(w.message) for w in caught]}
        ps.append(res.pvalue)
    for entry, q in zip(out.values(), fdr_bh(ps)[1]):
        entry["p_fdr"] = float(q)
    unit = {"participant_x_region": "one pair per participant and region (label): the class difference averaged over "
                                    "the region's targets", "participant": "one pair per participant"}[pairing]
    return {"pairing": pairing, "pairing_unit": unit, "note": note, "comparisons": out,
            "classes": {k: [m.name for m in models if m.kind == k] for k in kinds}}
