"""A study + participants + training and test runs -> the responses every instruction model is fitted to, on targets
common to all participants, and their ceiling (repeat-based or cross-subject).

Oota et al. 2025 (analysis_methods.md §4.1, §4.6): train on the training movies, test on the held-out movie, whose
showings (Life, Hidden Figures) are averaged, never split; each run's responses are z-scored. The winner-take-all
maps average participants target by target and the cross-subject ceiling predicts one participant's targets from
the others', so the participants' targets must be one space (fsaverage6 vertices, the Algonauts Schaefer parcels):
the targets kept are those kept (not NaN, not constant) for every participant, and runs are those every participant
has; anything left out is counted in ``notes``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce

import numpy as np

from ..data.responses import prepare_responses
from ..data.study import Study
from ..errors import DataError
from ..evaluation.ceiling import noise_ceiling
from ..evaluation.cross_subject import cross_subject_ceiling

CEILINGS = ("repeats", "cross_subject", "none")


@dataclass
class BrainData:
    """Responses on common targets. ``Y`` / ``Yt``: per participant (n_TRs, V) training / test responses (test: the mean
    of each test stimulus's showings), ``groups`` / ``groups_test`` their run (stimulus) index per row, ``targets``
    (V,) the study target index of each common target, ``test_groups`` the showings of each test stimulus (the first
    one's features are used) and ``n_test`` its rows, ``repeats`` per participant (n_showings, n_test_TRs, V) or None."""

    participants: list[str]
    train_runs: list[str]
    test_groups: list[list[str]]
    n_test: list[int]
    Y: list[np.ndarray]
    Yt: list[np.ndarray]
    groups: np.ndarray
    groups_test: np.ndarray
    targets: np.ndarray
    repeats: list[np.ndarray] | None
    notes: list[str] = field(default_factory=list)


def _shared_runs(study: Study, participants: list[str], runs: list[str], what: str, notes: list[str]) -> list[str]:
    have = [r for r in runs if all((p, r) in study.sources for p in participants)]
    if len(have) < len(runs):
        notes.append(f"{what} runs {sorted(set(runs) - set(have))} left out: not every participant has them")
    return have


def _test_groups(study: Study, test_runs: list[str]) -> list[list[str]]:
    """Test runs grouped by the stimulus file they show, in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for r in study.with_showings(test_runs):
        if r in test_runs:
            groups.setdefault(str(study.runs[r].stimulus), []).append(r)
    return list(groups.values())


def _common_targets(resp, participants: list[str], notes: list[str]) -> np.ndarray:
    widths = {p: resp.n_original[p] for p in participants}
    if len(set(widths.values())) > 1:
        raise DataError(f"participants have different target counts {widths}; evaluate.py instructions compares targets "
                        "across participants (participant-averaged maps, cross-subject ceiling), so their responses must "
                        "share one space (e.g. fsaverage6, or the Algonauts Schaefer parcels)")
    common = reduce(np.intersect1d, [resp.kept[p] for p in participants])
    if len(common) < next(iter(widths.values())):
        notes.append(f"{next(iter(widths.values())) - len(common)} targets left out: NaN or constant for some participant")
    if len(common) == 0:
        raise DataError(f"no target is usable (not NaN, not constant) for every participant of {participants}")
    return common


def brain_data(study: Study, participants: list[str], train_runs: list[str], test_runs: list[str]) -> BrainData:
    """Responses of ``participants`` on their common targets: training runs stacked, test showings averaged."""
    notes: list[str] = []
    train = _shared_runs(study, participants, train_runs, "training", notes)
    tests = [g for g in (_shared_runs(study, participants, g, "test", notes) for g in _test_groups(study, test_runs)) if g]
    if len(train) < 2 or not tests:
        raise DataError(f"participants {participants} share {len(train)} training run(s) and {len(tests)} test stimuli; "
                        "the encoding model needs at least 2 training runs and a test run (data.test_runs)")
    resp = prepare_responses(study, participants, train + [r for g in tests for r in g])
    common = _common_targets(resp, participants, notes)
    cols = {p: np.searchsorted(resp.kept[p], common) for p in participants}
    n_test = [min(study.runs[r].timing.n_trs for r in g) for g in tests]
    if any(study.runs[r].timing.n_trs != n for g, n in zip(tests, n_test) for r in g):
        notes.append(f"test showings cut to their shortest one: {dict(zip([g[0] for g in tests], n_test))} rows")
    Y = [np.concatenate([resp.data[(p, r)][:, cols[p]] for r in train]) for p in participants]
    showings = {p: [np.stack([resp.data[(p, r)][:n, cols[p]] for r in g]) for g, n in zip(tests, n_test)]
                for p in participants}  # per stimulus (k, n, V)
    Yt = [np.concatenate([s.mean(0) for s in showings[p]]) for p in participants]
    k = min(len(g) for g in tests)
    repeats = [np.concatenate([s[:k] for s in showings[p]], 1) for p in participants] if k > 1 else None
    groups = np.concatenate([np.full(study.runs[r].timing.n_trs, i) for i, r in enumerate(train)])
    groups_test = np.concatenate([np.full(n, i) for i, n in enumerate(n_test)])
    return BrainData(list(participants), train, tests, n_test, Y, Yt, groups, groups_test, common, repeats, notes)


def study_ceiling(data: BrainData, method: str, n_boot: int = 100, curve: str = "exponential",
                  max_subsets: int | None = None, seed: int = 0, **encoder_params) -> tuple[np.ndarray | None, dict]:
    """(n_participants, V) ceiling of every participant's common targets by ``method`` and what it rests on.

    ``repeats``: the noise ceiling of the test stimulus's showings (Schoppe et al. 2016); ``cross_subject``: Schrimpf et
    al. 2021 (``cross_subject_ceiling``: ≥ 4 participants extrapolate, 3 give a lower bound, said in the note);
    ``none``: no ceiling (scores stay raw r). ``encoder_params`` go to the cross-subject ridge models.
    """
    if method not in CEILINGS:
        raise DataError(f"alignment.ceiling='{method}' is not one of {CEILINGS}")
    if method == "none":
        return None, {"method": "none", "note": "no ceiling: scores are raw test r"}
    if method == "repeats":
        if data.repeats is None:
            raise DataError(f"alignment.ceiling=repeats needs every test stimulus shown more than once, but the test runs "
                            f"{data.test_groups} include a single showing; use alignment.ceiling=cross_subject (>= 4 "
                            "participants) or none")
        ceiling = np.stack([noise_ceiling(r) for r in data.repeats])
        info = {"method": "repeats", "kind": "repeats", "note": f"noise ceiling of {len(data.repeats[0])} showings"}
    else:
        if len(data.participants) < 2:
            raise DataError("alignment.ceiling=cross_subject needs at least 2 participants (4 or more to extrapolate)")
        res = cross_subject_ceiling(data.Y, data.Yt, data.groups, data.groups_test, n_boot, curve=curve,
                                    max_subsets_per_size=max_subsets, seed=seed, **encoder_params)
        ceiling, info = res.ceiling, {"method": "cross_subject", "kind": res.kind, "note": res.note}
    info["mean"] = {p: float(np.mean(c)) for p, c in zip(data.participants, ceiling)}
    return ceiling, info
