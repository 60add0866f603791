"""Per-target scores -> brain maps: ``paint`` (values into parcels, mask voxels, fsaverage vertices, ``vol_to_surf``),
``draw`` (one PNG function per picture kind) and ``write`` (a model's alignment -> data files and pictures per
participant, wherever its dataset's targets live)."""
from __future__ import annotations

from .draw import (
    PANELS,
    SURFACE_FIGSIZE,
    VOLUME_FIGSIZE,
    draw_difference_map,
    draw_flatmap,
    draw_glass_brain,
    draw_normalized_r_map,
    draw_r_map,
    draw_slices,
    draw_winner_map,
)
from .paint import (
    FSAVERAGE5_VERTICES,
    HEMI_VERTICES,
    atlas_ids,
    paint_mask,
    paint_parcels,
    paint_vertices,
    to_fsaverage5,
    volume_to_fsaverage5,
    winner_take_all,
)
from .write import write_brain_maps

__all__ = ["FSAVERAGE5_VERTICES", "HEMI_VERTICES", "PANELS", "SURFACE_FIGSIZE", "VOLUME_FIGSIZE", "atlas_ids",
           "draw_difference_map", "draw_flatmap", "draw_glass_brain", "draw_normalized_r_map", "draw_r_map",
           "draw_slices", "draw_winner_map", "paint_mask", "paint_parcels", "paint_vertices", "to_fsaverage5",
           "volume_to_fsaverage5", "winner_take_all", "write_brain_maps"]
