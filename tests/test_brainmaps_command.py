"""``evaluate.py alignment`` writes brain maps where the dataset's targets live: a BIDS GIfTI surface dataset and an
Algonauts-layout parcel dataset give inflated-surface pictures, and their data files hold the r the command measured
(alignment.npz), painted onto the vertices / into the parcels. Tiny data; the tiny wav2vec2 of configs/demo.yaml."""
from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import nibabel as nib
import numpy as np
import soundfile as sf

from braintune.config import load_config

ROOT = Path(__file__).resolve().parents[1]
N5 = 10242  # fsaverage5 vertices per hemisphere
ALIGN = ["data.heldout_participants=[]", "alignment.cache_dir=null", "alignment.layers=[1]", "alignment.delays=[1,2]",
         "trainer.accelerator=cpu", "trainer.progress_bar=false"]


def _align(overrides: list[str]) -> dict:
    from braintune.commands.alignment import alignment

    return alignment(load_config(ROOT / "configs" / "demo.yaml", ALIGN + overrides))


def _picture(path: Path) -> None:
    pixels = mpimg.imread(path)
    assert pixels.shape[:2] == (340, 1200) and pixels[..., :3].std() > 0.01  # the 4-panel surface figure, not blank


def write_bids_surfaces(root: Path, tasks=("a", "b", "c"), n_trs=16, tr=1.5) -> None:
    """sub-01: three 24 s stories, fsaverage5 GIfTI runs (hemi-L, hemi-R) of random data, TR in the sidecar."""
    rng = np.random.default_rng(0)
    (root / "stimuli").mkdir(parents=True)
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    for task in tasks:
        sf.write(root / "stimuli" / f"{task}.wav", rng.standard_normal(24 * 16000).astype(np.float32) * 0.1, 16000)
        stem = f"sub-01_task-{task}_run-1"
        (func / f"{stem}_events.tsv").write_text(f"onset\tduration\tstim_file\n0.0\t24.0\t{task}.wav\n")
        for hemi in "LR":
            frames = rng.standard_normal((n_trs, N5)).astype(np.float32)
            nib.save(nib.GiftiImage(darrays=[nib.gifti.GiftiDataArray(f) for f in frames]),
                     func / f"{stem}_hemi-{hemi}_space-fsaverage5_bold.func.gii")
        (func / f"{stem}_hemi-L_space-fsaverage5_bold.json").write_text(f'{{"RepetitionTime": {tr}}}')


def test_surface_dataset_gets_surface_maps(tmp_path):
    write_bids_surfaces(tmp_path / "bids")
    out = tmp_path / "out"
    summary = _align([f"data.root={tmp_path / 'bids'}", "data.format=bids", "data.test_runs=[c_run-1]", f"out_dir={out}"])
    maps = summary["brain_maps"]["sub-01"]
    assert maps["notes"] == [] and maps["files"] == [f"brain_maps/r_map_sub-01{s}" for s in
                                                     ("_hemi-L.func.gii", "_hemi-R.func.gii", "_surface.png")]
    r = np.load(out / "alignment.npz")[f"sub-01/layer{summary['layer']}"]  # every vertex kept: (20484,)
    painted = [nib.load(out / f"brain_maps/r_map_sub-01_hemi-{h}.func.gii").darrays[0].data for h in "LR"]
    np.testing.assert_allclose(np.concatenate(painted), r, rtol=1e-6)
    _picture(out / "brain_maps" / "r_map_sub-01_surface.png")


def _mni_atlas(n: int) -> nib.Nifti1Image:
    """``n`` parcels as slabs along y on an 8 mm MNI grid (ids 1..n), so that vol_to_surf reaches the cortex."""
    affine = np.diag([8.0, 8.0, 8.0, 1.0])
    affine[:3, 3] = [-100, -132, -78]
    y = np.indices((25, 30, 25))[1]
    return nib.Nifti1Image((y * n // 30 + 1).astype(np.int16), affine)


def test_parcel_dataset_gets_surface_maps(tmp_path):
    from braintune.data.formats.synthetic_friends import FriendsSpec, write_friends_dataset

    root = write_friends_dataset(tmp_path / "friends", FriendsSpec(participants=1, episodes=2, episode_seconds=24.0,
                                                                   targets=[12], movie10=False))
    atlas = next((root / "fmri" / "sub-01" / "atlas").glob("*.nii.gz"))
    nib.save(_mni_atlas(12), atlas)  # the release's atlas is in MNI space; the synthetic one is a small box
    out = tmp_path / "out"
    summary = _align([f"data.root={root}", "data.format=algonauts", "data.val_runs=[s06e01b]", f"out_dir={out}"])
    maps = summary["brain_maps"]["sub-01"]
    assert {f"brain_maps/r_map_sub-01{s}" for s in (".nii.gz", "_surface.png", "_glass.png")} <= set(maps["files"])
    r = np.load(out / "alignment.npz")[f"sub-01/layer{summary['layer']}"]  # (12,): parcel k + 1 <-> target k
    volume = nib.load(out / "brain_maps" / "r_map_sub-01.nii.gz").get_fdata()
    labels = np.asarray(_mni_atlas(12).dataobj)
    np.testing.assert_allclose(volume, r[labels - 1], rtol=1e-6)
    _picture(out / "brain_maps" / "r_map_sub-01_surface.png")

    from braintune.report import build_report

    page = build_report(out)  # the report inlines the maps
    assert 'alt="r_map_sub-01_surface.png"' in page and 'alt="r_map_sub-01_glass.png"' in page
