"""What every command shares: ``-c CONFIG key=value ...`` -> Config, user errors -> one line and exit 2, the
library objects built from config sections, and summary.json with its provenance."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..config import Config, load_config
from ..data.datamodule import Splits, make_splits
from ..data.formats import open_study, trim_trs
from ..data.study import Study
from ..errors import UserError
from ..evaluation.alignment import AlignmentSettings
from ..evaluation.features import Extraction
from ..evaluation.recipe import reference_settings
from ..provenance import provenance


def parse_args(argv: list[str] | None, prog: str, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    """``-c CONFIG [--debug] key=value ...`` -> (Config, argparse namespace); a config error exits 2 with one message."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("-c", "--config", help="YAML config (e.g. configs/demo.yaml)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error")
    if extra:
        extra(parser)
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. trainer.max_epochs=3 out_dir=runs/x")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return cfg, args


def run_command(fn: Callable[[], object], out_dir: str | None = None, debug: bool = False) -> int:
    """Run ``fn``; a user's mistake prints one clear message (no traceback) and returns 2."""
    try:
        fn()
    except UserError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    if out_dir is not None:
        print(f"wrote {out_dir}/summary.json")
    return 0


def extraction(cfg: Config) -> Extraction:
    a = cfg.alignment
    return Extraction(a.extraction, a.window_s, a.chunk_s, cfg.data.context_s, cfg.band.past_s, cfg.band.lookahead_s,
                      a.sliding_context_s, a.sliding_stride_s, a.sliding_batch)


def alignment_settings(cfg: Config) -> AlignmentSettings:
    a = cfg.alignment
    if a.recipe == "reference":  # the multi-participant paper's evaluation, docs/reference_recipe.md
        return reference_settings(tuple(a.layers) if a.layers is not None else None, tuple(a.regions), cfg.data.labels,
                                  a.sliding_batch, trim_trs(cfg.data))
    return AlignmentSettings(tuple(a.layers) if a.layers is not None else None, extraction(cfg), tuple(a.delays),
                             tuple(a.alphas) if a.alphas is not None else None, a.cv, tuple(a.regions), cfg.data.labels,
                             a.min_ceiling)


def open_splits(cfg: Config) -> tuple[Study, Splits]:
    study = open_study(cfg.data)
    return study, make_splits(study, cfg.data)


def study_files(study: Study) -> list[Path]:
    """Every file a study reads (stimuli, word timings, responses), for the summary's data fingerprint."""
    files = {run.stimulus for run in study.runs.values()} | {run.words for run in study.runs.values() if run.words}
    return sorted(files | {src.path for src in study.sources.values()})


def write_summary(summary: dict, out_dir: str | Path, study: Study | None = None) -> Path:
    """``out_dir/summary.json`` with a ``provenance`` block (versions, commit, schema, data fingerprint)."""
    path = Path(out_dir) / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**summary, "provenance": provenance(study_files(study) if study is not None else None)}
    path.write_text(json.dumps(record, indent=1, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))
    return path
