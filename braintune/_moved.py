"""Import shims for modules that moved in 0.2 (issue 9): the old name still imports, with a DeprecationWarning
naming the new one, for one release. Implemented as an import hook so that library packages hold no import of
the command layer."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "braintune.training.recipe": "braintune.commands.train",
    "braintune.training.export": "braintune.commands.export",
    "braintune.evaluation.command": "braintune.commands.alignment",
    "braintune.downstream.command": "braintune.commands.downstream",
    "braintune.inspect": "braintune.commands.inspect",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}; the old name goes in the next release",
                      DeprecationWarning, stacklevel=3)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:  # the target module is already executed
        return None


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
