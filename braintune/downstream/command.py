"""``evaluate.py downstream``: models x tasks -> linear-probe summary.json (+ CIs, paired tests) and a PNG per task.

Models: the reference model (``checkpoint=PATH``, else ``backbone`` as configured, e.g. ``backbone.name=DIR``
for an exported HF directory) first, then every ``downstream.compare`` entry: a braintune ``.ckpt``,
an exported model directory, or ``base`` (``backbone`` as configured, untuned). Each task's top-level
numbers are the reference model's; ``models`` holds every model and ``comparisons`` the reference
against each other model on the same test items.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..backbones import backbone_inputs, build_backbone
from ..config import Config, ConfigError, save_config, to_dict
from ..data.study import DataError
from . import probe as P
from .features import ClipInputs, extract, model_key
from .tasks import TaskData, read_task
from .tasks.synthetic_mustard import write_if_missing

log = logging.getLogger(__name__)


def task_names(dc) -> list[str]:
    names = ([dc.task] if dc.task else []) + [t for t in dc.tasks if t != dc.task]
    if not names:
        raise ConfigError("no downstream task: set downstream.task=NAME or downstream.tasks=[a,b]")
    return names


def task_root(dc, name: str) -> str:
    return dc.roots.get(name, dc.root)


def read_tasks(dc, names: list[str], max_items) -> dict[str, TaskData]:
    """Each named task, subsampled; with ``downstream.synthetic`` a missing MUStARD root is written first."""
    for name in names:
        if dc.synthetic and write_if_missing(name, task_root(dc, name), dc.seed):
            log.info("downstream.synthetic: wrote a planted MUStARD-layout dataset to %s", task_root(dc, name))
    return {n: subsample(read_task(n, task_root(dc, n), dc.seed), max_items, dc.seed) for n in names}


def clip_inputs(cfg, arch: str) -> ClipInputs:
    """What downstream feature extraction reads of each item for a backbone of ``arch`` (see ``features``)."""
    d = cfg.data
    return ClipInputs(backbone_inputs(arch), d.sample_rate, d.video_fps, d.frame_size)


def subsample(data: TaskData, max_items, seed: int) -> TaskData:
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


def model_specs(cfg: Config) -> list[dict]:
    """[{name, checkpoint, backbone(dict)}] for the reference model and every ``downstream.compare`` entry."""
    base = to_dict(cfg)["backbone"]
    specs = [{"name": Path(cfg.checkpoint).stem if cfg.checkpoint else (base["name"] or "base"),
              "checkpoint": cfg.checkpoint, "backbone": base}]
    for entry in cfg.downstream.compare:
        if entry == "base":
            specs.append({"name": "base", "checkpoint": None, "backbone": base})
        elif Path(entry).is_file():
            specs.append({"name": Path(entry).stem, "checkpoint": entry, "backbone": base})
        elif Path(entry).is_dir():
            specs.append({"name": Path(entry).name, "checkpoint": None, "backbone": {**base, "name": entry}})
        else:
            raise DataError(f"downstream.compare entry '{entry}' is neither 'base', a checkpoint file nor a model directory")
    for i, spec in enumerate(specs):  # names are dict keys in summary.json: keep them unique
        if [s["name"] for s in specs[:i]].count(spec["name"]):
            spec["name"] = f"{spec['name']}#{i}"
    return specs


def load_model(spec: dict, seed: int):
    """The backbone of one model spec, on the best device, frozen."""
    from ..config import from_dict
    from ..evaluation.command import load_backbone

    cfg = from_dict({"checkpoint": spec["checkpoint"], "backbone": spec["backbone"]})
    torch.manual_seed(seed)  # a backbone built from its config alone is randomly initialised: make it reproducible
    backbone, _ = load_backbone(cfg) if spec["checkpoint"] else (build_backbone(cfg.backbone), None)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return backbone.to(device).requires_grad_(False)


def select_layers(features: np.ndarray, layers) -> tuple[np.ndarray, list[int]]:
    n = features.shape[1]
    idx = list(range(n)) if layers is None else [l % n for l in layers]
    bad = [l for l in (layers or []) if not -n <= l < n]
    if bad:
        raise ConfigError(f"downstream.layers {bad} out of range: the model has {n} hidden states (0..{n - 1})")
    return features[:, idx], idx


def evaluate_features(features, labels, splits, kind: str, layer_ids: list[int], probe="logistic", cv_folds=5,
                      seed=0, n_boot=1000) -> tuple[dict, np.ndarray, np.ndarray]:
    """Probe every layer of (N, L, D) features. Returns (result dict, test item indices, headline predictions)."""
    test_idx, preds, cv_scores, chance_pred = P.layerwise_predictions(features, labels, splits, kind, probe, cv_folds, seed)
    y_test = labels[test_idx]
    per_layer = {}
    for j, layer in enumerate(layer_ids):
        per_layer[str(layer)] = {**P.metrics(y_test, preds[j], kind), "cv_score": float(cv_scores[j])}
    best = int(np.argmax(cv_scores))
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


def run_task(name: str, data: TaskData, feats_by_model: dict[str, np.ndarray], dc) -> dict:
    """Every model's probes on one task, and the reference model against each other model."""
    labels, splits = label_array(data), np.asarray([it.split for it in data.items])
    models, heads = {}, {}
    for model_name, feats in feats_by_model.items():
        chosen, layer_ids = select_layers(feats, dc.layers)
        models[model_name], test_idx, heads[model_name] = evaluate_features(
            chosen, labels, splits, data.kind, layer_ids, dc.probe, dc.cv_folds, dc.seed, dc.n_boot)
    y_test = labels[test_idx]
    names = list(models)
    comparisons = [{"a": names[0], "b": other, **P.paired_comparison(y_test, heads[names[0]], heads[other], data.kind,
                                                                      dc.n_boot or 1000, dc.seed)}
                   for other in names[1:]]
    counts = {s: int(np.sum(splits == s)) for s in sorted(set(splits))}
    return {**models[names[0]], "kind": data.kind, "model": names[0], "n_items": counts, "n_test": int(len(test_idx)),
            "skipped": data.skipped, "split_rule": data.split_rule, "models": models, "comparisons": comparisons}


def plot_task(name: str, result: dict, out_dir: Path) -> Path:
    """Accuracy and macro-F1 (or r) per layer, one line per model -> out_dir/downstream_<task>.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    path = out_dir / f"downstream_{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def downstream(cfg: Config) -> dict:
    """Probe every model on every task; write summary.json, one PNG per task and the resolved config."""
    from ..training.recipe import write_summary

    dc, out_dir = cfg.downstream, Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    tasks = read_tasks(dc, task_names(dc), dc.max_items)
    specs = model_specs(cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    feats: dict[str, dict[str, np.ndarray]] = {n: {} for n in tasks}
    for spec in specs:  # one model in memory at a time
        key = model_key(spec["checkpoint"], spec["backbone"], dc.seed)
        loaded: list = []

        def get_backbone(spec=spec, loaded=loaded):
            if not loaded:
                log.info("loading model %s", spec["name"])
                loaded.append(load_model(spec, dc.seed))
            return loaded[0]

        for name, data in tasks.items():
            cache = Path(dc.cache_dir) / key / name if dc.cache_dir else None
            feats[name][spec["name"]] = extract(get_backbone, data.items, device, cache,
                                                 clip_inputs(cfg, spec["backbone"]["arch"]))
        loaded.clear()
    summary = {"models": [{"name": s["name"], "checkpoint": s["checkpoint"], "backbone": s["backbone"]["name"]} for s in specs],
               "probe": dc.probe, "pooling": dc.pooling, "tasks": {}, "plots": {}}
    for name, data in tasks.items():
        summary["tasks"][name] = run_task(name, data, feats[name], dc)
        summary["plots"][name] = str(plot_task(name, summary["tasks"][name], out_dir))
        log.info("%s: %s accuracy %s (chance %s)", name, specs[0]["name"], summary["tasks"][name]["accuracy"],
                 summary["tasks"][name]["chance"])
    write_summary(summary, out_dir)
    return summary
