"""Winner-take-all maps (``WinnerMap`` per kind) + where the targets live -> data files and pictures.

Each map is written as data: every map in one ``.npz`` (winner index, best score and labels per target, and the
participant-averaged scores), and per map a NIfTI (parcel or voxel targets, winner index per parcel / voxel, NaN where
no target won) or a pair of GIfTIs (fsaverage vertices, left and right). Pictures: the map on the inflated fsaverage5
surface, one colour per label (``brainmaps.draw_winner_map``; volumes are projected label by label, so labels are
never averaged into other labels), and, for any dataset, a bar chart of each region's shares.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..data.formats.base import TargetSpace
from ..evaluation.brainmaps import (
    atlas_ids,
    draw_winner_map,
    paint_mask,
    paint_parcels,
    paint_vertices,
    to_fsaverage5,
    volume_to_fsaverage5,
)
from ..evaluation.plots import pyplot, save_figure
from .instructions import WinnerMap
from .model_classes import save_maps

log = logging.getLogger(__name__)


def _values(wmap: WinnerMap) -> np.ndarray:
    return np.where(wmap.winner >= 0, wmap.winner, np.nan).astype(np.float64)


def _image(space: TargetSpace, values: np.ndarray, index: np.ndarray):
    if space.kind == "parcels":
        return paint_parcels(values, space.image, atlas_ids(space.image)[index])
    if space.kind == "volume":
        return paint_mask(values, space.image, index)
    return None


def _data_files(space: TargetSpace, values: np.ndarray, index: np.ndarray, n_total: int, stem: Path) -> list[Path]:
    import nibabel as nib

    image = _image(space, values, index)
    if image is not None:
        nib.save(image, f"{stem}.nii.gz")
        return [Path(f"{stem}.nii.gz")]
    if space.kind == "surface" and n_total % 2 == 0:
        paths = [Path(f"{stem}_hemi-{h}.func.gii") for h in "LR"]
        for path, half in zip(paths, np.split(paint_vertices(values, index, n_total).astype(np.float32), 2)):
            nib.save(nib.GiftiImage(darrays=[nib.gifti.GiftiDataArray(half)]), path)
        return paths
    return []  # pycortex voxels: the npz holds the map


def _surface(space: TargetSpace, values: np.ndarray, index: np.ndarray, n_total: int) -> np.ndarray | None:
    if space.kind == "surface":
        return to_fsaverage5(paint_vertices(values, index, n_total))
    image = _image(space, values, index)
    return None if image is None else volume_to_fsaverage5(image, categorical=True)


def share_plot(shares: dict[str, dict[str, float]], path: Path, title: str) -> Path:
    """Bar chart of each region's shares (``region_shares``): one group of bars per region, one colour per label."""
    plt = pyplot()

    regions, labels = list(shares), list(next(iter(shares.values())))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(regions) + 2), 3.2))
    width = 0.8 / max(len(labels), 1)
    for k, label in enumerate(labels):
        ax.bar(np.arange(len(regions)) + k * width, [100 * shares[r][label] for r in regions], width, label=label)
    ax.set_xticks(np.arange(len(regions)) + 0.4 - width / 2, regions)
    ax.set_ylabel("% of mapped targets")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path, dpi=100)


def write_wta_maps(maps: dict[str, WinnerMap], shares: dict[str, dict], out_dir: str | Path, space: TargetSpace | None,
                   index: np.ndarray, n_total: int, surface_kinds: list[str], scores: np.ndarray | None = None) -> dict:
    """Every map as data and pictures under ``out_dir`` (see the module docstring).

    Parameters
    ----------
    maps : kind -> WinnerMap over the common targets; shares : kind -> ``region_shares`` of it
    space : where the targets live (``data.formats.target_space``), or None (npz and bar charts only)
    index : (n_targets,) file target index of each mapped target; n_total : targets in the response files
    surface_kinds : the kinds drawn on the surface (each costs a few seconds)
    scores : (n_instructions, n_layers, n_targets) participant-averaged scores, stored in the npz

    Returns
    -------
    {"files": [paths relative to out_dir's parent], "notes": [why a picture or file is missing]}
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {} if scores is None else {"scores": np.asarray(scores, np.float32)}
    files = [save_maps(out_dir / "wta_maps.npz", **{k.replace("-", "_"): m for k, m in maps.items()}, **extra)]
    notes = [] if space is not None else ["no location for the targets: maps are written as npz and bar charts only"]
    for kind, wmap in maps.items():
        stem, values = out_dir / f"wta_{kind}", _values(wmap)
        files.append(share_plot(shares[kind], out_dir / f"wta_{kind}_shares.png", f"winner-take-all: {kind}"))
        if space is None:
            continue
        try:
            files += _data_files(space, values, index, n_total, stem)
            shown = _surface(space, values, index, n_total) if kind in surface_kinds else None
        except ValueError as err:  # a space that does not fit the data: said, the command goes on
            notes.append(f"no brain map for {kind}: {err}")
            continue
        if shown is not None and np.isfinite(shown).any():
            files.append(draw_winner_map(shown, wmap.labels, Path(f"{stem}_surface.png"), f"winner-take-all: {kind}"))
        elif shown is not None:
            notes.append(f"wta_{kind}_surface.png: no target lands on the fsaverage5 surface (is the atlas in MNI space?)")
    for note in notes:
        log.warning("%s", note)
    return {"files": [os.path.relpath(f, out_dir.parent) for f in files], "notes": notes}
