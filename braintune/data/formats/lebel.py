"""LeBel et al. 2023 "Moth" stories (OpenNeuro ds003020) as published -> ``Study``.

Layout read::

    ROOT/stimuli/{story}.wav
    ROOT/derivative/preprocessed_data/{participant}/{story}.hf5   # dataset "data": (TRs, voxels)
         the test story also holds "individual_repeats": (repeats, TRs, voxels)
    ROOT/derivative/TextGrids/{story}.TextGrid                    # word timings (optional)
    ROOT/derivative/respdict.json                                 # {story: TRs} (optional cross-check)
    ROOT/<data.response_dir>/{participant}/{story}.hf5            # optional: common-space targets instead

Timing convention (Huth-lab pipeline): the scanner starts ``SOUND_START_S`` = 10 s before the story's
audio, TRs are ``TR`` apart, and the preprocessed responses already lack the first ``TRIM_START`` = 10
and last ``TRIM_END`` = 5 TRs. Row ``j`` of a hf5 therefore sits at audio time ``(j + 10)·TR − 10 s``.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..stimuli import audio_info
from ..study import DataError, H5Response, Run, Study
from ..timing import RunTiming

TR = 2.0045  # seconds between triggers (the dataset's `expectedtr`)
SOUND_START_S = 10.0  # audio onset after the first trigger
TRIM_START, TRIM_END = 10, 5  # TRs already removed from the preprocessed hf5
RESPONSE_DIR = "derivative/preprocessed_data"
TEST_STORY = "wheretheressmoke"
VAL_STORY = "itsabox"
TR_TOLERANCE = 3  # TRs a response may differ from what its audio implies before it is refused


def first_tr_s(tr: float = TR) -> float:
    """Audio time of the first row of a preprocessed hf5."""
    return TRIM_START * tr - SOUND_START_S


def expected_trs(duration_s: float, tr: float = TR) -> int:
    """Rows a preprocessed hf5 should have for audio of ``duration_s``: the scan runs ~10 s past the audio."""
    scan_trs = round((duration_s + 2 * SOUND_START_S) / tr)
    return scan_trs - TRIM_START - TRIM_END


def open_study(root: str | Path, tr: float = TR, response_dir: str | Path = RESPONSE_DIR) -> Study:
    """Read a ds003020 directory; raise ``DataError`` naming what is missing or inconsistent.

    ``response_dir`` (relative to ``root``, or absolute) holds ``{participant}/{story}.hf5``: the published
    voxel responses by default, or targets in a common space (e.g. the multi-participant paper's
    ``derivative/transformed_data_fs_lang``, whose participant directories are named ``UTS01_nonc``, …).
    """
    root = Path(root)
    resp_dir = root / response_dir
    stim_dir = root / "stimuli"
    for d in (resp_dir, stim_dir):
        if not d.is_dir():
            raise DataError(f"'{d}' does not exist; data.root must be the ds003020 directory (holding stimuli/ and "
                            f"derivative/) and data.response_dir the folder of per-participant .hf5 under it")
    problems: list[str] = []
    sources: dict[tuple[str, str], H5Response] = {}
    n_rows: dict[str, dict[str, int]] = {}
    for pdir in sorted(p for p in resp_dir.iterdir() if p.is_dir()):
        files = sorted(pdir.glob("*.hf5"))
        if not files:
            problems.append(f"participant directory '{pdir}' has no .hf5 runs; skipped")
            continue
        for f in files:
            story = f.stem
            src = H5Response(f, "data", "individual_repeats" if story == TEST_STORY else None)
            if story != TEST_STORY:
                src = _with_repeats_if_present(src)
            n_rows.setdefault(story, {})[pdir.name] = src.shape()[0]
            sources[(pdir.name, story)] = src
    if not sources:
        raise DataError(f"no participant under '{resp_dir}' has any .hf5 responses")

    runs: dict[str, Run] = {}
    for story, rows in sorted(n_rows.items()):
        wav = stim_dir / f"{story}.wav"
        if not wav.is_file():
            raise DataError(f"responses exist for story '{story}' but its audio '{wav}' is missing; download stimuli/ from ds003020")
        duration, _, _ = audio_info(wav)
        if len(set(rows.values())) > 1:
            raise DataError(f"story '{story}' has different TR counts across participants: {rows}; re-download the mismatching hf5 files")
        n = next(iter(rows.values()))
        implied = expected_trs(duration, tr)
        if abs(n - implied) > TR_TOLERANCE:
            raise DataError(
                f"story '{story}': responses have {n} TRs (e.g. '{resp_dir / next(iter(rows)) / (story + '.hf5')}') "
                f"but its audio '{wav}' ({duration:.1f} s) implies {implied} TRs with the ds003020 convention "
                f"(TR {tr} s, audio 10 s after the first trigger, first {TRIM_START} and last {TRIM_END} TRs trimmed); "
                "check that the audio and responses belong to the same story"
            )
        grid = root / "derivative" / "TextGrids" / f"{story}.TextGrid"
        runs[story] = Run(story, wav, RunTiming(tr, n, first_tr_s(tr)), duration, grid if grid.is_file() else None)
    _cross_check_respdict(root, runs, problems)

    repeated = [s for s in runs if any(src.repeats_key for (_, r), src in sources.items() if r == s)]
    default_test = [TEST_STORY] if TEST_STORY in runs else repeated[:1]
    default_val = [VAL_STORY] if VAL_STORY in runs else []
    return Study("lebel", root, runs, sources, default_test, default_val, problems)


def _with_repeats_if_present(src: H5Response) -> H5Response:
    import h5py

    try:
        with h5py.File(src.path, "r") as f:
            has = "individual_repeats" in f
    except OSError as err:
        raise DataError(f"cannot open response file '{src.path}': {err}. It is truncated or not HDF5; re-download it.") from err
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
        if story in respdict and int(respdict[story]) != run.timing.n_trs:
            problems.append(f"{path.name}: story '{story}' listed with {respdict[story]} TRs, hf5 has {run.timing.n_trs}")
