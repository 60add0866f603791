"""LeBel et al. 2023 "Moth" stories (OpenNeuro ds003020) as published -> ``Study``.

Layout read::

    ROOT/stimuli/{story}.wav
    ROOT/derivative/preprocessed_data/{participant}/{story}.hf5   # dataset "data": (rows, voxels)
         the test story also holds "individual_repeats": (repeats, rows, voxels)
    ROOT/derivative/TextGrids/{story}.TextGrid                    # word timings (optional)
    ROOT/derivative/respdict.json                                 # {story: scan length in TRs} (optional cross-check)
    ROOT/derivative/pycortex-db/{participant}/                    # pycortex database (optional, brain maps)
    ROOT/<data.lebel.response_dir>/{participant}/{story}.hf5      # optional: common-space targets instead

Timing, from the dataset's own encoding code (HuthLab/deep-fMRI-dataset, ``encoding/``):

* ``stimulus_utils.load_simulated_trfiles(respdict, tr=2.0, start_time=10.0, pad=5)``: the scanner TR is
  **2.0 s** (2.0045 s is only the default ``expectedtr`` of the trigger-patching code for an older scanner;
  at 2.0045 s rows drift by a whole TR by row 450 of a long story); ``respdict[story] - 5`` triggers are
  simulated at ``2k`` s and the audio starts 10 s after the first, so trigger ``k`` is at audio time ``2k - 10``.
* ``DataSequence.from_grid`` places each TR at the **middle** of its volume: ``trigger + TR/2`` = ``2k - 9``.
* ``encoding_utils.apply_zscore_and_hrf`` keeps ``[5 + trim : -trim]`` with ``trim = 5`` of those simulated
  TRs, and the ridge fit requires that to equal the hf5 rows: **hf5 rows = respdict - 20**; the first 10 and
  the last 10 scan TRs are absent.
* So row ``j`` of a hf5 is trigger ``j + 10`` and sits at audio time **2j + 11 s**; the multi-participant
  reference's 10 s training window for row ``j`` ends 1 s later (``pooling.lag_s=-1``).

The respdict cross-check compares ``respdict - 20`` with the hf5 rows. The row count the audio length implies
(a scan ~10 s longer than the audio at each end) is an unverified assumption: a difference is reported by
``inspect``, never refused; only responses running past the audio by more than ``PAST_END_S`` or covering
under half of it are refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError
from ..stimuli import audio_info
from ..study import H5Response, Run, Study, check_rows
from ..timing import RunTiming
from .base import DatasetFormat, TargetSpace

TR = 2.0  # load_simulated_trfiles(tr=2.0)
SOUND_START_S = 10.0  # load_simulated_trfiles(start_time=10.0): audio onset after the first trigger
SCAN_TRS_MISSING_START, SCAN_TRS_MISSING_END = 10, 10  # pad=5 simulated triggers fewer, then [5 + 5 : -5]
RESPONSE_DIR = "derivative/preprocessed_data"
PYCORTEX_DB = "derivative/pycortex-db"
TEST_STORY = "wheretheressmoke"
VAL_STORY = "itsabox"
PAST_END_S = SOUND_START_S  # rows end ~11 s before the audio does; this far past its end, the pairing is refused


@dataclass
class LebelOptions:
    """``data.lebel``: where the responses are."""

    response_dir: str | None = None  # folder of {participant}/{story}.hf5 under root (None: derivative/preprocessed_data)


def first_row_s(tr: float = TR) -> float:
    """Audio time of row 0 of a preprocessed hf5: the middle of scan volume 10."""
    return SCAN_TRS_MISSING_START * tr - SOUND_START_S + tr / 2


def rows_from_scan(scan_trs: int) -> int:
    """hf5 rows of a story whose scan had ``scan_trs`` volumes (its respdict entry)."""
    return scan_trs - SCAN_TRS_MISSING_START - SCAN_TRS_MISSING_END


def expected_rows(duration_s: float, tr: float = TR) -> int:
    """Rows the audio length implies if the scan outlasted the audio by ``SOUND_START_S`` at each end (unverified)."""
    return rows_from_scan(round((duration_s + 2 * SOUND_START_S) / tr))


def open_study(root: str | Path, options: LebelOptions | None = None, tr: float = TR) -> Study:
    """Read a ds003020 directory; raise ``DataError`` naming what is missing or inconsistent."""
    root = Path(root)
    resp_dir = root / ((options.response_dir if options else None) or RESPONSE_DIR)
    stim_dir = root / "stimuli"
    for d in (resp_dir, stim_dir):
        if not d.is_dir():
            raise DataError(f"'{d}' does not exist; data.root must be the ds003020 directory (holding stimuli/ and "
                            f"derivative/) and data.lebel.response_dir the folder of per-participant .hf5 under it")
    problems: list[str] = []
    sources, n_rows = _scan(resp_dir, problems)
    runs: dict[str, Run] = {}
    for story, rows in sorted(n_rows.items()):
        wav = stim_dir / f"{story}.wav"
        if not wav.is_file():
            raise DataError(f"responses exist for story '{story}' but its audio '{wav}' is missing; download stimuli/ from ds003020")
        duration, _, _ = audio_info(wav)
        if len(set(rows.values())) > 1:
            raise DataError(f"story '{story}' has different TR counts across participants: {rows}; re-download the mismatching hf5 files")
        n = next(iter(rows.values()))
        timing = RunTiming(tr, n, first_row_s(tr))
        where = f"'{resp_dir / next(iter(rows)) / (story + '.hf5')}' (story '{story}', audio '{wav}')"
        check_rows(n, timing, duration, where, problems, PAST_END_S, expected_rows(duration, tr))
        grid = root / "derivative" / "TextGrids" / f"{story}.TextGrid"
        runs[story] = Run(story, wav, timing, duration, grid if grid.is_file() else None)
    _cross_check_respdict(root, runs, problems)
    repeated = [s for s in runs if any(src.repeats_key for (_, r), src in sources.items() if r == s)]
    default_test = [TEST_STORY] if TEST_STORY in runs else repeated[:1]
    default_val = [VAL_STORY] if VAL_STORY in runs else []
    return Study("lebel", root, runs, sources, default_test, default_val, problems)


def _scan(resp_dir: Path, problems: list[str]) -> tuple[dict, dict[str, dict[str, int]]]:
    """(participant, story) -> H5Response, and story -> {participant: rows}."""
    sources: dict[tuple[str, str], H5Response] = {}
    n_rows: dict[str, dict[str, int]] = {}
    for pdir in sorted(p for p in resp_dir.iterdir() if p.is_dir()):
        files = sorted(pdir.glob("*.hf5"))
        if not files:
            problems.append(f"participant directory '{pdir}' has no .hf5 runs; skipped")
        for f in files:
            src = _with_repeats_if_present(H5Response(f, "data"))
            n_rows.setdefault(f.stem, {})[pdir.name] = src.shape()[0]
            sources[(pdir.name, f.stem)] = src
    if not sources:
        raise DataError(f"no participant under '{resp_dir}' has any .hf5 responses")
    return sources, n_rows


def _with_repeats_if_present(src: H5Response) -> H5Response:
    with src.open() as f:
        has = "individual_repeats" in f
    return H5Response(src.path, src.key, "individual_repeats") if has else src


def _cross_check_respdict(root: Path, runs: dict[str, Run], problems: list[str]) -> None:
    path = root / "derivative" / "respdict.json"
    if not path.is_file():
        return
    try:
        respdict = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"'{path}' is not valid JSON ({err}); re-download it or delete it") from err
    for story, run in runs.items():
        if story in respdict and rows_from_scan(int(respdict[story])) != run.timing.n_trs:
            problems.append(f"{path.name}: story '{story}' scanned for {respdict[story]} TRs implies "
                            f"{rows_from_scan(int(respdict[story]))} hf5 rows (respdict - 20), the hf5 has {run.timing.n_trs}")


def _space(study: Study, participant: str, options) -> TargetSpace | None:
    db = study.root / PYCORTEX_DB
    return TargetSpace("pycortex", db, participant) if db.is_dir() else None


FORMAT = DatasetFormat(open=open_study, options=LebelOptions, space=_space)
