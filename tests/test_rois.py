"""ROI summaries on a toy NIfTI atlas: label mapping, hemisphere merge, counts."""
import nibabel as nib
import numpy as np
import pytest

from braintune.evaluation.rois import GLASSER_ROI_GROUPS, glasser_area, load_atlas_labels, read_lut, roi_summary, schaefer_network


@pytest.fixture
def toy_atlas(tmp_path):
    """4x3x2 volume: labels 1-4 = L_A1, R_A1, L_STV, R_44; 0 = background."""
    atlas = np.zeros((4, 3, 2), dtype=np.int16)
    atlas[0, :, :] = 1
    atlas[1, :, 0] = 2
    atlas[2, 0, :] = 3
    atlas[3, 2, 1] = 4
    mask = atlas > 0
    mask[3, 0, 0] = True  # one masked voxel outside every region
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(atlas, affine), tmp_path / "atlas.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    (tmp_path / "lut.txt").write_text(
        "# index name r g b a\n1 L_A1_ROI 0 0 0 0\n2 R_A1_ROI 0 0 0 0\n\n"
        "3 L_STV_ROI 0 0 0 0\n4 R_44_ROI 0 0 0 0\n")
    return tmp_path, atlas, mask


def test_atlas_labels_follow_the_mask_order(toy_atlas):
    path, atlas, mask = toy_atlas
    labels = load_atlas_labels(path / "atlas.nii.gz", path / "mask.nii.gz")
    np.testing.assert_array_equal(labels, atlas[mask])
    assert labels.shape == (mask.sum(),) and (labels == 0).sum() == 1
    with pytest.raises(ValueError, match=r"atlas grid \(4, 3, 2\) differs from mask grid"):
        load_atlas_labels(path / "atlas.nii.gz", np.ones((4, 3, 3), bool))
    assert read_lut(path / "lut.txt") == {1: "L_A1_ROI", 2: "R_A1_ROI", 3: "L_STV_ROI",
                                          4: "R_44_ROI"}


def test_roi_summary_hemisphere_merge_and_groups_on_toy_atlas(toy_atlas):
    path, atlas, mask = toy_atlas
    labels = load_atlas_labels(path / "atlas.nii.gz", mask)
    names = read_lut(path / "lut.txt")
    values = np.arange(len(labels), dtype=float) / 10
    values[np.flatnonzero(labels == 1)[0]] = np.nan  # one excluded (low-ceiling) target
    hand = {lab: values[(labels == lab) & np.isfinite(values)] for lab in (1, 2, 3, 4)}

    per_region = roi_summary(values, labels, names)
    assert set(per_region) == {"L_A1_ROI", "R_A1_ROI", "L_STV_ROI", "R_44_ROI"}
    assert per_region["R_A1_ROI"] == pytest.approx(hand[2].mean())

    merged, counts = roi_summary(values, labels, names, merge_hemispheres=True,
                                 return_counts=True)
    assert merged["A1"] == pytest.approx(np.concatenate([hand[1], hand[2]]).mean())
    assert counts["A1"] == (len(hand[1]) + len(hand[2]), (labels == 1).sum() + (labels == 2).sum())

    rois = roi_summary(values, labels, names, groups=GLASSER_ROI_GROUPS, merge_hemispheres=True,
                       return_counts=True)
    means, counts = rois
    assert means["early_auditory"] == pytest.approx(merged["A1"])
    assert means["secondary_auditory"] == pytest.approx(hand[3].mean())
    assert means["ifg"] == pytest.approx(hand[4].mean())
    assert np.isnan(means["early_visual"]) and counts["early_visual"] == (0, 0)
    with pytest.raises(ValueError, match=r"labels \[7\] are not in names"):
        roi_summary(values, np.where(labels == 4, 7, labels), names)


def test_label_name_parsing():
    assert glasser_area("L_A1_ROI") == ("L", "A1")
    assert glasser_area("R_STSdp_ROI-rh") == ("R", "STSdp")
    assert glasser_area("lh.L_44_ROI") == ("L", "44")
    with pytest.raises(ValueError, match="not an HCP-MMP1 label"):
        glasser_area("7Networks_LH_Vis_1")
    assert schaefer_network("7Networks_LH_Default_Temp_1") == ("LH", "Default")
    assert schaefer_network("17Networks_RH_DorsAttnA_SPL_2") == ("RH", "DorsAttnA")
    with pytest.raises(ValueError, match="no '_LH_'/'_RH_' token"):
        schaefer_network("L_A1_ROI")
    assert set(GLASSER_ROI_GROUPS["early_auditory"]) >= {"A1", "LBelt", "PBelt", "MBelt"}
    assert len(GLASSER_ROI_GROUPS["late_language"]) == 16


def test_schaefer_parcels_grouped_by_network_and_merged():
    parcels = np.array(["7Networks_LH_Vis_1", "7Networks_RH_Vis_1", "7Networks_LH_Default_Temp_1",
                        "7Networks_RH_Default_PFC_2", "7Networks_LH_Vis_2"])
    values = np.array([0.1, 0.3, 0.5, 0.7, np.nan])
    networks = {}
    for name in parcels:
        networks.setdefault(schaefer_network(name)[1], []).append(name)
    assert roi_summary(values, parcels, groups=networks) == pytest.approx(
        {"Vis": 0.2, "Default": 0.6})
    merged = roi_summary(values, parcels, merge_hemispheres=True)
    assert merged["7Networks_Vis_1"] == pytest.approx(0.2)
    assert np.isnan(merged["7Networks_Vis_2"])
