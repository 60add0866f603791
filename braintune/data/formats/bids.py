"""BIDS-style fMRI (raw or fMRIPrep derivatives, e.g. Narratives) -> ``Study``.

Layout read (``ses-*`` levels allowed)::

    ROOT/sub-<p>/func/sub-<p>_task-<t>[_run-<n>]_..._bold.nii.gz       volumes (X, Y, Z, T)
    ROOT/sub-<p>/func/sub-<p>_task-<t>[_run-<n>]_hemi-L_..._bold.func.gii (+ hemi-R)   surfaces, one darray per TR
    ROOT/sub-<p>/func/sub-<p>_task-<t>[_run-<n>]_events.tsv  (or ROOT/task-<t>_events.tsv): onset, duration, stim_file
    ROOT/stimuli/<stim_file>                                              audio (or video) stimulus
    _bold.json beside the data: RepetitionTime (else the NIfTI header's 4th zoom)

Targets: volume voxels inside ``mask`` (nonzero), or parcel means of ``atlas`` (sorted nonzero ids), chosen in
the config (``data.mask`` / ``data.atlas``); surfaces give every vertex (L then R). Timing: the stimulus starts
``onset`` seconds after the first volume, and row ``j`` sits at the middle of volume ``j``, stimulus time
``(j + 1/2) * TR - onset`` (``RunTiming.from_scan``; fMRIPrep's default slice-time reference is 0.5 too). Run names are
``<task>`` or ``<task>_run-<n>``. No conventional test run: set ``data.test_runs``.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError, StimulusError
from ..paths import inside_root
from ..stimuli import audio_info
from ..study import Run, Study
from ..timing import RunTiming
from .base import DatasetFormat, TargetSpace

@dataclass
class BidsOptions:
    """``data.bids``: which task, and how volumes become targets."""

    task: str | None = None  # keep only files of this BIDS task (task-<name>); None: every task
    mask: str | None = None  # volumes: brain-mask NIfTI (nonzero = keep); targets are the masked voxels
    atlas: str | None = None  # volumes: parcellation NIfTI (integer ids); targets are parcel means


TAIL_TRS = 10  # volumes a scan may run past the end of its stimulus before the pairing is refused
_ENT = re.compile(r"_task-(?P<task>[a-zA-Z0-9]+)(?:_(?!run-)[a-zA-Z]+-[a-zA-Z0-9]+)*(?:_run-(?P<run>\d+))?")
EVENT_COLUMNS = ("onset", "duration", "stim_file")


def _load_image(path: Path):
    """The image object (header read; a NIfTI's voxels are decoded by ``_voxels``)."""
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as err:  # nibabel raises ImageFileError, EOFError, zlib errors for broken files
        raise DataError(f"cannot read '{path}': {err}. It is truncated or corrupt; re-download it.") from err


def _voxels(path: Path, dtype=np.float32) -> np.ndarray:
    """A NIfTI's data array, decoded once; gzip truncation shows up here."""
    try:
        return np.asarray(_load_image(path).get_fdata(dtype=dtype))
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot read '{path}': {err}. It is truncated or corrupt; re-download it.") from err


@dataclass(frozen=True)
class ImageResponse:
    """Volumes through a mask or an atlas, or surface vertices, -> (T, targets); ``n_rows`` cuts trailing TRs."""

    path: Path
    mask: Path | None = None
    atlas: Path | None = None
    right: Path | None = None  # hemi-R GIfTI paired with a hemi-L ``path``
    n_rows: int | None = None

    def _labels(self, volume_shape: tuple) -> np.ndarray:
        """(X, Y, Z) int labels of the mask (nonzero = keep) or atlas, checked against the volumes' grid."""
        ref = self.atlas or self.mask
        if ref is None:
            raise DataError(f"'{self.path}' is a volume; set data.mask (brain mask) or data.atlas (parcellation) to define targets")
        labels = _voxels(ref, np.float64).round().astype(np.int64)
        if labels.shape != tuple(volume_shape[:3]):
            raise DataError(f"{'atlas' if self.atlas else 'mask'} '{ref}' has shape {labels.shape} but the volumes in "
                            f"'{self.path}' are {tuple(volume_shape[:3])}; resample it to the data's space and grid")
        return labels

    def _volume_targets(self) -> np.ndarray:
        """(T, targets) through nilearn's maskers: the mask's voxels in C order over (i, j, k) (``NiftiMasker``), or
        each atlas parcel's mean, parcels in ascending id order (``NiftiLabelsMasker``)."""
        import nibabel as nib
        from nilearn.maskers import NiftiLabelsMasker, NiftiMasker

        data = _voxels(self.path)  # (X, Y, Z, T), decoded once; a truncated file is named here
        labels = self._labels(data.shape)
        affine = _load_image(self.path).affine  # the grid was checked by shape: the maskers see one affine
        image = nib.Nifti1Image(data, affine)
        if self.atlas is None:
            if not (labels != 0).any():
                raise DataError(f"mask '{self.mask}' is empty (no nonzero voxel); check the file")
            mask = nib.Nifti1Image((labels != 0).astype(np.uint8), affine)
            return NiftiMasker(mask, standardize=None).fit_transform(image)  # raw values: z-scoring is data.zscore's
        parcels = NiftiLabelsMasker(nib.Nifti1Image(labels.astype(np.int32), affine), strategy="mean", standardize=None)
        return parcels.fit_transform(image)

    def read(self) -> np.ndarray:
        if self.path.name.endswith(".func.gii"):
            parts = [np.stack([d.data for d in _load_image(p).darrays]) for p in (self.path, self.right) if p is not None]
            out = np.concatenate(parts, 1)
        else:
            out = self._volume_targets()
        return np.asarray(out[: self.n_rows] if self.n_rows else out, dtype=np.float32)

    def read_repeats(self) -> None:
        return None

    def shape(self) -> tuple[int, int]:
        if self.path.name.endswith(".func.gii"):
            return tuple(self.read().shape)  # type: ignore[return-value]  # GIfTI has no lazy header
        volume_shape = _load_image(self.path).shape  # header only: (X, Y, Z, T)
        labels = self._labels(volume_shape)
        n_targets = int((labels != 0).sum()) if self.atlas is None else len(np.unique(labels[labels != 0]))
        return (self.n_rows or int(volume_shape[3])), n_targets


def _tr(path: Path) -> float:
    side = Path(str(path).split("_bold")[0] + "_bold.json")
    if side.is_file():
        return float(json.loads(side.read_text())["RepetitionTime"])
    if path.name.endswith(".func.gii"):
        raise DataError(f"'{path}' has no sidecar '{side.name}' with RepetitionTime; GIfTI carries no TR, add the JSON")
    return float(_load_image(path).header.get_zooms()[3])


ONSET_TOLERANCE_S = 0.05  # participants of one run share its TR clock: their onsets may differ by this much at most


def _events(root: Path, path: Path, task: str) -> tuple[float, Path, str]:
    """(onset in seconds, stimulus path, where: the events file and line) from the run's events.tsv (per-run, else
    dataset-level). The stimulus must lie inside ``root`` (``data.paths.inside_root``: ``data.allow_outside_root``)."""
    prefix = re.split(r"_(?:space|hemi|desc|echo|acq)-|_bold", path.name)[0]
    candidates = [path.parent / f"{prefix}_events.tsv", root / f"task-{task}_events.tsv"]
    events = next((c for c in candidates if c.is_file()), None)
    if events is None:
        raise DataError(f"no events file for '{path}' (looked for {[str(c) for c in candidates]}); it gives the stimulus and its onset")
    with events.open(newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in EVENT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"events file '{events}' lacks column(s) {missing} (has {reader.fieldnames}); it needs {list(EVENT_COLUMNS)}")
        rows = [(reader.line_num, r) for r in reader if r["stim_file"] not in ("", "n/a", None)]
    if not rows:
        raise DataError(f"events file '{events}' names no stim_file; add the stimulus row")
    line, row = rows[0]
    where = f"events file '{events}' line {line}"
    try:
        onset = float(row["onset"])
    except (TypeError, ValueError):
        raise DataError(f"{where}: onset {row['onset']!r} is not a number of seconds") from None
    return onset, inside_root(root, Path("stimuli") / row["stim_file"], where), where


def _same_events(first: tuple[float, Path, str], other: tuple[float, Path, str], run: str) -> None:
    """Refuse participants of one run whose events disagree on its stimulus or onset (one clock serves them all)."""
    if other[1] != first[1] or abs(other[0] - first[0]) > ONSET_TOLERANCE_S:
        raise DataError(f"run '{run}': {other[2]} gives stimulus '{other[1].name}' at onset {other[0]} s but {first[2]} gives "
                        f"'{first[1].name}' at {first[0]} s; participants of one run must hear the same stimulus at the same "
                        "onset: fix the events files, or name the runs differently")


def _scan(root: Path, task: str | None, problems: list[str]) -> dict[tuple[str, str], Path]:
    found = {}
    for pdir in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        files = sorted(f for f in pdir.rglob("*") if f.name.endswith("_bold.nii.gz") or ("hemi-L" in f.name and f.name.endswith(".func.gii")))
        files = [f for f in files if task is None or f"_task-{task}_" in f.name]
        if not files:
            problems.append(f"participant directory '{pdir}' has no *_bold.nii.gz or *_hemi-L_*.func.gii runs{f' of task {task}' if task else ''}; skipped")
        for f in files:
            m = _ENT.search(f.name)
            if m is None:
                problems.append(f"'{f}' has no task-<name> entity; skipped")
                continue
            name = f"{m['task']}_run-{m['run']}" if m["run"] else m["task"]
            found.setdefault((pdir.name, name), f)
    return found


def open_study(root: str | Path, task: str | None = None, mask: str | None = None, atlas: str | None = None) -> Study:
    """Read a BIDS(-derivatives) directory; participants without runs and unmatched files are listed in ``problems``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"'{root}' is not a directory; data.root must be the BIDS dataset root (holding sub-*/)")
    problems: list[str] = []
    found = _scan(root, task, problems)
    if not found:
        raise DataError(f"no sub-*/func/*_bold.nii.gz or *.func.gii runs under '{root}'" + (f" for task '{task}'" if task else ""))
    sources, runs, events = {}, {}, {}
    for (p, name), path in sorted(found.items()):
        right = Path(str(path).replace("hemi-L", "hemi-R")) if "hemi-L" in path.name else None
        src = ImageResponse(path, Path(mask) if mask else None, Path(atlas) if atlas else None, right if right and right.is_file() else None)
        n = src.shape()[0]
        onset, stim, where = _events(root, path, _ENT.search(path.name)["task"])
        _same_events(events.setdefault(name, (onset, stim, where)), (onset, stim, where), name)
        if name not in runs:
            try:
                duration, _, _ = audio_info(stim)
            except StimulusError as err:
                raise DataError(f"run '{name}' ('{path}'): {err}") from err
            tr = _tr(path)
            if n * tr > onset + duration + TAIL_TRS * tr:
                raise DataError(f"'{path}' ({p}, run '{name}') has {n} volumes ({n * tr:.1f} s at TR {tr} s) but its stimulus "
                                f"'{stim}' ends at {onset + duration:.1f} s; check that the events file names the right stimulus")
            runs[name] = Run(name, stim, RunTiming.from_scan(tr, n, -onset, f"'{path}'"), duration)  # row j: middle of volume j
        elif n != runs[name].timing.n_trs:
            keep = min(n, runs[name].timing.n_trs)
            problems.append(f"run '{name}': '{path}' has {n} volumes, others {runs[name].timing.n_trs}; all cut to {keep}")
            if keep < runs[name].timing.n_trs:
                r = runs[name]
                runs[name] = Run(name, r.stimulus, RunTiming(r.timing.tr, keep, r.timing.first_tr_s), r.duration_s)
        sources[(p, name)] = src
    sources = {k: ImageResponse(s.path, s.mask, s.atlas, s.right, runs[k[1]].timing.n_trs) for k, s in sources.items()}
    return Study("bids", root, runs, sources, [], [], problems)


def _space(study: Study, participant: str, options: BidsOptions | None) -> TargetSpace | None:
    first = study.sources[(participant, study.runs_of(participant)[0])]
    while hasattr(first, "inner"):  # cache / row / column wrappers
        first = first.inner
    if first.path.name.endswith(".func.gii"):
        return TargetSpace("surface")
    if options is not None and options.atlas:
        return TargetSpace("parcels", Path(options.atlas))
    if options is not None and options.mask:
        return TargetSpace("volume", Path(options.mask))
    return None


FORMAT = DatasetFormat(open=lambda root, o: open_study(root, o.task, o.mask, o.atlas) if o else open_study(root),
                       options=BidsOptions, space=_space)
