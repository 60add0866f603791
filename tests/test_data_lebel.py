"""LeBel-layout files (written here, or by ``synthetic``) -> Study / Responses / segments, and clear errors for bad input."""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import soundfile as sf

from braintune.backbones import BackboneError, build_backbone
from braintune.config import ConfigError, load_config
from braintune.data.datamodule import make_splits
from braintune.data.dataset import SegmentDataset
from braintune.data.formats import lebel, synthetic
from braintune.data.modalities import StimulusSpec
from braintune.data.responses import prepare_responses
from braintune.data.stimuli import StimulusError, load_audio
from braintune.data.study import DataError
from braintune.pooling import TRPooling

SR = 16000
SECONDS = 60.0  # 60 s of audio; tests below use 25 rows (row j at 11 + 2j s: the last at 59 s)


def write_lebel(root, audio: dict, responses: dict, sr: int = SR, respdict: dict | None = None):
    """audio {story: (samples,) or (samples, channels)}; responses {participant: {story: (TRs, targets)}};
    respdict {story: scan volumes}, written as derivative/respdict.json when given."""
    (root / "stimuli").mkdir(parents=True, exist_ok=True)
    for story, wave in audio.items():
        sf.write(root / "stimuli" / f"{story}.wav", wave, sr, subtype="FLOAT")
    for p, runs in responses.items():
        d = root / "derivative" / "preprocessed_data" / p
        d.mkdir(parents=True, exist_ok=True)
        for story, y in runs.items():
            with h5py.File(d / f"{story}.hf5", "w") as f:
                f["data"] = np.asarray(y, np.float32)
    if respdict is not None:
        (root / "derivative" / "respdict.json").write_text(json.dumps(respdict))
    return root


def _noise(rng, n_trs=25, n_targets=6):
    return rng.standard_normal((n_trs, n_targets)).astype(np.float32)


def test_synthetic_dataset_reads_back(tmp_path):
    spec = synthetic.SyntheticSpec(participants=2, stories=2, story_seconds=SECONDS, targets=[5, 7], seed=3)
    study = synthetic.open_study(tmp_path / "syn", spec)
    assert study.participants == ["UTS01", "UTS02"]
    assert sorted(study.runs) == ["story01", "story02", "wheretheressmoke"]
    assert study.default_test_runs == ["wheretheressmoke"]
    run = study.runs["story01"]
    # 60 s of audio: 40 scan volumes (respdict), the hf5 lacking the first and last 10 -> 20 rows, row 0 at 11 s
    assert json.loads((tmp_path / "syn" / "derivative" / "respdict.json").read_text())["story01"] == 40
    assert run.timing.n_trs == 20 and run.timing.first_tr_s == 11.0 and run.timing.tr == 2.0
    assert study.problems == []
    assert study.sources[("UTS02", "story01")].shape() == (20, 7)
    reps = study.sources[("UTS01", "wheretheressmoke")].read_repeats()
    assert reps.shape == (synthetic.N_REPEATS, 20, 5)
    assert study.sources[("UTS01", "story01")].read_repeats() is None
    resp = prepare_responses(study, ["UTS01", "UTS02"], ["story01", "story02"])
    assert resp.n_targets == {"UTS01": 5, "UTS02": 7}
    y = resp.data[("UTS02", "story02")]
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)  # z-scored per run
    np.testing.assert_allclose(y.std(0), 1, atol=1e-4)


def test_official_arithmetic_is_accepted_with_rows_at_2j_plus_11(tmp_path):
    # ds003020 as its own code reads it: respdict = scan volumes, hf5 rows = respdict - 20, row j at 2j + 11 s of audio.
    # A story whose rows are 5 fewer than the audio length suggests (the old reader refused "53 TRs ... implies 58")
    # is accepted; the difference is reported, with both numbers.
    rng = np.random.default_rng(0)
    audio = {"a": np.zeros(int(136.0 * SR), np.float32), "b": np.zeros(int(60.0 * SR), np.float32)}
    respdict = {"a": 73, "b": 40}  # a: 53 rows for 136 s (the audio-length guess is 58); b: 20 rows
    write_lebel(tmp_path, audio, {"UTS01": {"a": _noise(rng, 53), "b": _noise(rng, 20)}}, respdict=respdict)
    study = lebel.open_study(tmp_path)
    np.testing.assert_array_equal(study.runs["a"].timing.times(), 11.0 + 2.0 * np.arange(53))
    np.testing.assert_array_equal(study.runs["b"].timing.times(), 11.0 + 2.0 * np.arange(20))
    assert [p for p in study.problems if "'a'" in p and "53 rows" in p and "implies 58" in p]
    assert not [p for p in study.problems if "respdict" in p]  # 73 - 20 = 53, 40 - 20 = 20: consistent
    (tmp_path / "derivative" / "respdict.json").write_text(json.dumps({"a": 75, "b": 40}))
    study = lebel.open_study(tmp_path)
    assert [p for p in study.problems if "respdict" in p and "55" in p and "53" in p]


def test_planted_click_lands_in_expected_row(tmp_path):
    # Click at audio second 20.5. Row j sits at t_j = 11 + 2j and pools [t_j - 2, t_j]:
    # 20.5 in [t_j - 2, t_j] <=> j in [4.75, 5.75] -> j = 5 (t_5 = 21, window [19, 21]).
    click_s, expected_row = 20.5, 5
    wave = np.zeros(int(SECONDS * SR), np.float32)
    i = int(click_s * SR)
    wave[i : i + 80] = 1.0
    rng = np.random.default_rng(0)
    write_lebel(tmp_path, {"s1": wave}, {"UTS01": {"s1": _noise(rng)}})
    study = lebel.open_study(tmp_path)
    pool = TRPooling(window_s=2.0, lag_s=0.0, n_windows=1, combine="mean")
    ds = SegmentDataset(study.runs, {("UTS01", "s1"): _noise(rng)}, ["UTS01"], segment_trs=25, span=pool.span,
                        context_s=1.0, spec=StimulusSpec(("audio",), SR))
    item = ds[0]
    assert item["start"] == 0 and len(item["tr_times"]) == 25
    # Treat audio samples as "frames" at 16 kHz: pooling |audio| per TR must peak at the expected row.
    audio = np.abs(item["audio"])
    w = pool.weights(item["tr_times"][None], np.array([item["start_s"]]), SR, len(audio))  # (1, K, 1, S)
    energy = (w[0, :, 0] * audio).sum(-1).numpy()
    assert int(np.argmax(energy)) == expected_row
    assert np.count_nonzero(energy > 1e-3) == 1  # and nowhere else


def test_gross_row_count_mismatch_names_files(tmp_path):
    # 35 rows reach 11 + 2 * 34 = 79 s of a 60 s story (more than 10 s past its end); 12 rows cover under half of it
    rng = np.random.default_rng(0)
    write_lebel(tmp_path, {"s1": np.zeros(int(SECONDS * SR), np.float32)}, {"UTS01": {"s1": _noise(rng, n_trs=35)}})
    with pytest.raises(DataError) as err:
        lebel.open_study(tmp_path)
    msg = str(err.value)
    assert "s1.wav" in msg and "s1.hf5" in msg and "35 rows" in msg and "79.0 s" in msg and "60.0 s" in msg
    write_lebel(tmp_path, {}, {"UTS01": {"s1": _noise(rng, n_trs=12)}})
    with pytest.raises(DataError, match="12 rows.*under half"):
        lebel.open_study(tmp_path)


def test_participants_disagree_on_tr_count(tmp_path):
    rng = np.random.default_rng(0)
    write_lebel(tmp_path, {"s1": np.zeros(int(SECONDS * SR), np.float32)},
                {"UTS01": {"s1": _noise(rng)}, "UTS02": {"s1": _noise(rng, n_trs=24)}})
    with pytest.raises(DataError, match="different TR counts"):
        lebel.open_study(tmp_path)


def test_nan_and_constant_targets_excluded_and_counted(tmp_path, caplog):
    rng = np.random.default_rng(0)
    a, b = _noise(rng, n_targets=8), _noise(rng, n_targets=8)
    a[3, 1] = np.nan  # NaN in one run is enough to exclude the target
    b[:, 4] = 2.5  # constant in one run
    a[:, 6] = 0.0
    b[:, 6] = 0.0  # constant everywhere (e.g. outside the brain mask)
    silent = np.zeros(int(SECONDS * SR), np.float32)
    write_lebel(tmp_path, {"s1": silent, "s2": silent}, {"UTS01": {"s1": a, "s2": b}})
    study = lebel.open_study(tmp_path)
    with caplog.at_level(logging.WARNING):
        resp = prepare_responses(study, ["UTS01"], ["s1", "s2"])
    assert resp.excluded["UTS01"] == {"nan": 1, "constant": 2}
    np.testing.assert_array_equal(resp.kept["UTS01"], [0, 2, 3, 5, 7])
    assert resp.n_original["UTS01"] == 8 and resp.n_targets["UTS01"] == 5
    assert resp.data[("UTS01", "s1")].shape == (25, 5)
    assert np.isfinite(resp.data[("UTS01", "s1")]).all()
    np.testing.assert_allclose(resp.data[("UTS01", "s2")][:, 2], (b[:, 3] - b[:, 3].mean()) / b[:, 3].std(), rtol=1e-4)
    assert "excluded 1 NaN and 2 constant" in caplog.text


def test_all_targets_bad_is_an_error(tmp_path):
    write_lebel(tmp_path, {"s1": np.zeros(int(SECONDS * SR), np.float32)}, {"UTS01": {"s1": np.ones((25, 3))}})
    with pytest.raises(DataError, match="UTS01.*every target"):
        prepare_responses(lebel.open_study(tmp_path), ["UTS01"], ["s1"])


def _data_cfg(**kw):
    base = dict(participants=None, heldout_participants=[], test_runs=None, val_runs=None)
    base.update(kw)
    return SimpleNamespace(**base)


def test_make_splits_and_unknown_names(tmp_path):
    spec = synthetic.SyntheticSpec(participants=3, stories=3, story_seconds=SECONDS, targets=[4, 4, 4])
    study = synthetic.open_study(tmp_path / "syn", spec)
    s = make_splits(study, _data_cfg(heldout_participants=["UTS03"]))
    assert s.participants == ["UTS01", "UTS02"] and s.heldout == ["UTS03"]
    assert s.test_runs == ["wheretheressmoke"]
    assert s.val_runs == ["story01"] and s.train_runs == ["story02", "story03"]
    with pytest.raises(DataError) as err:
        make_splits(study, _data_cfg(participants=["UTS01", "UTS09"]))
    assert "UTS09" in str(err.value) and "UTS01" in str(err.value) and "syn" in str(err.value)
    with pytest.raises(DataError, match="unknown participant.*UTS07"):
        make_splits(study, _data_cfg(heldout_participants=["UTS07"]))
    with pytest.raises(DataError, match="unknown run.*nosuchstory"):
        make_splits(study, _data_cfg(test_runs=["nosuchstory"]))
    with pytest.raises(DataError, match="both validation and test"):
        make_splits(study, _data_cfg(val_runs=["story01"], test_runs=["story01"]))


def test_truncated_and_unreadable_wav(tmp_path):
    wav = tmp_path / "ok.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32) * 0.1, SR, subtype="PCM_16")
    raw = wav.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(raw[: len(raw) // 2])  # header intact, half the samples missing
    with pytest.raises(StimulusError, match="cut.wav.*truncated"):
        load_audio(cut, SR)
    head = tmp_path / "head.wav"
    head.write_bytes(raw[:30])
    with pytest.raises(StimulusError, match="head.wav"):
        load_audio(head, SR)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio" * 20)
    with pytest.raises(StimulusError, match="junk.wav"):
        load_audio(junk, SR)


def test_truncated_wav_in_a_study_names_it(tmp_path):
    rng = np.random.default_rng(0)
    write_lebel(tmp_path, {"s1": rng.standard_normal(int(SECONDS * SR)).astype(np.float32)}, {"UTS01": {"s1": _noise(rng)}})
    path = tmp_path / "stimuli" / "s1.wav"
    path.write_bytes(path.read_bytes()[:-SR])
    with pytest.raises(StimulusError, match="s1.wav"):
        lebel.open_study(tmp_path)


def test_stereo_44k_resampled_and_downmixed(tmp_path, caplog):
    sr_in, seconds = 44100, 2.0
    t = np.arange(int(seconds * sr_in)) / sr_in
    left = 0.8 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).astype(np.float32)  # mono mix = left / 2
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, sr_in, subtype="FLOAT")
    with caplog.at_level(logging.INFO, logger="braintune.data.stimuli"):
        wave = load_audio(path, SR)
    assert wave.ndim == 1 and wave.dtype == np.float32
    assert len(wave) == int(seconds * SR)
    expected = 0.4 * np.sin(2 * np.pi * 440 * np.arange(len(wave)) / SR)
    np.testing.assert_allclose(wave[200:-200], expected[200:-200], atol=2e-3)
    assert "down-mixed" in caplog.text and "resampled from 44100 Hz to 16000 Hz" in caplog.text


def test_unknown_data_key_is_a_config_error():
    with pytest.raises(ConfigError, match="data.formatt.*allowed"):
        load_config(None, ["data.formatt=lebel"])


def test_unknown_hub_name_offline_says_what_to_do(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    cfg = load_config(None, ["backbone.name=no-such-org/no-such-model", "backbone.finetune=full"])
    with pytest.raises(BackboneError) as err:
        build_backbone(cfg.backbone)
    msg = str(err.value)
    assert "no-such-org/no-such-model" in msg and "local directory" in msg and "HF_HOME" in msg


def test_default_test_run_is_the_repeated_story_when_the_conventional_one_is_absent(tmp_path):
    rng = np.random.default_rng(0)
    root = write_lebel(tmp_path / "ds", {s: rng.standard_normal(int(SECONDS * SR)) * 0.1 for s in ("a", "b", "c")},
                       {"S1": {s: _noise(rng) for s in ("a", "b", "c")}})
    with h5py.File(root / "derivative" / "preprocessed_data" / "S1" / "b.hf5", "a") as f:
        f["individual_repeats"] = np.stack([_noise(rng), _noise(rng)])
    study = lebel.open_study(root)
    assert study.default_test_runs == ["b"]
    assert study.sources[("S1", "b")].read_repeats().shape == (2, 25, 6)


def test_common_space_targets_are_read_from_response_dir(tmp_path):
    # the multi-participant recipe trains on targets in a common space (same count for everyone) kept beside the
    # published voxel responses; data.response_dir points the reader at them, and a shared head then fits
    rng = np.random.default_rng(1)
    root = write_lebel(tmp_path / "ds", {s: rng.standard_normal(int(SECONDS * SR)) * 0.1 for s in ("a", "b", "c")},
                       {"UTS01": {s: _noise(rng, n_targets=5) for s in "abc"}, "UTS02": {s: _noise(rng, n_targets=7) for s in "abc"}})
    for p in ("UTS01_nonc", "UTS02_nonc"):
        d = root / "derivative" / "transformed_data_fs_lang" / p
        d.mkdir(parents=True)
        for s in "abc":
            with h5py.File(d / f"{s}.hf5", "w") as f:
                f["data"] = _noise(rng, n_targets=9)
    cfg = load_config(None, ["data.format=lebel", f"data.root={root}", "data.lebel.response_dir=derivative/transformed_data_fs_lang",
                             "data.test_runs=[c]"])
    from braintune.data.formats import open_study

    study = open_study(cfg.data)
    assert study.participants == ["UTS01_nonc", "UTS02_nonc"]
    assert {study.sources[(p, "a")].shape()[1] for p in study.participants} == {9}
    assert lebel.open_study(root).participants == ["UTS01", "UTS02"]  # the default is still the voxel responses
    with pytest.raises(DataError, match="response_dir"):
        lebel.open_study(root, lebel.LebelOptions(response_dir="derivative/missing"))
    with pytest.raises(ConfigError, match="'data.response_dir' moved to 'data.lebel.response_dir'"):
        load_config(None, ["data.response_dir=x"])
