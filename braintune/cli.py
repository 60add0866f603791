"""Shared command-line plumbing: ``-c CONFIG key=value ...`` -> Config; user errors -> one message, exit 2."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from .config import Config, ConfigError, load_config

USER_ERRORS: tuple[type[Exception], ...] = (ConfigError,)


def user_errors() -> tuple[type[Exception], ...]:
    """Exception types that mean the user's input is wrong (printed without a traceback)."""
    from .backbones.hub import BackboneError
    from .data.stimuli import StimulusError
    from .data.study import DataError

    return USER_ERRORS + (DataError, StimulusError, BackboneError)


def parse_args(argv: list[str] | None, prog: str, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("-c", "--config", help="YAML config (e.g. configs/demo.yaml)")
    if extra:
        extra(parser)
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. trainer.max_epochs=3 out_dir=runs/x")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2)
    return (cfg, args) if extra else cfg


def run_command(fn: Callable[[], object], cfg: Config) -> int:
    """Run ``fn``; a user's mistake prints one clear message (no traceback) and exits with status 2."""
    try:
        fn()
    except user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {cfg.out_dir}/summary.json")
    return 0
