"""A manifest file (YAML or CSV) describing any other dataset -> ``Study``.

``data.root`` is the manifest file, or a directory holding ``manifest.yaml`` / ``manifest.csv``. Paths are
relative to the manifest's directory and must stay inside it (``data.paths``: a path leaving it is refused, naming
the manifest and its line, unless ``data.allow_outside_root=true``). YAML::

    tr: 2.0                      # seconds; a run may override it
    first_tr_s: 0.0              # stimulus time of row 0, the middle of its volume; a run may override it
    test_runs: [story3]          # optional defaults for data.test_runs / data.val_runs
    val_runs: [story2]
    runs:
      story1: {stimulus: stimuli/story1.wav}
      story3: {stimulus: stimuli/story3.wav, first_tr_s: -4.0}
    responses:                   # participant -> run -> "file.npy" | {file: x.h5, key: dataset}
      sub-01: {story1: {file: sub-01.h5, key: story1}, story3: sub-01_story3.npy}

CSV: one row per (participant, run) with columns ``participant, run, stimulus, response, key, tr, first_tr_s``
(``key`` empty for .npy; ``first_tr_s`` empty means 0).

Timing: row ``j`` sits at stimulus time ``first_tr_s + j * tr``, the **middle** of volume ``j`` (the convention of
every braintune reader, ``RunTiming``): a scan whose first volume starts ``s`` seconds before the stimulus has
``first_tr_s = tr / 2 - s``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ...errors import DataError, StimulusError
from ..paths import inside_root
from ..stimuli import audio_info
from ..study import H5Response, Run, Study
from ..timing import RunTiming
from .base import DatasetFormat

CSV_COLUMNS = ("participant", "run", "stimulus", "response", "key", "tr", "first_tr_s")


@dataclass(frozen=True)
class NpyResponse:
    """A (TRs, targets) ``.npy`` file, memory-mapped."""

    path: Path

    def _load(self) -> np.ndarray:
        try:
            return np.load(self.path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read response file '{self.path}': {err}. It is truncated or not .npy; re-save it.") from err

    def read(self) -> np.ndarray:
        return np.asarray(self._load(), dtype=np.float32)

    def read_repeats(self) -> None:
        return None

    def shape(self) -> tuple[int, int]:
        shape = self._load().shape
        if len(shape) != 2:
            raise DataError(f"'{self.path}' has shape {shape}; expected (TRs, targets)")
        return int(shape[0]), int(shape[1])


def _line_of(text: str, value: object) -> str:
    """``line N`` of the first line of a YAML text that holds ``value`` (for messages), else ''."""
    return next((f" line {n}" for n, line in enumerate(text.splitlines(), start=1) if str(value) in line), "")


def _yaml_spec(path: Path) -> tuple[dict, str]:
    text = path.read_text()
    try:
        spec = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise DataError(f"manifest '{path}'{f' line {mark.line + 1}' if mark else ''} is not valid YAML "
                        f"({getattr(err, 'problem', None) or err}); see braintune/data/formats/manifest.py") from err
    missing = [k for k in ("runs", "responses") if not isinstance(spec, dict) or not isinstance(spec.get(k), dict)]
    if missing:
        raise DataError(f"manifest '{path}' lacks the mappings {missing}; see braintune/data/formats/manifest.py for the layout")
    return spec, text


def _rows_from_yaml(path: Path) -> tuple[list[dict], dict]:
    spec, text = _yaml_spec(path)
    rows = []
    for p, per_run in spec["responses"].items():
        for run, resp in (per_run or {}).items() if isinstance(per_run, (dict, type(None))) else [(None, None)]:
            r, resp = spec["runs"].get(run), resp if isinstance(resp, dict) else {"file": resp}
            if run is None or not isinstance(r, dict) or not r.get("stimulus") or not resp.get("file"):
                raise DataError(f"manifest '{path}': participant '{p}', run '{run}' needs an entry under 'runs' with a "
                                "stimulus, and a response file; see braintune/data/formats/manifest.py")
            rows.append({"participant": p, "run": run, "stimulus": r["stimulus"], "response": resp["file"], "key": resp.get("key", ""),
                         "tr": r.get("tr", spec.get("tr")), "first_tr_s": r.get("first_tr_s", spec.get("first_tr_s", 0.0)),
                         "where_stimulus": f"manifest '{path}'{_line_of(text, r['stimulus'])} (runs.{run}.stimulus)",
                         "where_response": f"manifest '{path}'{_line_of(text, resp['file'])} (responses.{p}.{run})"})
    return rows, spec


def _rows_from_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"manifest '{path}' lacks column(s) {missing} (has {reader.fieldnames}); it needs {list(CSV_COLUMNS)}")
        rows = []
        for row in reader:
            where = f"manifest '{path}' line {reader.line_num}"
            if any(row.get(c) is None for c in CSV_COLUMNS) or not row["stimulus"] or not row["response"]:
                raise DataError(f"{where} has empty or missing cells; every row needs {', '.join(CSV_COLUMNS)} (key and "
                                "first_tr_s may be empty)")
            rows.append({**row, "where_stimulus": where, "where_response": where})
        return rows


def _seconds(row: dict, column: str, path: Path, default: float | None = None) -> float:
    """A row's ``tr`` / ``first_tr_s`` as a float, or a ``DataError`` naming the manifest and the run."""
    value = row.get(column)
    if value in (None, "") and default is not None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{row['where_stimulus']}: run '{row['run']}' has {column} {value!r}; give seconds as a number "
                        f"(in '{path}')") from None


def open_study(root: str | Path) -> Study:
    path = Path(root)
    if path.is_dir():
        path = next((path / n for n in ("manifest.yaml", "manifest.yml", "manifest.csv") if (path / n).is_file()), path)
    if not path.is_file():
        raise DataError(f"no manifest at '{root}'; data.root must be a manifest .yaml/.csv or a directory holding manifest.yaml")
    rows, spec = _rows_from_yaml(path) if path.suffix in (".yaml", ".yml") else (_rows_from_csv(path), {})
    base = path.parent
    runs, sources, problems = {}, {}, []
    for row in rows:
        if row.get("tr") in (None, ""):
            raise DataError(f"manifest '{path}': run '{row['run']}' has no tr (seconds between volumes)")
        resp = inside_root(base, row["response"], row["where_response"])  # refused before anything reads it
        src = H5Response(resp, row["key"]) if resp.suffix in (".h5", ".hf5", ".hdf5") else NpyResponse(resp)
        if not resp.is_file():
            raise DataError(f"manifest '{path}': response file '{resp}' ({row['participant']}, run '{row['run']}') does not exist")
        n = src.shape()[0]
        if row["run"] not in runs:
            stim = inside_root(base, row["stimulus"], row["where_stimulus"])
            tr, first = _seconds(row, "tr", path), _seconds(row, "first_tr_s", path, 0.0)
            if not tr > 0:
                raise DataError(f"{row['where_stimulus']}: run '{row['run']}' has tr {tr}; it must be above 0 seconds")
            try:
                duration, _, _ = audio_info(stim)
            except StimulusError as err:
                raise DataError(f"manifest '{path}', run '{row['run']}': {err}") from err
            if first + n * tr > duration + 2 * tr:
                raise DataError(f"'{resp}' ({row['participant']}, run '{row['run']}') has {n} TRs ({first + n * tr:.1f} s of stimulus "
                                f"time) but '{stim}' lasts {duration:.1f} s; check tr and first_tr_s in '{path}'")
            runs[row["run"]] = Run(row["run"], stim, RunTiming(tr, n, first), duration)
        elif n != runs[row["run"]].timing.n_trs:
            raise DataError(f"'{resp}' ({row['participant']}) has {n} TRs for run '{row['run']}', other participants "
                            f"{runs[row['run']].timing.n_trs}; one pairing in '{path}' is wrong")
        sources[(row["participant"], row["run"])] = src
    return Study("manifest", path, runs, sources, list(spec.get("test_runs", [])), list(spec.get("val_runs", [])), problems)


FORMAT = DatasetFormat(open=lambda root, options: open_study(root))
