"""Algonauts 2025 / Friends layout: files written in the published layout are read back into a Study with the
right TR clock (row j <-> j * 1.49 s), missing runs/stimuli listed, bad files refused naming the file, and
training runs unchanged on it."""
import json
import shutil

import h5py
import numpy as np
import pytest

from braintune.config import load_config
from braintune.data.formats import algonauts, open_study
from braintune.data.formats.synthetic_friends import FriendsSpec, haemodynamic, write_friends_dataset, write_movie
from braintune.data.stimuli import StimulusError, audio_info, crop, load_audio
from braintune.data.study import DataError
from braintune.data.timing import time_to_index
from braintune.data.words import read_transcript_tsv

SPEC = FriendsSpec(participants=2, episodes=2, episode_seconds=24.0, targets=[12, 15], noise=0.3, seed=1)


@pytest.fixture(scope="module")
def friends(tmp_path_factory):
    return write_friends_dataset(tmp_path_factory.mktemp("friends"), SPEC)


@pytest.fixture
def copy(friends, tmp_path):
    return shutil.copytree(friends, tmp_path / "d")


def h5_of(root, p, task="friends"):
    return next((root / "fmri" / p / "func").glob(f"*task-{task}_*.h5"))


def test_layout_read_back(friends):
    study = algonauts.open_study(friends)
    assert study.participants == ["sub-01", "sub-02"]
    assert sorted(study.runs) == ["life01_run-1", "life01_run-2", "s06e01a", "s06e01b", "s06e02a", "s06e02b"]
    assert study.default_test_runs == ["s06e02a", "s06e02b"] and study.default_val_runs == ["s06e01a", "s06e01b"]
    run = study.runs["s06e01a"]
    assert run.stimulus.name == "friends_s06e01a.mkv" and run.stimulus.parent.name == "s6"
    assert run.timing.tr == 1.49 and run.timing.first_tr_s == 0.0 and run.timing.n_trs == int(24 // 1.49)
    assert study.runs["life01_run-2"].stimulus == study.runs["life01_run-1"].stimulus
    assert study.sources[("sub-02", "s06e01a")].shape() == (run.timing.n_trs, 15)
    assert study.problems == []
    words = read_transcript_tsv(run.words, 1.49)
    assert words and all(w.text == "tone" for w in words)


def test_audio_driven_targets_follow_decoded_audio(friends):
    """Per-TR loudness of the 660 Hz tones in the decoded .mkv audio (the other pitches are distractors),
    convolved with the HRF, predicts exactly the planted audio targets."""
    study = algonauts.open_study(friends)
    truth = json.loads((friends / "ground_truth.json").read_text())
    run = study.runs["s06e01a"]
    wave = load_audio(run.stimulus, 16000)
    probe = np.exp(-2j * np.pi * 660.0 * np.arange(int(1.49 * 16000)) / 16000)
    amp = np.array([np.abs(crop(wave, t, t + 1.49, 16000) @ probe) for t in run.timing.times()])
    x = haemodynamic(amp[:, None])[:, 0]
    y = study.sources[("sub-01", "s06e01a")].read()
    r = np.array([np.corrcoef(x, y[:, k])[0, 1] for k in range(y.shape[1])])
    audio = truth["audio_targets"]["sub-01"]
    assert r[audio].min() > 0.6
    assert np.delete(r, audio).max() < r[audio].min()


def test_burst_at_known_second_lands_on_tr5(tmp_path):
    sr, seconds = 16000, 12.0
    wave = np.zeros(int(seconds * sr), np.float32)
    wave[int(7.45 * sr) : int(7.95 * sr)] = 0.8 * np.sin(2 * np.pi * 440 * np.arange(int(0.5 * sr)) / sr)
    frames = np.zeros((int(seconds * 8), 16, 16, 3), np.uint8)
    write_movie(tmp_path / "stimuli/movies/friends/s1/friends_s01e01a.mkv", frames, wave)
    (tmp_path / "fmri/sub-01/func").mkdir(parents=True)
    with h5py.File(tmp_path / "fmri/sub-01/func/sub-01_task-friends_desc-s123456_bold.h5", "w") as f:
        f["ses-001_task-s01e01a"] = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    run = algonauts.open_study(tmp_path).runs["s01e01a"]
    audio = load_audio(run.stimulus, sr)
    energy = [np.abs(crop(audio, t, t + run.timing.tr, sr)).sum() for t in run.timing.times()]
    assert int(np.argmax(energy)) == 5 == time_to_index(7.45, 1 / run.timing.tr, run.timing.first_tr_s)
    assert audio_info(run.stimulus)[0] == pytest.approx(seconds, abs=0.05)


def test_missing_run_and_missing_stimulus_are_listed(copy):
    with h5py.File(h5_of(copy, "sub-02"), "a") as f:
        del f["ses-001_task-s06e01a"]
    with h5py.File(h5_of(copy, "sub-01"), "a") as f:
        f["ses-009_task-s09e09a"] = np.zeros((5, 12), np.float32)
    study = algonauts.open_study(copy)
    assert ("sub-02", "s06e01a") not in study.sources and ("sub-01", "s06e01a") in study.sources
    assert "s09e09a" not in study.runs
    assert any("s06e01a" in p and "sub-02" in p for p in study.problems)
    assert any("s09e09a" in p and "friends_s09e09a" in p for p in study.problems)


def test_participant_without_runs_is_listed(copy):
    (copy / "fmri/sub-07/func").mkdir(parents=True)
    study = algonauts.open_study(copy)
    assert "sub-07" not in study.participants and any("sub-07" in p for p in study.problems)


def test_response_longer_than_stimulus_names_file(copy):
    with h5py.File(h5_of(copy, "sub-01"), "a") as f:
        del f["ses-001_task-s06e01a"]
        f["ses-001_task-s06e01a"] = np.zeros((40, 12), np.float32)  # 59.6 s for a 24 s episode
    with h5py.File(h5_of(copy, "sub-02"), "a") as f:
        del f["ses-001_task-s06e01a"]
        f["ses-001_task-s06e01a"] = np.zeros((40, 15), np.float32)
    with pytest.raises(DataError, match=r"sub-01_task-friends.*\.h5.*40 TRs.*friends_s06e01a\.mkv"):
        algonauts.open_study(copy)


def test_mismatched_target_counts_name_file(copy):
    with h5py.File(h5_of(copy, "sub-01"), "a") as f:
        n = f["ses-001_task-s06e01a"].shape[0]
        del f["ses-001_task-s06e01a"]
        f["ses-001_task-s06e01a"] = np.zeros((n, 11), np.float32)
    with pytest.raises(DataError, match=r"sub-01.*different target counts.*sub-01_task-friends"):
        algonauts.open_study(copy)


def test_truncated_h5_names_file(copy):
    path = h5_of(copy, "sub-01")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=path.name):
        algonauts.open_study(copy)


def test_truncated_and_corrupt_mkv_name_file(copy):
    mkv = copy / "stimuli/movies/friends/s6/friends_s06e01a.mkv"
    mkv.write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 2])
    with pytest.raises(StimulusError, match="friends_s06e01a.mkv.*truncated"):
        load_audio(mkv, 16000)
    mkv.write_bytes(b"\x00" * 5000)
    with pytest.raises(DataError, match="friends_s06e01a.mkv"):
        algonauts.open_study(copy)


def test_region_selection_keeps_sts_targets(friends):
    cfg = load_config(None, ["data.format=algonauts", f"data.root={friends}", "data.regions=[STS]"])
    study = open_study(cfg.data)
    truth = json.loads((friends / "ground_truth.json").read_text())
    for p in study.participants:
        src = study.sources[(p, "s06e01a")]
        assert list(src.columns) == truth["audio_targets"][p]
        assert src.read().shape[1] == len(truth["audio_targets"][p])
    with pytest.raises(DataError, match="match no label"):
        open_study(load_config(None, ["data.format=algonauts", f"data.root={friends}", "data.regions=[Hippocampus]"]).data)


def test_training_runs_unchanged_on_friends_layout(tmp_path):
    from braintune.commands.train import train

    cfg = load_config("configs/demo.yaml", [
        "data.format=synthetic_friends", f"data.root={tmp_path}/data", f"out_dir={tmp_path}/out", "data.heldout_participants=[]",
        "data.synthetic_friends.participants=2", "data.synthetic_friends.episodes=2", "data.synthetic_friends.episode_seconds=24",
        "data.synthetic_friends.targets=[12,15]",
        "trainer.max_epochs=1", "alignment.after_training=false", "trainer.progress_bar=false", f"data.cache_dir={tmp_path}/cache"])
    summary = train(cfg)
    assert summary["participants"] == ["sub-01", "sub-02"] and summary["n_targets"] == {"sub-01": 12, "sub-02": 15}
    assert summary["runs"]["test"] == ["s06e02a", "s06e02b"]
    assert np.isfinite(summary["best_val_pearson"]) and (tmp_path / "out" / "summary.json").is_file()
