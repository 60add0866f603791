"""Generic manifest (YAML / CSV): runs, stimuli, TR, first-TR time and .h5/.npy responses -> Study."""
import h5py
import numpy as np
import pytest
import soundfile as sf
import yaml

from braintune.data.formats import manifest
from braintune.data.stimuli import crop, load_audio
from braintune.data.study import DataError

SR = 16000


def write(root, first_tr_s=-2.0, n_trs=10):
    wave = np.zeros(20 * SR, np.float32)
    wave[int(6.0 * SR) : int(6.5 * SR)] = 0.9  # burst at 6 s of audio: row (6 + 2) / 2 = 4, whose volume spans 5-7 s
    sf.write(root / "a.wav", wave, SR)
    sf.write(root / "b.wav", wave, SR)
    rng = np.random.default_rng(0)
    with h5py.File(root / "s1.h5", "w") as f:
        f["a"] = rng.standard_normal((n_trs, 6)).astype(np.float32)
    np.save(root / "s1_b.npy", rng.standard_normal((n_trs, 6)).astype(np.float32))
    spec = {"tr": 2.0, "first_tr_s": first_tr_s, "test_runs": ["b"],
            "runs": {"a": {"stimulus": "a.wav"}, "b": {"stimulus": "b.wav"}},
            "responses": {"s1": {"a": {"file": "s1.h5", "key": "a"}, "b": "s1_b.npy"}}}
    (root / "manifest.yaml").write_text(yaml.safe_dump(spec))
    return root


def test_yaml_manifest_and_timing(tmp_path):
    study = manifest.open_study(write(tmp_path))
    assert study.participants == ["s1"] and sorted(study.runs) == ["a", "b"] and study.default_test_runs == ["b"]
    run = study.runs["a"]
    assert run.timing.first_tr_s == -2.0 and study.sources[("s1", "b")].read().shape == (10, 6)
    audio = load_audio(run.stimulus, SR)
    energy = [np.abs(crop(audio, t - 1.0, t + 1.0, SR)).sum() for t in run.timing.times()]  # first_tr_s: middle of volume 0
    assert int(np.argmax(energy)) == 4


def test_csv_manifest(tmp_path):
    write(tmp_path)
    (tmp_path / "m.csv").write_text("participant,run,stimulus,response,key,tr,first_tr_s\ns1,a,a.wav,s1.h5,a,2.0,\n")
    study = manifest.open_study(tmp_path / "m.csv")
    assert study.runs["a"].timing.first_tr_s == 0.0 and study.sources[("s1", "a")].shape() == (10, 6)
    (tmp_path / "bad.csv").write_text("participant,run,stimulus\ns1,a,a.wav\n")
    with pytest.raises(DataError, match=r"bad\.csv.*response"):
        manifest.open_study(tmp_path / "bad.csv")


def test_too_many_trs_and_truncated_npy_name_file(tmp_path):
    write(tmp_path, n_trs=30)  # 60 s of responses for 20 s of audio
    with pytest.raises(DataError, match=r"s1\.h5.*30 TRs.*a\.wav"):
        manifest.open_study(tmp_path)
    write(tmp_path)
    (tmp_path / "s1_b.npy").write_bytes((tmp_path / "s1_b.npy").read_bytes()[:60])
    with pytest.raises(DataError, match=r"s1_b\.npy"):
        manifest.open_study(tmp_path)
