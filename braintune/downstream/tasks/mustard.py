"""MUStARD sarcasm (``sarcasm_data.json`` + ``utterances_final/{id}.mp4``) -> TaskData, two published settings.

Speaker-independent (task ``mustard``): following the MUStARD paper's speaker-independent setting, the
*Friends* clips are the test set and the other shows (The Big Bang Theory, The Golden Girls,
Sarcasmaholics) train. So that no speaker is in both, a training clip whose speaker also speaks in a
test clip is excluded and counted (``skipped``). Speaker-dependent (``mustard_dependent``): stratified
5-fold cross-validation over all clips (seeded). Modalities: whatever the backbone reads of the mp4
(``downstream.features.item_stimulus``: audio track, video frames) and the utterance string (``Item.text``, for
text backbones). The dialogue context is not used.
"""
from __future__ import annotations

import json
from pathlib import Path

from ...data.paths import inside_root
from ...errors import DataError
from .base import Item, TaskData, require_file, stratified_folds

TEST_SHOW = "FRIENDS"
LAYOUT = "MUStARD expects ROOT/sarcasm_data.json and ROOT/utterances_final/{id}.mp4 (github.com/soujanyaporia/MUStARD)"


def _read(root: str) -> tuple[list[Item], dict[str, str]]:
    root_path = Path(root)
    meta_path = require_file(root_path / "sarcasm_data.json", LAYOUT)
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"'{meta_path}' is not valid JSON ({err}); {LAYOUT}") from err
    if not isinstance(meta, dict):
        raise DataError(f"'{meta_path}' holds a {type(meta).__name__}, not a mapping of clip id -> entry; {LAYOUT}")
    items, shows = [], {}
    for clip_id, entry in meta.items():
        missing = [k for k in ("utterance", "speaker", "show", "sarcasm") if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise DataError(f"'{meta_path}': clip '{clip_id}' lacks {missing}; {LAYOUT}")
        # clip ids come from the JSON: one naming '../x' would leave the root (downstream.allow_outside_root)
        clip = inside_root(root_path, Path("utterances_final") / f"{clip_id}.mp4", f"'{meta_path}' clip '{clip_id}'")
        video = require_file(clip, LAYOUT)
        items.append(Item(id=clip_id, label="sarcastic" if entry["sarcasm"] else "literal", split="",
                          audio=str(video), text=entry["utterance"], speaker=str(entry["speaker"])))
        shows[clip_id] = str(entry["show"]).upper()
    return items, shows


def read_speaker_independent(root: str, seed: int = 0) -> TaskData:
    items, shows = _read(root)
    test_speakers = {it.speaker for it in items if shows[it.id] == TEST_SHOW}
    if not test_speakers:
        raise DataError(f"'{root}/sarcasm_data.json' has no clip with show '{TEST_SHOW}'; the speaker-independent split tests on it")
    kept, overlap = [], 0
    for it in items:
        if shows[it.id] == TEST_SHOW:
            it.split = "test"
        elif it.speaker in test_speakers:
            overlap += 1
            continue
        else:
            it.split = "train"
        kept.append(it)
    skipped = {"train clip whose speaker also speaks in the test show": overlap} if overlap else {}
    rule = f"test = show {TEST_SHOW}, train = other shows minus clips of any test speaker"
    return TaskData("mustard", "classification", kept, skipped, rule)


def read_speaker_dependent(root: str, seed: int = 0) -> TaskData:
    items, _ = _read(root)
    for it, fold in zip(items, stratified_folds([it.label for it in items], 5, seed)):
        it.split = fold
    return TaskData("mustard_dependent", "classification", items, {}, f"stratified 5-fold over all clips (seed {seed})")
