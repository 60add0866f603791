"""What made a result: the code and package versions, the commit, and the identity of the files it read.

``CODE_VERSION`` enters every cache key: bump it when a change alters what a cached entry would hold (features,
decoded audio, responses), so entries written by older code are recomputed, never served. ``file_identity``
is the content identity of an input file (size, mtime and a hash of its first and last blocks), cheap on
multi-GB files and different for any edit that keeps the size. ``provenance`` is recorded in every summary.json.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import __version__

CODE_VERSION = 2  # of cached arrays (features, audio, frames, responses); bumped by issue 9's new keys
SCHEMA_VERSION = 2  # of summary.json
PACKAGES = ("torch", "transformers", "peft", "lightning", "himalaya", "numpy", "scipy", "scikit-learn", "h5py", "nibabel")
_BLOCK = 1 << 16


def file_identity(path: str | Path) -> list:
    """[absolute path, size, mtime in ns, sha1 of the first and last 64 KiB] of ``path``; None parts when it is absent."""
    p = Path(path).resolve()
    if not p.exists():
        return [str(p), None, None, None]
    st = p.stat()
    if p.is_dir():  # an exported model directory: its files' identities
        return [str(p), "dir", sorted(file_identity(f)[1:] + [f.name] for f in p.iterdir() if f.is_file())]
    digest = hashlib.sha1()
    with p.open("rb") as f:
        digest.update(f.read(_BLOCK))
        if st.st_size > 2 * _BLOCK:
            f.seek(-_BLOCK, 2)
            digest.update(f.read(_BLOCK))
    return [str(p), st.st_size, st.st_mtime_ns, digest.hexdigest()]


def digest(obj, length: int = 16) -> str:
    """Short stable hex digest of a JSON-able object (dict keys sorted, other objects by ``str``)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the braintune checkout this code runs from (None for an installed wheel)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip() or None
    return f"{commit}+dirty" if commit and dirty.stdout.strip() else commit


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def provenance(data_files: list[str | Path] | None = None) -> dict:
    """The ``provenance`` block of summary.json: versions, commit, schema, and a fingerprint of the data read."""
    record = {"braintune": __version__, "commit": git_commit(), "schema_version": SCHEMA_VERSION,
              "code_version": CODE_VERSION, "packages": package_versions()}
    if data_files is not None:
        files = sorted({str(Path(f).resolve()) for f in data_files})
        record["data"] = {"files": len(files), "fingerprint": digest([file_identity(f) for f in files])}
    return record
