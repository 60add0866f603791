"""Faults: ``kill -9`` at named moments of training (the alignment before it, mid-epoch, inside a checkpoint write,
between two checkpoint writes, the alignment after it), at a seeded random moment, and inside feature caching; then
the same command again ends with the uninterrupted run's summary (same final weights on CPU, same alignment) and no
half-written file is ever read back. A full disk (``RLIMIT_FSIZE``) ends in one error line with the last checkpoint
intact; a second command on an out_dir in use is refused, naming the first's PID, until the first is dead.

The killed processes are forks of the test process (``kill -9`` is real; importing torch in a fresh interpreter would
cost ~8 s per kill). Everything runs on one CPU thread, so runs are bit-comparable.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from braintune.commands import evaluate
from braintune.commands import train as train_command
from braintune.commands.common import out_dir_lock
from braintune.config import load_config
from braintune.data import cache
from braintune.models import load_checkpoint
from braintune.training import checkpoints

FORK = multiprocessing.get_context("fork")
TINY = ["data.format=synthetic", "data.synthetic.participants=2", "data.synthetic.stories=3", "data.synthetic.story_seconds=40",
        "data.synthetic.targets=[5,6]", "data.heldout_participants=[]", "data.segment_trs=8", "data.context_s=1.0",
        "data.batch_size=2", "backbone.config.hidden_size=16", "backbone.config.num_hidden_layers=1",
        "backbone.config.num_attention_heads=2", "backbone.config.intermediate_size=32",
        "backbone.config.conv_dim=[16,16,16,16,16,16,16]", "backbone.config.num_conv_pos_embeddings=8",
        "backbone.config.num_conv_pos_embedding_groups=2", "pooling.n_windows=2", "trainer.max_epochs=2",
        "trainer.progress_bar=false", "trainer.accelerator=cpu", "trainer.seed=5", "alignment.layers=[1]",
        "alignment.delays=[1,2]", "alignment.cache_dir=null", "logger.kind=csv", "downstream.cache_dir=null"]
DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def tiny(data: Path, out: Path, *extra: str) -> list[str]:
    return ["-c", str(DEMO), *TINY, f"data.root={data}", f"out_dir={out}", *extra]


def run(args: list[str]) -> dict:
    """The train command in this process (what ``train.py`` runs), its summary."""
    cfg = load_config(args[1], args[2:], "train")
    return train_command.train(cfg)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def on_call(n: int, then=None):
    """A wrapper factory: the n-th call dies (after running the real function when ``then`` is 'after')."""
    calls = {"n": 0}

    def wrap(real):
        def inner(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n and then != "after":
                die()
            out = real(*args, **kwargs)
            if calls["n"] == n:
                die()
            return out
        return inner
    return wrap


class KillMidEpoch(L.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 0:  # one optimizer step into epoch 1
            die()


def _train_child(args: list[str], point: str | None) -> None:
    """Child process: install the fault named ``point``, then run the train command."""
    callbacks = []
    if point == "alignment before":
        train_command.measure_alignment = on_call(1)(train_command.measure_alignment)
    elif point == "alignment after":
        train_command.measure_alignment = on_call(2)(train_command.measure_alignment)
    elif point == "mid-epoch":
        callbacks = [KillMidEpoch()]
    elif point == "checkpoint written, not renamed":  # the temporary file is complete, the rename never happens
        checkpoints.os.fsync = on_call(1)(os.fsync)
    elif point == "between two checkpoint files":  # the first file of an epoch renamed, the second never written
        checkpoints.os.replace = on_call(1, then="after")(os.replace)
    train_command.train(load_config(args[1], args[2:], "train"), callbacks)


def fork(target, *args) -> multiprocessing.Process:
    proc = FORK.Process(target=target, args=args)
    proc.start()
    return proc


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoints" / "last.ckpt")["state_dict"]


def assert_same_run(summary: dict, reference: dict, out: Path, reference_out: Path) -> None:
    a, b = weights(out), weights(reference_out)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ from the uninterrupted run, e.g. {differ[:3]}"
    for key in ("best_val_pearson", "epochs", "optimizer_steps", "participants", "runs", "n_targets"):
        assert summary[key] == reference[key], key
    assert Path(summary["checkpoint"]).name == Path(reference["checkpoint"]).name
    assert Path(summary["checkpoint"]).parent == out / "checkpoints"  # its own directory's checkpoint
    assert summary["alignment"] == reference["alignment"]
    assert not list((out / "checkpoints").glob(".*.tmp")), "temporary files left behind"


def no_half_written_checkpoint(out: Path) -> None:
    for ckpt in (out / "checkpoints").glob("*.ckpt"):
        load_checkpoint(ckpt)  # a truncated file at a final name would raise


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # forks must not inherit an OpenMP pool; one thread also makes runs bit-comparable
    data, out = tmp_path_factory.mktemp("faults") / "data", tmp_path_factory.mktemp("reference")
    started = time.time()
    summary = run(tiny(data, out))
    yield data, out, summary, time.time() - started
    torch.set_num_threads(threads)


def test_killed_at_each_named_moment_then_rerun_ends_as_the_uninterrupted_run(reference, tmp_path):
    data, ref_out, ref, _ = reference
    out = tmp_path / "run"
    args = tiny(data, out)
    for point in ("alignment before", "mid-epoch", "checkpoint written, not renamed", "between two checkpoint files",
                  "alignment after"):
        proc = fork(_train_child, args, point)
        proc.join(300)
        assert proc.exitcode == -signal.SIGKILL, f"the fault '{point}' did not fire (exit {proc.exitcode})"
        no_half_written_checkpoint(out)
        if point == "checkpoint written, not renamed":
            assert list((out / "checkpoints").glob(".*.tmp")), "the killed write left no temporary file"
    assert_same_run(run(args), ref, out, ref_out)


def test_seeded_random_kill_then_rerun_ends_as_the_uninterrupted_run(reference, tmp_path):
    data, ref_out, ref, seconds = reference
    out = tmp_path / "run"
    proc = fork(_train_child, tiny(data, out), None)
    time.sleep(float(np.random.default_rng(15).uniform(0.2, 0.8)) * seconds)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)
    no_half_written_checkpoint(out) if (out / "checkpoints").is_dir() else None
    assert_same_run(run(tiny(data, out)), ref, out, ref_out)


def test_a_copied_run_directory_resumes_against_its_own_checkpoints(reference, tmp_path):
    data, ref_out, ref, _ = reference
    out = Path(shutil.copytree(ref_out, tmp_path / "copy"))  # a finished run copied to a new name, then resumed
    assert_same_run(run(tiny(data, out)), ref, out, ref_out)  # summary and "after" alignment from the copy's checkpoint


def _full_disk_child(args: list[str], limit: int, err: Path) -> None:
    sys.stderr = open(err, "w", buffering=1)  # noqa: SIM115 - the child's stderr until it exits
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail with EFBIG
    rc = train_command.main(args)
    sys.stderr.flush()
    os._exit(rc)


def test_full_disk_is_one_error_and_the_last_checkpoint_stays_intact(reference, tmp_path):
    data, ref_out, _, _ = reference
    out = Path(shutil.copytree(ref_out, tmp_path / "run"))
    last = out / "checkpoints" / "last.ckpt"
    before = hashlib.sha1(last.read_bytes()).hexdigest()
    err = tmp_path / "stderr.txt"
    proc = fork(_full_disk_child, tiny(data, out, "trainer.max_epochs=3"), last.stat().st_size // 2, err)
    proc.join(300)
    text = err.read_text()
    assert proc.exitcode == 2, text[-2000:]
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in text and "checkpoints" in errors[0], text[-2000:]
    assert hashlib.sha1(last.read_bytes()).hexdigest() == before
    load_checkpoint(last)
    assert not list((out / "checkpoints").glob(".*.tmp"))


def _hold_lock(out: Path, ready) -> None:
    with out_dir_lock(out):
        ready.set()
        time.sleep(600)


def test_a_second_run_on_the_same_out_dir_is_refused_until_the_first_is_dead(reference, tmp_path, capsys):
    data, _, _, _ = reference
    out = tmp_path / "run"
    ready = FORK.Event()
    first = fork(_hold_lock, out, ready)
    assert ready.wait(60)
    assert train_command.main(tiny(data, out)) == 2
    assert f"process {first.pid} on" in capsys.readouterr().err
    os.kill(first.pid, signal.SIGKILL)
    first.join(60)
    with out_dir_lock(out):  # the dead holder's lock went with it
        assert (out / ".braintune.lock").read_text().startswith(f"{os.getpid()} on")


# ------------------------------------------------------------------------------------------------ caches
def _writer(directory: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    while True:  # rewrite four entries for ever, each a distinct 4 MB array
        k = int(rng.integers(4))
        cache.write_entry(directory / f"k{k}.npy", np.full(1 << 20, k, np.float32), f"key{k}")


def test_cache_writers_killed_at_random_points_never_leave_a_servable_half_file(tmp_path):
    rng = np.random.default_rng(7)
    killed_mid_write = 0
    for round_ in range(6):  # two concurrent writers per round, both killed at a seeded random moment
        procs = [fork(_writer, tmp_path, 10 * round_ + i) for i in range(2)]
        time.sleep(float(rng.uniform(0.05, 0.5)))
        for proc in procs:
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(30)
        killed_mid_write += len(list(tmp_path.glob(".*.tmp")))
        for k in range(4):
            entry = cache.read_entry(tmp_path / f"k{k}.npy", f"key{k}")
            assert entry is None or np.array_equal(entry, np.full(1 << 20, k, np.float32))
        cache._swept.discard(str(tmp_path))
        cache.write_entry(tmp_path / "k0.npy", np.full(1 << 20, 0, np.float32), "key0")  # the next writer sweeps
        assert not list(tmp_path.glob(".*.tmp")), "temporary files of dead writers were not removed"
    print(f"{killed_mid_write} writes were cut by a kill")


def test_truncated_foreign_corrupt_and_old_entries_are_recomputed_never_served(tmp_path):
    src = tmp_path / "x.wav"
    src.write_bytes(os.urandom(4096))
    calls = []

    def compute():
        calls.append(1)
        return np.arange(1000, dtype=np.float32)

    # copies: the sabotage below rewrites files in place, which a live memory map would not survive (SIGBUS)
    good = np.array(cache.cached_array(src, "t", compute, tmp_path / "c"))
    entry = next((tmp_path / "c").glob("x-*.npy"))
    key = entry.stem.split("-", 1)[1]
    sabotage = {
        "truncated": lambda: entry.write_bytes(entry.read_bytes()[:300]),
        "foreign": lambda: cache.write_entry(entry, np.zeros(1000, np.float32), "another key"),
        "corrupt": lambda: entry.write_bytes(entry.read_bytes()[:200] + b"\x01" + entry.read_bytes()[201:]),
        "old format": lambda: np.save(entry, np.zeros(1000, np.float32)),
    }
    for name, damage in sabotage.items():
        damage()
        cache._verified.clear()
        assert cache.read_entry(entry, key) is None, f"a {name} entry was served"
        assert np.array_equal(np.array(cache.cached_array(src, "t", compute, tmp_path / "c")), good), name
    assert len(calls) == 1 + len(sabotage)


def test_feature_cache_of_another_dataset_with_the_same_paths_is_not_served(tmp_path, monkeypatch):
    import soundfile as sf

    from braintune.data.modalities import StimulusSpec
    from braintune.downstream import features
    from braintune.downstream.tasks.base import Item

    monkeypatch.setattr(features, "encode_item", lambda backbone, stim, device: np.full((2, 3), float(np.abs(stim["audio"]).mean())))
    out = {}
    for name, level in (("a", 0.1), ("b", 0.5)):  # same relative paths, same sizes, different sound
        root = tmp_path / name
        root.mkdir()
        sf.write(root / "clip.wav", np.full(16000, level, np.float32), 16000)
        item = Item(id="clip.wav", label="x", split="train", audio=str(root / "clip.wav"))
        out[name] = features.extract(lambda: torch.nn.Identity(), [item], StimulusSpec(("audio",)), "cpu", tmp_path / "cache" / "m" / "t")
    assert out["a"][0, 0, 0] == pytest.approx(0.1, abs=1e-3) and out["b"][0, 0, 0] == pytest.approx(0.5, abs=1e-3)


def _alignment_child(args: list[str]) -> None:
    os.fsync = on_call(2)(os.fsync)  # the second run's features: in their temporary file, killed before the rename
    os._exit(evaluate.main(args))


def test_alignment_killed_while_caching_features_reruns_to_the_same_result(reference, tmp_path):
    import json

    data, _, _, _ = reference
    common = ["alignment", "-c", str(DEMO), *TINY, f"data.root={data}"]
    clean = evaluate.main([*common, f"out_dir={tmp_path / 'clean'}", f"alignment.cache_dir={tmp_path / 'clean_cache'}"])
    assert clean == 0
    args = [*common, f"out_dir={tmp_path / 'run'}", f"alignment.cache_dir={tmp_path / 'cache'}"]
    proc = fork(_alignment_child, args)
    proc.join(300)
    assert proc.exitcode == -signal.SIGKILL
    assert list((tmp_path / "cache").rglob(".*.tmp")), "the kill left no temporary file"
    assert evaluate.main(args) == 0
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("clean", "run"))
    assert a["participants"] == b["participants"] and a["mean_r"] == b["mean_r"]
    assert b["feature_cache"]["hits"] == 1 and b["feature_cache"]["misses"] == a["feature_cache"]["misses"] - 1
    assert not list((tmp_path / "cache").rglob(".*.tmp"))
