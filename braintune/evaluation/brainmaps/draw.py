"""(20484,) fsaverage5 values or a NIfTI -> PNG pictures (nilearn; pycortex flatmaps when present).

r, normalised r, difference (drawn where significant) and winner-take-all maps on the inflated fsaverage5
(lateral and medial, both hemispheres), glass brain and slices for volumes, and LeBel participants' pycortex
flatmaps (or a sentence saying what is missing). Values come from ``paint``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..plots import pyplot
from .paint import FSAVERAGE5_VERTICES, _fsaverage5, _volume

if TYPE_CHECKING:
    from .paint import Volume

PANELS = (("left", "lateral"), ("left", "medial"), ("right", "lateral"), ("right", "medial"))
SURFACE_FIGSIZE = (12.0, 3.4)  # inches; at ``dpi`` the PNG is (340, 1200) pixels for dpi=100
VOLUME_FIGSIZE = (10.0, 3.0)


def _vertices(values, where: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (2 * FSAVERAGE5_VERTICES,):
        raise ValueError(f"{where}: values have shape {values.shape}; expected ({2 * FSAVERAGE5_VERTICES},) "
                         f"fsaverage5 vertices, left then right: use to_fsaverage5 or volume_to_fsaverage5 first.")
    return values


def _surface_png(values, path, title: str, dpi: int, plot, decorate, **kwargs) -> Path:
    """4 panels of a nilearn surface plot (``plot``) on the inflated fsaverage5; ``decorate(fig)`` adds the key."""
    mesh, sulc = _fsaverage5()
    plt = pyplot()
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
    base = pyplot().get_cmap("tab10" if len(names) <= 10 else "tab20")
    cmap = ListedColormap([base(i % base.N) for i in range(len(names))])

    def legend(fig):
        fig.legend(handles=[Patch(color=cmap(i), label=n) for i, n in enumerate(names)], loc="center right",
                   fontsize=8, frameon=False)

    return _surface_png(winners, path, title, dpi, plotting.plot_surf_roi, legend, cmap=cmap, vmin=0, vmax=len(names))


def _volume_png(img, path, what: str, dpi: int, plot, **kwargs) -> Path:
    """A nilearn volume plot of ``img`` (NaN = no data, drawn as 0, which the plots' thresholds hide) -> PNG."""
    import nibabel as nib

    img, data, finite = _volume(img, what)
    plt = pyplot()
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
