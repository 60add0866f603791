"""Algonauts 2025 / CNeuroMod Friends + Movie10 as published -> ``Study``.

Layout read::

    ROOT/fmri/sub-0X/func/sub-0X_task-friends_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_desc-s123456_bold.h5
    ROOT/fmri/sub-0X/func/sub-0X_task-movie10_space-..._bold.h5        (no desc)
        one dataset per run: "ses-001_task-s01e02a" or "ses-001_task-life01_run-1", (TRs, 1000 parcels)
    ROOT/fmri/sub-0X/atlas/*.nii.gz                                     (parcel ids 1..1000)
    ROOT/stimuli/movies/friends/s{N}/friends_s{NN}e{NN}{a-d}.mkv
    ROOT/stimuli/movies/movie10/<movie>/<movie>{NN}.mkv
    ROOT/stimuli/transcripts/friends/s{N}/friends_s{NN}e{NN}{a-d}.tsv  (per-TR words, optional)

Timing: TR = 1.49 s and the fMRI onset is synchronised with the movie onset, so row ``j`` of a dataset is
stimulus time ``j * 1.49`` s. Run names drop the session: ``s01e02a``, ``life01_run-1`` (the two showings of
Life / Hidden Figures are two runs with one stimulus).

Missing data are not errors: a participant without a run that others have (sub-02 s05e20a; sub-05
s04e01a/b, s04e13b in the release) and a response dataset without a stimulus file are listed in
``study.problems``. Responses that outlast their stimulus by more than ``TR_TOLERANCE`` TRs are refused.

Conventional splits: Friends season 7 has no public responses, so the default **test** runs are every part
of the last Friends episode present (s06e24a-d in the full release) and the default **validation** runs are
every part of the episode before it (s06e23). Movie10 runs are always training runs unless named.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DataError, StimulusError
from ..stimuli import audio_info
from ..study import H5Response, Run, Study
from ..timing import RunTiming
from .base import DatasetFormat, TargetSpace

TR = 1.49
TR_TOLERANCE = 3  # rows a response may run past its stimulus (scanner tail) before it is refused
MOVIE_SUFFIXES = (".mkv", ".mp4")
_KEY = re.compile(r"^ses-(?P<ses>[^_]+)_task-(?P<task>[^_]+)(?:_run-(?P<run>\w+))?$")
_EPISODE = re.compile(r"^s(?P<season>\d\d)e(?P<episode>\d\d)(?P<part>[a-z])$")


def run_name(key: str) -> tuple[str, str] | None:
    """HDF5 dataset name -> (run name, stimulus stem), e.g. ``ses-003_task-s01e02a`` -> (s01e02a, friends_s01e02a)."""
    m = _KEY.match(key)
    if m is None:
        return None
    task = m["task"]
    stem = f"friends_{task}" if _EPISODE.match(task) else task
    return (f"{task}_run-{m['run']}" if m["run"] else task), stem


def _index(root: Path, sub: str, suffixes: tuple[str, ...]) -> dict[str, Path]:
    base = root / "stimuli" / sub
    return {p.stem: p for p in sorted(base.rglob("*")) if p.suffix.lower() in suffixes} if base.is_dir() else {}


def _scan_responses(fmri: Path, problems: list[str]) -> dict[tuple[str, str], tuple[Path, str, str, int, int]]:
    """(participant, run) -> (h5 path, dataset key, stimulus stem, n_trs, n_targets)."""
    found = {}
    for pdir in sorted(p for p in fmri.iterdir() if p.is_dir() and p.name.startswith("sub-")):
        files = sorted((pdir / "func").glob("*.h5")) if (pdir / "func").is_dir() else []
        if not files:
            problems.append(f"participant directory '{pdir}' has no func/*.h5 responses; skipped")
            continue
        for f in files:
            with H5Response(f).open() as h:
                for key in sorted(h.keys()):
                    named = run_name(key)
                    if named is None or len(h[key].shape) != 2:
                        problems.append(f"'{f}': dataset '{key}' is not a 'ses-<n>_task-<name>' (TRs, targets) run; skipped")
                        continue
                    if (pdir.name, named[0]) in found:
                        problems.append(f"'{f}': run '{named[0]}' appears twice for {pdir.name}; kept the first ('{found[(pdir.name, named[0])][1]}')")
                        continue
                    found[(pdir.name, named[0])] = (f, key, named[1], *map(int, h[key].shape))
    return found


def open_study(root: str | Path, tr: float = TR) -> Study:
    """Read an ``algonauts_2025.competitors`` directory; missing runs and stimuli are listed in ``problems``."""
    root = Path(root)
    fmri = root / "fmri"
    if not fmri.is_dir() or not (root / "stimuli").is_dir():
        raise DataError(f"'{root}' lacks fmri/ or stimuli/; data.root must be the algonauts_2025.competitors directory")
    problems: list[str] = []
    found = _scan_responses(fmri, problems)
    if not found:
        raise DataError(f"no participant under '{fmri}' has any responses (fmri/sub-*/func/*.h5)")
    movies = _index(root, "movies", MOVIE_SUFFIXES)
    transcripts = _index(root, "transcripts", (".tsv",))
    runs: dict[str, Run] = {}
    sources: dict[tuple[str, str], H5Response] = {}
    by_run: dict[str, dict[str, tuple]] = {}
    for (p, r), item in found.items():
        by_run.setdefault(r, {})[p] = item
    for r, items in sorted(by_run.items()):
        stem = next(iter(items.values()))[2]
        if stem not in movies:
            problems.append(f"run '{r}' ({len(items)} participant(s), e.g. '{next(iter(items.values()))[0]}') has no stimulus "
                            f"'{stem}.mkv' under '{root / 'stimuli' / 'movies'}'; skipped")
            continue
        run = _make_run(r, items, movies[stem], transcripts.get(stem), tr, problems)
        runs[r] = run
        for p, (path, key, _, n, _) in items.items():
            sources[(p, r)] = H5Response(path, key, n_rows=None if n == run.timing.n_trs else run.timing.n_trs)
    _report_missing(sources, runs, problems)
    _check_widths(sources, found)
    test, val = default_splits(list(runs))
    return Study("algonauts", root, runs, sources, test, val, problems)


def _make_run(name: str, items: dict[str, tuple], movie: Path, words: Path | None, tr: float, problems: list[str]) -> Run:
    try:
        duration, _, _ = audio_info(movie)
    except StimulusError as err:
        raise DataError(f"run '{name}': {err}") from err
    rows = {p: it[3] for p, it in items.items()}
    n = min(rows.values())
    if len(set(rows.values())) > 1:
        if max(rows.values()) - n > TR_TOLERANCE:
            raise DataError(f"run '{name}' has TR counts {rows} across participants (files "
                            f"{sorted({str(it[0]) for it in items.values()})}); they differ by more than {TR_TOLERANCE}; re-download them")
        problems.append(f"run '{name}': TR counts {rows} differ across participants; all cut to the first {n} TRs")
    implied = int(np.ceil(duration / tr))
    worst = max(rows, key=rows.get)
    if rows[worst] > implied + TR_TOLERANCE:
        raise DataError(f"'{items[worst][0]}' dataset '{items[worst][1]}' ({worst}, run '{name}') has {rows[worst]} TRs "
                        f"({rows[worst] * tr:.1f} s at TR {tr} s) but its stimulus '{movie}' lasts {duration:.1f} s "
                        f"({implied} TRs); check that the stimulus and the response belong to the same run")
    return Run(name, movie, RunTiming(tr, n, 0.0), duration, words)


def _report_missing(sources: dict, runs: dict[str, Run], problems: list[str]) -> None:
    participants = sorted({p for p, _ in sources})
    for r in sorted(runs):
        lacking = [p for p in participants if (p, r) not in sources]
        if lacking:
            problems.append(f"run '{r}' missing for {lacking} (present for {len(participants) - len(lacking)} participant(s))")


def _check_widths(sources: dict, found: dict) -> None:
    widths: dict[str, dict[int, str]] = {}
    for (p, r) in sources:
        path, key, _, _, width = found[(p, r)]
        widths.setdefault(p, {}).setdefault(width, f"'{path}' dataset '{key}'")
    for p, w in widths.items():
        if len(w) > 1:
            listing = "; ".join(f"{n} targets in {where}" for n, where in w.items())
            raise DataError(f"participant '{p}' has different target counts across runs ({listing}); all runs must share one parcellation")


def default_splits(run_names: list[str]) -> tuple[list[str], list[str]]:
    """(test, val): every part of the last Friends episode present, and of the episode before it."""
    episodes = sorted({(m["season"], m["episode"]) for r in run_names if (m := _EPISODE.match(r))})
    parts = lambda ep: sorted(r for r in run_names if (m := _EPISODE.match(r)) and (m["season"], m["episode"]) == ep)
    test = parts(episodes[-1]) if episodes else []
    val = parts(episodes[-2]) if len(episodes) > 1 else []
    return test, val


def _atlas(study: Study, participant: str, suffix: str) -> Path | None:
    found = sorted((study.root / "fmri" / participant / "atlas").glob(f"*{suffix}"))
    return found[0] if found else None


FORMAT = DatasetFormat(
    open=lambda root, options: open_study(root),
    labels=lambda study, p: _atlas(study, p, ".tsv"),  # fmri/<p>/atlas/*.tsv: index, name per parcel
    space=lambda study, p, options: (TargetSpace("parcels", atlas) if (atlas := _atlas(study, p, ".nii.gz")) else None),
)
