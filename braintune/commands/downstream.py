"""``evaluate.py downstream``: models x tasks -> linear-probe summary.json (+ CIs, paired tests) and a PNG per task.

Models: the reference model (``checkpoint=PATH``, else the backbone as configured) first, then every
``downstream.compare`` entry (``models`` entry grammar: ``base``, a ``.ckpt``, an exported directory, a control).
Each task's top-level numbers are the reference model's; ``models`` holds every model and ``comparisons`` the
reference against each other model on the same test items.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config import Config, save_config
from ..downstream.evaluate import plot_task, read_tasks, run_task
from ..downstream.features import extract
from ..errors import ConfigError
from ..models import check_layers, checkpoint_entry, load_model, resolve_device, unique_names
from .common import write_summary
from .episodes import EpisodeCheck

log = logging.getLogger(__name__)


def task_names(dc) -> list[str]:
    names = ([dc.task] if dc.task else []) + [t for t in dc.tasks if t != dc.task]
    if not names:
        raise ConfigError("no downstream task: set downstream.task=NAME or downstream.tasks=[a,b]")
    return names


def task_roots(dc, names: list[str]) -> dict[str, str | None]:
    """Each task's dataset root: ``downstream.roots[name]``, else ``downstream.root``."""
    return {n: dc.roots.get(n, dc.root) for n in names}


def downstream(cfg: Config) -> dict:
    """Probe every model on every task; write summary.json, one PNG per task and the resolved config."""
    dc, out_dir = cfg.downstream, Path(cfg.out_dir)
    save_config(cfg, out_dir / "config.yaml")
    names = task_names(dc)
    roots = task_roots(dc, names)
    tasks = read_tasks(names, roots, dc.max_items, dc.seed, dc.synthetic, dc.allow_outside_root)
    episodes = EpisodeCheck(cfg, tasks, roots)  # MUStARD clips from episodes a model was tuned on
    entries = [checkpoint_entry(cfg), *dc.compare]
    device = resolve_device(cfg.trainer.accelerator)
    feats: dict[str, dict[str, np.ndarray]] = {n: {} for n in tasks}
    described = []
    for name, entry in zip(unique_names(entries), entries):  # one model in memory at a time
        model = load_model(entry, cfg, device)
        check_layers(model.backbone, "downstream.layers", dc.layers, name)  # before any item is encoded
        episodes.add(model, name)  # its training runs (and the clips' episodes) before any item is encoded
        described.append({"name": name, "entry": entry, "backbone": model.config.backbone.name})
        for task, data in tasks.items():
            cache = Path(dc.cache_dir) / model.key / task if dc.cache_dir else None
            feats[task][name] = extract(lambda m=model: m.backbone, data.items, model.spec, device, cache)
        del model
    summary = {"models": described, "probe": dc.probe, "pooling": dc.pooling, "tasks": {}, "plots": {}}
    for task, data in tasks.items():
        groups, result_episodes = episodes.result(task)
        result = run_task(data, feats[task], dc.layers, dc.probe, dc.cv_folds, dc.seed, dc.n_boot, groups)
        result["episodes"] = result_episodes
        summary["tasks"][task] = result
        summary["plots"][task] = str(plot_task(task, result, out_dir))
        log.info("%s: %s accuracy %s (chance %s)", task, described[0]["name"], result["accuracy"], result["chance"])
        if groups:
            unseen = result["by_group"]["unseen"]
            log.info("%s: accuracy %s on the %d test clips from no tuned episode (%d seen, %d unknown; summary.json "
                     "tasks.%s.episodes)", task, unseen.get("accuracy"), unseen["n"], result_episodes["n_seen"],
                     result_episodes["n_unknown"], task)
    write_summary(summary, out_dir)
    return summary
