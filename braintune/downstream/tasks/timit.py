"""TIMIT (``ROOT/{TRAIN,TEST}/DR*/SPEAKER/*.WAV`` + ``.PHN``) -> phone presence or sentence type TaskData.

Phone presence (``timit_phones``): multi-label, which of the 39 folded phones (Lee & Hon 1989 folding of
the 61 TIMIT phones; the glottal stop ``q`` is dropped) occur in the utterance. Sentence type
(``timit_sentence_type``): SA / SI / SX from the file-name prefix. Split: the published TRAIN / TEST
folders (speaker-disjoint by construction). Upper- and lower-case file names are both accepted.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from .base import Item, TaskData

FOLD = {
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m",
    "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    **{p: "sil" for p in ("pcl", "tcl", "kcl", "bcl", "dcl", "gcl", "h#", "pau", "epi")},
}
PHONES_39 = (
    "iy", "ih", "eh", "ey", "ae", "aa", "aw", "ay", "ah", "oy", "ow", "uh", "uw", "er", "l", "r", "w", "y", "m", "n",
    "ng", "ch", "jh", "dh", "b", "d", "dx", "g", "p", "t", "k", "z", "v", "f", "th", "s", "sh", "hh", "sil",
)
LAYOUT = "TIMIT expects ROOT/TRAIN and ROOT/TEST with DR*/SPEAKER/{SA,SI,SX}*.WAV and matching .PHN files"


def _utterances(root: str):
    """(wav path, split, speaker) for every utterance under ROOT/TRAIN and ROOT/TEST."""
    base = Path(root)
    found = 0
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and p.name.upper() in ("TRAIN", "TEST")):
        split = "train" if folder.name.upper() == "TRAIN" else "test"
        for wav in sorted(p for p in folder.glob("*/*/*") if p.suffix.upper() == ".WAV"):
            found += 1
            yield wav, split, wav.parent.name
    if not found:
        raise DataError(f"no .WAV files under '{base}'; {LAYOUT}")


def _phones(wav: Path) -> tuple[str, ...]:
    phn = next((wav.with_suffix(s) for s in (".PHN", ".phn") if wav.with_suffix(s).is_file()), None)
    if phn is None:
        raise DataError(f"'{wav}' has no matching .PHN transcription; {LAYOUT}")
    present = set()
    for n, line in enumerate(phn.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DataError(f"'{phn}' line {n}: expected 'START END PHONE', got '{line}'")
        phone = FOLD.get(parts[2], parts[2])
        if phone == "q":
            continue
        if phone not in PHONES_39:
            raise DataError(f"'{phn}' line {n}: '{parts[2]}' is not a TIMIT phone")
        present.add(phone)
    return tuple(sorted(present))


def read_phones(root: str, seed: int = 0) -> TaskData:
    items = [Item(id=f"{spk}/{wav.stem}", label=_phones(wav), split=split, audio=str(wav), speaker=spk)
             for wav, split, spk in _utterances(root)]
    return TaskData("timit_phones", "multilabel", items, {}, "published TRAIN / TEST folders", list(PHONES_39))


def read_sentence_type(root: str, seed: int = 0) -> TaskData:
    items = []
    for wav, split, spk in _utterances(root):
        kind = wav.stem[:2].upper()
        if kind not in ("SA", "SI", "SX"):
            raise DataError(f"'{wav}': the file name must start with SA, SI or SX (the sentence type)")
        items.append(Item(id=f"{spk}/{wav.stem}", label=kind, split=split, audio=str(wav), speaker=spk))
    return TaskData("timit_sentence_type", "classification", items, {}, "published TRAIN / TEST folders")
