"""(root, n_clips, seed, planted modalities) -> a tiny dataset in the MUStARD layout whose sarcasm label is planted.

Written: ``ROOT/sarcasm_data.json`` (utterance, speaker, show, sarcasm, context, context_speakers per clip) and
``ROOT/utterances_final/{id}.mp4`` (32x32, 8 fps MPEG-4 video + 16 kHz AAC audio, 1-2 s, random length), read
back by ``tasks.mustard``. Four shows with two to three speakers each; one speaker name (``ROSS``) also speaks
in The Big Bang Theory, so the speaker-independent split (test = Friends) has training clips to exclude.

The label is planted only in the modalities named in ``signal`` (the others carry the same distribution for
both classes):

- ``video``: the picture is a mid-grey field with random brightness and a random-channel frame-to-frame flicker;
  sarcastic clips are tinted red, literal ones blue (mean colour: a random video encoder exposes it linearly).
- ``audio``: a tone burst of random loudness; sarcastic clips are pitched at 660 Hz, literal ones at 330 Hz
  (both +-5 %); without the audio signal every clip draws its pitch from both.
- ``text``: the utterance is filler words (``FILLER``) plus one cue word, from ``SARCASTIC_WORDS`` for
  sarcastic clips and ``LITERAL_WORDS`` for literal ones; without the text signal the cue is drawn from both.

Labels are balanced within each show. ``VOCAB`` lists every word, for an offline word-level tokenizer.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...data.formats.synthetic_friends import write_movie

SAMPLE_RATE, FPS, SIZE = 16000, 8, 32
SHOWS = {"FRIENDS": ["CHANDLER", "ROSS", "MONICA"], "BBT": ["SHELDON", "ROSS", "PENNY"],
         "GOLDENGIRLS": ["DOROTHY", "SOPHIA"], "SARCASMAHOLICS": ["HOST", "GUEST"]}
FILLER = ["oh", "well", "that", "is", "just", "the", "thing", "we", "need", "now"]
SARCASTIC_WORDS = ["wonderful", "totally", "genius"]
LITERAL_WORDS = ["maybe", "today", "kitchen"]
VOCAB = FILLER + SARCASTIC_WORDS + LITERAL_WORDS
PITCH_HZ = {True: 660.0, False: 330.0}
TINT = {True: (0.15, 0.0, -0.15), False: (-0.15, 0.0, 0.15)}  # RGB offsets around mid-grey
SYNTHETIC_TASKS = ("mustard", "mustard_dependent")  # tasks whose root the demo may write (downstream.synthetic)


def _frames(rng: np.random.Generator, n: int, tint) -> np.ndarray:
    """(n, SIZE, SIZE, 3) uint8: grey of random brightness + a tint + a random-channel flicker + pixel noise."""
    level = 0.5 + rng.uniform(-0.1, 0.1) + np.asarray(tint)  # (3,)
    flicker = np.zeros((n, 3))
    flicker[:, rng.integers(3)] = rng.uniform(0.05, 0.2) * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    pictures = level[None, None, None, :] + flicker[:, None, None, :] + rng.normal(0, 0.03, (n, SIZE, SIZE, 3))
    return (np.clip(pictures, 0, 1) * 255).astype(np.uint8)


def _wave(rng: np.random.Generator, seconds: float, pitch: float) -> np.ndarray:
    """(n_samples,) float32: a tone burst of random loudness in background noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.clip(np.minimum(t, seconds - t) / 0.05, 0, 1)  # 50 ms ramps
    tone = rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * pitch * rng.uniform(0.95, 1.05) * t + rng.uniform(0, 2 * np.pi))
    return (envelope * tone + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def _utterance(rng: np.random.Generator, cue_words: list[str]) -> str:
    words = list(rng.choice(FILLER, size=int(rng.integers(3, 6))))
    words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(cue_words)))
    return " ".join(words)


def write_mustard(root: str | Path, n_clips: int = 60, seed: int = 0,
                  signal: tuple[str, ...] = ("audio", "video", "text")) -> Path:
    """Write ``n_clips`` planted clips in the MUStARD layout under ``root``; returns ``root``.

    ``signal``: the modalities that carry the label (any of audio, video, text). Refuses an existing
    ``sarcasm_data.json`` so that real data is never overwritten.
    """
    root = Path(root)
    if (root / "sarcasm_data.json").exists():
        raise FileExistsError(f"'{root}/sarcasm_data.json' exists; write_mustard never overwrites a dataset")
    unknown = set(signal) - {"audio", "video", "text"}
    if unknown:
        raise ValueError(f"signal {sorted(unknown)} is not a modality; use audio, video and/or text")
    rng = np.random.default_rng(seed)
    (root / "utterances_final").mkdir(parents=True, exist_ok=True)
    shows = list(SHOWS)
    meta = {}
    for i in range(n_clips):
        show = shows[i % len(shows)]
        sarcastic = bool((i // len(shows)) % 2)  # alternates within each show: balanced labels per show
        speaker = SHOWS[show][int(rng.integers(len(SHOWS[show])))]
        cue = sarcastic if "text" in signal else bool(rng.integers(2))
        pitch = sarcastic if "audio" in signal else bool(rng.integers(2))
        tint = TINT[sarcastic] if "video" in signal else TINT[bool(rng.integers(2))]
        seconds = float(rng.uniform(1.0, 2.0))
        clip_id = f"{i + 1}_{show.lower()}"
        write_movie(root / "utterances_final" / f"{clip_id}.mp4", _frames(rng, int(seconds * FPS), tint),
                    _wave(rng, seconds, PITCH_HZ[pitch]), fps=FPS, sample_rate=SAMPLE_RATE)
        meta[clip_id] = {"utterance": _utterance(rng, SARCASTIC_WORDS if cue else LITERAL_WORDS), "speaker": speaker,
                         "context": [], "context_speakers": [], "show": show, "sarcasm": sarcastic}
    (root / "sarcasm_data.json").write_text(json.dumps(meta, indent=1))
    return root


def write_if_missing(task: str, root: str | Path, seed: int = 0) -> bool:
    """Write the synthetic dataset at ``root`` when ``task`` is a MUStARD task and ``root`` does not exist yet.

    Returns whether it wrote; an existing root (real or synthetic) is left as it is.
    """
    if task not in SYNTHETIC_TASKS or root is None or Path(root).exists():
        return False
    write_mustard(root, seed=seed)
    return True
