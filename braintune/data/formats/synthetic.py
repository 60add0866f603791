"""Planted-signal story dataset -> files in the LeBel ds003020 layout (read back by ``formats.lebel``).

Audio: sequences of short tone complexes of ``N_FEATURES`` kinds (different pitch), with silences.
Responses: the per-TR intensity of each kind, convolved with a canonical haemodynamic response,
mixed by participant-specific weights (some targets get none: pure noise), plus Gaussian noise.
The test story is presented ``N_REPEATS`` times with independent noise, as ``individual_repeats``.
Word timings: every tone is a "word" from its kind's vocabulary (``WORDS``), written as
``derivative/TextGrids/{story}.TextGrid``, so the planted signal is also driven by word identity.
The ground truth (weights, noise, expected ceilings) is saved as ``ground_truth.json`` / ``.npz``.

The files follow ds003020's arithmetic, written here as the dataset's code has it (not from the reader's
constants, so that the reader is tested against the convention, not against itself): triggers every 2.0 s,
the audio starting 10 s after the first, ``respdict`` = scan volumes, and hf5 rows = volumes 10 .. n − 11,
so row ``j`` is the volume whose middle sits at audio time ``2j + 11`` s.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
import soundfile as sf
from scipy.stats import gamma

from ...errors import DataError
from ..study import Study
from . import lebel
from .base import DatasetFormat

SAMPLE_RATE = 16000
N_FEATURES = 4
BASE_HZ = (220.0, 550.0, 1300.0, 3100.0)
N_REPEATS = 4
NOISE_ONLY_FRACTION = 0.25
ENVELOPE_RATE = 100  # Hz of the latent intensity signal
WORDS = (("low", "deep", "bass"), ("mid", "warm", "round"), ("high", "bright", "clear"), ("top", "sharp", "thin"))  # per kind


SCAN_TR_S, AUDIO_START_S, MISSING_START, MISSING_END = 2.0, 10.0, 10, 10  # ds003020's arithmetic (see lebel.py)


@dataclass
class SyntheticSpec:
    """``data.synthetic``: the size of the embedded story dataset (written in the LeBel layout on first use)."""

    participants: int = 4
    stories: int = 6
    story_seconds: float = 150.0
    targets: list[int] = field(default_factory=lambda: [40, 48, 56, 36])
    noise: float = 1.0
    seed: int = 0


def participant_names(n: int) -> list[str]:
    return [f"UTS{i + 1:02d}" for i in range(n)]


def story_names(n: int) -> list[str]:
    """``n`` training stories plus the conventional LeBel test story."""
    return [f"story{i + 1:02d}" for i in range(n)] + [lebel.TEST_STORY]


def hrf(tr: float, length_s: float = 32.0) -> np.ndarray:
    """Canonical double-gamma haemodynamic response sampled every ``tr`` seconds, peak ~5 s, sums to 1."""
    t = np.arange(0.0, length_s, tr)
    h = gamma.pdf(t, 6) - gamma.pdf(t, 16) / 6.0
    return h / h.sum()


def _story_audio(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, np.ndarray, list]:
    """(samples,) audio, (n_env, N_FEATURES) intensity at ENVELOPE_RATE Hz, and the tones [(onset, end, word)]."""
    n = int(seconds * SAMPLE_RATE)
    wave = 0.01 * rng.standard_normal(n).astype(np.float32)
    env = np.zeros((int(seconds * ENVELOPE_RATE), N_FEATURES), np.float32)
    t = rng.uniform(0.0, 0.3)
    words: list = []
    while t < seconds - 0.4:
        kind = rng.integers(N_FEATURES)
        dur = rng.uniform(0.08, 0.3)
        amp = rng.uniform(0.3, 1.0)
        i0, i1 = int(t * SAMPLE_RATE), int((t + dur) * SAMPLE_RATE)
        tt = np.arange(i1 - i0) / SAMPLE_RATE
        tone = sum(np.sin(2 * np.pi * BASE_HZ[kind] * h * tt) / h for h in (1, 2, 3))
        wave[i0:i1] += (amp * 0.3 * np.hanning(i1 - i0) * tone).astype(np.float32)
        env[int(t * ENVELOPE_RATE) : int((t + dur) * ENVELOPE_RATE), kind] += amp
        words.append((t, t + dur, WORDS[kind][len(words) % len(WORDS[kind])]))  # no rng draw: audio stays as before
        t += dur + rng.exponential(0.25)
    return wave, env, words


def _write_textgrid(path: Path, words: list, seconds: float) -> None:
    """Long-format Praat TextGrid with one "word" tier; gaps between words are empty intervals."""
    intervals, t = [], 0.0
    for a, b, text in words:
        if a > t:
            intervals.append((t, a, ""))
        intervals.append((a, b, text))
        t = b
    intervals.append((t, seconds, ""))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {seconds}", "tiers? <exists>",
             "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"', '        name = "word"', "        xmin = 0",
             f"        xmax = {seconds}", f"        intervals: size = {len(intervals)}"]
    for i, (a, b, text) in enumerate(intervals, 1):
        lines += [f"        intervals [{i}]:", f"            xmin = {a:.4f}", f"            xmax = {b:.4f}", f'            text = "{text}"']
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _latent(env: np.ndarray, seconds: float) -> np.ndarray:
    """Per scan volume, mean intensity over the TR before its middle, convolved with the HRF -> (n_volumes, N_FEATURES)."""
    tr = SCAN_TR_S
    n_scan = round((seconds + 2 * AUDIO_START_S) / tr)
    audio_t = np.arange(n_scan) * tr - AUDIO_START_S + tr / 2  # audio time of the middle of every volume
    x = np.zeros((n_scan, N_FEATURES), np.float32)
    for s, t in enumerate(audio_t):
        i0, i1 = max(int((t - tr) * ENVELOPE_RATE), 0), min(int(t * ENVELOPE_RATE), len(env))
        if i1 > i0:
            x[s] = env[i0:i1].mean(axis=0)
    h = hrf(tr)
    z = np.stack([np.convolve(x[:, c], h)[:n_scan] for c in range(N_FEATURES)], axis=1)
    return (z - z.mean(0)) / z.std(0)


def write_story_dataset(root: str | Path, spec: SyntheticSpec) -> Path:
    """Write the dataset under ``root`` in the ds003020 layout and return ``root``."""
    root = Path(root)
    if len(spec.targets) < spec.participants:
        raise DataError(f"synthetic.targets lists {len(spec.targets)} counts for {spec.participants} participants; give one per participant")
    rng = np.random.default_rng(spec.seed)
    names = participant_names(spec.participants)
    weights = {}
    for p, n_t in zip(names, spec.targets):
        w = rng.standard_normal((N_FEATURES, n_t)) / math.sqrt(N_FEATURES)
        w[:, rng.random(n_t) < NOISE_ONLY_FRACTION] = 0.0
        weights[p] = w.astype(np.float32)
    (root / "stimuli").mkdir(parents=True, exist_ok=True)
    respdict = {}
    for story in story_names(spec.stories):
        wave, env, words = _story_audio(rng, spec.story_seconds)
        _write_textgrid(root / "derivative" / "TextGrids" / f"{story}.TextGrid", words, spec.story_seconds)
        sf.write(root / "stimuli" / f"{story}.wav", wave, SAMPLE_RATE, subtype="PCM_16")
        volumes = _latent(env, spec.story_seconds)
        respdict[story] = len(volumes)  # the scan's volumes; the hf5 lacks the first and last 10
        z = volumes[MISSING_START : len(volumes) - MISSING_END]
        for p in names:
            signal = z @ weights[p]
            out = root / "derivative" / "preprocessed_data" / p
            out.mkdir(parents=True, exist_ok=True)
            with h5py.File(out / f"{story}.hf5", "w") as f:
                if story == lebel.TEST_STORY:
                    reps = signal[None] + spec.noise * rng.standard_normal((N_REPEATS, *signal.shape))
                    f["data"] = reps.mean(0).astype(np.float32)
                    f["individual_repeats"] = reps.astype(np.float32)
                else:
                    f["data"] = (signal + spec.noise * rng.standard_normal(signal.shape)).astype(np.float32)
    (root / "derivative" / "respdict.json").write_text(json.dumps(respdict, indent=1))
    _save_truth(root, spec, weights)
    return root


def _save_truth(root: Path, spec: SyntheticSpec, weights: dict[str, np.ndarray]) -> None:
    """Expected ceiling of a target = corr(signal, signal + noise) given its signal variance."""
    ceiling = {}
    for p, w in weights.items():
        signal_var = (w**2).sum(axis=0)  # latent features are z-scored and close to uncorrelated
        ceiling[p] = np.sqrt(signal_var / (signal_var + spec.noise**2)).round(4).tolist()
    truth = {"spec": asdict(spec), "signal_targets": {p: np.flatnonzero(np.abs(w).sum(0) > 0).tolist() for p, w in weights.items()},
             "expected_ceiling_single_run": ceiling, "n_repeats": N_REPEATS, "base_hz": BASE_HZ}
    (root / "ground_truth.json").write_text(json.dumps(truth, indent=1))
    np.savez(root / "ground_truth.npz", **{f"weights_{p}": w for p, w in weights.items()})


def open_study(root: str | Path, spec: SyntheticSpec) -> Study:
    """The synthetic dataset at ``root``, written first if absent (or if ``spec`` changed)."""
    root = Path(root)
    truth = root / "ground_truth.json"
    if truth.is_file():
        if json.loads(truth.read_text())["spec"] != json.loads(json.dumps(asdict(spec))):
            write_story_dataset(root, spec)
    elif root.exists() and any(root.iterdir()):
        raise DataError(f"'{root}' exists and is not a braintune synthetic dataset; choose an empty or new data.root for format 'synthetic'")
    else:
        write_story_dataset(root, spec)
    study = lebel.open_study(root)
    study.format = "synthetic"
    return study


FORMAT = DatasetFormat(open=lambda root, spec: open_study(root, spec or SyntheticSpec()), options=SyntheticSpec)
