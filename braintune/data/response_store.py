"""Study responses -> one validated, per-run z-scored float32 file per participant on the node; rows read per batch.

``prepare_responses`` holds every (participant, run) in each process's RAM: ds003020's three long participants are
~11 GB of float32 each, and 8 DDP processes would hold 8 copies. ``store_responses`` writes the same numbers (same
exclusions, same z-scoring) once per node, one run at a time, to ``{participant}.f32`` files under a directory
named by the key of their inputs (the response files' identities and cuts, participants, runs, z-scoring,
``CODE_VERSION``): the first process to take the directory's lock writes them to temporary names and renames them,
then ``meta.json`` last; every other process (DDP ranks, DataLoader workers, later runs) waits on the lock and
finds them complete. ``RunRows`` reads a batch's rows of a run with one ``pread``: they pass through the kernel's
page cache, the one shared copy on the node, and a process holds only the rows it asked for.

Where: ``data.cache_dir``/responses, else ``$BRAINTUNE_NODE_DIR`` or the system temporary directory (node-local;
entries not opened for ``STALE_DAYS`` are removed when another is written there).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..provenance import CODE_VERSION, digest, file_identity
from .cache import pid_alive
from .responses import Responses, check_widths, excluded_targets, kept_targets, read_checked
from .study import Study

log = logging.getLogger(__name__)
STALE_DAYS = 7


class RunRows:
    """The rows of one (participant, run) in a store file, (n_rows, n_targets) float32, read on demand."""

    def __init__(self, path: str | Path, first_row: int, n_rows: int, n_targets: int):
        self.path, self.first_row, self.shape = str(path), first_row, (n_rows, n_targets)
        self.dtype = np.dtype(np.float32)
        self._fd: tuple[int, int] | None = None  # (pid, file descriptor): reopened in a forked or spawned process

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}

    def _file(self) -> int:
        if self._fd is None or self._fd[0] != os.getpid():
            self._fd = (os.getpid(), os.open(self.path, os.O_RDONLY))
        return self._fd[1]

    def __getitem__(self, rows) -> np.ndarray:
        """``rows`` a slice with step 1 -> a new (len, n_targets) array, an int -> one row; other indices read the
        whole run first."""
        if isinstance(rows, (int, np.integer)):
            row = int(rows) + self.shape[0] if rows < 0 else int(rows)
            if not 0 <= row < self.shape[0]:
                raise IndexError(f"row {rows} of a run of {self.shape[0]} rows")
            return self[row : row + 1][0]
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            return self[:][rows]
        start, stop, _ = rows.indices(self.shape[0])
        n, width = max(stop - start, 0), self.shape[1] * 4
        out = np.empty((n, self.shape[1]), np.float32)
        view, offset = memoryview(out).cast("B"), (self.first_row + start) * width
        done = 0
        while done < n * width:  # pread may return fewer bytes than asked
            got = os.preadv(self._file(), [view[done:]], offset + done)
            if got <= 0:
                raise OSError(f"'{self.path}' ended early: {done} of {n * width} bytes of rows {start}:{stop} read")
            done += got
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)


def node_dir(cache_dir: str | Path | None) -> Path:
    """Where response stores live: ``data.cache_dir``/responses, else a node-local directory."""
    if cache_dir:
        return Path(cache_dir) / "responses"
    base = os.environ.get("BRAINTUNE_NODE_DIR") or tempfile.gettempdir()
    return Path(base) / f"braintune-responses-{os.getuid()}"


def store_key(study: Study, participants: list[str], runs: list[str], zscore_runs: bool) -> str:
    """Digest of everything the stored numbers depend on."""
    sources = [[p, r, _describe(study.sources[(p, r)])] for p in participants for r in runs if (p, r) in study.sources]
    return digest([sources, participants, runs, zscore_runs, CODE_VERSION], 20)


def _describe(source) -> list:
    """A response source's file identity and every cut of its wrappers (rows, dataset key, selected columns)."""
    parts = [file_identity(source.path)]
    while source is not None:
        cols = getattr(source, "columns", None)
        cols = digest(np.asarray(cols).tolist()) if cols is not None else None
        parts.append([type(source).__name__, str(getattr(source, "key", "")), cols])
        source = getattr(source, "inner", None)
    return parts


def store_responses(study: Study, participants: list[str], runs: list[str], zscore_runs: bool = True,
                    cache_dir: str | Path | None = None) -> Responses:
    """``prepare_responses``' result with every array a ``RunRows`` of this node's store (written here if absent)."""
    root = node_dir(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    key = store_key(study, participants, runs, zscore_runs)
    entry = root / key
    with open(root / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first process writes; the others wait here, then read
        try:
            if not (entry / "meta.json").is_file():
                _sweep(root)
                _check_room(study, participants, runs, root)
                _write_store(study, participants, runs, zscore_runs, entry)
            os.utime(entry / "meta.json")  # in use: not stale
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    meta = json.loads((entry / "meta.json").read_text())
    data = {(p, r): RunRows(entry / f"{p}.f32", first, n, meta["n_kept"][p])
            for p, offsets in meta["rows"].items() for r, (first, n) in offsets.items()}
    kept = {p: np.asarray(k, dtype=np.int64) for p, k in meta["kept"].items()}
    log.info("responses of %s: %s (%.2f GB on disk, read per batch)", participants, entry,
             sum(len(k) * sum(n for _, n in meta["rows"][p].values()) for p, k in kept.items()) * 4 / 1e9)
    return Responses(data, kept, meta["n_original"], meta["excluded"])


def _check_room(study: Study, participants: list[str], runs: list[str], root: Path) -> None:
    """Refuse, before writing, a store larger than the free space under ``root`` (its upper bound: every target)."""
    need = 4 * sum(int(np.prod(study.sources[(p, r)].shape())) for p in participants for r in runs
                   if (p, r) in study.sources)
    free = shutil.disk_usage(root).free
    if need > free:
        raise DataError(f"the z-scored responses need up to {need / 1e9:.2f} GB under '{root}' but only "
                        f"{free / 1e9:.2f} GB are free there; set data.cache_dir (or $BRAINTUNE_NODE_DIR) to a "
                        "node-local disk with room")


def _write_store(study: Study, participants: list[str], runs: list[str], zscore_runs: bool, entry: Path) -> None:
    """Write the store of ``entry``: each participant's runs one at a time (two reads of each: exclusions first)."""
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta = {"rows": {}, "kept": {}, "n_original": {}, "excluded": {}, "n_kept": {}}
    for p in participants:
        have = check_widths(study, p, runs)
        keep, excluded, width = excluded_targets(study, p, have)
        offsets, first = {}, 0
        with open(tmp / f"{p}.f32", "wb") as f:
            for r in have:
                a = kept_targets(read_checked(study, p, r), keep, zscore_runs)
                f.write(np.ascontiguousarray(a).tobytes())
                offsets[r], first = (first, len(a)), first + len(a)
            f.flush()
            os.fsync(f.fileno())
        meta["rows"][p], meta["kept"][p], meta["n_original"][p] = offsets, keep.tolist(), width
        meta["excluded"][p], meta["n_kept"][p] = excluded, int(len(keep))
    (tmp / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(entry, ignore_errors=True)  # an incomplete entry of a killed writer (no meta.json)
    os.replace(tmp, entry)


def _sweep(root: Path) -> None:
    """Remove entries not opened for ``STALE_DAYS`` days and temporary directories of dead writers."""
    now = time.time()
    for path in root.iterdir():
        meta = path / "meta.json"
        stale = meta.is_file() and now - meta.stat().st_mtime > STALE_DAYS * 86400
        pid = path.name.split(".")[-2] if path.name.endswith(".tmp") else None  # ".{key}.{pid}.tmp"
        orphan = pid is not None and not (pid.isdigit() and pid_alive(int(pid)))
        if path.is_dir() and (stale or orphan):
            shutil.rmtree(path, ignore_errors=True)
