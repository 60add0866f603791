"""``python -m braintune <command> ...``: dataset inspection (train/evaluate have their own entry points)."""
from __future__ import annotations

import sys

COMMANDS = {"inspect": "braintune.inspect"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m braintune {{{','.join(COMMANDS)}}} ...  (training: python train.py -c CONFIG; "
              "evaluation: python evaluate.py {alignment,downstream} -c CONFIG)", file=sys.stderr)
        return 2
    import importlib

    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
