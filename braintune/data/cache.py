"""Decoded arrays (audio at a sample rate, response matrices) -> memory-mapped ``.npy`` files under a cache dir.

The key is the source file's content identity (``provenance.file_identity``: path, size, mtime, a hash of its
first and last blocks), a tag (e.g. the sample rate) and the code version, so editing or re-downloading a file,
or a braintune release that decodes differently, invalidates its entry. The first epoch decodes and writes; later epochs (and other
DataLoader workers, which inherit the directory through ``BRAINTUNE_CACHE_DIR``) map the file and read
only the pages they touch, so an .mkv or .hf5 is decoded once per cache dir, not once per epoch or worker.

Every cache of braintune (this one, ``evaluation.cache`` and ``downstream.features``) writes its entries with
``write_entry`` and reads them with ``read_entry``: an ``.npy`` file followed by a trailer (magic, a digest of the
entry's key, a SHA-1 of the array bytes, their length), written to a unique temporary name (host, PID, random) and
renamed, so a reader sees a whole entry or none. On read the size, the trailer and the key are checked every time and
the checksum once per process and file: a truncated, foreign (another key's, or an older format's) or corrupt entry
is recomputed, never served. Temporary files left by killed writers (dead PIDs on this host, or older than a day)
are removed on the next write to their directory.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..provenance import CODE_VERSION, digest, file_identity

log = logging.getLogger(__name__)

ENV = "BRAINTUNE_CACHE_DIR"
MAGIC = b"BTCACHE1"
TRAILER = struct.Struct("<8s20s20sQ")  # magic, sha1(key), sha1(array bytes), number of array bytes
ORPHAN_AGE_S = 86400  # a temporary file this old is an orphan whatever host wrote it
HOST = socket.gethostname().replace(".", "_")  # in temporary names: a PID is only checked on its own host
_verified: set[tuple] = set()  # (path, inode, size, mtime) whose checksum this process has checked
_swept: set[str] = set()  # directories whose orphans this process has removed


def _sha1(data) -> bytes:
    return hashlib.sha1(data).digest()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running (another user's live process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _orphaned(tmp: Path, now: float) -> bool:
    """Whether the temporary file ``tmp`` belongs to a writer that can no longer finish it."""
    if now - tmp.stat().st_mtime > ORPHAN_AGE_S:
        return True
    parts = tmp.name.split(".")
    if tmp.name.endswith(".tmp") and len(parts) >= 6:  # ".{name}.{host}.{pid}.{random}.tmp"
        return parts[-4] == HOST and parts[-3].isdigit() and not pid_alive(int(parts[-3]))
    if tmp.name.endswith(".tmp.npy") and len(parts) >= 6:  # ".{stem}.{pid}.{random}.tmp.npy", written before 0.3
        return parts[-4].isdigit() and not pid_alive(int(parts[-4]))
    return False


def sweep_orphans(directory: str | Path) -> list[Path]:
    """Remove the temporary files of writers that died (this host, dead PID) or are older than a day; returns them."""
    removed, now = [], time.time()
    for tmp in [*Path(directory).glob(".*.tmp"), *Path(directory).glob(".*.tmp.npy")]:
        try:
            if _orphaned(tmp, now):
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # removed meanwhile by another sweeper
            continue
    if removed:
        log.info("removed %d temporary file(s) of killed cache writers under %s", len(removed), directory)
    return removed


def write_entry(path: str | Path, array: np.ndarray, key: str) -> None:
    """Write ``array`` as a verified entry for ``key`` at ``path``: a unique temporary file, fsynced, then renamed."""
    path, array = Path(path), np.ascontiguousarray(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    if str(path.parent) not in _swept:
        _swept.add(str(path.parent))
        sweep_orphans(path.parent)
    tmp = path.with_name(f".{path.name}.{HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.lib.format.write_array(f, array, allow_pickle=False)
            data = memoryview(array).cast("B") if array.size else b""
            f.write(TRAILER.pack(MAGIC, _sha1(key.encode()), _sha1(data), array.nbytes))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old entry, or none, or this whole one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check(path: Path, key: str) -> str | None:
    """Why the file at ``path`` is not a complete entry for ``key`` (None when it is)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        offset, st = f.tell(), os.fstat(f.fileno())
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if dtype.hasobject or st.st_size != offset + nbytes + TRAILER.size:
            return f"{st.st_size} bytes where a complete entry has {offset + nbytes + TRAILER.size}"
        f.seek(offset + nbytes)
        magic, key_sum, data_sum, length = TRAILER.unpack(f.read(TRAILER.size))
        if magic != MAGIC or length != nbytes or key_sum != _sha1(key.encode()):
            return "written for another key or by another braintune version"
        stamp = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp not in _verified:
            f.seek(offset)
            digest = hashlib.sha1()
            for _ in range(0, nbytes, 1 << 24):
                digest.update(f.read(min(1 << 24, offset + nbytes - f.tell())))
            if digest.digest() != data_sum:
                return "its checksum does not match its data"
            _verified.add(stamp)
    return None


def read_entry(path: str | Path, key: str, mmap: bool = False) -> np.ndarray | None:
    """The array of the entry at ``path`` if it is a complete entry written for ``key``; None when it is absent, and
    None (logged) when it is truncated, foreign or corrupt: the caller recomputes it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        problem = _check(path, key)
        if problem is None:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError, struct.error) as err:
        problem = f"{type(err).__name__}: {err}"
    log.warning("cache entry '%s' is not served (%s); recomputing it", path, problem)
    return None


def configure(cache_dir: str | Path | None) -> None:
    """Use ``cache_dir`` for every later cached read in this process and its workers (None: no cache)."""
    if cache_dir is None:
        os.environ.pop(ENV, None)
    else:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        os.environ[ENV] = str(Path(cache_dir).resolve())


def cache_dir() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def cache_key(path: str | Path, tag: str) -> str:
    """Hex key of (content identity of ``path``, tag, code version)."""
    return digest([file_identity(path), tag, CODE_VERSION], 20)


def cached_array(path: str | Path, tag: str, compute: Callable[[], np.ndarray], directory: str | Path | None = None) -> np.ndarray:
    """``compute()`` the first time, a read-only memory map of the saved result afterwards.

    Parameters
    ----------
    path : the source file whose decoding ``compute`` performs (its path, size and mtime key the entry).
    tag : what else changes the result, e.g. ``"audio@16000"``.
    directory : cache dir; None uses the configured one (``configure``), and without one ``compute()`` is returned.
    """
    directory = Path(directory) if directory is not None else cache_dir()
    if directory is None:
        return compute()
    key = cache_key(path, tag)
    target = directory / f"{Path(path).stem[:40]}-{key}.npy"
    cached = read_entry(target, key, mmap=True)
    if cached is not None:
        return cached
    write_entry(target, compute(), key)  # concurrent writers of one key write the same array: the last rename wins
    return np.load(target, mmap_mode="r")


class CachedSource:
    """A response source whose ``read()`` goes through ``cached_array`` (keyed by file, dataset and row/column cut)."""

    def __init__(self, inner, directory: str | Path):
        self.inner, self.directory = inner, Path(directory)
        self.path = inner.path
        self._tag: str | None = None  # built on first read: shape() can mean decoding a whole image

    def read(self) -> np.ndarray:
        if self._tag is None:
            self._tag = f"resp|{getattr(self.inner, 'key', '')}|{self.inner.shape()}|{getattr(self.inner, 'columns', '')}"
        return np.asarray(cached_array(self.path, self._tag, self.inner.read, self.directory))

    def read_repeats(self):
        return self.inner.read_repeats()

    def shape(self) -> tuple[int, int]:
        return self.inner.shape()
