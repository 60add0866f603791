"""The attribution summary (``evaluate.py attribute``'s ``groups``: one entry per layer group) in; PNGs out (matplotlib
Agg): IoU of BA and NWP important words vs threshold with the random baseline, attribution spread by layer, and
positional profiles of BA vs NWP."""
from __future__ import annotations

from pathlib import Path

from ..evaluation.plots import pyplot, save_figure


def plot_iou(groups: dict[str, dict], path: Path) -> Path:
    """Mean IoU of the BA and NWP sets per threshold, one line per group, dashed: the random baseline."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, g) in enumerate(groups.items()):
        color = f"C{i}"
        ax.plot(g["thresholds"], g["iou"]["mean"], "o-", color=color, label=f"{name} (layer {g['layer']})")
        ax.plot(g["thresholds"], g["iou"]["random"], "--", color=color, alpha=0.6)
    ax.plot([], [], "k--", alpha=0.6, label="random sets of the same sizes")
    ax.set(xlabel="threshold t (% of |attribution|)", ylabel="IoU of BA and NWP important words", ylim=(0, 1),
           title="Which words matter: brain alignment vs next-word prediction")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_spread(groups: dict[str, dict], path: Path) -> Path:
    """Spread AUC (important words vs threshold) of BA per group next to NWP's; stars: BH-significant differences."""
    plt = pyplot()
    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(4, 1.5 * len(names) + 2), 4))
    x = range(len(names))
    ba = [groups[n]["spread_auc"]["ba"] for n in names]
    nwp = [groups[n]["spread_auc"]["nwp"] for n in names]
    ax.bar([i - 0.2 for i in x], ba, width=0.4, label="brain alignment (BA)")
    ax.bar([i + 0.2 for i in x], nwp, width=0.4, label="next-word prediction (NWP)")
    for i, n in enumerate(names):
        if groups[n]["spread_auc"].get("ba_vs_nwp", {}).get("reject"):
            ax.text(i, max(ba[i], nwp[i]) * 1.02, "*", ha="center", fontsize=14)
    ax.set_xticks(list(x), [f"{n}\n(layer {groups[n]['layer']})" for n in names])
    ax.set(ylabel="spread AUC (words)", title="Attribution spread by layer (*: BH-significant)",
           ylim=(0, 1.3 * max(ba + nwp)))
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    return save_figure(fig, path)


def plot_profiles(groups: dict[str, dict], path: Path) -> Path:
    """Share of words marked important by distance (0 = most recent word), one panel per profile threshold."""
    plt = pyplot()
    first = next(iter(groups.values()))["profile"]
    thresholds = list(first["nwp"])
    fig, axes = plt.subplots(1, len(thresholds), figsize=(4.2 * len(thresholds), 3.6), squeeze=False)
    edges = first["edges"]
    centers = [(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])]
    for ax, t in zip(axes[0], thresholds):
        for i, (name, g) in enumerate(groups.items()):
            ax.plot(centers, g["profile"]["ba"][t], "o-", ms=3, color=f"C{i}", label=f"BA {name}")
        ax.plot(centers, first["nwp"][t], "k^-", ms=3, label="NWP")
        ax.set(xscale="symlog", xlabel="distance (words back)", ylabel="share important", title=f"t = {t} %")
    axes[0][0].legend(fontsize=7)
    return save_figure(fig, path)
