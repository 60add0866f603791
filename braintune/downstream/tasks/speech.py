"""Speech Commands v2, CREMA-D and SLURP in their published layouts -> TaskData (classification).

- Speech Commands v2: ``ROOT/<word>/<speaker>_nohash_<n>.wav`` with ``validation_list.txt`` and
  ``testing_list.txt`` (paths relative to ROOT); every other clip trains; ``_background_noise_`` is not
  a word and is ignored.
- CREMA-D: ``ROOT/AudioWAV/<actor>_<sentence>_<EMOTION>_<level>.wav`` (or the wavs directly in ROOT);
  6 emotions. Speaker-disjoint split: actors sorted by id, every fifth actor (index % 5 == 4) is a test
  actor, the rest train (18 of the 91 actors test).
- SLURP: ``ROOT/{train,devel,test}.jsonl`` (one utterance per line, ``intent`` and
  ``recordings: [{file}]``) and ``ROOT/slurp_real/<file>``; one item per recording. Recordings whose
  file is absent (e.g. only part of slurp_real downloaded) are counted in ``skipped``.
"""
from __future__ import annotations

import json
from pathlib import Path

from ...data.paths import inside_root
from ...errors import DataError
from .base import Item, TaskData, require_file

CREMA_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
SLURP_SPLITS = {"train": "train", "devel": "validation", "test": "test"}


def read_speech_commands(root: str, seed: int = 0) -> TaskData:
    base = Path(root)
    lists = {}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        path = require_file(base / name, "Speech Commands v2 ships validation_list.txt and testing_list.txt in its root")
        lists.update({line.strip(): split for line in path.read_text().splitlines() if line.strip()})
    items = []
    for word_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for wav in sorted(word_dir.glob("*.wav")):
            rel = f"{word_dir.name}/{wav.name}"
            items.append(Item(id=rel, label=word_dir.name, split=lists.pop(rel, "train"), audio=str(wav),
                              speaker=wav.name.split("_nohash_")[0]))
    if lists:
        example = next(iter(lists))
        raise DataError(f"'{base}': {len(lists)} clips named in the split lists do not exist (e.g. '{example}')")
    return TaskData("speech_commands", "classification", items, {}, "published validation_list.txt / testing_list.txt")


def read_crema_d(root: str, seed: int = 0) -> TaskData:
    base = Path(root) / "AudioWAV" if (Path(root) / "AudioWAV").is_dir() else Path(root)
    wavs = sorted(base.glob("*.wav"))
    if not wavs:
        raise DataError(f"'{base}' holds no .wav files; CREMA-D expects ROOT/AudioWAV/1001_DFA_ANG_XX.wav")
    parsed = []
    for wav in wavs:
        parts = wav.stem.split("_")
        if len(parts) != 4 or parts[2] not in CREMA_EMOTIONS:
            raise DataError(f"'{wav}' does not follow ACTOR_SENTENCE_EMOTION_LEVEL.wav with emotion in {CREMA_EMOTIONS}")
        parsed.append((wav, parts[0], parts[2]))
    actors = sorted({actor for _, actor, _ in parsed})
    test_actors = {a for i, a in enumerate(actors) if i % 5 == 4}
    items = [Item(id=wav.name, label=emotion, split="test" if actor in test_actors else "train", audio=str(wav), speaker=actor)
             for wav, actor, emotion in parsed]
    rule = f"speaker-disjoint: actors sorted by id, every fifth is a test actor ({len(test_actors)} of {len(actors)})"
    return TaskData("crema_d", "classification", items, {}, rule)


def read_slurp(root: str, seed: int = 0) -> TaskData:
    base = Path(root)
    audio_dir = require_file(base / "slurp_real", "SLURP expects the real recordings under ROOT/slurp_real/")
    items, missing = [], 0
    for stem, split in SLURP_SPLITS.items():
        path = require_file(base / f"{stem}.jsonl", "SLURP expects ROOT/train.jsonl, devel.jsonl and test.jsonl")
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                intent, recordings = entry["intent"], entry["recordings"]
            except (json.JSONDecodeError, KeyError) as err:
                raise DataError(f"'{path}' line {n}: expected JSON with 'intent' and 'recordings' ({err})") from err
            for rec in recordings:
                audio = inside_root(base, Path(audio_dir.name) / str(rec.get("file", "")), f"'{path}' line {n}")
                if not audio.is_file():
                    missing += 1
                    continue
                items.append(Item(id=rec["file"], label=intent, split=split, audio=str(audio), text=entry.get("sentence")))
    skipped = {"recording listed in the jsonl but absent from slurp_real/": missing} if missing else {}
    return TaskData("slurp", "classification", items, skipped, "published train / devel / test jsonl files")
