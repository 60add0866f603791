"""What every command shares: ``-c CONFIG key=value ...`` -> Config, user errors -> one line and exit 2, the
library objects built from config sections, and summary.json with its provenance."""
from __future__ import annotations

import argparse
import errno
import fcntl
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..config import Config, load_config
from ..data.datamodule import Splits, make_splits
from ..data.formats import open_study, trim_trs
from ..data.study import Study
from ..errors import OutputError, UserError
from ..evaluation.alignment import AlignmentSettings
from ..evaluation.features import Extraction
from ..evaluation.recipe import reference_settings
from ..provenance import provenance


def parse_args(argv: list[str] | None, prog: str, extra: Callable[[argparse.ArgumentParser], None] | None = None,
               command: str | None = None):
    """``-c CONFIG [--debug] key=value ...`` -> (Config, argparse namespace); a config error exits 2 with one message.

    ``command`` (train, alignment, compare, downstream) also checks what this machine must provide for it
    (``config.check_environment``), in the same pass as the config's own checks."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("-c", "--config", help="YAML config (e.g. configs/demo.yaml)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error")
    if extra:
        extra(parser)
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. trainer.max_epochs=3 out_dir=runs/x")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides, command)
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return cfg, args


# OSErrors that the machine or the user's paths cause (not bugs): one line naming the file, exit 2
ENVIRONMENT_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
                      errno.EFBIG: "the file-size limit (ulimit -f) or the filesystem's is reached",
                      errno.EROFS: "the filesystem is read-only", errno.EACCES: "permission denied",
                      errno.EPERM: "operation not permitted", errno.ENOTDIR: "a file stands where a directory is expected",
                      errno.EISDIR: "a directory stands where a file is expected", errno.EEXIST: "a file is in the way",
                      errno.ENAMETOOLONG: "the path is too long"}
LOCK_FILE = ".braintune.lock"


def os_error_message(err: OSError) -> str:
    """One line for an OSError that the machine or a path caused: the file, what happened and what to do."""
    where = f"'{err.filename}'" if err.filename else "a file"
    return (f"cannot write or read {where}: {ENVIRONMENT_ERRNOS[err.errno]} ({err.strerror}); free space, fix the "
            "permissions or choose another out_dir / cache_dir (completed checkpoints and cache entries are intact)")


def _rank() -> int:
    """This process's rank under torchrun / SLURM / Lightning's DDP launcher (0 when launched alone)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


@contextmanager
def out_dir_lock(out_dir: str | Path) -> Iterator[None]:
    """Hold ``out_dir/.braintune.lock`` (an exclusive ``flock``, released by the kernel when the holder dies) while a
    command writes to ``out_dir``; a second command on the same out_dir is refused, naming the holder's PID. Only rank 0
    takes it (DDP / SLURM processes of one run share the out_dir)."""
    if _rank() != 0:
        yield
        return
    path = Path(out_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "of unknown PID"
        os.close(fd)
        raise OutputError(f"out_dir '{out_dir}' is in use by another braintune run (process {holder}); wait for it to "
                          "finish, or choose another out_dir") from None
    try:  # a holder that died released its lock: its file's stale PID is simply overwritten
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)[:160]}\n".encode(), 0)
        yield
    finally:
        os.ftruncate(fd, 0)
        os.close(fd)  # releases the lock; the file stays (removing it could let two later runs lock two files)


def run_command(fn: Callable[[], object], out_dir: str | None = None, debug: bool = False) -> int:
    """Run ``fn`` holding ``out_dir``'s lock; a user's mistake, or a full disk / unwritable path, prints one clear message
    (no traceback; ``debug`` re-raises) and returns 2. Any other exception is a bug and keeps its traceback."""
    try:
        if out_dir is None:
            fn()
        else:
            with out_dir_lock(out_dir):
                fn()
    except UserError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if debug or err.errno not in ENVIRONMENT_ERRNOS:
            raise
        print(f"error: {os_error_message(err)}", file=sys.stderr)
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
