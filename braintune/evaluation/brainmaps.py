"""Per-target scores -> per-voxel / per-vertex arrays -> brain pictures (nilearn; pycortex when present).

Painting (exact): ``paint_parcels`` / ``paint_mask`` -> NIfTI; ``volume_to_fsaverage5`` (nilearn's
``vol_to_surf``) and ``to_fsaverage5`` (GIfTI data, L then R) -> (20484,) values on nilearn's bundled
fsaverage5, the one fsaverage needing no download. fsaverage meshes are nested icosahedra: the first 10,242
vertices of each fsaverage6/7 hemisphere *are* fsaverage5's, so denser data is drawn through those vertices.
Pictures (PNG): r, normalised r, difference and winner-take-all maps on the inflated surface (4 panels), glass
brain and slices for volumes, and LeBel participants' pycortex flatmaps.
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
PANELS = (("left", "lateral"), ("left", "medial"), ("right", "lateral"), ("right", "medial"))
SURFACE_FIGSIZE = (12.0, 3.4)  # inches; at ``dpi`` the PNG is (340, 1200) pixels for dpi=100
VOLUME_FIGSIZE = (10.0, 3.0)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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


def _vertices(values, where: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (2 * FSAVERAGE5_VERTICES,):
        raise ValueError(f"{where}: values have shape {values.shape}; expected ({2 * FSAVERAGE5_VERTICES},) "
                         f"fsaverage5 vertices, left then right: use to_fsaverage5 or volume_to_fsaverage5 first.")
    return values


def _surface_png(values, path, title: str, dpi: int, plot, decorate, **kwargs) -> Path:
    """4 panels of a nilearn surface plot (``plot``) on the inflated fsaverage5; ``decorate(fig)`` adds the key."""
    mesh, sulc = _fsaverage5()
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=SURFACE_FIGSIZE, dpi=dpi, subplot_kw={"projection": "3d"})
    fig.subplots_adjust(left=0.0, right=0.88, bottom=0.0, top=0.86, wspace=0.0)
    fig.suptitle(title)
    for ax, (hemi, view) in zip(axes, PANELS):
        part = values[:FSAVERAGE5_VERTICES] if hemi == "left" else values[FSAVERAGE5_VERTICES:]
        plot(mesh["inflated"].parts[hemi], part, hemi=hemi, view=view, bg_map=sulc.data.parts[hemi], colorbar=False,
             axes=ax, figure=fig, **kwargs)
        ax.set_box_aspect(None, zoom=1.45)  # nilearn sets 1.3: a little larger fills a 4-panel row
        ax.set_title(f"{hemi} {view}", fontsize=9)
    decorate(fig)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


def _draw_surface(values, path, title, cmap, vmin, vmax, label, dpi) -> Path:
    """Continuous per-vertex values, one colour bar."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from nilearn import plotting

    def colorbar(fig):
        bar_ax = fig.add_axes((0.9, 0.15, 0.012, 0.6))
        fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), cax=bar_ax, label=label)

    return _surface_png(values, path, title, dpi, plotting.plot_surf_stat_map, colorbar, cmap=cmap, vmin=vmin,
                        vmax=vmax)


def _symmetric_limit(values) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(np.percentile(finite, 99)) if finite.size and finite.max() > 0 else 1.0


def draw_r_map(values: ArrayLike, path: str | Path, title: str = "test r", vmax: float | None = None,
               dpi: int = 100) -> Path:
    """(20484,) per-vertex Pearson r -> PNG on the inflated surface; symmetric colours, ``vmax`` default the
    99th percentile of |r|. NaN vertices show the anatomy only."""
    values = _vertices(values, "draw_r_map")
    lim = vmax or _symmetric_limit(values)
    return _draw_surface(values, path, title, "RdBu_r", -lim, lim, "Pearson r", dpi)


def draw_normalized_r_map(values: ArrayLike, path: str | Path, title: str = "normalised r (r / noise ceiling)",
                          dpi: int = 100) -> Path:
    """(20484,) per-vertex r / noise ceiling -> PNG, colours from 0 to 1 (values beyond are clipped)."""
    values = _vertices(values, "draw_normalized_r_map")
    return _draw_surface(values, path, title, "inferno", 0.0, 1.0, "r / ceiling", dpi)


def draw_difference_map(tuned: ArrayLike, base: ArrayLike, path: str | Path, significant: ArrayLike | None = None,
                        title: str = "tuned - base", vmax: float | None = None, dpi: int = 100) -> Path:
    """(20484,) per-vertex r of the tuned and the base model -> PNG of tuned - base, drawn only where
    ``significant`` (20484,) is true (bool, or a projected 0/1 map: above 0.5 counts) when it is given."""
    diff = _vertices(tuned, "draw_difference_map tuned") - _vertices(base, "draw_difference_map base")
    if significant is not None:
        keep = np.asarray(_vertices(significant, "draw_difference_map significant")) > 0.5
        diff = np.where(keep, diff, np.nan)
        title = f"{title} (significant only)"
    lim = vmax or _symmetric_limit(diff)
    return _draw_surface(diff, path, title, "RdBu_r", -lim, lim, "difference in r", dpi)


def draw_winner_map(winners: ArrayLike, names: list[str], path: str | Path, title: str = "best per vertex",
                    dpi: int = 100) -> Path:
    """(20484,) per-vertex category index (0..len(names)-1, NaN = none) -> PNG with one colour per category
    and a legend naming them (best layer, instruction or region model per vertex)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from nilearn import plotting

    winners, names = _vertices(winners, "draw_winner_map"), [str(n) for n in names]
    found = winners[np.isfinite(winners)]
    if found.size and (found.min() < 0 or found.max() >= len(names) or np.any(found != np.round(found))):
        raise ValueError(f"draw_winner_map: winners must be integers in 0..{len(names) - 1} (one per name in "
                         f"{names}) or NaN; got values from {found.min()} to {found.max()}.")
    base = _plt().get_cmap("tab10" if len(names) <= 10 else "tab20")
    cmap = ListedColormap([base(i % base.N) for i in range(len(names))])

    def legend(fig):
        fig.legend(handles=[Patch(color=cmap(i), label=n) for i, n in enumerate(names)], loc="center right",
                   fontsize=8, frameon=False)

    return _surface_png(winners, path, title, dpi, plotting.plot_surf_roi, legend, cmap=cmap, vmin=0, vmax=len(names))


def _volume_png(img, path, what: str, dpi: int, plot, **kwargs) -> Path:
    """A nilearn volume plot of ``img`` (NaN = no data, drawn as 0, which the plots' thresholds hide) -> PNG."""
    import nibabel as nib

    img, data, finite = _volume(img, what)
    plt = _plt()
    fig = plt.figure(figsize=VOLUME_FIGSIZE, dpi=dpi)
    plot(nib.Nifti1Image(np.where(finite, data, 0), img.affine), figure=fig, **kwargs)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


def draw_glass_brain(img: Volume, path: str | Path, title: str = "test r", symmetric: bool = True,
                     dpi: int = 100) -> Path:
    """MNI-space volume (NIfTI path or image) -> PNG of its glass-brain projections (l, y, r, z); ``symmetric``:
    signed values on a diverging map, else absolute values."""
    from nilearn import plotting

    return _volume_png(img, path, "draw_glass_brain", dpi, plotting.plot_glass_brain, display_mode="lyrz",
                       plot_abs=not symmetric, threshold=1e-6, cmap="RdBu_r" if symmetric else "inferno", title=title)


def draw_slices(img: Volume, path: str | Path, title: str = "test r", n_slices: int = 6,
                anatomy: Volume | None = None, dpi: int = 100) -> Path:
    """Volume -> PNG of ``n_slices`` axial slices over ``anatomy`` (NIfTI; default nilearn's MNI152 template)."""
    from nilearn import plotting

    extra = {} if anatomy is None else {"bg_img": anatomy}
    return _volume_png(img, path, "draw_slices", dpi, plotting.plot_stat_map, display_mode="z",
                       cut_coords=n_slices, cmap="RdBu_r", title=title, **extra)


def draw_flatmap(values: ArrayLike, participant: str, dataset_root: str | Path, path: str | Path,
                 xfm: str | None = None, vmax: float | None = None) -> Path | str:
    """LeBel (ds003020) per-voxel values -> PNG on the participant's pycortex flatmap, or why not.

    Parameters
    ----------
    values : array of shape (n_voxels,)
        One value per voxel of ``derivative/preprocessed_data/<participant>/*.hf5`` (NaN where excluded);
        pycortex picks the transform's mask with that many voxels.
    participant : str
        E.g. "UTS01", a folder of ``<dataset_root>/derivative/pycortex-db``.
    xfm : str, optional
        Transform name; default ``<participant>_auto``, as the release names them.

    Returns
    -------
    path : the PNG's Path, or a str saying what is missing (pycortex, the database, the transform)
    """
    db = Path(dataset_root) / "derivative" / "pycortex-db"
    xfm = xfm or f"{participant}_auto"
    if not (db / participant).is_dir():
        return (f"no flatmap for {participant}: '{db / participant}' is missing (get ds003020's "
                f"derivative/pycortex-db/{participant})")
    if not (db / participant / "transforms" / xfm).is_dir():
        where = db / participant / "transforms"
        found = sorted(p.name for p in where.glob("*"))
        return f"no flatmap for {participant}: transform '{xfm}' is not in '{where}' (found {found})"
    try:
        import cortex
    except ImportError as err:
        return f"no flatmap for {participant}: pycortex is not importable ({err}); pip install pycortex"
    cortex.db.filestore = str(db)  # pycortex reads subjects from its configured filestore: point it at ds003020's
    cortex.db.reload_subjects()
    values = np.asarray(values, dtype=np.float64)
    lim = vmax or _symmetric_limit(values)
    try:
        volume = cortex.Volume(values, participant, xfm, vmin=-lim, vmax=lim, cmap="RdBu_r")
    except ValueError as err:
        raise ValueError(f"draw_flatmap: {len(values)} values for {participant} match no mask of transform '{xfm}' "
                         f"in '{db}' ({err}); pass one value per voxel of the participant's hf5 responses.") from err
    cortex.quickflat.make_png(str(path), volume, with_curvature=True, with_rois=False, with_colorbar=True)
    return Path(path)
