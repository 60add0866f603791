"""Word-timing files -> ``list[Word(start_s, end_s, text)]`` in stimulus seconds.

Two published forms are read:

* Praat TextGrid (long or short text format, UTF-8 or UTF-16), as in LeBel ds003020 ``derivative/TextGrids``, read
  with praatio (tier "word" or "words"); empty intervals and the aligner's silence marks (``sp``, ``sil``, ``{SL}``)
  are skipped.
* Algonauts 2025 per-TR transcripts (``stimuli/transcripts/.../*.tsv``): one row per TR with columns
  ``text_per_tr, words_per_tr, onsets_per_tr, durations_per_tr``; the lists are stored as Python literals
  (``"['so', 'you']"``) and are parsed with ``ast.literal_eval``. Onsets are in seconds from the run start.
"""
from __future__ import annotations

import ast
import csv
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


def _decode(raw: bytes) -> str:
    """Praat writes UTF-8, or UTF-16 (with a byte-order mark) when a label needs it."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16", errors="replace")
    return raw.decode("utf-8", errors="replace")


def read_textgrid(path: str | Path) -> list[Word]:
    """Words of the "word"/"words" tier of a Praat TextGrid (long or short text format, parsed by praatio), silences
    skipped, sorted by onset."""
    from praatio.utilities.errors import PraatioException
    from praatio.utilities.textgrid_io import parseTextgridStr

    path = Path(path)
    try:
        text = _decode(path.read_bytes())
    except OSError as err:
        raise DataError(f"cannot read TextGrid '{path}': {err}") from err
    if "ooTextFile" not in text[:200]:
        raise DataError(f"'{path}' is not a Praat TextGrid (no 'ooTextFile' header); re-download it")
    try:  # praatio's reader, without its interval checks (a few published alignments overlap by rounding)
        parsed = parseTextgridStr(text, includeEmptyIntervals=False)
        tiers = {t["name"].strip().lower(): list(t["entries"]) for t in parsed["tiers"] if t["class"] == "IntervalTier"}
    except (PraatioException, ValueError, IndexError, KeyError) as err:  # what praatio raises on a broken file
        raise DataError(f"TextGrid '{path}' cannot be parsed ({type(err).__name__}: {err}); it is truncated or not a "
                        "Praat text TextGrid; re-download it") from err
    tier = next((tiers[name] for name in WORD_TIERS if name in tiers), None)
    if tier is None:
        raise DataError(f"TextGrid '{path}' has no 'word' or 'words' interval tier (it has: {sorted(tiers)}); "
                        "word timings need a word-level alignment")
    words = [Word(float(a), float(b), t.strip()) for a, b, t in tier if t.strip().lower() not in SILENCE]
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
