"""One model's ``AlignmentResult`` + where each participant's targets live (``TargetSpace``) -> brain-map data files
and pictures per participant, in ``out_dir``.

Maps: test r at the headline layer, and r / noise ceiling where the test run was repeated; or, given a ``base``
result, tuned − base r drawn only where ``significant`` (a caller's test, e.g. ``blocktest.block_sign_flip_test``'s
``reject``). Per target space:

======== ============================================ ==============================================================
kind     data file                                    pictures
======== ============================================ ==============================================================
volume   ``<stem>.nii.gz`` (mask voxels)              inflated fsaverage5 (``vol_to_surf``), glass brain, slices
parcels  ``<stem>.nii.gz`` (each parcel its value)    inflated fsaverage5 (``vol_to_surf``), glass brain
surface  ``<stem>_hemi-{L,R}.func.gii``               inflated fsaverage5 (fsaverage6/7 through its vertices)
pycortex ``<stem>.npz`` (``values`` per voxel)        the participant's pycortex flatmap, or what is missing
======== ============================================ ==============================================================
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.formats.base import TargetSpace
from ...data.study import Study
from ..alignment import study_columns
from ..ceiling import normalized_r
from ..results import AlignmentResult, ParticipantAlignment
from . import draw
from .paint import atlas_ids, paint_mask, paint_parcels, paint_vertices, to_fsaverage5, volume_to_fsaverage5

log = logging.getLogger(__name__)

NO_SPACE = ("no brain maps: the {format} layout gives no location for the targets of {participant} (LeBel needs "
            "derivative/pycortex-db; BIDS volumes need data.bids.mask or data.bids.atlas; Algonauts needs "
            "fmri/<participant>/atlas/*.nii.gz; h5 and manifest data have no location)")


@dataclass(frozen=True)
class _Map:
    """One picture's values: ``values`` (n_kept,) drawn; for a difference also the two models' r and the test."""

    kind: str  # "r" | "normalized" | "difference"
    stem: str
    title: str
    values: np.ndarray  # (n_kept,) what the data file and the volume / flatmap pictures show
    tuned: np.ndarray | None = None  # (n_kept,) difference only
    base: np.ndarray | None = None
    significant: np.ndarray | None = None  # (n_kept,) bool


@dataclass(frozen=True)
class _Targets:
    """A participant's kept targets in their space: ``index`` (n_kept,) into the file's ``n_total`` targets."""

    space: TargetSpace
    index: np.ndarray
    n_total: int

    def image(self, values: np.ndarray):
        """(n_kept,) -> NIfTI for volume / parcel targets, else None."""
        if self.space.kind == "volume":
            return paint_mask(values, self.space.image, self.index)
        if self.space.kind == "parcels":
            ids = atlas_ids(self.space.image)
            if len(ids) != self.n_total:
                raise ValueError(f"atlas '{self.space.image}' has {len(ids)} parcels but the responses have {self.n_total} "
                                 "targets; use the atlas the responses were averaged in")
            return paint_parcels(values, self.space.image, ids[self.index])
        return None

    def vertices(self, values: np.ndarray, image=None) -> np.ndarray | None:
        """(n_kept,) -> (20484,) fsaverage5 values (NaN where none), or None for pycortex targets; ``image``:
        ``self.image(values)`` when the caller has painted it already."""
        if self.space.kind == "surface":
            return to_fsaverage5(paint_vertices(values, self.index, self.n_total))
        image = self.image(values) if image is None else image
        return None if image is None else volume_to_fsaverage5(image)


def _n_file_targets(study: Study, participant: str) -> int:
    source = study.sources[(participant, study.runs_of(participant)[0])]
    while hasattr(source, "inner"):  # cache / row-cut / column-selection wrappers
        source = source.inner
    return int(source.shape()[1])


def _data_file(t: _Targets, m: _Map, image, out_dir: Path) -> list[Path]:
    import nibabel as nib

    if image is not None:
        nib.save(image, out_dir / f"{m.stem}.nii.gz")
        return [out_dir / f"{m.stem}.nii.gz"]
    full = paint_vertices(m.values, t.index, t.n_total).astype(np.float32)
    if t.space.kind == "surface" and t.n_total % 2 == 0:
        paths = [out_dir / f"{m.stem}_hemi-{h}.func.gii" for h in "LR"]
        for path, half in zip(paths, np.split(full, 2)):
            nib.save(nib.GiftiImage(darrays=[nib.gifti.GiftiDataArray(half)]), path)
        return paths
    np.savez(out_dir / f"{m.stem}.npz", values=full, targets=t.index)
    return [out_dir / f"{m.stem}.npz"]


def _surface_picture(t: _Targets, m: _Map, image, path: Path) -> Path | str:
    shown = t.vertices(m.values, image)
    if not np.isfinite(shown).any():
        return (f"{path.name}: no target lands on the fsaverage5 surface (is '{t.space.image}' in MNI space?); "
                "see the glass brain")
    if m.kind == "difference":
        sig = None if m.significant is None else t.vertices(m.significant.astype(np.float64))
        return draw.draw_difference_map(t.vertices(m.tuned), t.vertices(m.base), path, sig, title=m.title)
    if m.kind == "normalized":
        return draw.draw_normalized_r_map(shown, path, title=m.title)
    return draw.draw_r_map(shown, path, title=m.title)


def _pictures(t: _Targets, m: _Map, image, out_dir: Path) -> list[Path | str]:
    """Every picture of one map (``image``: ``t.image(m.values)``): a PNG path, or a sentence saying why a picture
    is missing."""
    if t.space.kind == "pycortex":
        full = paint_vertices(m.values, t.index, t.n_total)
        return [draw.draw_flatmap(full, t.space.subject, t.space.image.parent.parent, out_dir / f"{m.stem}_flatmap.png")]
    out = [_surface_picture(t, m, image, out_dir / f"{m.stem}_surface.png")]
    if image is None:  # surface data: no volume to draw
        return out
    out.append(draw.draw_glass_brain(image, out_dir / f"{m.stem}_glass.png", m.title, symmetric=m.kind != "normalized"))
    if t.space.kind == "volume":
        out.append(draw.draw_slices(image, out_dir / f"{m.stem}_slices.png", m.title))
    return out


def _maps(p: str, res: ParticipantAlignment, result: AlignmentResult, prefix: str, base: AlignmentResult | None,
          significant: np.ndarray | None) -> list[_Map]:
    r, layer = res.r[result.layer], result.layer
    if base is None:
        maps = [_Map("r", f"{prefix}_{p}", f"{p}: test r, layer {layer}", r)]
        if res.ceiling is not None:
            nr = normalized_r(r, res.ceiling, result.min_ceiling)
            maps.append(_Map("normalized", f"{prefix}_{p}_normalized", f"{p}: r / noise ceiling, layer {layer}", nr))
        return maps
    other = base.participants.get(p)
    if other is None or not np.array_equal(other.kept, res.kept):
        raise ValueError(f"the base model has no alignment of {p} on the same targets; nothing to subtract")
    r_base = other.r[base.layer]
    if significant is not None and np.shape(significant) != r.shape:
        raise ValueError(f"significant has shape {np.shape(significant)} but {p} has {r.shape[0]} targets; pass one "
                         "bool per kept target (e.g. block_sign_flip_test(...).reject)")
    sig = None if significant is None else np.asarray(significant, bool)
    shown = r - r_base if sig is None else np.where(sig, r - r_base, np.nan)
    title = f"{p}: tuned - base r, layer {layer}" + (" (not thresholded: no test given)" if sig is None else "")
    return [_Map("difference", f"{prefix}_{p}_difference", title, shown, r, r_base, sig)]


def write_brain_maps(result: AlignmentResult, study: Study, spaces: dict[str, TargetSpace | None], out_dir: str | Path,
                     prefix: str = "r_map", base: AlignmentResult | None = None,
                     significant: dict[str, np.ndarray] | None = None,
                     relative_to: str | Path | None = None) -> dict[str, dict[str, list[str]]] | str:
    """Data files and pictures of every participant of ``result`` (see the module docstring).

    Parameters
    ----------
    spaces : {participant: TargetSpace or None}
        Where each participant's targets live (``data.formats.target_space``); None: no map, a note says why.
    prefix : str
        File stem: ``<prefix>_<participant>[_normalized|_difference]`` + ``.nii.gz`` / ``_surface.png`` / ...
    base : AlignmentResult, optional
        Given: only tuned − base maps (``result`` is the tuned model), thresholded by ``significant``.
    significant : {participant: bool array of shape (n_kept_targets,)}, optional
        Which targets differ by the caller's test; without it the difference is drawn unthresholded (and says so).
    relative_to : path, optional
        Names in the returned dict are relative to it (default: ``out_dir``'s parent, the run directory).

    Returns
    -------
    {participant: {"files": [data files and PNGs], "notes": [why a picture is missing]}}, or one sentence when no
    participant's targets have a location.
    """
    if not any(spaces.get(p) for p in result.participants):
        return NO_SPACE.format(format=study.format, participant=", ".join(result.participants) or "the")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(relative_to) if relative_to is not None else out_dir.parent
    written: dict[str, dict[str, list[str]]] = {}
    for p, res in result.participants.items():
        files, notes = [], []
        if spaces.get(p) is None:
            notes.append(NO_SPACE.format(format=study.format, participant=p))
        else:
            t = _Targets(spaces[p], study_columns(study, p)[res.kept], _n_file_targets(study, p))
            try:
                for m in _maps(p, res, result, prefix, base, (significant or {}).get(p)):
                    image = t.image(m.values)  # painted once: the data file, the surface and the volume pictures
                    files += _data_file(t, m, image, out_dir)
                    for item in _pictures(t, m, image, out_dir):
                        (files if isinstance(item, Path) else notes).append(item)
            except ValueError as err:  # a space that does not fit the data: said in the summary, the command goes on
                notes.append(f"no brain map for {p}: {err}")
        for note in notes:
            log.warning("%s", note)
        written[p] = {"files": [os.path.relpath(f, root) for f in files], "notes": notes}
    return written
