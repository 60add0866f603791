"""Per-model alignment results -> differences with statistics, and data-efficiency curves per model.

Differences are model b minus the reference model a (the first of ``alignment.models``), per layer and
participant. Tests (analysis_methods.md §0.10): across participants, a Wilcoxon signed-rank test and a paired
t-test of the per-participant mean r (the stats module warns when there are too few participants to reach
alpha; the warning is kept in summary.json); across targets within each participant, a Wilcoxon test of
r_b vs r_a with BH-FDR over participants; and a block-bootstrap CI of the mean r difference, resampling
the same blocks of test TRs for both models' predictions (headline layers).
"""
from __future__ import annotations

import warnings

import numpy as np

from ..data.responses import prepare_responses
from ..data.study import Study
from . import stats as S
from .alignment import stack_features, stack_responses
from .efficiency import efficiency_curve, fraction_to_match
from .encoding import RidgeEncoder
from .metrics import correlation
from .results import AlignmentResult


def _test(fn, a, b) -> dict:
    """A paired test as a dict, with any power warning (or the reason it could not run) kept."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = fn(a, b)
        except ValueError as err:
            return {"pvalue": None, "error": str(err)}
    out = {"statistic": res.statistic, "pvalue": res.pvalue, "n": res.n, "mean_diff": res.mean_diff}
    if caught:
        out["warning"] = " ".join(str(w.message) for w in caught)
    return out


def compare_pair(result_a: AlignmentResult, result_b: AlignmentResult, block_trs: int, n_boot: int,
                 seed: int = 0) -> tuple[dict, dict]:
    """Two models' alignment results -> (differences, tests) of b - a."""
    res_a, res_b = result_a.participants, result_b.participants
    participants = [p for p in res_a if p in res_b]
    layers = [l for l in res_a[participants[0]].r if l in res_b[participants[0]].r]
    diff = {"layers": {}, "headline": {"participants": {}}}
    tests = {"across_participants": {}, "across_targets": {}}
    for l in layers:
        ma = np.array([res_a[p].r[l].mean() for p in participants])
        mb = np.array([res_b[p].r[l].mean() for p in participants])
        diff["layers"][str(l)] = {"mean_diff": float(np.mean(mb - ma)),
                                  "participants": {p: float(d) for p, d in zip(participants, mb - ma)}}
        tests["across_participants"][str(l)] = {"wilcoxon": _test(S.wilcoxon, mb, ma),
                                                "paired_t": _test(S.paired_ttest, mb, ma)}
        per = {p: _test(S.wilcoxon, res_b[p].r[l], res_a[p].r[l]) for p in participants}
        p_values = np.array([np.nan if t["pvalue"] is None else t["pvalue"] for t in per.values()])
        reject, adjusted = S.fdr_bh(p_values)
        for t, rej, adj in zip(per.values(), reject, adjusted):
            t.update(p_fdr=None if np.isnan(adj) else float(adj), reject_fdr=bool(rej))
        tests["across_targets"][str(l)] = per
    for p in participants:
        a, b = res_a[p], res_b[p]
        if a.pred is not None and b.pred is not None:
            block = max(1, min(block_trs, len(a.y_test) // 2))  # a short test run gets shorter blocks
            lo, hi = S.paired_block_bootstrap_ci(a.y_test, a.pred, b.pred, block, n_boot, seed=seed)
            d = float(np.mean(correlation(a.y_test, b.pred) - correlation(a.y_test, a.pred)))
            diff["headline"]["participants"][p] = {"mean_diff": d, "ci": [lo, hi], "block_trs": block_trs}
    heads = [v["mean_diff"] for v in diff["headline"]["participants"].values()]
    diff["headline"]["mean_diff"] = float(np.mean(heads)) if heads else None
    return diff, tests


def run_counts(requested: list[int], n_train: int) -> list[int]:
    """Requested training-run counts below ``n_train``, plus ``n_train`` itself (the full-data point)."""
    return sorted({n for n in requested if 1 <= n < n_train} | {n_train})


def participant_efficiency(study: Study, participant: str, feats: dict[str, np.ndarray], layer_pos: int,
                           test_runs: list[str], n_runs: list[int], params: dict, seed: int = 0):
    """Alignment (mean test r) of one participant and layer vs the number of training runs -> EfficiencyCurve.

    The encoding model uses Huth-lab bootstrap CV (it works with a single training run); the subsets are
    nested (each contains the smaller ones) and drawn with ``seed``, the same for every model.
    """
    runs = study.runs_of(participant)
    resp = prepare_responses(study, [participant], runs)
    X = stack_features(feats, layer_pos, runs)
    Y, index = stack_responses(resp.data, participant, runs)
    groups = np.asarray(runs)[index]  # run names: efficiency_curve's test groups are named
    shortest = min(feats[r].shape[1] for r in runs)
    encoder = RidgeEncoder(**{**params, "cv": "bootstrap", "chunklen": max(2, min(20, shortest // 4))})
    return efficiency_curve(X, Y, groups, [r for r in test_runs if r in runs], n_runs, encoder=encoder, seed=seed)


def efficiency_summary(curves: dict[str, dict], reference: str) -> dict:
    """{model: {participant: EfficiencyCurve}} -> per-model mean curves and, against ``reference``'s full-data
    alignment, the fraction of training runs each model needs to match it (``fraction_to_match``, None when
    never reached) and the data factor 1/f* ("k-fold less data")."""
    out = {"reference_model": reference, "models": {}}
    means = {}
    for model, per in curves.items():
        first = next(iter(per.values()))
        means[model] = np.mean([c.scores for c in per.values()], axis=0)
        out["models"][model] = {"n_runs": first.n_runs.tolist(), "fractions": first.fractions.tolist(),
                                "scores": means[model].tolist(), "train_runs": [list(map(str, r)) for r in first.train_runs],
                                "participants": {p: c.scores.tolist() for p, c in per.items()}}
    tau = float(means[reference][-1])
    out["reference_alignment"] = tau
    for model, entry in out["models"].items():
        f_star, factor = fraction_to_match((np.asarray(entry["fractions"]), means[model]), tau)
        entry["fraction_to_match"] = None if np.isnan(f_star) else f_star
        entry["data_factor"] = None if np.isnan(factor) else factor
        # already matched with the fewest runs measured: f* is an upper bound, so the factor is a lower bound
        entry["data_factor_is_lower_bound"] = bool(means[model][0] >= tau)
    return out
