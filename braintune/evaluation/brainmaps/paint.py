"""Per-target values -> per-voxel images and per-vertex arrays on nilearn's bundled fsaverage5 (no download).

``paint_parcels`` / ``paint_mask`` -> NIfTI (exact: a parcel's or voxel's value is its target's);
``paint_vertices`` -> the full surface array; ``to_fsaverage5`` (GIfTI data, L then R) and
``volume_to_fsaverage5`` (nilearn's ``vol_to_surf``) -> (20484,) values on fsaverage5. fsaverage meshes are
nested icosahedra: the first 10,242 vertices of each fsaverage6/7 hemisphere *are* fsaverage5's, so denser data
is drawn through those vertices. ``winner_take_all`` -> the best kind (layer, instruction, ...) per target.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from nibabel import Nifti1Image

    Volume = str | Path | Nifti1Image  # a NIfTI file or a loaded image

FSAVERAGE5_VERTICES = 10242  # per hemisphere
HEMI_VERTICES = {10242: "fsaverage5", 40962: "fsaverage6", 163842: "fsaverage7"}


def _load(img, what: str):
    import nibabel as nib

    if isinstance(img, (str, Path)):
        try:
            return nib.load(str(img))
        except Exception as err:  # nibabel raises ImageFileError, FileNotFoundError, zlib errors
            raise ValueError(f"{what}: cannot read '{img}' ({err}); pass a NIfTI file or image.") from err
    return img


def _volume(img, what: str):
    """(image, float32 data, finite mask) of a NIfTI; refuses a volume without a finite voxel."""
    img = _load(img, what)
    data = np.asarray(img.get_fdata(), dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.any():
        raise ValueError(f"{what}: the volume has no finite voxel; nothing to draw or project.")
    return img, data, finite


def paint_parcels(values: ArrayLike, atlas: Volume, parcel_ids: ArrayLike | None = None) -> Nifti1Image:
    """Write per-parcel values (NaN allowed) into their parcels' voxels.

    Parameters
    ----------
    values : array of shape (n_targets,)
    atlas : path or nibabel image
        Integer label volume (X, Y, Z), 0 = background, e.g. the Algonauts release's Schaefer-1000 dseg.
    parcel_ids : int array of shape (n_targets,), optional
        Atlas id of each target; default ``j + 1`` for target ``j`` (Algonauts columns are parcels 1..1000).
        The BIDS reader's atlas targets are the sorted nonzero ids: pass ``np.unique(atlas[atlas != 0])``.

    Returns
    -------
    image : nibabel.Nifti1Image of shape (X, Y, Z), float32, NaN outside the painted parcels
    """
    import nibabel as nib

    img = _load(atlas, "paint_parcels atlas")
    labels = np.rint(np.asarray(img.dataobj, dtype=np.float64)).astype(np.int64)
    labels = labels[..., 0] if labels.ndim == 4 else labels
    values = np.asarray(values, dtype=np.float32)
    present = np.unique(labels[labels > 0])
    if values.ndim != 1:
        raise ValueError(f"paint_parcels: values have shape {values.shape}; pass one value per parcel (1-D).")
    if parcel_ids is None and len(values) != len(present):
        raise ValueError(f"paint_parcels: {len(values)} values but atlas '{atlas}' has {len(present)} parcels (ids "
                         f"{present[:1].tolist()}..{present[-1:].tolist()}); pass one value per parcel, or parcel_ids.")
    parcel_ids = np.arange(1, len(values) + 1) if parcel_ids is None else parcel_ids
    ids = np.asarray(parcel_ids, dtype=np.int64)
    if ids.shape != values.shape:
        raise ValueError(f"paint_parcels: {len(values)} values but {ids.size} parcel_ids; give one id per value.")
    missing = np.setdiff1d(ids, present)
    if missing.size:
        raise ValueError(f"paint_parcels: parcel ids {missing[:5].tolist()} ({missing.size} in all) are not in atlas "
                         f"'{atlas}'; check that the atlas belongs to this participant and parcellation.")
    lut = np.full(max(int(labels.max()), int(ids.max())) + 1, np.nan, dtype=np.float32)
    lut[ids] = values
    return nib.Nifti1Image(lut[np.clip(labels, 0, None)], img.affine)  # lut[0] = NaN: background


def paint_mask(values: ArrayLike, mask: Volume, targets: ArrayLike | None = None) -> Nifti1Image:
    """Write per-voxel values back into a brain mask.

    Parameters
    ----------
    values : array of shape (n,)
    mask : path or nibabel image
        Nonzero voxels are the targets, in numpy C order over (i, j, k), as the BIDS reader stores them.
    targets : int array of shape (n,), optional
        Index of each value among the mask's voxels (e.g. the kept targets); default all voxels, in order.

    Returns
    -------
    image : nibabel.Nifti1Image of the mask's shape (X, Y, Z), float32, NaN outside the written voxels
    """
    import nibabel as nib

    img = _load(mask, "paint_mask mask")
    voxels = np.flatnonzero(np.rint(np.asarray(img.dataobj, dtype=np.float64)).reshape(-1) != 0)
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    targets = np.arange(len(voxels)) if targets is None else np.asarray(targets, dtype=np.int64)
    if len(values) != len(targets) or (targets.size and (targets.min() < 0 or targets.max() >= len(voxels))):
        raise ValueError(f"paint_mask: {len(values)} values for {len(targets)} targets, but mask '{mask}' has "
                         f"{len(voxels)} voxels; pass one value per mask voxel (or targets indexing them).")
    volume = np.full(img.shape[:3], np.nan, dtype=np.float32)
    volume.reshape(-1)[voxels[targets]] = values
    return nib.Nifti1Image(volume, img.affine)


@lru_cache(maxsize=1)
def _fsaverage5():
    """nilearn's bundled fsaverage5 meshes and sulcal depth (no download)."""
    from nilearn import datasets

    return datasets.load_fsaverage("fsaverage5"), datasets.load_fsaverage_data("fsaverage5", data_type="sulcal")


def to_fsaverage5(values: ArrayLike) -> np.ndarray:
    """(n,) surface data of fsaverage5, 6 or 7, left then right hemisphere -> (20484,) on fsaverage5: the
    first 10,242 vertices of each hemisphere (fsaverage5's own; values between them are not drawn)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    half = len(values) // 2
    if len(values) % 2 or half not in HEMI_VERTICES:
        sizes = ", ".join(f"{2 * n:,} ({name})" for n, name in HEMI_VERTICES.items())
        raise ValueError(f"to_fsaverage5: {len(values):,} surface values; expected left then right hemisphere of "
                         f"{sizes}. Resample other meshes to fsaverage first (e.g. FreeSurfer mri_surf2surf).")
    return np.concatenate([values[:FSAVERAGE5_VERTICES], values[half : half + FSAVERAGE5_VERTICES]])


def volume_to_fsaverage5(img: Volume, categorical: bool = False) -> np.ndarray:
    """MNI-space volume (X, Y, Z) -> (20484,) fsaverage5 values, left then right, by ``vol_to_surf``.

    Samples run from the pial to the white surface; NaN voxels are left out (a vertex without a finite
    sample is NaN). ``categorical`` (a few labels, e.g. winners): each label's share of the samples is
    projected (one volume per label) and the largest wins, so labels are never averaged into other labels.
    """
    import nibabel as nib
    from nilearn import surface

    img, data, finite = _volume(img, "volume_to_fsaverage5")
    labels = np.unique(data[finite]) if categorical else None
    stack = (data[..., None] == labels).astype(np.float32) if categorical else np.where(finite, data, 0)
    mesh, _ = _fsaverage5()
    mask = nib.Nifti1Image(finite.astype(np.uint8), img.affine)  # nilearn ignores samples outside it
    with warnings.catch_warnings():  # "Mean of empty slice": vertices without a finite sample, NaN by design
        warnings.simplefilter("ignore", RuntimeWarning)
        parts = [surface.vol_to_surf(nib.Nifti1Image(stack, img.affine), mesh["pial"].parts[h], mask_img=mask,
                                     inner_mesh=mesh["white_matter"].parts[h]) for h in ("left", "right")]
    out = np.concatenate(parts)  # (20484,) or (20484, n_labels) shares
    if not categorical:
        return out
    seen = np.isfinite(out).all(1)
    return np.where(seen, labels[np.argmax(np.nan_to_num(out, nan=-1.0), axis=1)], np.nan)


def winner_take_all(scores: ArrayLike) -> np.ndarray:
    """(n_kinds, n_targets) scores (a row per layer, instruction, region model, ...) -> (n_targets,) index
    of the best kind per target, as float so that targets without a finite score are NaN."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"winner_take_all: scores have shape {scores.shape}; expected (n_kinds, n_targets).")
    any_finite = np.isfinite(scores).any(0)
    best = np.argmax(np.where(np.isfinite(scores), scores, -np.inf), axis=0).astype(np.float64)
    return np.where(any_finite, best, np.nan)


def atlas_ids(atlas: Volume) -> np.ndarray:
    """Sorted nonzero integer labels of an atlas NIfTI: the atlas id of each parcel target, in target order (the
    BIDS reader's parcel means; Algonauts' columns 0..999 are Schaefer parcels 1..1000, the same order)."""
    img = _load(atlas, "atlas_ids atlas")
    labels = np.rint(np.asarray(img.dataobj, dtype=np.float64)).astype(np.int64)
    return np.unique(labels[labels > 0])


def paint_vertices(values: ArrayLike, targets: ArrayLike, n_vertices: int) -> np.ndarray:
    """Per-target values of surface targets -> (n_vertices,) float64, NaN at vertices without a value.

    Parameters
    ----------
    values : array of shape (n,)
    targets : int array of shape (n,)
        Vertex index of each value (left hemisphere first, then right, as the BIDS reader concatenates GIfTIs).
    n_vertices : int
        Vertices of both hemispheres in the data.
    """
    values, targets = np.asarray(values, dtype=np.float64).reshape(-1), np.asarray(targets, dtype=np.int64).reshape(-1)
    if values.shape != targets.shape or (targets.size and (targets.min() < 0 or targets.max() >= n_vertices)):
        raise ValueError(f"paint_vertices: {values.size} values for {targets.size} targets on {n_vertices} vertices; "
                         "pass one vertex index (0..n_vertices-1) per value.")
    out = np.full(n_vertices, np.nan)
    out[targets] = values
    return out
