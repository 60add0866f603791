"""Alignment summaries -> PNGs (matplotlib Agg); brain maps are ``evaluation.brainmaps``.

alignment_by_layer.png   mean r per layer, one line per model (mean over participants, shaded ± SEM)
alignment_by_region.png  mean r per region (``alignment.regions``), one bar per model
data_efficiency.png      alignment vs training runs the encoding model saw, one line per model, with the
                         reference model's full-data alignment as a dashed line
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display): every figure braintune draws goes through here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Lay ``fig`` out tightly, write it to ``path`` at ``dpi`` and close it; returns ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_layers(models: dict[str, dict], path: Path) -> Path:
    """``models``: {name: alignment summary} -> mean r per layer, one line per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, summary in models.items():
        layers = sorted(summary["layers"], key=int)
        per_p = np.array([[e["layers"][l] for l in layers] for e in summary["participants"].values()])  # (P, L)
        mean = per_p.mean(0)
        sem = per_p.std(0, ddof=1) / np.sqrt(len(per_p)) if len(per_p) > 1 else np.zeros_like(mean)
        x = [int(l) for l in layers]
        ax.plot(x, mean, marker="o", label=name)
        ax.fill_between(x, mean - sem, mean + sem, alpha=0.2)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="hidden state (layer)", ylabel="mean test r", title="Alignment by layer")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_regions(models: dict[str, dict], path: Path) -> Path | None:
    """Mean r per region at each model's headline layer, bars grouped by region; None without regions."""
    with_regions = {n: s["regions"] for n, s in models.items() if s.get("regions")}
    if not with_regions:
        return None
    plt = pyplot()
    regions = list(next(iter(with_regions.values())))
    width = 0.8 / len(with_regions)
    fig, ax = plt.subplots(figsize=(1.2 + 1.0 * len(regions), 3.5))
    for i, (name, values) in enumerate(with_regions.items()):
        heights = [np.nan if values.get(r) is None else values[r] for r in regions]
        ax.bar(np.arange(len(regions)) + i * width, heights, width, label=name)
    ax.set_xticks(np.arange(len(regions)) + width * (len(with_regions) - 1) / 2, regions)
    ax.set(ylabel="mean test r", title="Alignment by region")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_efficiency(efficiency: dict, path: Path) -> Path:
    """``efficiency_summary`` output -> alignment vs number of training runs, one line per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, entry in efficiency["models"].items():
        factor = entry.get("data_factor")
        bound = "≥" if entry.get("data_factor_is_lower_bound") else ""
        label = name + (f" ({bound}{factor:.2g}x less data)" if factor and name != efficiency["reference_model"] else "")
        ax.plot(entry["n_runs"], entry["scores"], marker="o", label=label)
    if efficiency.get("reference_alignment") is not None:
        ax.axhline(efficiency["reference_alignment"], ls="--", c="gray",
                   label=f"{efficiency['reference_model']}, all runs")
    ax.set(xlabel="training runs seen by the encoding model", ylabel="mean test r",
           title="Data efficiency (held-out participants)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
