"""Decoded arrays (audio at a sample rate, response matrices) -> memory-mapped ``.npy`` files under a cache dir.

The key is the source file's content identity (``provenance.file_identity``: path, size, mtime, a hash of its
first and last blocks), a tag (e.g. the sample rate) and the code version, so editing or re-downloading a file,
or a braintune release that decodes differently, invalidates its entry. The first epoch decodes and writes; later epochs (and other
DataLoader workers, which inherit the directory through ``BRAINTUNE_CACHE_DIR``) map the file and read
only the pages they touch, so an .mkv or .hf5 is decoded once per cache dir, not once per epoch or worker.
"""
from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..provenance import CODE_VERSION, digest, file_identity

log = logging.getLogger(__name__)

ENV = "BRAINTUNE_CACHE_DIR"


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
    target = directory / f"{Path(path).stem[:40]}-{cache_key(path, tag)}.npy"
    if target.is_file():
        try:
            return np.load(target, mmap_mode="r")
        except (ValueError, OSError) as err:  # a partial write from a killed process: rebuild it
            log.warning("cache entry '%s' unreadable (%s); rebuilding", target, err)
    array = np.ascontiguousarray(compute())
    directory.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, target)  # atomic: concurrent workers never see half a file
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
