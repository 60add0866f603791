"""Bad input, table-driven: every kind ends with exit status 2 and one line per problem that names the offending key,
file or checkpoint, never a traceback and never a silent result; a checkpoint whose pickle would run code is refused
by every command that takes one, and its payload never runs.

Each case runs in-process through an entry point's ``main(argv)`` (stderr captured); two real subprocesses check the
top-level scripts. ``python tests/test_bad_input.py --census`` runs the same table outside pytest and prints how many
kinds end clear / in a traceback / silently (run it with ``PYTHONPATH`` at another checkout to measure that one).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from braintune import cli
from braintune.commands import evaluate, train
from braintune.config import load_config, to_dict
from braintune.data.formats.synthetic import SyntheticSpec, write_story_dataset
from braintune.training.module import BrainTuner

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
TINY = {
    "data": {"format": "lebel", "heldout_participants": [], "segment_trs": 8, "context_s": 1.0, "batch_size": 4},
    "backbone": {"arch": "wav2vec2", "name": None, "finetune": "full", "freeze_feature_encoder": False,
                 "config": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                            "conv_dim": [16] * 7, "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2,
                            "mask_time_prob": 0.0}},
    "pooling": {"window_s": 2.0, "n_windows": 2},
    "trainer": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False},
    "logger": {"kind": "csv"},
    "alignment": {"layers": [1], "delays": [1, 2], "cache_dir": None},
    "downstream": {"cache_dir": None, "n_boot": 0, "cv_folds": 2},
}


class Evil:
    """Pickles as a call that writes ``marker``: what an unsafe ``torch.load`` of a hostile checkpoint would run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


# ------------------------------------------------------------------------------------------------ the files
def _wav(path: Path, seconds: float = 2.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.sin(np.arange(int(seconds * SR)) / 7)).astype(np.float32), SR)
    return path


def _checkpoint(path: Path, overrides: list[str], n_targets: dict[str, int], payload=None, identity_arch=None) -> Path:
    """A braintune checkpoint of the tiny model (as ``on_save_checkpoint`` records it), optionally with a payload."""
    try:
        from braintune.models import checkpoint_record
    except ImportError:  # the census of a checkout from before checkpoints recorded their identity
        def checkpoint_record(config, n_targets):
            return {"identity": {}}

    cfg = load_config(None, _flat_overrides(TINY) + overrides)
    module = BrainTuner(to_dict(cfg), n_targets)
    record = checkpoint_record(dict(module.hparams["config"]), n_targets)
    if identity_arch:
        record["identity"]["backbone.arch"] = identity_arch  # an edited checkpoint: record and config disagree
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "braintune": record}
    if payload is not None:
        ckpt["payload"] = payload
    torch.save(ckpt, path)
    return path


def _flat_overrides(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict) and key != "config":
            out += _flat_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def _stories(root: Path) -> dict:
    stories = write_story_dataset(root / "stories", SyntheticSpec(participants=2, stories=2, story_seconds=40.0, targets=[5, 6]))
    w = {"stories": stories}
    for name in ("lebel_trunc", "lebel_nowav", "lebel_badjson", "lebel_reps", "lebel_badwav"):
        w[name] = Path(shutil.copytree(stories, root / name))
    hf5 = w["lebel_trunc"] / "derivative/preprocessed_data/UTS01/story01.hf5"
    hf5.write_bytes(hf5.read_bytes()[:200])
    (w["lebel_nowav"] / "stimuli/story02.wav").unlink()
    (w["lebel_badjson"] / "derivative/respdict.json").write_text("{not json")
    (w["lebel_badwav"] / "stimuli/story01.wav").write_bytes(b"RIFF" + os.urandom(300))
    with h5py.File(w["lebel_reps"] / "derivative/preprocessed_data/UTS01/wheretheressmoke.hf5", "r+") as f:
        reps = f["individual_repeats"][()]
        del f["individual_repeats"]
        f["individual_repeats"] = reps[:, :-3]  # fewer TRs than the data: a ceiling from mismatched rows
    return w


def _bids(root: Path, name: str, events: dict[str, str] | None = None, with_events: bool = True) -> Path:
    """A BIDS volume dataset (2 participants, 12 volumes of 4x4x3, TR 2 s) with a mask and a 30 s stimulus."""
    base = root / name
    _wav(base / "stimuli" / "story.wav", 30.0)
    rng = np.random.default_rng(0)
    for p in ("sub-01", "sub-02"):
        func = base / p / "func"
        func.mkdir(parents=True)
        img = nib.Nifti1Image(rng.standard_normal((4, 4, 3, 12)).astype(np.float32), np.eye(4))
        img.header.set_zooms((3, 3, 3, 2.0))
        nib.save(img, func / f"{p}_task-story_bold.nii.gz")
        if with_events:
            (func / f"{p}_task-story_events.tsv").write_text((events or {}).get(p, "onset\tduration\tstim_file\n0.0\t30\tstory.wav\n"))
    return base


def _manifests(root: Path) -> dict:
    base = root / "manifest"
    _wav(base / "a.wav", 20.0)
    np.save(base / "s1_a.npy", np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32))
    _wav(root / "outside.wav", 20.0)
    np.save(root / "outside.npy", np.zeros((10, 6), np.float32))
    header = "participant,run,stimulus,response,key,tr,first_tr_s\n"
    files = {
        "m_escape": header + "s1,a,a.wav,../outside.npy,,2.0,\n",
        "m_absolute": header + f"s1,a,{root / 'outside.wav'},s1_a.npy,,2.0,\n",
        "m_tr": header + "s1,a,a.wav,s1_a.npy,,two,\n",
        "m_noresp": header + "s1,a,a.wav,missing.npy,,2.0,\n",
        "m_columns": "participant,run,stimulus\ns1,a,a.wav\n",
        "m_rows": header + "s1,a,a.wav,s1_a.npy,,9.0,\n",
    }
    w = {}
    for name, text in files.items():
        (base / f"{name}.csv").write_text(text)
        w[name] = base / f"{name}.csv"
    (base / "m_yaml.yaml").write_text("runs: {a: {stimulus: a.wav}\nresponses: [\n")
    (base / "m_list.yaml").write_text(yaml.safe_dump([{"runs": 1}]))
    w.update(m_yaml=base / "m_yaml.yaml", m_list=base / "m_list.yaml")
    return w


def _tasks(root: Path) -> dict:
    w = {}
    good = root / "csv_good"
    for i in range(10):
        _wav(good / f"{i}.wav", 1.0 + 0.05 * i)
    (good / "manifest.csv").write_text("path,label\n" + "".join(f"{i}.wav,{l}\n" for i, l in enumerate("ababababab")))
    w["csv_good"] = good
    _wav(root / "secret.wav", 1.0)
    csvs = {"csv_escape": "path,label,split\n0.wav,a,train\n../secret.wav,b,test\n",
            "csv_absolute": f"path,label\n{root / 'secret.wav'},a\n",
            "csv_header": "file,class\n0.wav,a\n", "csv_missing": "path,label\nnope.wav,a\n",
            "csv_split": "path,label,split\n0.wav,a,dev\n", "csv_empty": "path,label\n,a\n"}
    for name, text in csvs.items():
        (root / name).mkdir()
        shutil.copy(good / "0.wav", root / name / "0.wav")
        (root / name / "manifest.csv").write_text(text)
        w[name] = root / name
    entry = {"utterance": "oh well", "speaker": "ROSS", "show": "FRIENDS", "sarcasm": True}
    jsons = {"mus_json": "{broken", "mus_keys": json.dumps({"1_1": {"utterance": "x"}}),
             "mus_escape": json.dumps({"../../secret": entry}), "mus_mp4": json.dumps({"1_1": entry}), "mus_list": "[1, 2]"}
    for name, text in jsons.items():
        (root / name / "utterances_final").mkdir(parents=True)
        (root / name / "sarcasm_data.json").write_text(text)
        w[name] = root / name
    return w


def build_world(root: Path) -> dict:
    """Every file the cases read: datasets in their published layouts (some broken), configs and checkpoints."""
    w = {"tmp": root, "marker": root / "PAYLOAD_RAN", "file": root / "a_file", "pid": os.getpid()}
    w["file"].write_text("not a directory")
    w.update(_stories(root))
    both = ("sub-01", "sub-02")  # participants given the same events.tsv text
    w["bids_escape"] = _bids(root, "bids_escape", dict.fromkeys(both, "onset\tduration\tstim_file\n0.0\t30\t../../outside.wav\n"))
    w["bids_absolute"] = _bids(root, "bids_absolute", dict.fromkeys(both, f"onset\tduration\tstim_file\n0.0\t30\t{root / 'outside.wav'}\n"))
    w["bids_columns"] = _bids(root, "bids_columns", dict.fromkeys(both, "onset\tduration\n0.0\t30\n"))
    w["bids_onset"] = _bids(root, "bids_onset", dict.fromkeys(both, "onset\tduration\tstim_file\nsoon\t30\tstory.wav\n"))
    w["bids_noevents"] = _bids(root, "bids_noevents", with_events=False)
    w["bids_disagree"] = _bids(root, "bids_disagree", {"sub-02": "onset\tduration\tstim_file\n0.0\t30\tother.wav\n"})
    _wav(w["bids_disagree"] / "stimuli" / "other.wav", 30.0)
    w["bids_nomask"] = _bids(root, "bids_nomask")
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1:3, 1:3] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), root / "mask.nii.gz")
    w.update(_manifests(root))
    w.update(_tasks(root))
    tiny = dict(TINY, data={**TINY["data"], "root": str(w["stories"])})
    w["cfg"] = root / "tiny.yaml"
    w["cfg"].write_text(yaml.safe_dump(tiny))
    (root / "broken.yaml").write_text("data:\n  participants: [UTS01\n")
    w["broken"] = root / "broken.yaml"
    n_targets = {"UTS01": 5, "UTS02": 6}
    w["ckpt"] = _checkpoint(root / "w2v.ckpt", [], n_targets)
    w["evil"] = _checkpoint(root / "evil.ckpt", [], n_targets, payload=Evil(w["marker"]))
    w["edited"] = _checkpoint(root / "edited.ckpt", [], n_targets, identity_arch="hubert")
    torch.save({"weights": torch.zeros(3)}, root / "plain.ckpt")
    (root / "trunc.ckpt").write_bytes(w["ckpt"].read_bytes()[:1000])
    w.update(plain=root / "plain.ckpt", trunc=root / "trunc.ckpt")
    for name, ckpt in (("resume_other", w["ckpt"]), ("resume_evil", w["evil"])):
        (root / name / "checkpoints").mkdir(parents=True)
        shutil.copy(ckpt, root / name / "checkpoints" / "last.ckpt")
        w[name] = root / name
    return w


# ------------------------------------------------------------------------------------------------ the table
@dataclass
class Case:
    kind: str  # what is wrong
    entry: str  # train | evaluate | cli
    argv: list[str]  # "{name}" is a path of the world
    expect: str  # what the message must name (formatted like argv)
    where: str  # the command or reader the case exercises (the census counts per where)
    hold: str | None = None  # a context to run under: "lock" (out_dir in use), "no_tensorboard"

    @property
    def command(self) -> str:
        """train | alignment | compare | downstream | inspect | export."""
        return "train" if self.entry == "train" else self.argv[0]


def _c(kind, entry, argv, expect, where, hold=None) -> Case:
    return Case(kind, entry, argv.split(), expect, where, hold)


T, A, C, D = "-c {cfg}", "alignment -c {cfg}", "compare -c {cfg}", "downstream -c {cfg}"
BIDS = "alignment -c {cfg} data.format=bids data.test_runs=[story] data.bids.mask={tmp}/mask.nii.gz data.root="
CSV, MUS = "downstream.task=csv downstream.root=", "downstream.task=mustard downstream.root="
CASES = [
    # configs and overrides (the examples first)
    _c("malformed YAML config file", "train", "-c {broken}", "{broken}", "train"),
    _c("malformed YAML override", "train", "-c {cfg} data.participants=[UTS01", "data.participants", "train"),
    _c("batch size 0", "train", f"{T} data.batch_size=0", "data.batch_size", "train"),
    _c("negative batch size", "evaluate", f"{A} data.batch_size=-3", "data.batch_size", "alignment"),
    _c("negative pooling.window_s", "train", f"{T} pooling.window_s=-1", "pooling.window_s", "train"),
    _c("negative data.context_s", "evaluate", f"{A} data.context_s=-2", "data.context_s", "alignment"),
    _c("data.sample_rate=0", "train", f"{T} data.sample_rate=0", "data.sample_rate", "train"),
    _c("out_dir under a file", "train", f"{T} out_dir={{file}}/run", "out_dir", "train"),
    _c("data.cache_dir under a file", "evaluate", f"{A} data.cache_dir={{file}}/cache", "data.cache_dir", "alignment"),
    _c("invalid trainer.precision", "train", f"{T} trainer.precision=17-mixed", "trainer.precision", "train"),
    _c("trainer.accelerator=gpu without a GPU", "train", f"{T} trainer.accelerator=gpu", "trainer.accelerator", "train"),
    _c("logger.kind=tensorboard without its package", "train", f"{T} logger.kind=tensorboard", "tensorboard", "train",
       "no_tensorboard"),
    _c("alignment.layers out of range (evaluate)", "evaluate", f"{A} alignment.layers=[99]", "alignment.layers", "alignment"),
    _c("alignment.layers out of range (train)", "train", f"{T} alignment.layers=[99]", "alignment.layers", "train"),
    _c("alignment.delays=[]", "evaluate", f"{A} alignment.delays=[]", "alignment.delays", "alignment"),
    _c("resume into an out_dir made with another model", "train", f"{T} out_dir={{resume_other}} backbone.arch=hubert",
       "backbone.arch", "train"),
    _c("pooling.n_windows=0", "train", f"{T} pooling.n_windows=0", "pooling.n_windows", "train"),
    _c("init_from a wav2vec2 checkpoint into hubert", "train", f"{T} backbone.arch=hubert init_from={{ckpt}}", "backbone.arch",
       "train"),
    _c("unknown key", "train", f"{T} trainer.max_epoch=3", "trainer.max_epoch", "train"),
    _c("value of the wrong type", "evaluate", f"{C} trainer.max_epochs=many", "trainer.max_epochs", "compare"),
    _c("unknown choice", "train", f"{T} loss.name=huber", "loss.name", "train"),
    _c("config file missing", "evaluate", "alignment -c {tmp}/nope.yaml", "nope.yaml", "alignment"),
    _c("config file is a directory", "evaluate", "downstream -c {tmp}", "{tmp}", "downstream"),
    _c("override without =", "evaluate", f"{C} trainer.max_epochs", "trainer.max_epochs", "compare"),
    _c("empty participant list", "train", f"{T} data.participants=[]", "data.participants", "train"),
    _c("participant both tuned and held out", "evaluate", f"{A} data.participants=[UTS01] data.heldout_participants=[UTS01]",
       "data.heldout_participants", "alignment"),
    _c("new_heads without init_from", "train", f"{T} optim.train_only=new_heads", "init_from", "train"),
    _c("dropout above 1", "train", f"{T} head.dropout=1.5", "head.dropout", "train"),
    _c("negative ridge alpha", "evaluate", f"{A} alignment.alphas=[-1.0]", "alignment.alphas", "alignment"),
    _c("efficiency with 0 runs", "evaluate", f"{C} alignment.efficiency_runs=[0]", "alignment.efficiency_runs", "compare"),
    _c("compare with one model", "evaluate", f"{C} alignment.models=[base]", "alignment.models", "compare"),
    _c("compare a model that does not exist", "evaluate", f"{C} alignment.models=[{{tmp}}/gone.ckpt,base]", "gone.ckpt", "compare"),
    _c("frame size 0", "train", f"{T} data.frame_size=0", "data.frame_size", "train"),
    _c("0 devices", "train", f"{T} trainer.devices=0", "trainer.devices", "train"),
    _c("pooling window shorter than a frame", "train", f"{T} pooling.window_s=0.001", "pooling.window_s", "train"),
    _c("NaN pooling window", "train", f"{T} pooling.window_s=.nan", "pooling.window_s", "train"),
    _c("out_dir is a file", "train", f"{T} out_dir={{file}}", "out_dir", "train"),
    _c("out_dir in use by another run", "train", f"{T} out_dir={{tmp}}/locked", "process {pid}", "train", "lock"),
    _c("init_from file missing", "train", f"{T} init_from={{tmp}}/gone.ckpt", "init_from", "train"),
    _c("alignment.cache_dir under a file", "evaluate", f"{A} alignment.cache_dir={{file}}/c", "alignment.cache_dir", "alignment"),
    _c("downstream.cache_dir under a file", "evaluate", f"{D} {CSV}{{csv_good}} downstream.cache_dir={{file}}/c",
       "downstream.cache_dir", "downstream"),
    _c("too few CV folds", "evaluate", f"{D} {CSV}{{csv_good}} downstream.cv_folds=1", "downstream.cv_folds", "downstream"),
    # checkpoints: missing, damaged, foreign, edited, hostile
    _c("checkpoint missing", "evaluate", f"{A} checkpoint={{tmp}}/gone.ckpt", "gone.ckpt", "alignment"),
    _c("checkpoint truncated", "evaluate", f"{A} checkpoint={{trunc}}", "{trunc}", "alignment"),
    _c("checkpoint that runs code (alignment)", "evaluate", f"{A} checkpoint={{evil}}", "{evil}", "alignment"),
    _c("checkpoint that runs code (compare)", "evaluate", f"{C} alignment.models=[{{evil}},base]", "{evil}", "compare"),
    _c("checkpoint that runs code (downstream)", "evaluate", f"{D} {CSV}{{csv_good}} checkpoint={{evil}}", "{evil}", "downstream"),
    _c("checkpoint that runs code (downstream.compare)", "evaluate",
       f"{D} {CSV}{{csv_good}} downstream.max_items=2 downstream.compare=[{{evil}}]", "{evil}", "downstream"),
    _c("checkpoint that runs code (init_from)", "train", f"{T} init_from={{evil}}", "{evil}", "train"),
    _c("checkpoint that runs code (resume)", "train", f"{T} out_dir={{resume_evil}}", "last.ckpt", "train"),
    _c("checkpoint that runs code (export)", "cli", "export {evil} {tmp}/export_evil", "{evil}", "export"),
    _c("export a missing checkpoint", "cli", "export {tmp}/gone.ckpt {tmp}/export_gone", "gone.ckpt", "export"),
    _c("export a truncated checkpoint", "cli", "export {trunc} {tmp}/export_trunc", "{trunc}", "export"),
    _c("export a torch file that is no braintune checkpoint", "cli", "export {plain} {tmp}/export_plain", "{plain}", "export"),
    _c("export an edited checkpoint", "cli", "export {edited} {tmp}/export_edited", "backbone.arch", "export"),
    _c("export a directory", "cli", "export {tmp} {tmp}/export_dir", "{tmp}", "export"),
    # downstream command and task readers
    _c("no downstream task", "evaluate", D, "downstream.task", "downstream"),
    _c("unknown downstream task", "evaluate", f"{D} downstream.task=nope downstream.root={{tmp}}", "nope", "downstream"),
    _c("downstream root missing", "evaluate", f"{D} {CSV}{{tmp}}/gone", "gone", "downstream"),
    _c("downstream.layers out of range", "evaluate", f"{D} {CSV}{{csv_good}} downstream.layers=[40]", "downstream.layers",
       "downstream"),
    _c("csv task: path leaving the root", "evaluate", f"{D} {CSV}{{csv_escape}}", "line 3", "csv task"),
    _c("csv task: absolute path", "evaluate", f"{D} {CSV}{{csv_absolute}}", "line 2", "csv task"),
    _c("csv task: wrong header", "evaluate", f"{D} {CSV}{{csv_header}}", "manifest.csv", "csv task"),
    _c("csv task: missing audio", "evaluate", f"{D} {CSV}{{csv_missing}}", "nope.wav", "csv task"),
    _c("csv task: unknown split", "evaluate", f"{D} {CSV}{{csv_split}}", "dev", "csv task"),
    _c("csv task: empty path cell", "evaluate", f"{D} {CSV}{{csv_empty}}", "line 2", "csv task"),
    _c("mustard: invalid JSON", "evaluate", f"{D} {MUS}{{mus_json}}", "sarcasm_data.json", "mustard task"),
    _c("mustard: clip lacks keys", "evaluate", f"{D} {MUS}{{mus_keys}}", "1_1", "mustard task"),
    _c("mustard: clip id leaving the root", "evaluate", f"{D} {MUS}{{mus_escape}}", "../../secret", "mustard task"),
    _c("mustard: clip video missing", "evaluate", f"{D} {MUS}{{mus_mp4}}", "1_1.mp4", "mustard task"),
    _c("mustard: JSON is not a mapping", "evaluate", f"{D} {MUS}{{mus_list}}", "sarcasm_data.json", "mustard task"),
    # dataset readers (through inspect and evaluate)
    _c("inspect: root missing", "cli", "inspect {tmp}/gone --format lebel", "gone", "inspect"),
    _c("inspect: unknown format", "cli", "inspect {stories} --format nifty", "--format", "inspect"),
    _c("lebel: not a ds003020 directory", "cli", "inspect {tmp}/manifest --format lebel", "manifest", "lebel"),
    _c("lebel: truncated hf5", "cli", "inspect {lebel_trunc} --format lebel", "story01.hf5", "lebel"),
    _c("lebel: story audio missing", "cli", "inspect {lebel_nowav} --format lebel", "story02.wav", "lebel"),
    _c("lebel: respdict.json invalid", "cli", "inspect {lebel_badjson} --format lebel", "respdict.json", "lebel"),
    _c("lebel: corrupt wav", "cli", "inspect {lebel_badwav} --format lebel", "story01.wav", "lebel"),
    _c("lebel: repeats with fewer TRs than the data", "evaluate", f"{A} data.root={{lebel_reps}}", "individual_repeats", "lebel"),
    _c("lebel: unknown participant", "evaluate", f"{A} data.participants=[UTS09]", "UTS09", "lebel"),
    _c("lebel: unknown test run", "evaluate", f"{A} data.test_runs=[nope]", "nope", "lebel"),
    _c("bids: stim_file leaving the root", "evaluate", f"{BIDS}{{bids_escape}}", "line 2", "bids"),
    _c("bids: absolute stim_file", "evaluate", f"{BIDS}{{bids_absolute}}", "outside the dataset root", "bids"),
    _c("bids: events.tsv lacks stim_file", "evaluate", f"{BIDS}{{bids_columns}}", "stim_file", "bids"),
    _c("bids: onset not a number", "evaluate", f"{BIDS}{{bids_onset}}", "soon", "bids"),
    _c("bids: no events file", "evaluate", f"{BIDS}{{bids_noevents}}", "events", "bids"),
    _c("bids: participants' events disagree", "evaluate", f"{BIDS}{{bids_disagree}}", "other.wav", "bids"),
    _c("bids: volumes without a mask", "cli", "inspect {bids_nomask} --format bids", "data.mask", "bids"),
    _c("manifest: response path leaving the root", "cli", "inspect {m_escape} --format manifest", "line 2", "manifest"),
    _c("manifest: absolute stimulus path", "cli", "inspect {m_absolute} --format manifest", "outside.wav", "manifest"),
    _c("manifest: tr not a number", "cli", "inspect {m_tr} --format manifest", "two", "manifest"),
    _c("manifest: response file missing", "cli", "inspect {m_noresp} --format manifest", "missing.npy", "manifest"),
    _c("manifest: columns missing", "cli", "inspect {m_columns} --format manifest", "response", "manifest"),
    _c("manifest: rows outlast the stimulus", "cli", "inspect {m_rows} --format manifest", "a.wav", "manifest"),
    _c("manifest: malformed YAML", "cli", "inspect {m_yaml} --format manifest", "m_yaml.yaml", "manifest"),
    _c("manifest: YAML that is a list", "cli", "inspect {m_list} --format manifest", "m_list.yaml", "manifest"),
]
ENTRIES = {"train": lambda argv: train.main(argv), "evaluate": lambda argv: evaluate.main(argv), "cli": lambda argv: cli.main(argv)}


@contextlib.contextmanager
def _held(hold: str | None, w: dict):
    if hold == "lock":
        try:
            from braintune.commands.common import out_dir_lock
        except ImportError:  # census of a checkout without out_dir locks: the run is simply not refused
            out_dir_lock = contextlib.nullcontext
        with out_dir_lock(w["tmp"] / "locked"):
            yield
    elif hold == "no_tensorboard":
        saved = {k: sys.modules.get(k) for k in ("tensorboard", "tensorboardX")}
        sys.modules.update(dict.fromkeys(saved))  # None in sys.modules: find_spec says "not installed"
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
    else:
        yield


def run_case(case: Case, w: dict) -> tuple[int | str, str]:
    """(exit status, or "exception"; what the command printed on stderr and stdout)."""
    argv = [a.format(**w) for a in case.argv]
    if case.entry != "cli" and not any(a.startswith("out_dir=") for a in argv):  # each case writes to its own out_dir
        argv.append(f"out_dir={w['tmp'] / 'out' / ''.join(ch if ch.isalnum() else '_' for ch in case.kind)}")
    out = io.StringIO()
    with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out), _held(case.hold, w):
        try:
            rc = ENTRIES[case.entry](argv)
        except SystemExit as stop:
            rc = stop.code if isinstance(stop.code, int) else 1
        except Exception:  # noqa: BLE001 - a traceback is what the census counts
            rc, _ = "exception", traceback.print_exc(file=out)
    return rc, out.getvalue()


def classify(case: Case, rc, text: str, w: dict) -> str:
    """clear (exit 2, one line per problem naming what it expects, no traceback) | traceback | silent | unclear."""
    if rc == "exception" or "Traceback (most recent call last)" in text:
        return "traceback"
    if rc == 0:
        return "silent"
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if "error: " in line), None)
    if rc != 2 or first is None or case.expect.format(**w) not in text:
        return "unclear"
    rest = [line for line in lines[first + 1:] if line.strip()]
    if lines[first].rstrip().endswith("problems:"):  # several problems: one "  - " line each
        return "clear" if len(rest) >= 2 and all(line.startswith("  - ") for line in rest) else "unclear"
    return "clear" if not rest else "unclear"


# ------------------------------------------------------------------------------------------------ the tests
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_world(tmp_path_factory.mktemp("bad_input"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # two real processes, started now and read at the end: the scripts' own exit status and stderr
    w["procs"] = [subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-c", str(w["broken"])], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env, cwd=w["tmp"]),
                  subprocess.Popen([sys.executable, "-m", "braintune", "export", str(w["evil"]), str(w["tmp"] / "export_sub")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=w["tmp"])]
    yield w
    for proc in w["procs"]:
        proc.kill()


def test_the_table_covers_every_command_and_reader():
    assert len({c.kind for c in CASES}) == len(CASES) >= 60
    commands = {"train", "alignment", "compare", "downstream", "inspect", "export"}
    readers = {"lebel", "bids", "manifest", "csv task", "mustard task"}
    assert {c.command for c in CASES} == commands and {c.where for c in CASES} == commands | readers
    counts = {name: sum(c.command == name for c in CASES) for name in commands}
    counts |= {name: sum(c.where == name for c in CASES) for name in readers}
    few = {k: n for k, n in counts.items() if n < 5}
    assert not few, f"fewer than 5 kinds for {few}"


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_input_ends_in_one_clear_line(case, world):
    rc, text = run_case(case, world)
    outcome = classify(case, rc, text, world)
    assert outcome == "clear", f"{case.kind}: exit {rc}, {outcome}:\n{text[-3000:]}"
    assert not world["marker"].exists(), f"{case.kind}: the checkpoint's payload ran"


def test_opting_in_reads_files_outside_the_root(world):
    from braintune.config import DataConfig
    from braintune.data.formats import open_study
    from braintune.data.formats.bids import BidsOptions
    from braintune.downstream.tasks import read_task

    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["inspect", str(world["m_escape"]), "--format", "manifest", "--allow-outside-root"]) == 0
    study = open_study(DataConfig(format="bids", root=str(world["bids_escape"]), allow_outside_root=True,
                                  bids=BidsOptions(mask=str(world["tmp"] / "mask.nii.gz"))))
    assert study.runs["story"].stimulus == world["tmp"] / "outside.wav"
    items = read_task("csv", world["csv_escape"], outside_root=True).items
    assert [Path(it.audio).name for it in items] == ["0.wav", "secret.wav"]


def test_debug_keeps_the_traceback(world):
    with pytest.raises(Exception, match="data.batch_size"):
        train.main(["-c", str(world["cfg"]), "--debug", "data.batch_size=0"])


def test_scripts_exit_2_with_one_line_and_the_payload_never_runs(world):
    train_proc, export_proc = world["procs"]
    for proc, name in ((train_proc, "broken.yaml"), (export_proc, "evil.ckpt")):
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 2, err
        assert "Traceback" not in err and name in err
        assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 1
    assert not world["marker"].exists()


def test_the_hostile_checkpoint_would_run_code_if_unpickled(world):
    # the refusals above mean something only if the payload is live: an unsafe load does run it
    torch.load(world["evil"], weights_only=False)
    assert world["marker"].read_text() == "code ran"
    world["marker"].unlink()


def test_no_eval_unsafe_yaml_or_pickle_in_the_package():
    import ast

    unsafe = []
    for path in (ROOT / "braintune").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            kwargs = {k.arg: ast.unparse(k.value) for k in node.keywords}
            # ast.literal_eval (data/words.py: Algonauts transcript cells such as "['so', 'you']") parses literals only
            bad = (name in ("eval", "exec", "pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load", "yaml.full_load",
                            "torch.hub.load", "marshal.loads")
                   or (name == "torch.load" and kwargs.get("weights_only") != "True")
                   or kwargs.get("allow_pickle") == "True" or kwargs.get("trust_remote_code") == "True")
            if bad:
                unsafe.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not unsafe, "\n".join(unsafe)


# ------------------------------------------------------------------------------------------------ census
def census() -> dict:
    """Run every case outside pytest; counts of clear / traceback / silent / unclear and the cases that are not clear."""
    with tempfile.TemporaryDirectory() as tmp:
        w = build_world(Path(tmp))
        outcomes, said = {}, {}
        for case in CASES:
            rc, text = run_case(case, w)
            outcomes[case.kind] = "silent" if w["marker"].exists() else classify(case, rc, text, w)  # code ran: the worst
            w["marker"].unlink(missing_ok=True)
            last = [line for line in text.splitlines() if "error" in line.lower() or "Error" in line]
            said[case.kind] = f"exit {rc}: " + (last[-1].strip()[:150] if last else "no error message")
    counts = {k: sum(v == k for v in outcomes.values()) for k in ("clear", "traceback", "silent", "unclear")}
    return {"kinds": len(CASES), **counts, "not_clear": {k: f"{v} ({said[k]})" for k, v in outcomes.items() if v != "clear"}}


if __name__ == "__main__" and "--census" in sys.argv:
    print(json.dumps(census(), indent=1))
