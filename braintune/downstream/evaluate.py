"""Task data + per-model pooled features -> probe results per layer, comparisons between models, a plot per task.

The library half of ``evaluate.py downstream`` and of the training callback: reading the configured tasks
(subsampled, synthetic MUStARD written on request), labels as arrays, layer selection and the per-task result
dict that summary.json holds.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..evaluation.plots import pyplot, save_figure
from . import probe as P
from .tasks import TaskData, read_task
from .tasks.synthetic_mustard import write_if_missing

log = logging.getLogger(__name__)


def read_tasks(names: list[str], roots: dict[str, str | None], max_items: int | None, seed: int,
               synthetic: bool = False, outside_root: bool = False) -> dict[str, TaskData]:
    """Each named task from ``roots[name]``, subsampled; with ``synthetic`` a missing MUStARD root is written first;
    ``outside_root`` lets a task's lists name files outside its root (``downstream.allow_outside_root``)."""
    for name in names:
        if synthetic and write_if_missing(name, roots[name], seed):
            log.info("downstream.synthetic: wrote a planted MUStARD-layout dataset to %s", roots[name])
    return {n: subsample(read_task(n, roots[n], seed, outside_root), max_items, seed) for n in names}


def subsample(data: TaskData, max_items: int | None, seed: int) -> TaskData:
    """At most ``max_items`` items (seeded draw, item order kept); the rest are counted in ``skipped``."""
    if max_items is None or len(data.items) <= max_items:
        return data
    keep = np.sort(np.random.default_rng(seed).permutation(len(data.items))[:max_items])
    data.skipped["not drawn (downstream.max_items)"] = len(data.items) - max_items
    data.items = [data.items[i] for i in keep]
    return data


def label_array(data: TaskData) -> np.ndarray:
    if data.kind == "multilabel":
        from sklearn.preprocessing import MultiLabelBinarizer

        return MultiLabelBinarizer(classes=data.label_names).fit_transform([it.label for it in data.items])
    if data.kind == "regression":
        return np.asarray([float(it.label) for it in data.items])
    return np.asarray([str(it.label) for it in data.items])


def select_layers(features: np.ndarray, layers) -> tuple[np.ndarray, list[int]]:
    """(N, L, D) features at ``layers`` (None: all) and their non-negative indices; out-of-range layers are refused."""
    n = features.shape[1]
    bad = [l for l in (layers or []) if not -n <= l < n]
    if bad:
        raise ConfigError(f"downstream.layers {bad} out of range: the model has {n} hidden states (0..{n - 1})")
    idx = list(range(n)) if layers is None else [l % n for l in layers]
    return features[:, idx], idx


def evaluate_features(features, labels, splits, kind: str, layer_ids: list[int], probe="logistic", cv_folds=5,
                      seed=0, n_boot=1000) -> tuple[dict, np.ndarray, np.ndarray]:
    """Probe every layer of (N, L, D) features. Returns (result dict, test item indices, headline predictions)."""
    test_idx, preds, cv_scores, chance_pred = P.layerwise_predictions(features, labels, splits, kind, probe, cv_folds, seed)
    y_test = labels[test_idx]
    per_layer = {str(layer): {**P.metrics(y_test, preds[j], kind), "cv_score": float(cv_scores[j])}
                 for j, layer in enumerate(layer_ids)}
    best = int(np.argmax(cv_scores))  # chosen on the training items' CV, never on test items
    head = P.metrics(y_test, preds[best], kind)
    chance = P.metrics(y_test, chance_pred, kind)
    result = {
        "layer": layer_ids[best], **head,
        "ci": P.bootstrap_ci(y_test, preds[best], kind, n_boot, seed) if n_boot else {},
        "chance": 0.0 if kind == "regression" else chance["accuracy"],
        "chance_f1": None if kind == "regression" else chance["f1"],
        "mean_over_layers": {k: float(np.mean([m[k] for m in per_layer.values()])) for k in head},
        "per_layer": per_layer,
    }
    if kind == "regression":
        result.update({"accuracy": None, "f1": None})
    return result, test_idx, preds[best]


def majority_of_train(labels: np.ndarray, splits: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
    """(N_test,) each test item's chance prediction: the majority label of the items its probe was fitted on (its
    fold's complement for cross-validated tasks, else the train and validation items)."""
    out = []
    for i in test_idx:
        fitted = splits != splits[i] if str(splits[i]).startswith("fold") else np.isin(splits, ["train", "validation"])
        values, counts = np.unique(labels[fitted], return_counts=True)
        out.append(values[np.argmax(counts)])
    return np.asarray(out)


def group_results(data: TaskData, test_idx: np.ndarray, heads: dict[str, np.ndarray], groups: dict[str, set[str]],
                  n_boot: int, seed: int) -> dict:
    """The headline predictions of every model (``heads``: model -> (N_test,)) scored on each group of test items
    (group name -> item ids, e.g. clips from episodes seen / not seen in tuning); the first model's numbers on top."""
    labels, splits = label_array(data), np.asarray([it.split for it in data.items])
    ids, y_test = np.asarray([data.items[i].id for i in test_idx]), labels[test_idx]
    chance = majority_of_train(labels, splits, test_idx) if data.kind == "classification" else None
    out = {}
    for name, members in groups.items():
        rows = np.isin(ids, sorted(members))
        if not rows.any():
            out[name] = {"n": 0}
            continue
        models = {m: P.metrics(y_test[rows], pred[rows], data.kind) for m, pred in heads.items()}
        first = next(iter(heads))
        out[name] = {"n": int(rows.sum()), **models[first],
                     "chance": None if chance is None else float(np.mean(chance[rows] == y_test[rows])),
                     "ci": P.bootstrap_ci(y_test[rows], heads[first][rows], data.kind, n_boot, seed) if n_boot else {},
                     "models": models}
    return out


def run_task(data: TaskData, feats_by_model: dict[str, np.ndarray], layers, probe: str, cv_folds: int, seed: int,
             n_boot: int, groups: dict[str, set[str]] | None = None) -> dict:
    """Every model's probes on one task, and the first model against each other model on the same test items;
    with ``groups`` (name -> item ids) also every model's headline predictions scored on each group (``by_group``)."""
    labels, splits = label_array(data), np.asarray([it.split for it in data.items])
    models, heads = {}, {}
    for model_name, feats in feats_by_model.items():
        chosen, layer_ids = select_layers(feats, layers)
        models[model_name], test_idx, heads[model_name] = evaluate_features(
            chosen, labels, splits, data.kind, layer_ids, probe, cv_folds, seed, n_boot)
    y_test = labels[test_idx]
    names = list(models)
    comparisons = [{"a": names[0], "b": other, **P.paired_comparison(y_test, heads[names[0]], heads[other], data.kind,
                                                                      n_boot or 1000, seed)}
                   for other in names[1:]]
    counts = {s: int(np.sum(splits == s)) for s in sorted(set(splits))}
    by_group = {"by_group": group_results(data, test_idx, heads, groups, n_boot, seed)} if groups else {}
    return {**models[names[0]], "kind": data.kind, "model": names[0], "n_items": counts, "n_test": int(len(test_idx)),
            "skipped": data.skipped, "split_rule": data.split_rule, "models": models, "comparisons": comparisons,
            **by_group}


def plot_task(name: str, result: dict, out_dir: Path) -> Path:
    """Accuracy and macro-F1 (or r) per layer, one line per model -> out_dir/downstream_<task>.png."""
    plt = pyplot()

    keys = ["r"] if result["kind"] == "regression" else ["accuracy", "f1"]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for model_name, res in result["models"].items():
            layers = [int(l) for l in res["per_layer"]]
            ax.plot(layers, [res["per_layer"][str(l)][key] for l in layers], marker="o", label=model_name)
        if key == "accuracy":
            ax.axhline(result["chance"], color="grey", ls="--", label="chance (majority)")
        ax.set(xlabel="hidden state (0 = embeddings)", ylabel=key, title=f"{name}: {key}")
        ax.legend(fontsize=8)
    return save_figure(fig, Path(out_dir) / f"downstream_{name}.png", dpi=100)
