"""Per-target scores and atlas labels in, one summary per region of interest out.

* `roi_summary`: NaN-aware mean of per-target values (r, normalised r) within each ROI,
  optionally merging hemispheres and grouping atlas regions into named ROIs.
* `GLASSER_ROI_GROUPS`: the HCP-MMP1 (Glasser 2016) region groups of the Toneva-lab papers.
* `glasser_area`, `schaefer_network`: hemisphere and region/network from atlas label names.
* `load_atlas_labels`, `read_lut`: NIfTI atlas + brain mask → one label per target.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# HCP-MMP1 area names (no hemisphere prefix). Moussa & Toneva 2025 (multi-brain-tuning
# brn_align_utils.py; braintune_anchors.md §1.7) define the visual/auditory/late-language
# groups; AG, LTC, IFG and MFG follow Oota et al. 2025 (analysis_methods.md §4.7), the same
# lab's definitions, since the Moussa code's lists for those are not documented.
GLASSER_ROI_GROUPS: dict[str, tuple[str, ...]] = {
    "early_visual": ("V1", "V2"),
    "vwfa": ("PH", "TE2p"),
    "early_auditory": ("A1", "LBelt", "PBelt", "MBelt", "RI", "A4"),
    "primary_auditory": ("A1",),
    "secondary_auditory": ("STV",),
    "late_language": ("A5", "44", "45", "IFJa", "IFSp", "PGi", "PGp", "PGs", "TPOJ1", "TPOJ2",
                      "TPOJ3", "STGa", "STSda", "STSdp", "TA2", "STSva"),
    "angular_gyrus": ("PFm", "PGs", "PGi", "TPOJ2", "TPOJ3"),
    "lateral_temporal": ("STSda", "STSva", "STGa", "TE1a", "TE2a", "TGv", "TGd", "A5", "STSdp",
                         "STSvp", "PSL", "STV", "TPOJ1"),
    "ifg": ("44", "45", "IFJa", "IFSp"),
    "mfg": ("55b",),
    "ifg_mfg": ("44", "45", "IFJa", "IFSp", "55b"),
}

_GLASSER = re.compile(r"^(?:(?:lh|rh)\.)?([LR])_(.+?)(?:_ROI)?(?:-(?:lh|rh))?$")


def glasser_area(label_name: str) -> tuple[str, str]:
    """Hemisphere ("L"/"R") and area of an HCP-MMP1 label name.

    Accepts the annot/NIfTI spellings "L_A1_ROI", "R_STSdp_ROI", "lh.L_A1_ROI" and MNE's
    "L_A1_ROI-lh". Merging hemispheres means keying on the area alone ("A1").
    """
    match = _GLASSER.match(str(label_name))
    if match is None:
        raise ValueError(f"glasser_area: {label_name!r} is not an HCP-MMP1 label name like "
                         f"'L_A1_ROI' or 'R_STSdp_ROI'.")
    return match.group(1), match.group(2)


def schaefer_network(label_name: str) -> tuple[str, str]:
    """Hemisphere ("LH"/"RH") and network of a Schaefer parcel name.

    "7Networks_LH_Default_Temp_1" → ("LH", "Default"); "17Networks_RH_DorsAttnA_SPL_2" →
    ("RH", "DorsAttnA"). The network is the token after the hemisphere token.
    """
    tokens = str(label_name).split("_")
    for i, token in enumerate(tokens[:-1]):
        if token in ("LH", "RH"):
            return token, tokens[i + 1]
    raise ValueError(f"schaefer_network: {label_name!r} has no '_LH_'/'_RH_' token followed by a "
                     f"network, as in '7Networks_LH_Default_Temp_1'.")


def _region_names(labels, names, merge_hemispheres: bool) -> np.ndarray:
    labels = np.asarray(labels)
    if names is not None:
        missing = sorted({lab for lab in labels.tolist() if lab not in names} - {0, ""})
        if missing:
            raise ValueError(f"roi_summary: labels {missing[:5]} are not in names "
                             f"({len(missing)} missing); pass the atlas' full label table.")
        labels = np.array([names.get(lab, "") for lab in labels.tolist()], dtype=object)
    regions = labels.astype(str).astype(object)
    if merge_hemispheres:
        regions = np.array([_merge_hemi(r) for r in regions], dtype=object)
    return regions


def _merge_hemi(region: str) -> str:
    if region in ("", "0"):
        return ""
    try:
        return glasser_area(region)[1]
    except ValueError:
        return re.sub(r"_(?:LH|RH)_", "_", region)  # Schaefer names: drop the hemisphere token


def roi_summary(values, labels, names: Mapping | None = None,
                groups: Mapping[str, Sequence[str]] | None = None,
                merge_hemispheres: bool = False, return_counts: bool = False):
    """Mean of per-target values within each ROI, ignoring NaN targets.

    The mean pools the targets of all regions of an ROI (target-weighted, as averaging the
    ROI's voxels after merging hemispheres in Moussa & Toneva 2025).

    Parameters
    ----------
    values : array of shape (n_targets,)
        E.g. test r or normalised r (NaN where excluded by the ceiling threshold).
    labels : array of shape (n_targets,), int or str
        Atlas label of each target; 0 or "" means unlabelled and is skipped.
    names : mapping label → region name, optional
        Atlas label table (`read_lut`); None when ``labels`` are already names.
    groups : mapping ROI name → region names, optional
        E.g. `GLASSER_ROI_GROUPS`. None: every region is its own ROI.
    merge_hemispheres : bool
        Pool left and right regions: "L_A1_ROI"/"R_A1_ROI" → "A1" (`glasser_area`),
        "7Networks_LH_Vis_1"/"7Networks_RH_Vis_1" → "7Networks_Vis_1".
    return_counts : bool
        Also return {roi: (n_valid, n_targets)}: targets with a finite value / in the ROI.

    Returns
    -------
    means : dict ROI name → float (NaN when the ROI has no finite value)
    counts : dict ROI name → (int, int), only with ``return_counts=True``
    """
    values = np.asarray(values, float)
    if values.ndim != 1 or np.shape(labels) != values.shape:
        raise ValueError(f"roi_summary: values {values.shape} and labels {np.shape(labels)} must "
                         f"both be 1-D with one entry per target.")
    regions = _region_names(labels, names, merge_hemispheres)
    if groups is None:
        groups = {r: (r,) for r in sorted(set(regions.tolist()) - {""})}
    means, counts = {}, {}
    for roi, members in groups.items():
        in_roi = np.isin(regions, np.asarray(list(members), dtype=object))
        finite = in_roi & np.isfinite(values)
        means[roi] = float(values[finite].mean()) if finite.any() else float("nan")
        counts[roi] = (int(finite.sum()), int(in_roi.sum()))
    return (means, counts) if return_counts else means


def read_lut(path: str | Path) -> dict[int, str]:
    """Label table of an atlas: lines "index name [...]" (Schaefer .txt, FreeSurfer LUT).

    Blank lines and lines starting with '#' are skipped.
    """
    table = {}
    for line_no, line in enumerate(Path(path).read_text().splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2 or not fields[0].lstrip("-").isdigit():
            raise ValueError(f"read_lut: {path}:{line_no} is not 'index name ...': {line!r}.")
        table[int(fields[0])] = fields[1]
    return table


def load_atlas_labels(atlas, mask) -> np.ndarray:
    """Atlas label of each target voxel, for responses stored as ``volume[mask]``.

    Parameters
    ----------
    atlas : path or nibabel image
        Integer label volume (NIfTI), same grid as the mask.
    mask : path, nibabel image or bool array of shape (X, Y, Z)
        Brain mask that selected the targets. Targets are ordered as ``volume[mask]``
        (numpy C order over the image array axes i, j, k).

    Returns
    -------
    labels : int array of shape (n_targets,)
    """
    import nibabel as nib
    atlas_img = nib.load(str(atlas)) if isinstance(atlas, (str, Path)) else atlas
    if isinstance(mask, (str, Path)):
        mask_img = nib.load(str(mask))
        if not np.allclose(mask_img.affine, atlas_img.affine, atol=1e-3):
            raise ValueError(f"load_atlas_labels: atlas {atlas} and mask {mask} have different "
                             f"affines; resample the atlas to the mask grid (nearest neighbour).")
        mask = np.asarray(mask_img.dataobj)
    elif hasattr(mask, "dataobj"):
        mask = np.asarray(mask.dataobj)
    mask = np.asarray(mask).astype(bool)
    data = np.asarray(atlas_img.dataobj)
    if data.shape[:3] != mask.shape:
        raise ValueError(f"load_atlas_labels: atlas grid {data.shape[:3]} differs from mask grid "
                         f"{mask.shape}; resample the atlas to the mask grid (nearest neighbour).")
    if not mask.any():
        raise ValueError("load_atlas_labels: the mask is empty; it selects no target voxel.")
    return np.rint(data[..., 0] if data.ndim == 4 else data)[mask].astype(np.int64)
