"""Movie files (mp4/mkv/avi) -> RGB frames at a fixed rate and size (decord), cached as memory-mapped .npy.

Frames are decoded once per (file, size, mtime, fps, frame size) through ``braintune.data.cache``: the first
epoch writes an (n_frames, size, size, 3) uint8 array in which frame ``i`` is the picture on screen at
``i / fps`` seconds; later epochs and other dataloader workers only slice the memory map. The movie's audio
track is read by ``braintune.data.stimuli.load_audio``.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .cache import cache_dir, cached_array
from ..errors import StimulusError
from .timing import time_to_index, window_to_slice

DECODE_BATCH = 64  # frames per decord call: bounds memory for long episodes


def default_cache_dir() -> Path:
    """The configured cache dir (``data.cache``), else ``~/.cache/braintune``: frames are always cached."""
    return cache_dir() or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "braintune"


def _decode(path: Path, fps: float, size: int) -> np.ndarray:
    """(n, size, size, 3) uint8: the frame on screen at every ``i / fps`` seconds of the movie."""
    try:
        import decord
    except ImportError as err:
        raise StimulusError(f"reading the frames of '{path}' needs decord, braintune's video extra: "
                            "pip install 'braintune[video]' (or pip install decord)") from err
    try:
        # decord's own resize fails for some small sizes (a buffer-size check); resize in torch instead
        reader = decord.VideoReader(str(path), num_threads=1)
    except Exception as err:  # decord raises its own DECORDError for unreadable files
        raise StimulusError(f"cannot decode video '{path}': {err}. The file is missing, truncated or in an unsupported codec; re-download it.") from err
    native = float(reader.get_avg_fps())
    n_native = len(reader)
    duration = n_native / native
    times = np.arange(int(np.floor(duration * fps + 1e-6))) / fps
    idx = np.minimum(time_to_index(times, native), n_native - 1)
    chunks = [_resize(reader.get_batch([int(j) for j in idx[i : i + DECODE_BATCH]]).asnumpy(), size)
              for i in range(0, len(idx), DECODE_BATCH)]
    return np.concatenate(chunks) if chunks else np.zeros((0, size, size, 3), np.uint8)


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n, size, size, 3) uint8, bilinear with antialiasing (the whole picture, no crop)."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@lru_cache(maxsize=64)
def load_frames(path: str | Path, fps: float, size: int, directory: str | Path | None = None) -> np.ndarray:
    """Memory-mapped (n_frames, size, size, 3) uint8 frames of ``path`` at ``fps``, decoding only on first use."""
    path = Path(path)
    if not path.is_file():
        raise StimulusError(f"video '{path}' does not exist; check data.root")
    directory = Path(directory) if directory is not None else default_cache_dir()
    return cached_array(path, f"frames@{fps}fps-{size}px", lambda: _decode(path, fps, size), directory)


def crop_frames(frames: np.ndarray, start_s: float, stop_s: float, fps: float) -> np.ndarray:
    """Frames of ``[start_s, stop_s)`` at ``fps`` as a new array; black frames where the span leaves the movie."""
    i0, i1 = window_to_slice(start_s, stop_s, fps)
    out = np.zeros((i1 - i0, *frames.shape[1:]), np.uint8)
    lo, hi = max(i0, 0), min(i1, len(frames))
    if hi > lo:
        out[lo - i0 : hi - i0] = frames[lo:hi]
    return out
