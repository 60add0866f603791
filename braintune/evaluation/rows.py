"""A study and its test runs in, a copy whose test runs start ``n`` rows later out (the rows a recipe scores).

The multi-participant reference scores its test story from hf5 row 40 on (`recipe.TEST_SKIP_TRS`). Cutting the
rows in the study, before anything reads them, makes every consumer agree: features are computed at the remaining
TR times (causal sliding features at a TR do not depend on where the run is cut, so this equals slicing the
full-run features), features and responses are z-scored over the scored rows, FIR delays are zero-filled before
the first scored row (as ``make_delayed`` on the reference's trimmed test matrix), and the noise ceiling uses the
same rows of every repeat.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..data.study import RowSlice, Study
from ..data.timing import RunTiming
from ..errors import DataError


def skip_start_rows(study: Study, runs: Sequence[str], n: int) -> Study:
    """A copy of ``study`` in which each of ``runs`` loses its first ``n`` rows: its clock starts ``n`` TRs later and
    every participant's responses (and repeats) to it are cut alike; ``study`` itself is unchanged.

    Runs not in the study are left to the caller's own check. ``n = 0`` returns ``study``.
    """
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"skip_start_rows: n={n!r} must be a non-negative number of rows.")
    if n == 0:
        return study
    runs = [r for r in runs if r in study.runs]
    short = [f"{r} ({study.runs[r].timing.n_trs} TRs)" for r in runs if study.runs[r].timing.n_trs < n + 2]
    if short:
        raise DataError(f"the test rows are scored from row {n} on, which leaves fewer than 2 rows in test run(s) "
                        f"{short}; use longer test runs or a recipe that scores every row (alignment.recipe=braintune)")
    new_runs = dict(study.runs)
    for r in runs:
        t = study.runs[r].timing
        new_runs[r] = replace(study.runs[r], timing=RunTiming(t.tr, t.n_trs - n, t.first_tr_s + n * t.tr))
    sources = {(p, r): RowSlice(src, n, src.shape()[0]) if r in runs else src for (p, r), src in study.sources.items()}
    return replace(study, runs=new_runs, sources=sources)
