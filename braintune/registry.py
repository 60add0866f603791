"""Short names -> builders, extendable from other packages through Python entry points.

A ``Registry`` is a plain mapping of the built-in entries; on a miss (or when listed) it also loads the entry
points of its group (``braintune.formats``, ``braintune.backbones``, ``braintune.tasks``), as pytest loads its
plugins, so a package that declares ``[project.entry-points."braintune.formats"] toy = "toy_pkg:FORMAT"`` adds
a dataset format without editing braintune. A bad name lists the valid ones.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Built-in entries plus the entry points of ``group``; ``what`` names the key in error messages."""

    def __init__(self, group: str, what: str, builtins: dict[str, T] | None = None):
        self.group, self.what = group, what
        self._entries: dict[str, T] = dict(builtins or {})
        self._loaded: set[str] = set()
        self._scanned: tuple[str, ...] | None = None  # sys.path at the last scan: a new path entry rescans

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` (programmatic registration; entry points do the same)."""
        self._entries[name] = entry
        return entry

    def _load_plugins(self) -> None:
        if self._scanned == tuple(sys.path):
            return
        self._scanned = tuple(sys.path)
        for ep in entry_points(group=self.group):
            if ep.name in self._entries or ep.value in self._loaded:
                continue
            try:
                self._entries[ep.name] = ep.load()
            except Exception as err:  # a broken plugin must not hide the built-in entries
                raise ConfigError(f"{self.what} '{ep.name}' from package entry point '{ep.value}' ({self.group}) "
                                  f"cannot be loaded: {type(err).__name__}: {err}") from err
            self._loaded.add(ep.value)

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            self._load_plugins()
        if name not in self._entries:
            raise ConfigError(f"{self.what} '{name}' is not known; available: {', '.join(sorted(self))}")
        return self._entries[name]

    def get(self, name: str, default=None):
        return self[name] if name in self else default

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._load_plugins()
        return iter(dict(self._entries))

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._entries)
