"""Brain-tune a model: ``python train.py -c CONFIG [key=value ...]`` (see README for the keys)."""
from __future__ import annotations

import sys

from braintune.cli import parse_args, run_command
from braintune.training.recipe import train


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv, prog="train.py")
    return run_command(lambda: train(cfg), cfg)


if __name__ == "__main__":
    sys.exit(main())
