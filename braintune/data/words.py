"""Word-timing files -> ``list[Word(start_s, end_s, text)]`` in stimulus seconds.

Two published forms are read:

* Praat TextGrid, long (text) format, as in LeBel ds003020 ``derivative/TextGrids`` (tier "word" or "words");
  empty intervals and the aligner's silence marks (``sp``, ``sil``, ``{SL}``) are skipped.
* Algonauts 2025 per-TR transcripts (``stimuli/transcripts/.../*.tsv``): one row per TR with columns
  ``text_per_tr, words_per_tr, onsets_per_tr, durations_per_tr``; the lists are stored as Python literals
  (``"['so', 'you']"``) and are parsed with ``ast.literal_eval``. Onsets are in seconds from the run start.
"""
from __future__ import annotations

import ast
import csv
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

SILENCE = {"", "sp", "sil", "{sl}", "sp1"}
WORD_TIERS = ("word", "words")
TSV_COLUMNS = ("text_per_tr", "words_per_tr", "onsets_per_tr", "durations_per_tr")


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    text: str


def _tiers(text: str) -> dict[str, list[tuple[float, float, str]]]:
    """Interval tiers of a long-format TextGrid: name -> [(xmin, xmax, text)]."""
    tiers: dict[str, list[tuple[float, float, str]]] = {}
    # Split at each "item [n]:" header; the first chunk is the file header.
    for chunk in re.split(r"\n\s*item\s*\[\d+\]\s*:", text)[1:]:
        name = re.search(r'name\s*=\s*"(.*?)"', chunk)
        if name is None or '"IntervalTier"' not in chunk:
            continue
        intervals = re.findall(
            r'intervals\s*\[\d+\]\s*:?\s*xmin\s*=\s*([-\d.eE+]+)\s*xmax\s*=\s*([-\d.eE+]+)\s*text\s*=\s*"((?:[^"]|"")*)"', chunk
        )
        tiers[name.group(1).strip().lower()] = [(float(a), float(b), t.replace('""', '"')) for a, b, t in intervals]
    return tiers


def read_textgrid(path: str | Path) -> list[Word]:
    """Words of the "word"/"words" tier of a long-format Praat TextGrid, silences skipped, sorted by onset."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise DataError(f"cannot read TextGrid '{path}': {err}") from err
    if "ooTextFile" not in text[:200]:
        raise DataError(f"'{path}' is not a Praat TextGrid (no 'ooTextFile' header); re-download it")
    tiers = _tiers(text)
    tier = next((tiers[name] for name in WORD_TIERS if name in tiers), None)
    if tier is None:
        raise DataError(f"TextGrid '{path}' has no 'word' or 'words' interval tier (it has: {sorted(tiers)}); "
                        "word timings need a word-level alignment")
    words = [Word(a, b, t.strip()) for a, b, t in tier if t.strip().lower() not in SILENCE]
    return sorted(words, key=lambda w: w.start_s)


def _literal_list(value: str, path: Path, row: int, column: str) -> list:
    if value is None or value.strip() in ("", "nan"):
        return []
    try:
        out = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError) as err:
        raise DataError(f"'{path}' row {row} column '{column}' is not a list literal ({value[:40]!r}): {err}") from err
    return list(out) if isinstance(out, (list, tuple)) else [out]


def read_transcript_tsv(path: str | Path, tr: float) -> list[Word]:
    """Words of an Algonauts per-TR transcript.

    Onsets are stimulus seconds; a word without an onset gets the start of its TR row (``row * tr``)
    and a word without a duration ends at the next TR boundary.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t")
            missing = [c for c in TSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"transcript '{path}' lacks column(s) {missing} (has {reader.fieldnames}); "
                                f"an Algonauts transcript needs {list(TSV_COLUMNS)}")
            rows = list(reader)
    except OSError as err:
        raise DataError(f"cannot read transcript '{path}': {err}") from err
    words: list[Word] = []
    for i, row in enumerate(rows):
        texts = _literal_list(row["words_per_tr"], path, i, "words_per_tr")
        onsets = _literal_list(row["onsets_per_tr"], path, i, "onsets_per_tr")
        durations = _literal_list(row["durations_per_tr"], path, i, "durations_per_tr")
        for k, text in enumerate(texts):
            start = float(onsets[k]) if k < len(onsets) else i * tr
            end = start + float(durations[k]) if k < len(durations) else (i + 1) * tr
            words.append(Word(start, end, str(text)))
    return words
