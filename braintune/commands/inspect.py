"""A dataset root + its layout name -> what braintune found there: participants, runs, TRs, targets, problems.

``braintune inspect ROOT --format algonauts [--json PATH]`` prints the summary and, with
``--json``, writes it as ``{"participants", "runs", "n_trs", "n_targets", "tr", "stimulus_s", "trimmed_trs",
"showings", "problems"}``: ``n_trs`` count the TRs kept after ``trimmed_trs`` are dropped at each run edge (the
format's default ``data.trim_trs``), ``showings`` lists the stimuli shown in more than one run (kept in one split).
Exits with status 2 and one message (no traceback) when the data cannot be used.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def summarize(study) -> dict:
    """A JSON-ready summary of a ``Study`` (responses are not read: shapes come from file headers)."""
    n_targets = {}
    for p in study.participants:
        n_targets[p] = study.sources[(p, study.runs_of(p)[0])].shape()[1]
    runs = sorted(study.runs)
    return {
        "format": study.format,
        "root": str(study.root),
        "participants": study.participants,
        "runs": runs,
        "n_trs": {r: study.runs[r].timing.n_trs for r in runs},
        "tr": {r: study.runs[r].timing.tr for r in runs},
        "stimulus_s": {r: study.runs[r].duration_s for r in runs},
        "runs_of": {p: study.runs_of(p) for p in study.participants},
        "n_targets": n_targets,
        "default_test_runs": study.default_test_runs,
        "default_val_runs": study.default_val_runs,
        "trimmed_trs": study.trimmed_trs,
        "showings": study.showings(),
        "problems": list(study.problems),
    }


def render(s: dict) -> str:
    lines = [f"{s['format']} dataset at {s['root']}",
             f"participants ({len(s['participants'])}): " + ", ".join(f"{p} [{s['n_targets'][p]} targets, {len(s['runs_of'][p])} runs]"
                                                             for p in s["participants"]),
             f"runs ({len(s['runs'])}); default test {s['default_test_runs']}, default val {s['default_val_runs']}; "
             f"{s['trimmed_trs']} TRs dropped at each run edge (data.trim_trs):"]
    for r in s["runs"]:
        n, tr, dur = s["n_trs"][r], s["tr"][r], s["stimulus_s"][r]
        have = sum(r in v for v in s["runs_of"].values())
        stim = f"stimulus {dur:.1f} s" if dur is not None else "stimulus duration unknown"
        lines.append(f"  {r}: {n} TRs x {tr} s = {n * tr:.1f} s, {stim}, {have}/{len(s['participants'])} participants")
    if s["showings"]:
        lines.append(f"stimuli shown in more than one run ({len(s['showings'])}; each kept in one split):")
        lines += [f"  {Path(stimulus).name}: {', '.join(runs)}" for stimulus, runs in s["showings"].items()]
    lines.append(f"problems ({len(s['problems'])}):" if s["problems"] else "problems: none")
    lines += [f"  - {p}" for p in s["problems"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ..config import DataConfig
    from ..data.formats import FORMATS, open_study
    from ..data.formats.bids import BidsOptions
    from ..errors import DataError, UserError

    parser = argparse.ArgumentParser(prog="braintune inspect", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="dataset directory (or manifest file for --format manifest)")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS))
    parser.add_argument("--task", default=None, help="bids: keep only this task")
    parser.add_argument("--trim-trs", type=int, default=None, help="TRs dropped at each run edge (default: the format's data.trim_trs)")
    parser.add_argument("--allow-outside-root", action="store_true",
                        help="read files that the dataset's own files name outside ROOT (data.allow_outside_root)")
    parser.add_argument("--json", default=None, help="also write the summary to this JSON file")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error")
    args = parser.parse_args(argv)
    try:
        if not Path(args.root).exists():
            raise DataError(f"'{args.root}' does not exist; give the dataset's root directory")
        study = open_study(DataConfig(format=args.format, root=args.root, bids=BidsOptions(task=args.task), trim_trs=args.trim_trs,
                                      allow_outside_root=args.allow_outside_root))
        summary = summarize(study)
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(render(summary))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0
