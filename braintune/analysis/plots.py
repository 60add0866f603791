"""Summaries of the removal and similarity analyses in, PNGs out: alignment and probes by layer before/after each
property's removal, the across-layer probe-drop / alignment-drop correlation per property and region, and each
similarity measure by layer with its permutation null."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..evaluation.plots import pyplot, save_figure


def _series(by_layer: dict) -> tuple[list[int], np.ndarray]:
    layers = sorted(by_layer, key=int)
    return [int(k) for k in layers], np.array([np.nan if by_layer[k] is None else by_layer[k] for k in layers], float)


def plot_removal(properties: dict, path: Path, region: str = "all") -> Path:
    """Per property (columns): alignment by layer before/after removal (top), probe accuracy before/after and
    chance (bottom). ``properties``: summary.json's ``properties``."""
    plt = pyplot()
    names = list(properties)
    fig, axes = plt.subplots(2, len(names), figsize=(3.6 * len(names), 6), squeeze=False, sharey="row")
    for j, name in enumerate(names):
        p = properties[name]
        top, bottom = axes[0, j], axes[1, j]
        for key, style in (("alignment_before", "o-"), ("alignment_after", "s--")):
            x, y = _series(p[key][region])
            top.plot(x, y, style, label=key.split("_")[1])
        top.set_title(name)
        top.set_ylabel(f"alignment ({p.get('alignment_metric', 'r')}, {region})")
        for key, style in (("probe_before", "o-"), ("probe_after", "s--"), ("probe_chance", ":")):
            x, y = _series(p[key])
            bottom.plot(x, y, style, label=key.split("_")[1])
        bottom.set_xlabel("layer")
        bottom.set_ylabel("probe accuracy")
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].legend(fontsize=8)
    return save_figure(fig, path, dpi=110)


def plot_removal_correlation(properties: dict, path: Path) -> Path:
    """Heat map of ``drop_vs_probe_r`` (Pearson r across layers of probe drop vs alignment drop), property × region."""
    plt = pyplot()
    names = list(properties)
    regions = list(next(iter(properties.values()))["drop_vs_probe_r"])
    values = np.array([[np.nan if properties[n]["drop_vs_probe_r"][r] is None else properties[n]["drop_vs_probe_r"][r]
                        for r in regions] for n in names], float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(regions), 1.2 + 0.6 * len(names)))
    im = ax.imshow(values, vmin=-1, vmax=1, cmap="RdBu_r", aspect="auto")
    for (i, k), v in np.ndenumerate(values):
        ax.text(k, i, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(regions)), regions)
    ax.set_yticks(range(len(names)), names)
    ax.set_title("r across layers: probe drop vs alignment drop", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path, dpi=110)


def plot_similarity(measures: dict, path: Path, region: str = "all") -> Path:
    """One panel per measure: mean over participants by layer (± SEM), and the mean of the permutation nulls with
    their 2.5-97.5 % band. ``measures``: summary.json's ``measures``."""
    plt = pyplot()
    names = list(measures)
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        m = measures[name]
        x, y = _series(m["layers"][region])
        _, sem = _series(m["layers_sem"][region])
        ax.errorbar(x, y, yerr=sem, fmt="o-", label="observed")
        _, lo = _series(m["null_low"][region])
        _, mid = _series(m["null_mean"][region])
        _, hi = _series(m["null_high"][region])
        ax.plot(x, mid, ":", color="grey", label="null mean")
        ax.fill_between(x, lo, hi, color="grey", alpha=0.25, label="null 95 %")
        ax.set_title(f"{name} ({'higher' if m['higher_is_similar'] else 'lower'} = more similar)", fontsize=9)
        ax.set_xlabel("layer")
    axes[0, 0].legend(fontsize=8)
    return save_figure(fig, path, dpi=110)
