"""Runs that showed one stimulus (Algonauts 2025 shows Life and Hidden Figures twice; ds003020's raw BIDS repeats its
test story as separate runs) never straddle a split: ``make_splits`` moves the other showings of a test or
validation run into that split, and the alignment fit and the data-efficiency curve never train on another showing
of a test stimulus. Planted leak: both showings carry the same idiosyncratic response (noise that repeats with the
stimulus); a model that trains on one showing predicts the other almost perfectly, one that cannot stays at chance."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import soundfile as sf

from braintune.config import DataConfig
from braintune.data.datamodule import make_splits
from braintune.data.formats import bids
from braintune.data.study import DataError, Run, Study
from braintune.data.timing import RunTiming
from braintune.evaluation.alignment import participant_alignment
from braintune.evaluation.compare import participant_efficiency

N_TRS, N_FEATURES, N_TARGETS = 40, 60, 8
PARAMS = {"delays": (1, 2), "cv": "leave_runs_out", "alphas": np.logspace(-2, 4, 7)}


@dataclass(frozen=True)
class InMemory:
    """A ``ResponseSource`` held in memory."""

    data: np.ndarray
    path: Path = Path("in-memory")

    def read(self) -> np.ndarray:
        return self.data

    def read_repeats(self) -> None:
        return None

    def shape(self) -> tuple[int, int]:
        return self.data.shape


def planted(same_file: bool = True) -> tuple[Study, dict[str, np.ndarray]]:
    """Four unrelated episodes and Life shown twice: features and responses of one stimulus are identical across
    its showings, and no response follows any feature (pure repeatable noise). ``same_file=False`` names the
    second showing's movie differently, as a reader that lost the pairing would."""
    rng = np.random.default_rng(0)
    stimuli = {"s01e01a": "friends_s01e01a", "s01e01b": "friends_s01e01b", "s01e02a": "friends_s01e02a",
               "s01e02b": "friends_s01e02b", "life01_run-1": "life01", "life01_run-2": "life01" if same_file else "life01_copy"}
    per_stimulus = {s: (rng.standard_normal((1, N_TRS, N_FEATURES)), rng.standard_normal((N_TRS, N_TARGETS)))
                    for s in dict.fromkeys(stimuli.values())}
    per_stimulus["life01_copy"] = per_stimulus["life01"]
    runs = {r: Run(r, Path(f"/movies/{s}.mkv"), RunTiming.from_scan(1.49, N_TRS, 0.0)) for r, s in stimuli.items()}
    sources = {("sub-01", r): InMemory(per_stimulus[s][1].astype(np.float32)) for r, s in stimuli.items()}
    feats = {r: per_stimulus[s][0] for r, s in stimuli.items()}
    return Study("algonauts", Path("/data"), runs, sources, ["s01e02a", "s01e02b"], ["s01e01a", "s01e01b"]), feats


def test_make_splits_keeps_every_showing_in_one_split():
    study, _ = planted()
    assert study.showings() == {"/movies/life01.mkv": ["life01_run-1", "life01_run-2"]}
    splits = make_splits(study, DataConfig(format="algonauts", root="/data", test_runs=["life01_run-1"]))
    assert splits.test_runs == ["life01_run-1", "life01_run-2"]
    assert "life01_run-2" not in splits.train_runs + splits.val_runs and splits.val_runs == ["s01e01a", "s01e01b"]
    splits = make_splits(study, DataConfig(format="algonauts", root="/data", val_runs=["life01_run-2"]))
    assert splits.val_runs == ["life01_run-2", "life01_run-1"] and splits.train_runs == ["s01e01a", "s01e01b"]
    study.default_val_runs = ["life01_run-1"]
    splits = make_splits(study, DataConfig(format="algonauts", root="/data"))
    assert sorted(splits.val_runs) == ["life01_run-1", "life01_run-2"] and splits.test_runs == ["s01e02a", "s01e02b"]
    with pytest.raises(DataError, match=r"life01_run-2.*both validation and test.*life01\.mkv"):
        make_splits(study, DataConfig(format="algonauts", root="/data", test_runs=["life01_run-1"], val_runs=["life01_run-2"]))


def test_alignment_never_trains_on_another_showing_of_the_test_stimulus():
    leaky_study, feats = planted(same_file=False)  # the control: the showings look like two stimuli
    leaky = participant_alignment(leaky_study, "sub-01", feats, [0], ["life01_run-1"], PARAMS)
    assert "life01_run-2" in leaky.train_runs and leaky.r[0].mean() > 0.5  # the leak this guards against (measured 0.74)
    study, feats = planted()
    result = participant_alignment(study, "sub-01", feats, [0], ["life01_run-1"], PARAMS)
    assert result.train_runs == ["s01e01a", "s01e01b", "s01e02a", "s01e02b"] and result.test_runs == ["life01_run-1"]
    assert abs(result.r[0].mean()) < 0.2


def test_efficiency_curve_never_trains_on_another_showing_of_the_test_stimulus():
    leaky_study, feats = planted(same_file=False)
    leaky = participant_efficiency(leaky_study, "sub-01", feats, 0, ["life01_run-1"], [2, 5], PARAMS)
    assert "life01_run-2" in leaky.train_runs[-1] and leaky.scores[-1] > 0.5
    study, feats = planted()
    curve = participant_efficiency(study, "sub-01", feats, 0, ["life01_run-1"], [2, 4], PARAMS)
    assert all("life01_run-2" not in runs for runs in curve.train_runs) and len(curve.train_runs[-1]) == 4
    assert abs(curve.scores[-1]) < 0.2


def test_bids_runs_of_one_stimulus_are_showings(tmp_path):
    """ds003020 as raw BIDS: the test story's repeats are runs whose events name one stimulus file."""
    sr = 16000
    (tmp_path / "stimuli").mkdir()
    sf.write(tmp_path / "stimuli" / "wheretheressmoke.wav", np.zeros(20 * sr, np.float32), sr)
    sf.write(tmp_path / "stimuli" / "itsabox.wav", np.zeros(20 * sr, np.float32), sr)
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    for stem, stim in (("task-wheretheressmoke_run-1", "wheretheressmoke"), ("task-wheretheressmoke_run-2", "wheretheressmoke"),
                       ("task-itsabox", "itsabox")):
        img = nib.Nifti1Image(np.zeros((2, 2, 2, 10), np.float32), np.eye(4))
        nib.save(img, func / f"sub-01_{stem}_bold.nii.gz")
        (func / f"sub-01_{stem}_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
        (func / f"sub-01_{stem}_events.tsv").write_text(f"onset\tduration\tstim_file\n0.0\t20.0\t{stim}.wav\n")
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.eye(4)), tmp_path / "mask.nii.gz")
    study = bids.open_study(tmp_path, mask=str(tmp_path / "mask.nii.gz"))
    assert study.showings() == {str(tmp_path / "stimuli" / "wheretheressmoke.wav"): ["wheretheressmoke_run-1", "wheretheressmoke_run-2"]}
    assert study.with_showings(["wheretheressmoke_run-2"]) == ["wheretheressmoke_run-2", "wheretheressmoke_run-1"]
