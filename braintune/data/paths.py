"""A path read from a data file (a manifest, an ``events.tsv``, a task's CSV or JSON) -> a path inside the dataset root.

A dataset's own files name other files. A mistaken or hostile one could name ``../../`` or an absolute path and make
braintune read whatever the user can read. Readers pass every such path through ``inside_root``, which refuses one
that leaves the root, naming the data file and its line, unless the reader runs under ``allow_outside_root(True)``
(``data.allow_outside_root`` for dataset formats, ``downstream.allow_outside_root`` for downstream tasks). The check is
lexical (``..`` and absolute paths; symlinks are not followed), so a dataset whose audio directory is a link to another
disk stays readable: a link inside the root is its owner's choice, a path in a data file is not.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from ..errors import DataError

# (allowed, the config key that allows it): set by the code that reads the config, consulted by the readers
_POLICY: ContextVar[tuple[bool, str]] = ContextVar("braintune_outside_root", default=(False, "data.allow_outside_root"))


@contextmanager
def allow_outside_root(allow: bool, key: str = "data.allow_outside_root") -> Iterator[None]:
    """Within this block, ``inside_root`` accepts paths outside their root when ``allow`` (config key ``key``)."""
    token = _POLICY.set((bool(allow), key))
    try:
        yield
    finally:
        _POLICY.reset(token)


def inside_root(root: str | Path, name: str | Path, where: str) -> Path:
    """``root / name``, normalised, when it stays inside ``root`` (or leaving it is allowed); else a ``DataError`` naming
    ``where`` (the data file and line that gave ``name``), the path and how to allow it."""
    base = Path(os.path.abspath(root))
    path = Path(os.path.normpath(base / name))
    allowed, key = _POLICY.get()
    if allowed or path == base or base in path.parents:
        return path
    raise DataError(f"{where} names '{name}', which is outside the dataset root '{base}' (it resolves to '{path}'); "
                    f"braintune reads only files inside the root. Move the file under the root, or set {key}=true if you "
                    "trust this dataset")
