"""Task readers on tiny datasets written in each published layout (wavs, mp4 via PyAV, json/jsonl/txt)."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest
import soundfile as sf

from braintune.data.study import DataError
from braintune.downstream.features import item_waveform
from braintune.downstream.tasks import read_task

SR = 16000


def tone(freq, seconds=0.5):
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def write_mp4(path, wave):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=SR)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(wave[None], format="flt", layout="mono")
        frame.sample_rate = SR
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_mustard_speaker_independent_split_and_mp4_audio(tmp_path):
    (tmp_path / "utterances_final").mkdir()
    meta = {}
    speakers = {"FRIENDS": ["CHANDLER", "ROSS"], "BBT": ["SHELDON", "ROSS"], "GOLDENGIRLS": ["DOROTHY"]}
    for show, spks in speakers.items():
        for i, spk in enumerate(spks * 2):
            cid = f"{show}_{i}"
            meta[cid] = {"utterance": "oh really", "speaker": spk, "context": [], "context_speakers": [], "show": show,
                         "sarcasm": bool(i % 2)}
            write_mp4(tmp_path / "utterances_final" / f"{cid}.mp4", tone(440.0))
    (tmp_path / "sarcasm_data.json").write_text(json.dumps(meta))
    data = read_task("mustard", tmp_path)
    train = {it.speaker for it in data.items if it.split == "train"}
    test = {it.speaker for it in data.items if it.split == "test"}
    assert test == {"CHANDLER", "ROSS"} and not train & test
    assert sum(data.skipped.values()) == 2  # the BBT 'ROSS' clips are excluded and counted
    wave = item_waveform(data.items[0], SR)
    spectrum = np.abs(np.fft.rfft(wave[2000:6000]))
    assert abs(np.argmax(spectrum) * SR / 4000 - 440.0) < 10  # the decoded track is the planted tone
    dependent = read_task("mustard_dependent", tmp_path)
    assert {it.split for it in dependent.items} == {f"fold{k}" for k in range(5)}


def test_speech_commands_crema_timit_slurp(tmp_path):
    sc = tmp_path / "sc"
    for word in ("yes", "no", "_background_noise_"):
        (sc / word).mkdir(parents=True)
        for spk in ("aa11", "bb22", "cc33"):
            sf.write(sc / word / f"{spk}_nohash_0.wav", tone(300), SR)
    (sc / "validation_list.txt").write_text("yes/bb22_nohash_0.wav\n")
    (sc / "testing_list.txt").write_text("yes/cc33_nohash_0.wav\nno/cc33_nohash_0.wav\n")
    data = read_task("speech_commands", sc)
    assert len(data.items) == 6 and {it.label for it in data.items} == {"yes", "no"}
    assert sorted(it.split for it in data.items).count("test") == 2

    crema = tmp_path / "crema" / "AudioWAV"
    crema.mkdir(parents=True)
    for actor in range(1001, 1011):
        for emo in ("ANG", "SAD"):
            sf.write(crema / f"{actor}_DFA_{emo}_XX.wav", tone(200), SR)
    data = read_task("crema_d", tmp_path / "crema")
    test = {it.speaker for it in data.items if it.split == "test"}
    assert test == {"1005", "1010"} and not test & {it.speaker for it in data.items if it.split == "train"}

    timit = tmp_path / "timit"
    for split, spk in (("TRAIN", "MABC0"), ("TEST", "FDEF0")):
        d = timit / split / "DR1" / spk
        d.mkdir(parents=True)
        for name in ("SA1", "SI100", "SX10"):
            sf.write(d / f"{name}.WAV", tone(250), SR)
            (d / f"{name}.PHN").write_text("0 100 h#\n100 900 ix\n900 1500 q\n1500 8000 zh\n")
    phones = read_task("timit_phones", timit)
    assert phones.items[0].label == ("ih", "sh", "sil") and phones.kind == "multilabel"
    types = read_task("timit_sentence_type", timit)
    assert sorted({it.label for it in types.items}) == ["SA", "SI", "SX"]

    slurp = tmp_path / "slurp"
    (slurp / "slurp_real").mkdir(parents=True)
    sf.write(slurp / "slurp_real" / "a.flac", tone(100), SR)
    for stem in ("train", "devel", "test"):
        line = {"intent": "play_music", "sentence": "play", "recordings": [{"file": "a.flac"}, {"file": "gone.flac"}]}
        (slurp / f"{stem}.jsonl").write_text(json.dumps(line) + "\n")
    data = read_task("slurp", slurp)
    assert len(data.items) == 3 and sum(data.skipped.values()) == 3


def test_bad_layouts_name_the_file(tmp_path):
    with pytest.raises(DataError, match="sarcasm_data.json"):
        read_task("mustard", tmp_path)
    with pytest.raises(DataError, match="labels.csv"):
        read_task("mosei", tmp_path)
    (tmp_path / "manifest.csv").write_text("file,y\nx.wav,1\n")
    with pytest.raises(DataError, match="path,label"):
        read_task("csv", tmp_path)
