"""One z-scored copy of the responses per node: the store holds exactly what ``prepare_responses`` holds (same
exclusions, same z-scores), written once by whichever process takes the lock first while the others wait and read
it, keyed by its inputs, and read a batch's rows at a time."""
from __future__ import annotations

import multiprocessing as mp
import pickle

import numpy as np
import pytest
from test_data_lebel import SECONDS, SR, write_lebel

from braintune.data import response_store
from braintune.data.formats import lebel
from braintune.data.response_store import RunRows, store_responses
from braintune.data.responses import prepare_responses

STORIES = ["alpha", "beta", "wheretheressmoke"]


def _study(root, seed: int = 0):
    rng = np.random.default_rng(seed)
    audio = {s: 0.1 * rng.standard_normal(int(SECONDS * SR)).astype(np.float32) for s in STORIES}
    responses = {p: {s: rng.standard_normal((25, n)).astype(np.float32) for s in STORIES} for p, n in (("UTS01", 6), ("UTS02", 9))}
    responses["UTS01"]["alpha"][:, 1] = np.nan  # excluded over every run
    for s in STORIES:
        responses["UTS02"][s][:, 4] = 3.0  # constant
    return lebel.open_study(write_lebel(root, audio, responses), lebel.LebelOptions())


def test_the_store_holds_what_prepare_responses_holds(tmp_path):
    study = _study(tmp_path / "data")
    runs = ["alpha", "beta"]
    stored = store_responses(study, ["UTS01", "UTS02"], runs, cache_dir=tmp_path / "cache")
    ram = prepare_responses(study, ["UTS01", "UTS02"], runs)
    assert stored.n_targets == ram.n_targets == {"UTS01": 5, "UTS02": 8}
    assert stored.excluded == ram.excluded and stored.n_original == ram.n_original
    for p in ("UTS01", "UTS02"):
        np.testing.assert_array_equal(stored.kept[p], ram.kept[p])
    for key, rows in stored.data.items():
        assert isinstance(rows, RunRows) and rows.shape == ram.data[key].shape
        np.testing.assert_array_equal(rows[3:9], ram.data[key][3:9])  # a segment's rows, read alone
        np.testing.assert_array_equal(rows[-1], ram.data[key][-1])
        np.testing.assert_array_equal(np.asarray(rows), ram.data[key])
    clone = pickle.loads(pickle.dumps(stored.data[("UTS02", "beta")]))  # a spawned DataLoader worker's copy
    np.testing.assert_array_equal(clone[0:2], ram.data[("UTS02", "beta")][0:2])


def _open(args):
    root, cache, written = args
    response_store._write_store, original = _counting(response_store._write_store, written), response_store._write_store
    try:
        responses = store_responses(lebel.open_study(root, lebel.LebelOptions()), ["UTS01"], ["alpha", "beta"], cache_dir=cache)
    finally:
        response_store._write_store = original
    return float(responses.data[("UTS01", "beta")][0:4].sum())


def _counting(write, path):
    def counted(*args):
        with open(path, "a") as f:
            f.write("written\n")
        return write(*args)

    return counted


def test_processes_share_one_copy_written_once(tmp_path):
    _study(tmp_path / "data")
    written = tmp_path / "written.txt"
    with mp.get_context("fork").Pool(3) as pool:
        sums = pool.map(_open, [(tmp_path / "data", tmp_path / "cache", written)] * 3)
    assert len(set(sums)) == 1
    assert written.read_text().count("written") == 1  # the first process wrote; the others waited and read
    entries = [p for p in (tmp_path / "cache" / "responses").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and sorted(f.name for f in entries[0].iterdir()) == ["UTS01.f32", "meta.json"]


def test_changed_inputs_get_a_new_entry(tmp_path):
    study = _study(tmp_path / "data")
    a = store_responses(study, ["UTS01"], ["alpha", "beta"], cache_dir=tmp_path / "cache")
    b = store_responses(study, ["UTS01"], ["alpha", "beta"], zscore_runs=False, cache_dir=tmp_path / "cache")
    assert a.data[("UTS01", "beta")].path != b.data[("UTS01", "beta")].path
    assert not np.allclose(a.data[("UTS01", "beta")][:], b.data[("UTS01", "beta")][:])
    with pytest.raises(IndexError):
        a.data[("UTS01", "beta")][25]


def test_a_store_that_does_not_fit_is_refused_before_writing(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from braintune.errors import DataError

    study = _study(tmp_path / "data")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(DataError, match="data.cache_dir") as err:
        store_responses(study, ["UTS01", "UTS02"], ["alpha", "beta"], cache_dir=tmp_path / "cache")
    assert str(tmp_path / "cache") in str(err.value)
    assert not [p for p in (tmp_path / "cache" / "responses").iterdir() if p.is_dir()]  # nothing half-written


def test_the_sweep_removes_dead_writers_and_stale_entries_only(tmp_path):
    import os
    import subprocess
    import sys
    import time

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its PID names no live process
    root = tmp_path / "responses"
    for name in (f".k1.{dead.pid}.tmp", f".k2.{os.getpid()}.tmp", ".k3.notapid.tmp", "fresh", "stale"):
        (root / name).mkdir(parents=True)
    for name in ("fresh", "stale"):
        (root / name / "meta.json").write_text("{}")
    old = time.time() - (response_store.STALE_DAYS + 1) * 86400
    os.utime(root / "stale" / "meta.json", (old, old))
    response_store._sweep(root)
    assert sorted(p.name for p in root.iterdir()) == [f".k2.{os.getpid()}.tmp", "fresh"]


def test_the_store_holds_the_planted_columns_z_scored(tmp_path):
    from scipy import stats

    study = _study(tmp_path / "data")
    stored = store_responses(study, ["UTS01", "UTS02"], ["alpha", "beta"], cache_dir=tmp_path / "cache")
    planted = {"UTS01": np.delete(np.arange(6), 1), "UTS02": np.delete(np.arange(9), 4)}  # the NaN and constant columns
    for p, kept in planted.items():
        np.testing.assert_array_equal(stored.kept[p], kept)
        for run in ("alpha", "beta"):  # oracle: scipy's z-score of the file's kept columns
            raw = study.sources[(p, run)].read()[:, kept]
            np.testing.assert_allclose(np.asarray(stored.data[(p, run)]), stats.zscore(raw, axis=0), rtol=1e-5, atol=1e-5)
