"""Per-model alignment results -> differences with statistics, and data-efficiency curves per model.

Differences are model b minus the reference model a (the first of ``alignment.models``), per layer and
participant. Tuned and held-out participants are two groups, tested apart and never pooled in one test:

* **within each participant** (the headline layer): `blocktest.block_sign_flip_test` of r_b − r_a on that
  participant's test rows. The unit of resampling is a block of ``block_trs`` contiguous TRs inside one test run,
  and every resample flips the same blocks for all targets, so the null keeps the temporal autocorrelation and the
  spatial correlation of the targets (the across-target Wilcoxon it replaces treated 10^3-10^5 correlated voxels
  as independent pairs; issue 10). Reported: the global p of the mean over targets, per-target rejections after
  max-statistic (family-wise) and BH (false-discovery) correction, and the smallest p the design can reach;
* **across participants**, per group and layer: Wilcoxon signed-rank and paired t of the per-participant mean r
  (with the stats module's power warning: 4 participants cannot reach p < 0.05 with a Wilcoxon), Holm-adjusted
  over the layers;
* a block-bootstrap CI of the headline mean r difference, the same blocks of test TRs for both models.

No test selects a layer on test data: the headline layer is fixed in advance (the layer the heads read).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..data.responses import prepare_responses
from ..data.study import Study
from . import stats as S
from .alignment import stack_features, stack_responses
from .blocktest import BlockTestResult, block_sign_flip_test
from .efficiency import efficiency_curve, fraction_to_match
from .encoding import RidgeEncoder
from .metrics import correlation
from .results import AlignmentResult, ParticipantAlignment

LAYER_SELECTION = ("headline layer {layer} fixed in advance (the layer the heads read), never chosen on test data; "
                   "the block sign-flip tests and the bootstrap CI use it alone. The per-layer tests across "
                   "participants are descriptive: p_holm adjusts them over the {n} layers, for a best layer picked "
                   "from that table.")


@dataclass
class PairComparison:
    """b − a of two models: JSON-ready ``differences`` and ``tests``, and per participant the headline layer's block
    sign-flip test (``block_tests``, max-statistic p per target; `reject` gives the rejections for maps)."""

    differences: dict
    tests: dict
    block_tests: dict[str, BlockTestResult]
    correction: str = "max"

    def reject(self, participant: str) -> np.ndarray:
        """(n_targets,) bool: targets whose r_b − r_a is significant under ``correction`` ("max" or "bh")."""
        return _rejections(self.block_tests[participant])[self.correction]

    def arrays(self) -> dict[str, np.ndarray]:
        """Per-target arrays keyed ``{participant}/{diff,p_max,p_bh,p_uncorrected,reject_max,reject_bh}`` (np.savez)."""
        out = {}
        for p, res in self.block_tests.items():
            rej = _rejections(res)
            out.update({f"{p}/diff": res.diff, f"{p}/p_max": res.pvalue_targets, f"{p}/p_bh": rej["p_bh"],
                        f"{p}/p_uncorrected": res.pvalue_targets_uncorrected, f"{p}/reject_max": rej["max"],
                        f"{p}/reject_bh": rej["bh"]})
        return out


def _rejections(res: BlockTestResult) -> dict[str, np.ndarray]:
    reject_bh, p_bh = S.fdr_bh(res.pvalue_targets_uncorrected, q=res.alpha)
    return {"max": res.reject, "bh": reject_bh, "p_bh": p_bh}


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


def participant_groups(participants: list[str], heldout=()) -> dict[str, list[str]]:
    """{"tuned": [...], "heldout": [...]}, empty groups left out."""
    groups = {"tuned": [p for p in participants if p not in heldout], "heldout": [p for p in participants if p in heldout]}
    return {g: ps for g, ps in groups.items() if ps}


def _layer_tests(res_a: dict, res_b: dict, layers: list[int], groups: dict[str, list[str]]) -> tuple[dict, dict]:
    """Per layer: mean r differences (all participants, per group) and, per group, the paired tests across
    participants with Holm-adjusted p over the layers."""
    diffs, tests = {}, {}
    for l in layers:
        d = {p: float(res_b[p].r[l].mean() - res_a[p].r[l].mean()) for ps in groups.values() for p in ps}
        diffs[str(l)] = {"mean_diff": float(np.mean(list(d.values()))), "participants": d,
                         "groups": {g: float(np.mean([d[p] for p in ps])) for g, ps in groups.items()}}
    for g, ps in groups.items():
        per = {}
        for l in layers:
            mb, ma = (np.array([res[p].r[l].mean() for p in ps]) for res in (res_b, res_a))
            per[str(l)] = {"wilcoxon": _test(S.wilcoxon, mb, ma), "paired_t": _test(S.paired_ttest, mb, ma)}
        for name in ("wilcoxon", "paired_t"):
            raw = [np.nan if t[name]["pvalue"] is None else t[name]["pvalue"] for t in per.values()]
            for t, adj in zip(per.values(), S.holm(raw)):
                t[name]["p_holm"] = None if np.isnan(adj) else float(adj)
        tests[g] = per
    return diffs, tests


def run_lengths_of(result: AlignmentResult, part: ParticipantAlignment) -> list[int] | None:
    """Rows of each of the participant's test runs, in the order they are stacked (from the features kept on the
    result); None when the features were not kept and there is one test run."""
    if result.features is None or any(r not in result.features for r in part.test_runs):
        if len(part.test_runs) > 1:
            raise ValueError(f"the rows of each test run {part.test_runs} are unknown (AlignmentResult.features is "
                             f"None); the block test needs them so that no block spans two runs.")
        return None
    lengths = [int(result.features[r].shape[1]) for r in part.test_runs]
    if sum(lengths) != len(part.y_test):
        raise ValueError(f"test runs {part.test_runs} have {lengths} feature rows but {len(part.y_test)} test responses.")
    return lengths


def _block_test(y, pred_a, pred_b, run_lengths, opts: dict) -> tuple[BlockTestResult | None, dict]:
    """The block sign-flip test and its JSON summary (or the reason it could not run)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the power warning is kept in the result
        try:
            res = block_sign_flip_test(y, pred_a, pred_b, opts["block_trs"], opts["n_perm"], opts["seed"], "max",
                                       "two-sided", opts["alpha"], run_lengths)
        except ValueError as err:
            return None, {"pvalue": None, "error": str(err)}
    rej = _rejections(res)
    out = {"statistic": res.statistic, "pvalue": res.pvalue, "alternative": res.alternative, "alpha": res.alpha,
           "n_targets": int(res.diff.size), "correction": opts["correction"],
           "n_reject": int(rej[opts["correction"]].sum()), "n_reject_max": int(rej["max"].sum()),
           "n_reject_bh": int(rej["bh"].sum()), "min_p": res.min_p, "n_blocks": res.n_blocks,
           "n_patterns": res.n_patterns, "exact": res.exact, "block_trs": res.block_trs, "run_lengths": run_lengths}
    if res.warning:
        out["warning"] = res.warning
    return res, out


def _headline(result_a: AlignmentResult, result_b: AlignmentResult, groups: dict, opts: dict):
    """Per participant of each group: block sign-flip test and block-bootstrap CI of the headline r difference."""
    diff, tests, blocks = {}, {g: {} for g in groups}, {}
    for g, ps in groups.items():
        for p in ps:
            a, b = result_a.participants[p], result_b.participants[p]
            if a.pred is None or b.pred is None:
                tests[g][p] = {"pvalue": None, "error": "no test predictions kept for the headline layer"}
                continue
            if a.y_test.shape != b.y_test.shape or not np.allclose(a.y_test, b.y_test):
                raise ValueError(f"participant '{p}': the two models were scored on different test responses "
                                 f"({a.y_test.shape} vs {b.y_test.shape}); compare them on the same study and split.")
            res, tests[g][p] = _block_test(a.y_test, a.pred, b.pred, run_lengths_of(result_a, a), opts)
            if res is not None:
                blocks[p] = res
            block = max(1, min(opts["block_trs"], len(a.y_test) // 2))  # a short test run gets shorter blocks
            lo, hi = S.paired_block_bootstrap_ci(a.y_test, a.pred, b.pred, block, opts["n_boot"], seed=opts["seed"])
            d = float(np.mean(correlation(a.y_test, b.pred) - correlation(a.y_test, a.pred)))
            diff[p] = {"mean_diff": d, "ci": [lo, hi], "block_trs": block}
    return diff, tests, blocks


def compare_pair(result_a: AlignmentResult, result_b: AlignmentResult, block_trs: int, n_boot: int, seed: int = 0,
                 heldout=(), n_perm: int = 1000, correction: str = "max", alpha: float = 0.05) -> PairComparison:
    """Two models' alignment results -> `PairComparison` of b − a (see the module docstring).

    ``heldout`` names the held-out participants (tested apart from the tuned ones); ``n_perm`` sign patterns are
    sampled when the blocks allow more (else all are enumerated); ``correction`` ("max" or "bh") chooses the
    per-target rejections counted as ``n_reject`` and returned by `PairComparison.reject` (both are reported).
    """
    if correction not in ("max", "bh"):
        raise ValueError(f"compare_pair: correction={correction!r} is not one of ('max', 'bh').")
    res_a, res_b = result_a.participants, result_b.participants
    participants = [p for p in res_a if p in res_b]
    if not participants:
        raise ValueError("compare_pair: the two results share no participant.")
    groups = participant_groups(participants, set(heldout))
    layers = [l for l in res_a[participants[0]].r if l in res_b[participants[0]].r]
    diff_layers, across = _layer_tests(res_a, res_b, layers, groups)
    opts = {"block_trs": block_trs, "n_boot": n_boot, "n_perm": n_perm, "seed": seed, "alpha": alpha,
            "correction": correction}
    head, block_summaries, blocks = _headline(result_a, result_b, groups, opts)
    means = {g: [head[p]["mean_diff"] for p in ps if p in head] for g, ps in groups.items()}
    layer = result_a.layer if result_a.layer == result_b.layer else [result_a.layer, result_b.layer]
    headline = {"layer": layer, "participants": head,
                "groups": {g: float(np.mean(v)) if v else None for g, v in means.items()},
                "mean_diff": float(np.mean([v["mean_diff"] for v in head.values()])) if head else None}
    tests = {"headline_layer": layer, "layer_selection": LAYER_SELECTION.format(layer=layer, n=len(layers)),
             "groups": groups, "block_sign_flip": block_summaries, "across_participants": across}
    return PairComparison({"layers": diff_layers, "headline": headline}, tests, blocks, correction)


def run_counts(requested: list[int], n_train: int) -> list[int]:
    """Requested training-run counts below ``n_train``, plus ``n_train`` itself (the full-data point)."""
    return sorted({n for n in requested if 1 <= n < n_train} | {n_train})


def participant_efficiency(study: Study, participant: str, feats: dict[str, np.ndarray], layer_pos: int,
                           test_runs: list[str], n_runs: list[int], params: dict, seed: int = 0):
    """Alignment (mean test r) of one participant and layer vs the number of training runs -> EfficiencyCurve.

    The encoding model uses Huth-lab bootstrap CV (it works with a single training run); the subsets are
    nested (each contains the smaller ones) and drawn with ``seed``, the same for every model.
    """
    shown = study.with_showings(test_runs)[len(test_runs):]  # another showing of a test stimulus never trains
    runs = [r for r in study.runs_of(participant) if r not in shown]
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
