"""The ``braintune`` console script: ``braintune {train,evaluate,inspect,export,report} ...``."""
from __future__ import annotations

import importlib
import sys

from .commands import COMMANDS


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:9s} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: braintune <command> ...\n\n" + "\n".join(lines), file=sys.stderr)
        return 2
    module, _ = COMMANDS[argv[0]]
    return importlib.import_module(module).main(argv[1:])
