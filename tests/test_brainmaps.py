"""Brain maps: painted arrays equal the planted parcel/voxel/vertex maps before drawing; every picture renders."""
import sys
import types
from pathlib import Path

import matplotlib.image as mpimg  # reading PNGs needs no backend; brainmaps draws with Agg
import nibabel as nib
import numpy as np
import pytest

from braintune.evaluation import brainmaps as bm
from braintune.evaluation.brainmaps import draw, paint

N5 = bm.FSAVERAGE5_VERTICES


def _mni_halves() -> nib.Nifti1Image:
    """An 8 mm MNI grid whose left half (x < 0) is parcel 1 and right half parcel 2 (voxel edges at x = 0)."""
    affine = np.diag([8.0, 8.0, 8.0, 1.0])
    affine[:3, 3] = [-100, -132, -78]
    shape = (25, 30, 25)
    x = (np.indices(shape)[0] * 8.0) - 100
    return nib.Nifti1Image(np.where(x < 0, 1, 2).astype(np.int16), affine)


def test_paint_parcels_equals_planted_map(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, size=(6, 5, 4))  # ids 1..5, 0 background
    path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels.astype(np.int16), np.eye(4)), path)
    values = np.array([0.1, -0.2, 0.3, np.nan, 0.5])
    painted = bm.paint_parcels(values, path).get_fdata()
    expected = np.where(labels > 0, np.r_[np.nan, values][labels], np.nan)  # target j = parcel j + 1
    np.testing.assert_array_equal(painted, expected.astype(np.float32))

    gappy = np.where(labels > 0, labels * 10 + 3, 0)  # ids 13, 23, ..., 53 in an explicit order
    ids = np.array([53, 13, 33, 23, 43])
    painted = bm.paint_parcels(values, nib.Nifti1Image(gappy.astype(np.int16), np.eye(4)), parcel_ids=ids).get_fdata()
    for value, pid in zip(values, ids):
        np.testing.assert_array_equal(painted[gappy == pid], np.float32(value))
    assert np.isnan(painted[gappy == 0]).all()


def test_paint_parcels_refuses_a_mismatch(tmp_path):
    path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(1, 6, dtype=np.int16).reshape(5, 1, 1), np.eye(4)), path)
    with pytest.raises(ValueError, match=r"4 values but atlas .*atlas.nii.gz' has 5 parcels"):
        bm.paint_parcels(np.zeros(4), path)
    with pytest.raises(ValueError, match=r"parcel ids \[9\]"):
        bm.paint_parcels(np.zeros(2), path, parcel_ids=[1, 9])
    with pytest.raises(ValueError, match="cannot read"):
        bm.paint_parcels(np.zeros(5), tmp_path / "missing.nii.gz")


def test_paint_mask_writes_voxels_back_in_c_order(tmp_path):
    mask = np.zeros((4, 3, 2), bool)
    mask[1, :, 1] = mask[3, 2, :] = True  # 5 voxels
    path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4)), path)
    values = np.arange(5, dtype=np.float32) + 1
    painted = bm.paint_mask(values, path).get_fdata()
    np.testing.assert_array_equal(painted[mask], values)  # boolean indexing is C order, as the BIDS reader's
    assert np.isnan(painted[~mask]).all()
    kept = bm.paint_mask([7.0, 8.0], path, targets=[4, 0]).get_fdata()[mask]
    np.testing.assert_array_equal(kept, [8.0, np.nan, np.nan, np.nan, 7.0])
    with pytest.raises(ValueError, match=r"4 values .* mask .*mask.nii.gz' has 5 voxels"):
        bm.paint_mask(np.zeros(4), path)


def test_to_fsaverage5_takes_each_hemispheres_first_vertices():
    n6 = 40962
    left, right = np.arange(n6, dtype=float), -np.arange(n6, dtype=float) - 1  # planted per-vertex ids
    out = bm.to_fsaverage5(np.concatenate([left, right]))  # fsaverage6, L then R
    np.testing.assert_array_equal(out, np.concatenate([left[:N5], right[:N5]]))
    same = np.random.default_rng(1).normal(size=2 * N5)
    np.testing.assert_array_equal(bm.to_fsaverage5(same), same)
    with pytest.raises(ValueError, match="fsaverage6"):
        bm.to_fsaverage5(np.zeros(1000))


def test_fsaverage_meshes_are_nested():
    """What the subsampling rests on: fsaverage5's meshes have 10,242 vertices a hemisphere (nilearn's copy)."""
    mesh, sulc = paint._fsaverage5()
    assert mesh["inflated"].parts["left"].n_vertices == N5 == sulc.data.parts["right"].shape[0]


def test_volume_projection_keeps_each_hemisphere_on_its_parcel():
    atlas = _mni_halves()
    values = bm.volume_to_fsaverage5(bm.paint_parcels(np.array([-1.0, 2.0]), atlas))
    assert values.shape == (2 * N5,) and np.all((values >= -1 - 1e-9) & (values <= 2 + 1e-9))
    mesh, _ = paint._fsaverage5()
    for hemi, part, planted in (("left", values[:N5], -1.0), ("right", values[N5:], 2.0)):
        # trilinear sampling mixes the parcels within a voxel (8 mm) of the midline only
        far = np.minimum(*(np.abs(mesh[m].parts[hemi].coordinates[:, 0]) for m in ("pial", "white_matter"))) > 8
        assert far.mean() > 0.75 and np.allclose(part[far], planted)
    winners = bm.winner_take_all(np.array([[0.3, 0.1], [0.2, 0.4]]))  # parcel 1: kind 0, parcel 2: kind 1
    np.testing.assert_array_equal(winners, [0.0, 1.0])
    labels = bm.volume_to_fsaverage5(bm.paint_parcels(winners, atlas), categorical=True)
    assert set(np.unique(labels)) <= {0.0, 1.0}  # never an average of two labels
    assert np.mean(labels[:N5] == 0) > 0.99 and np.mean(labels[N5:] == 1) > 0.99


def test_winner_take_all_marks_targets_without_scores():
    scores = np.array([[0.1, np.nan, 0.5, np.nan], [0.3, 0.2, 0.4, np.nan]])
    np.testing.assert_array_equal(bm.winner_take_all(scores), [1.0, 1.0, 0.0, np.nan])


def _check_png(path, shape):
    assert path.is_file() and path.stat().st_size > 10_000
    pixels = mpimg.imread(path)
    assert pixels.shape[:2] == shape
    assert pixels[..., :3].std() > 0.01  # not one colour


@pytest.fixture(scope="module")
def planted():
    atlas = _mni_halves()
    volume = bm.paint_parcels(np.array([-0.2, 0.4]), atlas)
    return volume, bm.volume_to_fsaverage5(volume)


@pytest.mark.parametrize("kind", ["r", "normalized", "difference", "winner"])
def test_surface_pictures_render(tmp_path, planted, kind):
    _, vertices = planted
    path = tmp_path / f"{kind}.png"
    if kind == "r":
        bm.draw_r_map(vertices, path)
    elif kind == "normalized":
        bm.draw_normalized_r_map(np.abs(vertices) * 2, path)
    elif kind == "difference":
        bm.draw_difference_map(vertices, vertices / 2, path, significant=vertices > 0)
    else:
        bm.draw_winner_map((vertices > 0).astype(float), ["layer 3", "layer 9"], path)
    _check_png(path, (340, 1200))  # SURFACE_FIGSIZE at dpi 100


@pytest.mark.parametrize("kind", ["glass", "slices"])
def test_volume_pictures_render(tmp_path, planted, kind):
    volume, _ = planted
    path = tmp_path / f"{kind}.png"
    (bm.draw_glass_brain if kind == "glass" else bm.draw_slices)(volume, path)
    _check_png(path, (300, 1000))  # VOLUME_FIGSIZE at dpi 100


def test_pictures_refuse_values_not_on_fsaverage5(tmp_path):
    with pytest.raises(ValueError, match="to_fsaverage5 or volume_to_fsaverage5"):
        bm.draw_r_map(np.zeros(100), tmp_path / "r.png")
    with pytest.raises(ValueError, match=r"integers in 0\.\.1"):
        bm.draw_winner_map(np.full(2 * N5, 2.0), ["a", "b"], tmp_path / "w.png")


def test_flatmap_says_what_is_missing(tmp_path, monkeypatch):
    out = tmp_path / "flat.png"
    reason = bm.draw_flatmap(np.zeros(3), "UTS01", tmp_path / "ds003020", out)
    assert isinstance(reason, str) and "pycortex-db" in reason and not out.exists()
    (tmp_path / "ds003020/derivative/pycortex-db/UTS01/transforms/UTS01_auto").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "cortex", None)  # import cortex -> ImportError
    reason = bm.draw_flatmap(np.zeros(3), "UTS01", tmp_path / "ds003020", out)
    assert isinstance(reason, str) and "pycortex is not importable" in reason
    assert "transform 'other'" in bm.draw_flatmap(np.zeros(3), "UTS01", tmp_path / "ds003020", out, xfm="other")


def test_flatmap_hands_the_values_to_pycortex(tmp_path, monkeypatch):
    """With a stand-in ``cortex`` module (pycortex is optional and absent here): the filestore is pointed at the
    dataset's database and the participant's values, subject and transform reach ``cortex.Volume``."""
    calls = {}
    db = types.SimpleNamespace(filestore=None, reload_subjects=lambda: calls.setdefault("reloaded", db.filestore))
    quickflat = types.SimpleNamespace(make_png=lambda f, v, **k: Path(f).write_bytes(b"png"))
    fake = types.SimpleNamespace(db=db, Volume=lambda *a, **k: calls.setdefault("volume", (a, k)), quickflat=quickflat)
    monkeypatch.setitem(sys.modules, "cortex", fake)
    root = tmp_path / "ds003020"
    (root / "derivative/pycortex-db/UTS02/transforms/UTS02_auto").mkdir(parents=True)
    out = bm.draw_flatmap(np.array([0.1, -0.3]), "UTS02", root, tmp_path / "flat.png")
    assert out == tmp_path / "flat.png" and out.read_bytes() == b"png"
    assert calls["reloaded"] == str(root / "derivative/pycortex-db")
    (values, subject, xfm), kwargs = calls["volume"]
    np.testing.assert_array_equal(values, [0.1, -0.3])
    assert (subject, xfm, kwargs["vmin"], kwargs["vmax"]) == ("UTS02", "UTS02_auto", -kwargs["vmax"], kwargs["vmax"])


# --- write_brain_maps: a result + target spaces -> data files and the arrays handed to the drawing functions ---

class _Source:
    def __init__(self, n_targets, inner=None, columns=None):
        self.n, self.inner, self.columns = n_targets, inner, columns
        if inner is None:
            del self.inner  # the file itself: no wrapper to look through
        if columns is None:
            del self.columns

    def shape(self):
        return 10, self.n


def _study(sources: dict):
    """The parts of a Study the writer reads: one run per participant, its source (wrapped or not)."""
    return types.SimpleNamespace(format="bids", sources={(p, "run"): s for p, s in sources.items()},
                                 runs_of=lambda p: ["run"])


def _result(r: dict, kept: dict, ceiling: dict | None = None, layer=3):
    from braintune.evaluation.results import AlignmentResult, ParticipantAlignment

    parts = {p: ParticipantAlignment({layer: np.asarray(v, float)}, len(v), [], [], {}, np.asarray(kept[p]),
                                     None if ceiling is None else np.asarray(ceiling[p], float)) for p, v in r.items()}
    return AlignmentResult(layer, parts, min_ceiling=0.05)


@pytest.fixture
def drawn(monkeypatch):
    """Stand-ins for the drawing functions (their pictures are tested above): record what each was handed."""
    calls = []

    def recorder(name):
        def record(*args, **kwargs):
            path = next(a for a in args if isinstance(a, Path))
            calls.append((name, path.name, args, kwargs))
            return path
        return record

    for name in ("draw_r_map", "draw_normalized_r_map", "draw_difference_map", "draw_glass_brain", "draw_slices"):
        monkeypatch.setattr(draw, name, recorder(name))
    return calls


def test_write_brain_maps_paints_the_planted_maps_before_drawing(tmp_path, drawn):
    from braintune.data.formats import TargetSpace

    n6 = 40962
    rng = np.random.default_rng(3)
    atlas = tmp_path / "atlas.nii.gz"
    nib.save(_mni_halves(), atlas)
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image((np.asarray(_mni_halves().dataobj) > 0).astype(np.uint8), _mni_halves().affine), mask)
    n_voxels = 25 * 30 * 25
    surf_cols = np.sort(rng.choice(2 * n6, 3000, replace=False))  # a region selection: 3000 of fsaverage6's vertices
    r = {"parc": [-0.2, 0.4], "surf": rng.uniform(-0.5, 0.5, 2999), "vol": np.where(np.arange(n_voxels) % 2, 0.3, -0.1)}
    kept = {"parc": [0, 1], "surf": np.arange(1, 3000), "vol": np.arange(n_voxels)}  # surf: study target 0 excluded
    ceiling = {"parc": [0.4, 0.02], "surf": np.full(2999, 0.5), "vol": np.full(n_voxels, 0.6)}
    study = _study({"parc": _Source(2), "surf": _Source(3000, _Source(2 * n6), surf_cols), "vol": _Source(n_voxels),
                    "none": _Source(4)})
    r["none"], kept["none"], ceiling["none"] = [0.1] * 4, np.arange(4), [0.5] * 4
    spaces = {"parc": TargetSpace("parcels", atlas), "surf": TargetSpace("surface"), "vol": TargetSpace("volume", mask),
              "none": None}
    out = bm.write_brain_maps(_result(r, kept, ceiling), study, spaces, tmp_path / "run" / "brain_maps")

    parcels = nib.load(tmp_path / "run/brain_maps/r_map_parc.nii.gz").get_fdata()
    halves = np.asarray(_mni_halves().dataobj)
    np.testing.assert_array_equal(parcels, np.where(halves == 1, -0.2, 0.4).astype(np.float32))
    normalized = nib.load(tmp_path / "run/brain_maps/r_map_parc_normalized.nii.gz").get_fdata()
    assert np.allclose(normalized[halves == 1], -0.5) and np.isnan(normalized[halves == 2]).all()  # ceiling < 0.05
    planted = np.full(2 * n6, np.nan)
    planted[surf_cols[1:]] = r["surf"]
    gii = [nib.load(tmp_path / f"run/brain_maps/r_map_surf_hemi-{h}.func.gii").darrays[0].data for h in "LR"]
    np.testing.assert_array_equal(np.concatenate(gii), planted.astype(np.float32))
    volume = nib.load(tmp_path / "run/brain_maps/r_map_vol.nii.gz").get_fdata()
    np.testing.assert_array_equal(volume.reshape(-1), r["vol"].astype(np.float32))

    handed = {(name, f): args for name, f, args, _ in drawn}
    np.testing.assert_array_equal(handed["draw_r_map", "r_map_surf_surface.png"][0], bm.to_fsaverage5(planted))
    np.testing.assert_allclose(handed["draw_normalized_r_map", "r_map_surf_normalized_surface.png"][0],
                               bm.to_fsaverage5(planted) / 0.5)
    shown = handed["draw_r_map", "r_map_parc_surface.png"][0]  # vol_to_surf of the painted halves
    assert np.nanmin(shown) >= -0.2 - 1e-6 and np.nanmax(shown) <= 0.4 + 1e-6 and np.mean(shown[:N5] < 0) > 0.9
    assert {("draw_glass_brain", "r_map_vol_glass.png"), ("draw_slices", "r_map_vol_slices.png")} <= set(handed)
    assert ("draw_slices", "r_map_parc_slices.png") not in handed  # parcels: surface and glass brain only
    assert not any(f.startswith("r_map_surf") for name, f in handed if name != "draw_r_map" and "normalized" not in name)
    assert "brain_maps/r_map_surf_hemi-L.func.gii" in out["surf"]["files"] and out["surf"]["notes"] == []
    assert out["none"]["files"] == [] and "gives no location for the targets of none" in out["none"]["notes"][0]


def test_write_brain_maps_draws_differences_where_significant(tmp_path, drawn):
    from braintune.data.formats import TargetSpace

    tuned = _result({"s": np.full(2 * N5, 0.3)}, {"s": np.arange(2 * N5)})
    base = _result({"s": np.full(2 * N5, 0.1)}, {"s": np.arange(2 * N5)})
    significant = np.arange(2 * N5) < N5  # the left hemisphere only
    study, spaces = _study({"s": _Source(2 * N5)}), {"s": TargetSpace("surface")}
    out = bm.write_brain_maps(tuned, study, spaces, tmp_path / "maps", "cmp", base, {"s": significant})
    assert out["s"]["files"] == ["maps/cmp_s_difference_hemi-L.func.gii", "maps/cmp_s_difference_hemi-R.func.gii",
                                 "maps/cmp_s_difference_surface.png"]
    left = nib.load(tmp_path / "maps/cmp_s_difference_hemi-L.func.gii").darrays[0].data
    right = nib.load(tmp_path / "maps/cmp_s_difference_hemi-R.func.gii").darrays[0].data
    assert np.allclose(left, 0.2) and np.isnan(right).all()
    (_, _, (t, b, _, sig), _), = drawn
    np.testing.assert_allclose(t - b, 0.2)
    np.testing.assert_array_equal(sig, significant.astype(float))
    wrong = bm.write_brain_maps(tuned, study, spaces, tmp_path / "maps", "cmp", base, {"s": significant[:5]})
    assert "pass one bool per kept target" in wrong["s"]["notes"][0]
    assert bm.write_brain_maps(tuned, study, {"s": None}, tmp_path / "maps").startswith("no brain maps")


def test_write_brain_maps_pycortex_targets_get_npz_and_a_reason_without_the_database(tmp_path):
    from braintune.data.formats import TargetSpace

    db = tmp_path / "ds003020" / "derivative" / "pycortex-db"
    db.mkdir(parents=True)  # the layout has a database, but not this participant's
    result = _result({"UTS01": [0.1, 0.2, 0.3]}, {"UTS01": [0, 2, 3]})
    out = bm.write_brain_maps(result, _study({"UTS01": _Source(4)}), {"UTS01": TargetSpace("pycortex", db, "UTS01")},
                              tmp_path / "run" / "brain_maps")
    saved = np.load(tmp_path / "run/brain_maps/r_map_UTS01.npz")
    np.testing.assert_array_equal(saved["values"], np.array([0.1, np.nan, 0.2, 0.3], np.float32))  # one per hf5 voxel
    assert out["UTS01"]["files"] == ["brain_maps/r_map_UTS01.npz"]
    assert "no flatmap for UTS01" in out["UTS01"]["notes"][0] and "pycortex-db/UTS01" in out["UTS01"]["notes"][0]
