"""Algonauts 2025 / Friends layout: files written in the published layout are read back into a Study with the
right TR clock (row j at 1.49 j + 0.745 s, the middle of volume j; 5 TRs trimmed at each edge by default, as the
challenge baseline), Movie10 transcripts found under their published names, missing runs/stimuli listed, bad
files refused naming the file, and training runs unchanged on it. The conventions' numbers are literals here."""
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
    assert run.timing.tr == 1.49 and run.timing.first_tr_s == pytest.approx(0.745) and run.timing.n_trs == int(24 // 1.49)
    np.testing.assert_allclose(run.timing.times()[:3], [0.745, 2.235, 3.725])
    life = [study.runs["life01_run-1"], study.runs["life01_run-2"]]
    assert life[0].stimulus == life[1].stimulus and life[0].stimulus.name == "life01.mkv"
    assert life[0].words.name == life[1].words.name == "movie10_life01.tsv"
    assert study.showings() == {str(life[0].stimulus): ["life01_run-1", "life01_run-2"]}
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
    # the 1.49 s before each row's time (the middle of its volume), as the writer plants it
    amp = np.array([np.abs(crop(wave, t - 1.49, t, 16000) @ probe) for t in run.timing.times()])
    x = haemodynamic(amp[:, None])[:, 0]
    y = study.sources[("sub-01", "s06e01a")].read()
    r = np.array([np.corrcoef(x, y[:, k])[0, 1] for k in range(y.shape[1])])
    audio = truth["audio_targets"]["sub-01"]
    assert r[audio].min() > 0.6
    assert np.delete(r, audio).max() < r[audio].min()


def test_burst_at_known_second_lands_on_tr5(tmp_path):
    """Volume j is acquired over movie time [1.49 j, 1.49 (j + 1)) (fMRI onset = movie onset); a burst at
    7.45-7.95 s falls in volume 5, whose row sits at its middle, 1.49 * 5 + 0.745 = 8.195 s."""
    sr, seconds = 16000, 12.0
    wave = np.zeros(int(seconds * sr), np.float32)
    wave[int(7.45 * sr) : int(7.95 * sr)] = 0.8 * np.sin(2 * np.pi * 440 * np.arange(int(0.5 * sr)) / sr)
    frames = np.zeros((int(seconds * 8), 16, 16, 3), np.uint8)
    write_movie(tmp_path / "stimuli/movies/friends/s1/friends_s01e01a.mkv", frames, wave)
    (tmp_path / "fmri/sub-01/func").mkdir(parents=True)
    with h5py.File(tmp_path / "fmri/sub-01/func/sub-01_task-friends_desc-s123456_bold.h5", "w") as f:
        f["ses-001_task-s01e01a"] = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    run = algonauts.open_study(tmp_path).runs["s01e01a"]
    assert run.timing.times()[5] == pytest.approx(8.195)
    audio = load_audio(run.stimulus, sr)
    volume = [np.abs(crop(audio, t - 0.745, t + 0.745, sr)).sum() for t in run.timing.times()]  # each row's volume
    assert int(np.argmax(volume)) == 5 == time_to_index(7.45, 1 / 1.49, run.timing.first_tr_s - 0.745)
    assert audio_info(run.stimulus)[0] == pytest.approx(seconds, abs=0.05)


def test_movie10_transcripts_showings_and_default_trim(tmp_path):
    """Movie10 as published, written by hand: ``life01.mkv`` shown twice (``_run-1``, ``_run-2``) with its words
    in ``movie10_life01.tsv``; after the default trim of 5 TRs at each edge, row 0 is volume 5, at 8.195 s."""
    sr, seconds = 16000, 24.0
    write_movie(tmp_path / "stimuli/movies/movie10/life/life01.mkv", np.zeros((int(seconds * 8), 16, 16, 3), np.uint8),
                np.zeros(int(seconds * sr), np.float32))
    tsv = tmp_path / "stimuli/transcripts/movie10/life/movie10_life01.tsv"
    tsv.parent.mkdir(parents=True)
    rows = ["text_per_tr\twords_per_tr\tonsets_per_tr\tdurations_per_tr"] + ["\t[]\t[]\t[]"] * 16
    rows[3] = "planet earth\t['planet', 'earth']\t[3.1, 3.6]\t[0.4, 0.3]"  # chunk 2 = [2.98, 4.47) s
    tsv.write_text("\n".join(rows) + "\n")
    (tmp_path / "fmri/sub-01/func").mkdir(parents=True)
    with h5py.File(tmp_path / "fmri/sub-01/func/sub-01_task-movie10_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_bold.h5",
                   "w") as f:
        for key in ("ses-004_task-life01_run-1", "ses-009_task-life01_run-2"):
            f[key] = np.random.default_rng(0).standard_normal((16, 5)).astype(np.float32)
    study = algonauts.open_study(tmp_path)
    assert sorted(study.runs) == ["life01_run-1", "life01_run-2"] and study.problems == []
    for run in study.runs.values():
        assert run.words == tsv
        assert [(w.text, w.start_s) for w in read_transcript_tsv(run.words, 1.49)] == [("planet", 3.1), ("earth", 3.6)]
    assert study.showings() == {str(tmp_path / "stimuli/movies/movie10/life/life01.mkv"): ["life01_run-1", "life01_run-2"]}
    trimmed = open_study(load_config(None, ["data.format=algonauts", f"data.root={tmp_path}"]).data)
    timing = trimmed.runs["life01_run-1"].timing
    assert timing.n_trs == 16 - 10 and timing.first_tr_s == pytest.approx(8.195) and trimmed.trimmed_trs == 5
    raw = study.sources[("sub-01", "life01_run-2")].read()
    np.testing.assert_array_equal(trimmed.sources[("sub-01", "life01_run-2")].read(), raw[5:11])


def test_missing_run_and_missing_stimulus_are_listed(copy):
    with h5py.File(h5_of(copy, "sub-02"), "a") as f:
        del f["ses-001_task-s06e01a"]
    with h5py.File(h5_of(copy, "sub-01"), "a") as f:
        f["ses-009_task-s09e09a"] = np.zeros((5, 12), np.float32)
    (copy / "stimuli/transcripts/friends/s6/friends_s06e01b.tsv").unlink()
    study = algonauts.open_study(copy)
    assert study.runs["s06e01b"].words is None and any("s06e01b" in p and "friends_s06e01b.tsv" in p for p in study.problems)
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
    with pytest.raises(DataError, match=r"sub-01_task-friends.*\.h5.*friends_s06e01a\.mkv.*40 rows"):
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


def test_cached_trimmed_region_sources_keep_their_own_run(friends, tmp_path):
    """Every run of a participant lives in one .h5; trimmed, region-selected and cached, two runs of equal length
    must still read their own rows (the cache key names the dataset and the cut)."""
    cfg = load_config(None, ["data.format=algonauts", f"data.root={friends}", "data.regions=[STS]", f"data.cache_dir={tmp_path}"])
    study = open_study(cfg.data)
    truth = json.loads((friends / "ground_truth.json").read_text())
    with h5py.File(h5_of(friends, "sub-01"), "r") as f:
        for run, key in (("s06e01a", "ses-001_task-s06e01a"), ("s06e01b", "ses-002_task-s06e01b")):
            for _ in range(2):  # computed, then read back from the cache
                np.testing.assert_array_equal(study.sources[("sub-01", run)].read(), f[key][5:-5][:, truth["audio_targets"]["sub-01"]])


def test_training_runs_unchanged_on_friends_layout(tmp_path):
    from braintune.commands.train import train

    cfg = load_config("configs/demo.yaml", [
        "data.format=synthetic_friends", f"data.root={tmp_path}/data", f"out_dir={tmp_path}/out", "data.heldout_participants=[]",
        # 30 s = 20 TRs, 10 left after the default trim: one 8-TR segment per run
        "data.synthetic_friends.participants=2", "data.synthetic_friends.episodes=2", "data.synthetic_friends.episode_seconds=30",
        "data.synthetic_friends.targets=[12,15]",
        "trainer.max_epochs=1", "alignment.after_training=false", "trainer.progress_bar=false", f"data.cache_dir={tmp_path}/cache"])
    summary = train(cfg)
    assert summary["participants"] == ["sub-01", "sub-02"] and summary["n_targets"] == {"sub-01": 12, "sub-02": 15}
    assert summary["runs"]["test"] == ["s06e02a", "s06e02b"]
    assert summary["runs"]["train"] == ["life01_run-1", "life01_run-2"]  # both showings of Life in one split
    assert np.isfinite(summary["best_val_pearson"]) and (tmp_path / "out" / "summary.json").is_file()
