"""A run's checkpoints on disk: written atomically, read without unpickling code, resumed from the run directory
they are in.

* ``AtomicCheckpointIO`` (the Trainer's checkpoint plugin): a checkpoint is serialised in memory, written to a
  temporary file beside its target, fsynced and renamed, so a ``kill -9`` or a full disk leaves the previous
  checkpoint whole (Lightning's own writer stages the file in the system temporary directory and *copies* it when
  that is another filesystem). A write that fails is one ``OutputError`` naming the file. Reads use
  ``torch.load(weights_only=True)``.
* ``RunCheckpoint``: Lightning's ``ModelCheckpoint`` whose restored paths follow the run directory: a run directory
  copied or moved and resumed points its best / last checkpoints at its own files, not at the original directory's.
* ``resume_checkpoint``: ``out_dir/checkpoints/last.ckpt`` validated before Lightning touches it (safe load, same
  model as configured, by name), with the files an interrupted run wrote after it removed.
"""
from __future__ import annotations

import io
import logging
import os
import uuid
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from ..data.cache import HOST, sweep_orphans
from ..errors import ConfigError, OutputError
from ..models import identity_mismatches, load_checkpoint, model_identity, recorded_identity

log = logging.getLogger(__name__)

LAST = "last.ckpt"
BEST = "best-{epoch}"  # file name of the best checkpoint by validation Pearson


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written whole or not at all (temporary file + fsync + rename), read with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        path = Path(path)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialised first: a failure below is a disk failure, not a pickling one
        tmp = path.with_name(f".{path.name}.{HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write checkpoint '{path}': {err.strerror or err}; free disk space (or raise the "
                              f"file-size limit) and run the same command again: the checkpoints already in "
                              f"'{path.parent}' are intact and it resumes from {LAST}") from err

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)  # never unpickles code


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose saved paths are re-rooted in its own ``dirpath`` when a run directory was copied or
    moved since they were written (Lightning would keep pointing ``best_model_path`` at the old directory)."""

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)  # resumes plain ModelCheckpoints

    def load_state_dict(self, state_dict: dict) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and os.path.realpath(old) != os.path.realpath(self.dirpath):
            log.info("checkpoints were written under %s; resuming them from %s", old, self.dirpath)
            state_dict = relocate(state_dict, self.dirpath)
        super().load_state_dict(state_dict)


def run_checkpoint(directory: Path) -> RunCheckpoint:
    """The checkpoints of a training run: the best by ``val/pearson`` (``best-epoch=N.ckpt``) and ``last.ckpt``."""
    return RunCheckpoint(dirpath=directory, filename=BEST, monitor="val/pearson", mode="max", save_last=True)


def relocate(state: dict, dirpath: str) -> dict:
    """A ``ModelCheckpoint`` state with every path of a file in its old ``dirpath`` moved to ``dirpath``."""
    old = state["dirpath"]

    def move(path):
        if isinstance(path, str) and path and os.path.dirname(path) == old:
            return os.path.join(dirpath, os.path.basename(path))
        return path

    return {**state, "dirpath": dirpath, "best_model_path": move(state.get("best_model_path")),
            "kth_best_model_path": move(state.get("kth_best_model_path")), "last_model_path": move(state.get("last_model_path")),
            "best_k_models": {move(k): v for k, v in (state.get("best_k_models") or {}).items()}}


def _known_files(raw: dict) -> set[str]:
    """Names of the checkpoint files that a checkpoint's ``ModelCheckpoint`` state knows of."""
    names = {LAST}
    for key, state in (raw.get("callbacks") or {}).items():
        if isinstance(state, dict) and str(key).startswith("ModelCheckpoint"):
            paths = [state.get("best_model_path"), state.get("kth_best_model_path"), state.get("last_model_path"),
                     *(state.get("best_k_models") or {})]
            names |= {os.path.basename(p) for p in paths if isinstance(p, str) and p}
    return names


def resume_checkpoint(directory: Path, config: dict, n_targets: dict[str, int]) -> Path | None:
    """``directory/last.ckpt`` when it exists, after checking that it is a safe braintune checkpoint of the configured
    model (``config``: the resolved config dict, ``n_targets``: the data's target counts) and removing the checkpoint
    files and temporary files that an interrupted run wrote after it (the resumed run writes them again)."""
    last = directory / LAST
    if not last.is_file():
        return None
    ckpt = load_checkpoint(last)
    wrong = identity_mismatches(recorded_identity(last, ckpt), model_identity(config, n_targets))
    if wrong:
        raise ConfigError(f"resume: '{last}' was made with another model than configured ({'; '.join(wrong[:6])}); run with "
                          f"that run's config.yaml, choose another out_dir, or set resume=false to train from scratch")
    known = _known_files(ckpt["raw"])
    for stale in sorted(directory.glob(BEST.split("{")[0] + "*.ckpt")):
        if stale.name not in known:
            log.warning("removing '%s': written after %s by an interrupted run, which this run redoes", stale, LAST)
            stale.unlink(missing_ok=True)  # every DDP rank runs this; the first one removes it
    sweep_orphans(directory)
    return last
