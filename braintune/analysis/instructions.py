"""Instruction sets and per-instruction alignment -> winner-take-all instruction / layer maps and their shares.

Oota et al. 2025 (analysis_methods.md §4.3, §4.8): each target is coloured by the instruction (or, separately,
the layer) whose features give the highest normalised alignment, on participant-averaged maps, and again
within each semantic task group. Alignment arrays are ``(n_instructions, n_layers, n_participants,
n_targets)`` normalised scores (r / ceiling, NaN for excluded targets), as ``instruction_alignment`` makes.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from braintune.evaluation.ceiling import normalized_r
from braintune.evaluation.encoding import RidgeEncoder
from braintune.evaluation.metrics import correlation
from braintune.evaluation.resample import zscore_runs

_ENTRY_KEYS = {"name", "prompt", "prompt_source", "group", "group_source"}
SOURCES = ("paper", "braintune")


@dataclass(frozen=True)
class InstructionSet:
    """Instructions of one modality: ``keys`` in file order, ``prompts`` / ``names`` / ``groups`` key -> value
    (group None when the set has no groups), ``group_labels`` group key -> description, ``sources`` key ->
    (prompt_source, group_source)."""
    modality: str
    keys: tuple[str, ...]
    prompts: dict[str, str]
    names: dict[str, str]
    groups: dict[str, str | None]
    group_labels: dict[str, str]
    sources: dict[str, tuple[str, str | None]]

    def members(self, group: str) -> list[str]:
        """Instruction keys of one task group, in file order."""
        if group not in self.group_labels:
            raise KeyError(f"task group '{group}' is not defined; groups: {sorted(self.group_labels)}")
        return [k for k in self.keys if self.groups[k] == group]


def load_instructions(path: str | Path) -> InstructionSet:
    """Read an instruction YAML (configs/instructions/video.yaml layout); every problem names file and key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"instruction file '{path}' does not exist; the shipped sets are "
                                "configs/instructions/video.yaml and configs/instructions/audio.yaml")
    raw = yaml.safe_load(path.read_text()) or {}
    problems = [f"unknown top-level key '{k}'" for k in raw if k not in ("modality", "groups", "instructions")]
    groups, entries = raw.get("groups") or {}, raw.get("instructions") or {}
    if not entries:
        problems.append("no 'instructions' mapping")
    for key, entry in entries.items():
        entry = entry if isinstance(entry, dict) else {}
        problems += [f"instructions.{key}: unknown key '{k}'" for k in entry if k not in _ENTRY_KEYS]
        problems += [f"instructions.{key}: missing '{k}'" for k in ("name", "prompt") if not entry.get(k)]
        if entry.get("group") is not None and entry["group"] not in groups:
            problems.append(f"instructions.{key}: group '{entry['group']}' is not one of {sorted(groups)}")
        problems += [f"instructions.{key}: {k}='{entry[k]}' is not one of {SOURCES}"
                     for k in ("prompt_source", "group_source") if entry.get(k, "braintune") not in SOURCES]
    if problems:
        raise ValueError(f"instruction file '{path}': " + "; ".join(problems))
    keys = tuple(entries)
    return InstructionSet(
        modality=str(raw.get("modality", "")), keys=keys, prompts={k: entries[k]["prompt"] for k in keys},
        names={k: entries[k]["name"] for k in keys}, groups={k: entries[k].get("group") for k in keys},
        group_labels=dict(groups),
        sources={k: (entries[k].get("prompt_source", "braintune"), entries[k].get("group_source")) for k in keys})


def instruction_alignment(features, features_test, responses, responses_test, groups, groups_test,
                          ceiling=None, min_ceiling: float = 0.05, **encoder_params) -> np.ndarray:
    """Normalised alignment of every instruction × layer × participant × target.

    Parameters
    ----------
    features, features_test : (n_instructions, n_layers, n_TRs, D) features on the TR clock (train / test)
    responses, responses_test : sequences of (n_TRs, n_targets) per participant
    groups, groups_test : (n_TRs,) run labels
    ceiling : (n_participants, n_targets) noise ceiling; None reports raw r
    encoder_params : ``RidgeEncoder`` settings (delays, alphas, cv, backend, ...)

    Returns
    -------
    scores : (n_instructions, n_layers, n_participants, n_targets); NaN where the ceiling is below min_ceiling
    """
    n_i, n_l = np.shape(features)[:2]
    widths = sorted({np.shape(y)[1] for y in responses} | {np.shape(y)[1] for y in responses_test})
    if len(widths) != 1:
        raise ValueError(f"instruction_alignment: participants have {widths} targets; the maps compare targets "
                         "across participants, so pass responses in a common space (e.g. fsaverage6)")
    Y = np.hstack([zscore_runs(np.asarray(y, np.float64), groups) for y in responses])  # (T, P·V)
    Yt = np.hstack([zscore_runs(np.asarray(y, np.float64), groups_test) for y in responses_test])
    n_p = len(responses)
    out = np.empty((n_i, n_l, n_p, Y.shape[1] // n_p))
    for i in range(n_i):
        for layer in range(n_l):  # one fit serves every participant: α is chosen per target column anyway
            X, Xt = zscore_runs(features[i][layer], groups), zscore_runs(features_test[i][layer], groups_test)
            enc = RidgeEncoder(**encoder_params).fit(X, Y, groups=groups)
            out[i, layer] = correlation(Yt, enc.predict(Xt, groups=groups_test)).reshape(n_p, -1)
    return out if ceiling is None else normalized_r(out, np.asarray(ceiling)[None, None], min_ceiling)


@dataclass
class WinnerMap:
    """Per-target winner: ``winner`` (n_targets,) index into ``labels`` (-1 where no finite score),
    ``best`` (n_targets,) the winning score."""
    winner: np.ndarray
    best: np.ndarray
    labels: list[str]

    def shares(self, mask: np.ndarray | None = None) -> np.ndarray:
        """(n_labels,) fraction of the mapped targets (in ``mask``) that each label wins."""
        won = self.winner if mask is None else self.winner[np.asarray(mask, bool)]
        won = won[won >= 0]
        return np.bincount(won, minlength=len(self.labels)) / max(len(won), 1)


def winner_take_all(scores: np.ndarray, labels) -> WinnerMap:
    """(n_labels, n_targets) scores -> the label with the highest finite score per target."""
    scores = np.asarray(scores, float)
    if scores.ndim != 2 or scores.shape[0] != len(labels):
        raise ValueError(f"winner_take_all: scores must be (n_labels={len(labels)}, n_targets), got {scores.shape}")
    finite = np.isfinite(scores).any(0)
    filled = np.where(np.isfinite(scores), scores, -np.inf)
    winner = np.where(finite, filled.argmax(0), -1)
    return WinnerMap(winner, np.where(finite, filled.max(0), np.nan), [str(x) for x in labels])


def _participant_mean(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, float)
    if scores.ndim != 4:
        raise ValueError(f"expected scores (n_instructions, n_layers, n_participants, n_targets), got {scores.shape}")
    with warnings.catch_warnings():  # targets excluded in every participant stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(scores, axis=2)  # (I, L, V)


def instruction_map(scores, instructions, layer: int | str = "best") -> WinnerMap:
    """Winner instruction per target on the participant-averaged map.

    ``layer``: "best" (each instruction at its best layer for that target), "mean" (averaged over layers)
    or a layer index.
    """
    avg = _participant_mean(scores)
    per = {"best": lambda a: np.nanmax(a, 1), "mean": lambda a: np.nanmean(a, 1)}
    if isinstance(layer, str) and layer not in per:
        raise ValueError(f"instruction_map: layer='{layer}' is not 'best', 'mean' or a layer index")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        reduced = per[layer](avg) if isinstance(layer, str) else avg[:, int(layer)]
    return winner_take_all(reduced, list(instructions))


def layer_map(scores, instructions: list[int] | None = None) -> WinnerMap:
    """Winner layer per target on the participant-averaged map, averaged over ``instructions`` (indices;
    None: all). Labels are the layer indices."""
    avg = _participant_mean(scores)
    sel = avg if instructions is None else avg[list(instructions)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return winner_take_all(np.nanmean(sel, 0), [str(i) for i in range(avg.shape[1])])


def group_maps(scores, instruction_set: InstructionSet, layer: int | str = "best") -> dict[str, WinnerMap]:
    """``instruction_map`` within each task group (scores' instruction axis follows ``instruction_set.keys``)."""
    if np.shape(scores)[0] != len(instruction_set.keys):
        raise ValueError(f"scores have {np.shape(scores)[0]} instructions but the set has {len(instruction_set.keys)}")
    out = {}
    for group in instruction_set.group_labels:
        members = instruction_set.members(group)
        idx = [instruction_set.keys.index(k) for k in members]
        out[group] = instruction_map(np.asarray(scores)[idx], members, layer)
    return out


def region_shares(wmap: WinnerMap, regions: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Share of each region's mapped targets won by each label; ``regions`` name -> (n_targets,) bool mask.
    A "whole_brain" entry over all targets comes first."""
    out = {"whole_brain": dict(zip(wmap.labels, wmap.shares().tolist()))}
    for name, mask in regions.items():
        mask = np.asarray(mask, bool)
        if mask.shape != wmap.winner.shape:
            raise ValueError(f"region '{name}' mask has shape {mask.shape}, expected {wmap.winner.shape}")
        out[name] = dict(zip(wmap.labels, wmap.shares(mask).tolist()))
    return out
