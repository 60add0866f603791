"""Per-TR word features of every run (L, n_trs, D) and a participant's responses in; FIR ridge encoders per layer
fitted on the training runs, the best layer of each third chosen on those runs only, and the differentiable brain
objective of an attributed run out (Proietti, Capobianco & Toneva 2025; analysis_methods.md §3.4, §3.5.1).

The encoder is braintune's: features z-scored per run, FIR delays, ``RidgeEncoder`` with one α per target by
cross-validation over the training runs. Its cross-validated r (``cv_r``) picks the layer of each third and the
``top:K`` targets; the attributed runs' r (``test_r``) is reported, never used for a choice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from braintune.analysis.attribution_objectives import BrainObjective, RidgeHead, top_targets
from braintune.analysis.attribution_settings import THIRDS
from braintune.data.responses import zscore
from braintune.evaluation.encoding import RidgeEncoder
from braintune.evaluation.metrics import correlation
from braintune.evaluation.results import region_masks


def layer_groups(spec, n_hidden: int) -> dict[str, list[int]]:
    """``attribution.layers`` -> {label: candidate hidden states}: a third (``early``, ``middle``, ``late``) holds its
    share of the transformer blocks (hidden states 1 .. n_hidden - 1; 0 is the embeddings), an index ``i`` is
    ``{"layer<i>": [i]}``."""
    blocks = np.arange(1, n_hidden)
    groups = {}
    for item in spec:
        if item in THIRDS:
            if len(blocks) < 3:
                raise ValueError(f"'attribution.layers' asks for the {item} third, but the model has {len(blocks)} "
                                 f"transformer layers: thirds need at least 3; give hidden-state indices instead")
            groups[item] = np.array_split(blocks, 3)[THIRDS.index(item)].tolist()
        else:
            index = int(item) % n_hidden if -n_hidden <= int(item) < n_hidden else None
            if index is None:
                raise ValueError(f"'attribution.layers' has {item}, outside the model's {n_hidden} hidden states "
                                 f"(0..{n_hidden - 1}, or negative from the last)")
            groups[f"layer{index}"] = [index]
    return groups


@dataclass
class LayerFit:
    """One participant's encoder at one layer."""

    encoder: RidgeEncoder
    cv_r: np.ndarray  # (V,) cross-validated r on the training runs (at each target's α)
    test_r: np.ndarray  # (V,) r on the attributed runs


def fit_layer(feats: dict, pos: int, responses: dict, train_runs, test_runs, encoder_params: dict) -> LayerFit:
    """Ridge from layer ``feats[run][pos]`` (n_trs, D) to ``responses[run]`` (n_trs, V) on ``train_runs``."""
    if len(train_runs) < 2 and encoder_params.get("cv", "leave_runs_out") == "leave_runs_out":
        raise ValueError(f"the encoders need at least 2 training runs for leave-runs-out CV; got {list(train_runs)} "
                         f"(set data.test_runs / attribution.runs so that 2 or more runs remain, or alignment.cv=bootstrap)")
    X = np.concatenate([zscore(feats[r][pos]) for r in train_runs])
    groups = np.concatenate([np.full(len(responses[r]), i) for i, r in enumerate(train_runs)])
    encoder = RidgeEncoder(**encoder_params).fit(X, np.concatenate([responses[r] for r in train_runs]), groups=groups)
    pred = [encoder.predict(zscore(feats[r][pos])) for r in test_runs]  # per run: delays stay inside it
    test_r = correlation(np.concatenate([responses[r] for r in test_runs]), np.concatenate(pred))
    return LayerFit(encoder, np.asarray(encoder.cv_scores_, float), np.asarray(test_r, float))


def choose_layers(groups: dict[str, list[int]], cv_r: dict[int, float]) -> dict[str, int]:
    """The candidate of each group with the highest ``cv_r[layer]`` (mean over participants and targets)."""
    return {label: max(layers, key=lambda layer: cv_r[layer]) for label, layers in groups.items()}


def select_targets(rule: str, cv_r: np.ndarray, names, participant: str) -> np.ndarray | None:
    """``attribution.targets`` -> target indices (None: all). ``top:K`` ranks by the training runs' CV r;
    ``region:NAME`` keeps targets whose label contains NAME (needs a label table)."""
    if rule == "all":
        return None
    kind, _, value = rule.partition(":")
    if kind == "top":
        return np.sort(top_targets(cv_r, int(value)))
    if names is None:
        raise ValueError(f"'attribution.targets' is {rule!r}, but participant {participant}'s targets have no labels; "
                         f"give data.labels (a label table) or use all / top:K")
    keep = np.flatnonzero(region_masks(np.asarray(names), [value])[value])
    if not len(keep):
        raise ValueError(f"'attribution.targets' is {rule!r}, but no target of participant {participant} has a label "
                         f"containing '{value}'; labels look like {sorted(set(map(str, names)))[:5]}")
    return keep


def brain_objective(fit: LayerFit, raw, responses, layer: int, targets=None, kind: str = "mse") -> BrainObjective:
    """BA objective of one run: ``raw`` (n_trs, D) is the run's unnormalised layer features (its z-scoring statistics
    go into the head), ``responses`` (n_trs, V) its z-scored responses."""
    raw = np.asarray(raw, np.float64)
    head = RidgeHead.from_encoder(fit.encoder, raw.mean(0), raw.std(0))
    pred_mean = pred_std = None
    if kind == "negcorr":
        pred = fit.encoder.predict(zscore(raw))  # (n_trs, V): the run's predictions, held fixed
        pred_mean, pred_std = pred.mean(0), np.where(pred.std(0) > 0, pred.std(0), 1.0)
    return BrainObjective(head, responses, layer, targets, kind, pred_mean, pred_std)
