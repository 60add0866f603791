"""Algonauts 2025 / CNeuroMod Friends + Movie10 as published -> ``Study``.

Layout read::

    ROOT/fmri/sub-0X/func/sub-0X_task-friends_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_desc-s123456_bold.h5
    ROOT/fmri/sub-0X/func/sub-0X_task-movie10_space-..._bold.h5        (no desc)
        one dataset per run: "ses-001_task-s01e02a" or "ses-001_task-life01_run-1", (TRs, 1000 parcels)
    ROOT/fmri/sub-0X/atlas/*.nii.gz                                     (parcel ids 1..1000)
    ROOT/stimuli/movies/friends/s{N}/friends_s{NN}e{NN}{a-d}.mkv
    ROOT/stimuli/movies/movie10/<movie>/<movie>{NN}.mkv
    ROOT/stimuli/transcripts/friends/s{N}/friends_s{NN}e{NN}{a-d}.tsv  (per-TR words, optional)
    ROOT/stimuli/transcripts/movie10/<movie>/movie10_<movie>{NN}.tsv   (per-TR words, optional)

Conventions, from the release's own baseline (courtois-neuromod/algonauts_2025.competitors,
``code/challenge_baseline_model``) and README ("Data" > "fMRI", "Stimuli" > ".tsv files"):

* **TR 1.49 s**, and "the fMRI timeseries onset is ALWAYS SYNCHRONIZED with movie onset" (``train_encoding.py``,
  ``excluded_samples_end``): volume ``j`` is acquired over movie time ``[1.49 j, 1.49 (j + 1))``. The baseline
  pairs fMRI sample ``j`` with stimulus chunk ``j`` of exactly that span (``feature_extraction_utils.py``:
  ``start_times = np.arange(0, clip.duration, args.tr)``, ``clip.subclip(start, start + args.tr)``). A row's
  time is the middle of its volume (``RunTiming.from_scan``): **row j sits at 1.49 j + 0.745 s**.
* **Edges**: ``load_fmri`` keeps ``val[excluded_samples_start:-excluded_samples_end]`` with both 5
  (``train_encoding.py`` defaults): run-start transients and windows before the movie starts. The format's
  default ``data.trim_trs`` is ``EDGE_TRS = 5``, so after the generic trim row 0 is volume 5, at 8.195 s.
* **Stimulus window**: ``load_stimulus_features`` models raw sample ``i`` with chunks ``i - 7 .. i - 3``
  (``hrf_delay=3``, ``stimulus_window=5``), i.e. movie time ``[1.49 (i - 7), 1.49 (i - 2))``: in braintune's
  terms ``pooling.window_s=1.49``, ``n_windows=5``, ``lag_s=3.725`` (2.5 TRs from the mid-volume time to the
  end of chunk ``i - 3``), as ``configs/friends_av_sts.yaml`` sets them.
* **Names**: movies are ``<movie><NN>.mkv`` but their transcripts ``movie10_<movie><NN>.tsv``
  (``extract_language_features``); Friends movies and transcripts are both ``friends_<task>``. Run names drop
  the session: ``s01e02a``, ``life01_run-1``. The two showings of Life / Hidden Figures (``_run-1``,
  ``_run-2``) are two runs of one stimulus file, which every split keeps together (``Study.with_showings``).

Missing data are not errors: a participant without a run that others have (sub-02 s05e20a; sub-05
s04e01a/b, s04e13b in the release) and a response dataset without a stimulus file are listed in
``study.problems``. Responses whose last row sits more than ``TR_TOLERANCE`` TRs past the end of their
stimulus are refused (``study.check_rows``; "in some cases the fMRI run ran longer than the actual movie").

Conventional splits: Friends season 7 has no public responses, so the default **test** runs are every part
of the last Friends episode present (s06e24a-d in the full release) and the default **validation** runs are
every part of the episode before it (s06e23). Movie10 runs are always training runs unless named.
"""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import DataError, StimulusError
from ..stimuli import audio_info
from ..study import H5Response, Run, Study, check_rows
from ..timing import RunTiming
from .base import DatasetFormat, TargetSpace

TR = 1.49  # "fMRI volumes were acquired with a repetition time (TR) of 1.49 seconds" (train_encoding.py)
EDGE_TRS = 5  # excluded_samples_start = excluded_samples_end = 5 (train_encoding.py): the default data.trim_trs
TR_TOLERANCE = 3  # TRs a response's last row may sit past its stimulus (scanner tail) before it is refused
MOVIE_SUFFIXES = (".mkv", ".mp4")
_KEY = re.compile(r"^ses-(?P<ses>[^_]+)_task-(?P<task>[^_]+)(?:_run-(?P<run>\w+))?$")
_EPISODE = re.compile(r"^s(?P<season>\d\d)e(?P<episode>\d\d)(?P<part>[a-z])$")


def run_name(key: str) -> tuple[str, str, str] | None:
    """HDF5 dataset name -> (run name, movie stem, transcript stem), e.g. ``ses-003_task-s01e02a`` ->
    (s01e02a, friends_s01e02a, friends_s01e02a) and ``ses-010_task-life01_run-2`` -> (life01_run-2, life01, movie10_life01)."""
    m = _KEY.match(key)
    if m is None:
        return None
    task = m["task"]
    movie, transcript = (f"friends_{task}",) * 2 if _EPISODE.match(task) else (task, f"movie10_{task}")
    return (f"{task}_run-{m['run']}" if m["run"] else task), movie, transcript


def _index(root: Path, sub: str, suffixes: tuple[str, ...]) -> dict[str, Path]:
    base = root / "stimuli" / sub
    return {p.stem: p for p in sorted(base.rglob("*")) if p.suffix.lower() in suffixes} if base.is_dir() else {}


def _scan_responses(fmri: Path, problems: list[str]) -> dict[tuple[str, str], tuple[Path, str, tuple[str, str], int, int]]:
    """(participant, run) -> (h5 path, dataset key, (movie stem, transcript stem), n_trs, n_targets)."""
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
                    found[(pdir.name, named[0])] = (f, key, named[1:], *map(int, h[key].shape))
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
        stem, words = next(iter(items.values()))[2]
        if stem not in movies:
            problems.append(f"run '{r}' ({len(items)} participant(s), e.g. '{next(iter(items.values()))[0]}') has no stimulus "
                            f"'{stem}.mkv' under '{root / 'stimuli' / 'movies'}'; skipped")
            continue
        if transcripts and words not in transcripts:  # the release has transcripts, but not this run's
            problems.append(f"run '{r}' has no transcript '{words}.tsv' under '{root / 'stimuli' / 'transcripts'}'; "
                            f"text backbones cannot use it")
        run = _make_run(r, items, movies[stem], transcripts.get(words), tr, problems)
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
    worst = max(rows, key=rows.get)
    where = f"'{items[worst][0]}' dataset '{items[worst][1]}' ({worst}, run '{name}', stimulus '{movie}')"
    timing = RunTiming.from_scan(tr, n, 0.0, where)  # volume 0 starts with the movie
    check_rows(rows[worst], timing, duration, where, problems, TR_TOLERANCE * tr)
    return Run(name, movie, timing, duration, words)


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
    trim_trs=EDGE_TRS,
    labels=lambda study, p: _atlas(study, p, ".tsv"),  # fmri/<p>/atlas/*.tsv: index, name per parcel
    space=lambda study, p, options: (TargetSpace("parcels", atlas) if (atlas := _atlas(study, p, ".nii.gz")) else None),
)
