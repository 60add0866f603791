"""Planted-signal episodes -> files in the exact Algonauts 2025 layout (read back by ``formats.algonauts``).

Each episode part is a 64x64, 8 fps ``.mkv`` (MPEG-4 video + 16 kHz mono PCM audio, readable by PyAV and
decord). The picture flickers one colour channel around a constant mid-grey per ~2 s block (random channel,
contrast and phase); the audio carries tone bursts of random pitch and loudness, independently. Per TR
(1.49 s; row ``j`` sits at the middle of volume ``j``, ``1.49 j + 0.745`` s, and takes the stimulus of the
1.49 s before that time) the mean contrast of *red* flicker and the mean loudness of *660 Hz* tones are
convolved with the HRF; a third of each participant's targets follow the first, a third
the second and the rest are noise (a different permutation per participant). Neither feature is a linear
function of the pixels or samples (brightness is constant, flicker phase is random, other channels and
pitches are distractors), so random encoders expose them only weakly and brain-tuning has something to
learn. Also written: per-TR transcripts (one word per tone burst; Movie10's named ``movie10_life01.tsv`` as
published), a movie10 file with one movie shown twice, a parcel atlas volume and a label table per participant (audio targets named ``*_STS_*``, video ``*_Vis_*``, noise ``*_Default_*``),
and ``ground_truth.json``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ...errors import DataError
from ..responses import zscore
from ..study import Study
from . import algonauts
from .base import DatasetFormat
from .synthetic import hrf

TR = 1.49  # the Algonauts 2025 TR, a literal: the writer never takes the reader's constants
SAMPLE_RATE = 16000
FPS = 8
SIZE = 64
TONE_HZ = 660.0  # the pitch that drives the audio targets
TONES_HZ = (250.0, 660.0, 2000.0)
CHANNELS = ("red", "green", "blue")  # flickering colour per block; red drives the video targets
BLOCK = 16  # frames per flicker block (2 s)
H5_NAME = "{p}_task-{task}_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net{desc}_bold.h5"


@dataclass
class FriendsSpec:
    """``data.synthetic_friends``: the size of the planted Friends dataset (written in the Algonauts layout on first use)."""

    participants: int = 3
    episodes: int = 3  # season-6 episodes of two parts each; the last is the default test, the one before val
    episode_seconds: float = 45.0
    targets: list[int] = field(default_factory=lambda: [24, 30, 27])
    noise: float = 0.5
    seed: int = 0
    movie10: bool = True  # also write movie10 "life01" shown twice (runs life01_run-1, life01_run-2)


def write_movie(path: Path, frames: np.ndarray, wave: np.ndarray, fps: int = FPS, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write (n_frames, H, W, 3) uint8 frames and (n_samples,) float audio as MPEG-4 + PCM in ``path`` (.mkv/.mp4)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        a = c.add_stream("pcm_s16le" if path.suffix == ".mkv" else "aac", rate=sample_rate)
        a.layout = "mono"
        for img in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(v.encode())
        pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
        for i in range(0, len(pcm), 4096):
            fmt, chunk = ("s16", pcm[None, i : i + 4096]) if path.suffix == ".mkv" else ("fltp", wave[None, i : i + 4096].astype(np.float32))
            frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
            frame.sample_rate, frame.pts = sample_rate, i
            c.mux(a.encode(frame))
        c.mux(a.encode())
    return path


def _flicker(rng: np.random.Generator, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_frames, SIZE, SIZE, 3) uint8 frames and the per-frame target contrast.

    Each ~2 s block flickers one colour channel (``CHANNELS``) around mid-grey, frame by frame, at a random
    contrast (a fifth of the blocks are still) and starting phase. Only red flicker drives the video targets.
    The mean brightness never changes and the flicker's sign depends on its random phase, so no linear
    function of the pixels follows the contrast: a random encoder exposes it only weakly, one tuned to
    rectify the red frame-to-frame difference exposes it fully.
    """
    n_blocks = n_frames // BLOCK + 1
    channel = rng.integers(len(CHANNELS), size=n_blocks)
    contrast = rng.uniform(0.1, 0.4, n_blocks) * (rng.random(n_blocks) > 0.2)
    sign = rng.choice([-1.0, 1.0], n_blocks)
    level = np.full((n_blocks * BLOCK, 3), 0.5)
    alternate = np.where(np.arange(BLOCK) % 2 == 0, 1.0, -1.0)
    for b in range(n_blocks):
        level[b * BLOCK : (b + 1) * BLOCK, channel[b]] += sign[b] * contrast[b] * alternate
    frames = np.broadcast_to((level[:n_frames] * 255).astype(np.uint8)[:, None, None, :], (n_frames, SIZE, SIZE, 3)).copy()
    return frames, np.repeat(contrast * (channel == 0), BLOCK)[:n_frames]


def _tones(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, np.ndarray, list]:
    """Audio with tone bursts of random pitch (``TONES_HZ``) and loudness, the per-sample loudness of the
    ``TONE_HZ`` bursts only (the audio target) and all bursts [(onset, duration)]."""
    wave = 0.005 * rng.standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32)
    loud = np.zeros(len(wave), np.float32)
    bursts, t = [], rng.uniform(0.1, 0.5)
    while t < seconds - 0.6:
        dur, amp, hz = rng.uniform(0.15, 0.4), rng.uniform(0.1, 0.8), TONES_HZ[rng.integers(len(TONES_HZ))]
        i0, i1 = int(t * SAMPLE_RATE), int((t + dur) * SAMPLE_RATE)
        wave[i0:i1] += amp * np.sin(2 * np.pi * hz * np.arange(i1 - i0) / SAMPLE_RATE) * np.hanning(i1 - i0)
        if hz == TONE_HZ:
            loud[i0:i1] = amp
        bursts.append((round(t, 3), round(dur, 3)))
        t += dur + rng.exponential(0.4)
    return wave, loud, bursts


def _episode(rng: np.random.Generator, seconds: float, n_trs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Frames, audio, per-TR latent (n_trs, 2: red flicker contrast, TONE_HZ loudness) and the tone bursts.

    Row ``j`` is volume ``j`` of a scan that starts with the movie, so it sits at ``1.49 j + 0.745`` s (the middle
    of the volume); its latent is the mean over the 1.49 s before that time, ``[1.49 j - 0.745, 1.49 j + 0.745)``.
    """
    frames, contrast = _flicker(rng, int(seconds * FPS))
    wave, loud, bursts = _tones(rng, seconds)
    ends = np.arange(n_trs) * 1.49 + 0.745
    starts = np.maximum(ends - 1.49, 0.0)
    seen = np.array([contrast[int(a * FPS) : max(int(b * FPS), int(a * FPS) + 1)].mean() for a, b in zip(starts, ends)])
    heard = np.array([loud[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)].mean() for a, b in zip(starts, ends)])
    return frames, wave, haemodynamic(np.stack([seen, heard], 1)), bursts


def haemodynamic(x: np.ndarray) -> np.ndarray:
    """(n_trs, C) per-TR stimulus features -> z-scored HRF responses. Centred before the convolution, as if the
    stimulus before the run had its mean level, so no onset ramp is shared by every target."""
    h = hrf(TR)
    z = np.stack([np.convolve(c - c.mean(), h)[: len(c)] for c in x.T], 1)
    return zscore(z, np.float64)  # a short part may have no red flicker: zero, not NaN


def _transcript(path: Path, bursts: list, n_trs: int) -> None:
    """One row per 1.49 s chunk of the movie; a word is listed in the chunk holding its offset (the README's
    ``text_per_tr``), with its onset and duration in movie seconds."""
    lines = ["text_per_tr\twords_per_tr\tonsets_per_tr\tdurations_per_tr"]
    for j in range(n_trs):
        inside = [(o, d) for o, d in bursts if j * TR <= o + d < (j + 1) * TR]
        words = ["tone"] * len(inside)
        lines.append(f"{' '.join(words)}\t{words}\t{[o for o, _ in inside]}\t{[d for _, d in inside]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _roles(rng: np.random.Generator, n: int) -> np.ndarray:
    """0 = video-driven, 1 = audio-driven, 2 = noise, shuffled per participant."""
    return rng.permutation(np.arange(n) * 3 // n)


def write_friends_dataset(root: str | Path, spec: FriendsSpec) -> Path:
    """Write the dataset under ``root`` and return ``root``."""
    import nibabel as nib

    root = Path(root)
    if len(spec.targets) < spec.participants:
        raise DataError(f"synthetic.targets lists {len(spec.targets)} counts for {spec.participants} participants; give one per participant")
    rng = np.random.default_rng(spec.seed)
    names = [f"sub-{i + 1:02d}" for i in range(spec.participants)]
    roles = {p: _roles(rng, n) for p, n in zip(names, spec.targets)}
    gains = {p: rng.uniform(0.7, 1.3, n) for p, n in zip(names, spec.targets)}
    n_trs = int(spec.episode_seconds // TR)
    # (h5 dataset, movie, transcript) as published: Movie10 transcripts carry a "movie10_" prefix, its movies do not
    parts = [f"{k // 2 + 1:02d}{'ab'[k % 2]}" for k in range(2 * spec.episodes)]  # 01a, 01b, 02a, ...
    runs = [(f"ses-{k + 1:03d}_task-s06e{e}", f"friends/s6/friends_s06e{e}.mkv", f"friends/s6/friends_s06e{e}.tsv")
            for k, e in enumerate(parts)]
    if spec.movie10:
        runs += [(f"ses-{len(runs) + 1 + i:03d}_task-life01_run-{i + 1}", "movie10/life/life01.mkv", "movie10/life/movie10_life01.tsv")
                 for i in range(2)]
    latents: dict[str, np.ndarray] = {}
    for key, rel, words in runs:
        if rel not in latents:
            frames, wave, latents[rel], bursts = _episode(rng, spec.episode_seconds, n_trs)
            write_movie(root / "stimuli" / "movies" / rel, frames, wave)
            _transcript(root / "stimuli" / "transcripts" / words, bursts, n_trs)
        for p in names:
            task, desc = ("movie10", "") if "life" in key else ("friends", "_desc-s123456")
            out = root / "fmri" / p / "func" / H5_NAME.format(p=p, task=task, desc=desc)
            out.parent.mkdir(parents=True, exist_ok=True)
            mix = np.zeros((2, len(roles[p])))
            mix[0, roles[p] == 0], mix[1, roles[p] == 1] = gains[p][roles[p] == 0], gains[p][roles[p] == 1]
            y = latents[rel] @ mix + spec.noise * rng.standard_normal((n_trs, len(roles[p])))
            with h5py.File(out, "a") as f:
                f[key] = y.astype(np.float32)
    for p in names:
        _atlas(root / "fmri" / p / "atlas", p, roles[p], nib)
    truth = {"spec": asdict(spec), "tr": TR,
             "video_targets": {p: np.flatnonzero(r == 0).tolist() for p, r in roles.items()},
             "audio_targets": {p: np.flatnonzero(r == 1).tolist() for p, r in roles.items()},
             "noise_targets": {p: np.flatnonzero(r == 2).tolist() for p, r in roles.items()},
             "video_feature": f"contrast of the frame-to-frame flicker of the {CHANNELS[0]} channel (of {list(CHANNELS)})",
             "audio_feature": f"loudness of {TONE_HZ:g} Hz tones (of {list(TONES_HZ)} Hz)"}
    (root / "ground_truth.json").write_text(json.dumps(truth, indent=1))
    return root


def _atlas(directory: Path, p: str, roles: np.ndarray, nib) -> None:
    """A (n, 4, 4) volume whose parcel k+1 occupies slab k, and a label table naming each parcel by its role."""
    directory.mkdir(parents=True, exist_ok=True)
    n = len(roles)
    volume = np.repeat(np.arange(1, n + 1, dtype=np.int16)[:, None, None], 4, 1).repeat(4, 2)
    stem = f"{p}_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-{n}Par7Net_desc-dseg"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), directory / f"{stem}.nii.gz")
    kinds = ("Vis", "STS", "Default")
    rows = [f"{k + 1}\t7Networks_LH_{kinds[r]}_{k + 1}" for k, r in enumerate(roles)]
    (directory / f"{stem}.tsv").write_text("index\tname\n" + "\n".join(rows) + "\n")


def open_study(root: str | Path, spec: FriendsSpec) -> Study:
    """The synthetic Friends dataset at ``root``, written first if absent (or if ``spec`` changed)."""
    root = Path(root)
    truth = root / "ground_truth.json"
    if truth.is_file():
        if json.loads(truth.read_text())["spec"] != json.loads(json.dumps(asdict(spec))):
            import shutil

            for sub in ("fmri", "stimuli"):
                shutil.rmtree(root / sub, ignore_errors=True)  # h5 files are appended to: start clean
            write_friends_dataset(root, spec)
    elif root.exists() and any(root.iterdir()):
        raise DataError(f"'{root}' exists and is not a braintune synthetic dataset; choose an empty or new data.root for format 'synthetic_friends'")
    else:
        write_friends_dataset(root, spec)
    study = algonauts.open_study(root)
    study.format = "synthetic_friends"
    return study


FORMAT = DatasetFormat(open=lambda root, spec: open_study(root, spec or FriendsSpec()), options=FriendsSpec,
                       trim_trs=algonauts.FORMAT.trim_trs, labels=algonauts.FORMAT.labels, space=algonauts.FORMAT.space)
