"""BIDS volumes and surfaces: NIfTI/GIfTI + events.tsv + _bold.json read back into a Study; a stimulus event at a
known second lands on the expected TR given the events onset; masks, atlases and bad files are checked."""
import json

import nibabel as nib
import numpy as np
import pytest
import soundfile as sf

from braintune.data.formats import bids
from braintune.data.stimuli import crop, load_audio
from braintune.data.study import DataError

TR, ONSET, SR = 1.5, 3.0, 16000


def write_bids(root, n_trs=20, participants=("sub-01", "sub-02"), surface=False, seconds=24.0):
    """Stimulus with a loud burst at 10.5 s of audio; scan starts ONSET s before the audio."""
    wave = np.zeros(int(seconds * SR), np.float32)
    wave[int(10.5 * SR) : int(11.0 * SR)] = 0.9
    (root / "stimuli").mkdir(parents=True, exist_ok=True)
    sf.write(root / "stimuli" / "pieman.wav", wave, SR)
    rng = np.random.default_rng(0)
    for p in participants:
        func = root / p / "func"
        func.mkdir(parents=True, exist_ok=True)
        stem = f"{p}_task-pieman_run-1"
        (func / f"{stem}_events.tsv").write_text(f"onset\tduration\tstim_file\n{ONSET}\t{seconds}\tpieman.wav\n")
        if surface:
            for hemi, n_v in (("L", 7), ("R", 5)):
                img = nib.GiftiImage(darrays=[nib.gifti.GiftiDataArray(rng.standard_normal(n_v).astype(np.float32)) for _ in range(n_trs)])
                nib.save(img, func / f"{stem}_hemi-{hemi}_space-fsaverage5_bold.func.gii")
            (func / f"{stem}_hemi-L_space-fsaverage5_bold.json").write_text(json.dumps({"RepetitionTime": TR}))
        else:
            data = rng.standard_normal((4, 4, 3, n_trs)).astype(np.float32)
            img = nib.Nifti1Image(data, np.eye(4))
            img.header.set_zooms((3, 3, 3, TR))
            nib.save(img, func / f"{stem}_space-MNI_desc-preproc_bold.nii.gz")
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1:3, 1:3, :] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), root / "mask.nii.gz")
    atlas = np.zeros((4, 4, 3), np.int16)
    atlas[:2], atlas[2:] = 3, 8
    nib.save(nib.Nifti1Image(atlas, np.eye(4)), root / "atlas.nii.gz")
    return root


def test_volumes_through_mask_and_atlas(tmp_path):
    root = write_bids(tmp_path)
    study = bids.open_study(root, mask=str(root / "mask.nii.gz"))
    assert study.participants == ["sub-01", "sub-02"] and list(study.runs) == ["pieman_run-1"]
    run = study.runs["pieman_run-1"]
    assert run.timing.tr == TR and run.timing.n_trs == 20 and run.timing.first_tr_s == -2.25  # middle of volume 0: 0.75 - 3.0
    y = study.sources[("sub-01", "pieman_run-1")].read()
    raw = nib.load(next((root / "sub-01/func").glob("*.nii.gz"))).get_fdata()
    assert y.shape == (20, 12) and np.allclose(y[:, 0], raw[1, 1, 0])
    parcels = bids.open_study(root, atlas=str(root / "atlas.nii.gz")).sources[("sub-01", "pieman_run-1")].read()
    assert parcels.shape == (20, 2) and np.allclose(parcels[:, 0], raw[:2].reshape(-1, 20).mean(0), atol=1e-5)


def test_burst_lands_on_expected_tr(tmp_path):
    """Audio time 10.5 s = scan time 13.5 s = volume 9 (acquired 13.5-15.0 s of scan) at TR 1.5 s with the stimulus
    starting 3 s into the scan; row 9 sits at the middle of volume 9: 9.5 * 1.5 - 3.0 = 11.25 s of audio."""
    run = bids.open_study(write_bids(tmp_path), mask=str(tmp_path / "mask.nii.gz")).runs["pieman_run-1"]
    assert run.timing.times()[9] == pytest.approx(11.25)
    audio = load_audio(run.stimulus, SR)
    energy = [np.abs(crop(audio, t - 0.75, t + 0.75, SR)).sum() for t in run.timing.times()]  # each row's volume
    assert int(np.argmax(energy)) == 9


def test_surfaces_concatenate_hemispheres(tmp_path):
    study = bids.open_study(write_bids(tmp_path, surface=True))
    assert study.sources[("sub-02", "pieman_run-1")].read().shape == (20, 12)
    assert study.runs["pieman_run-1"].timing.tr == TR


def test_atlas_shape_mismatch_names_files(tmp_path):
    root = write_bids(tmp_path)
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.int16), np.eye(4)), root / "bad_atlas.nii.gz")
    study = bids.open_study(root, mask=str(root / "mask.nii.gz"))
    bad = bids.ImageResponse(study.sources[("sub-01", "pieman_run-1")].path, atlas=root / "bad_atlas.nii.gz")
    with pytest.raises(DataError, match=r"bad_atlas\.nii\.gz.*\(5, 5, 5\).*sub-01_task-pieman"):
        bad.read()


def test_truncated_nifti_names_file(tmp_path):
    root = write_bids(tmp_path)
    path = next((root / "sub-02/func").glob("*.nii.gz"))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=path.name):
        bids.open_study(root, mask=str(root / "mask.nii.gz"))


def test_response_longer_than_stimulus_names_file(tmp_path):
    root = write_bids(tmp_path, n_trs=40, seconds=20.0)  # 60 s of scan for a stimulus ending at 23 s
    with pytest.raises(DataError, match=r"sub-01_task-pieman.*40 volumes.*pieman\.wav"):
        bids.open_study(root, mask=str(root / "mask.nii.gz"))


def test_events_missing_columns_and_empty_participant(tmp_path):
    root = write_bids(tmp_path)
    (root / "sub-03" / "func").mkdir(parents=True)
    study = bids.open_study(root, mask=str(root / "mask.nii.gz"))
    assert any("sub-03" in p for p in study.problems)
    events = root / "sub-01/func/sub-01_task-pieman_run-1_events.tsv"
    events.write_text("onset\tduration\n3.0\t24\n")
    with pytest.raises(DataError, match=r"sub-01_task-pieman_run-1_events\.tsv.*stim_file"):
        bids.open_study(root, mask=str(root / "mask.nii.gz"))


def test_corrupt_wav_names_file(tmp_path):
    root = write_bids(tmp_path)
    (root / "stimuli" / "pieman.wav").write_bytes(b"RIFF" + b"\x00" * 100)
    with pytest.raises(DataError, match="pieman.wav"):
        bids.open_study(root, mask=str(root / "mask.nii.gz"))


def test_maskers_match_numpy_oracles(tmp_path):
    """nilearn's maskers give every mask voxel in C order over (i, j, k) (brain maps paint them back in that order)
    and each parcel's mean, parcels in ascending atlas id."""
    root = write_bids(tmp_path)
    path = next((root / "sub-01/func").glob("*.nii.gz"))
    raw = nib.load(path).get_fdata()
    mask = nib.load(root / "mask.nii.gz").get_fdata() != 0
    np.testing.assert_allclose(bids.ImageResponse(path, mask=root / "mask.nii.gz").read(), raw[mask].T, rtol=1e-6)
    atlas = nib.load(root / "atlas.nii.gz").get_fdata()
    means = np.stack([raw[atlas == i].mean(0) for i in (3, 8)], 1)
    np.testing.assert_allclose(bids.ImageResponse(path, atlas=root / "atlas.nii.gz").read(), means, rtol=1e-5)
