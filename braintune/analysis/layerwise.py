"""Per-run layer features (L, n_trs, D) + a study's responses in, per-layer encoding results of one participant
out (r, test predictions, ceiling, target names), and their summaries per region: the alignment numbers that the
removal and similarity analyses compare before/after and across measures.

The encoding model is braintune's (``evaluation.encoding.RidgeEncoder`` on per-run z-scored features with FIR
delays, fitted on the training runs, scored on the test runs), as ``evaluate.py alignment`` fits it; these
functions keep every layer's test predictions, which the paired tests of a drop need.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from braintune.analysis import similarity as sim
from braintune.data.responses import prepare_responses
from braintune.data.study import Study
from braintune.evaluation import stats
from braintune.evaluation.alignment import stack_features, stack_responses, target_names
from braintune.evaluation.ceiling import noise_ceiling, normalized_r
from braintune.evaluation.encoding import RidgeEncoder
from braintune.evaluation.metrics import correlation
from braintune.evaluation.results import region_masks


@dataclass
class LayerFits:
    """One participant's encoding results at every layer (positions follow the features' layer axis)."""

    r: np.ndarray  # (L, V) Pearson r per target on the test runs
    pred: np.ndarray  # (L, T_test, V)
    y_test: np.ndarray  # (T_test, V)
    test_lengths: list[int]  # rows of each test run
    ceiling: np.ndarray | None  # (V,) repeat-based noise ceiling (test run repeated), else None
    names: np.ndarray | None  # (V,) label of each kept target (with a label table), else None


@dataclass
class ParticipantData:
    """A participant's z-scored responses, split by run, and what the summaries need of its targets."""

    y_train: np.ndarray  # (T_train, V)
    groups_train: np.ndarray  # (T_train,)
    y_test: np.ndarray  # (T_test, V)
    groups_test: np.ndarray  # (T_test,)
    train_runs: list[str]
    test_runs: list[str]
    ceiling: np.ndarray | None
    names: np.ndarray | None


def participant_data(study: Study, participant: str, test_runs: list[str], labels: str | None = None,
                     with_names: bool = False) -> ParticipantData:
    """Responses of the participant's training and test runs (targets kept as ``prepare_responses`` keeps them)."""
    runs = study.runs_of(participant)
    test = [r for r in test_runs if r in runs]
    train = [r for r in runs if r not in test_runs]
    if not test or len(train) < 2:
        raise ValueError(f"participant '{participant}' has test runs {test} and {len(train)} training runs; the "
                         f"encoding model needs a test run (data.test_runs) and at least 2 training runs")
    resp = prepare_responses(study, [participant], train + test)
    kept = resp.kept[participant]
    y, g = stack_responses(resp.data, participant, train)
    yt, gt = stack_responses(resp.data, participant, test)
    repeats = study.sources[(participant, test[0])].read_repeats()
    ceiling = noise_ceiling(repeats[:, :, kept]) if repeats is not None else None
    names = target_names(study, participant, labels) if with_names else None
    return ParticipantData(y, g, yt, gt, train, test, ceiling, names[kept] if names is not None else None)


def fit_layers(data: ParticipantData, feats: dict[str, np.ndarray], encoder_params: dict) -> LayerFits:
    """Ridge per layer on ``data``'s training runs, predictions of its test runs; feats: {run: (L, n_trs, D)}."""
    n_layers = len(next(iter(feats.values())))
    r, pred = [], []
    for pos in range(n_layers):
        X, Xt = stack_features(feats, pos, data.train_runs), stack_features(feats, pos, data.test_runs)
        p = RidgeEncoder(**encoder_params).fit(X, data.y_train, groups=data.groups_train).predict(Xt, groups=data.groups_test)
        pred.append(p)
        r.append(correlation(data.y_test, p))
    lengths = [int((data.groups_test == g).sum()) for g in np.unique(data.groups_test)]
    return LayerFits(np.stack(r), np.stack(pred), data.y_test, lengths, data.ceiling, data.names)


def target_masks(names: np.ndarray | None, n_targets: int, regions: list[str]) -> dict[str, np.ndarray]:
    """``{"all": every target}`` plus, with target names and ``regions``, each region and "other"."""
    masks = {"all": np.ones(n_targets, bool)}
    if names is not None and regions:
        masks.update(region_masks(names, list(regions)))
    return masks


def region_values(r: np.ndarray, ceiling: np.ndarray | None, masks: dict[str, np.ndarray],
                  min_ceiling: float) -> dict[str, float | None]:
    """Mean alignment per region: r / ceiling over targets with ceiling >= ``min_ceiling`` when a ceiling exists,
    else mean r. None where a region keeps no target."""
    values = normalized_r(r, ceiling, min_ceiling) if ceiling is not None else r
    out = {}
    for name, m in masks.items():
        v = values[m]
        out[name] = float(np.nanmean(v)) if m.any() and np.isfinite(v).any() else None
    return out


def paired_tests(a, b) -> dict:
    """Wilcoxon signed-rank and paired t-test of ``a - b`` across participants (``evaluation.stats``), with any
    power warning kept, or the reason a test could not run."""
    out = {}
    for name, fn in (("wilcoxon", stats.wilcoxon), ("paired_t", stats.paired_ttest)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = fn(a, b)
                out[name] = {"statistic": res.statistic, "pvalue": res.pvalue, "n": res.n, "mean_diff": res.mean_diff}
            except ValueError as err:
                out[name] = {"pvalue": None, "error": str(err)}
        if caught:
            out[name]["warning"] = " ".join(str(w.message) for w in caught)
    return out


SIMILARITY_MEASURES = {"ridge": "brain_score", "ridge_pca": "brain_score", "cka": "linear_cka", "rbf_cka": "rbf_cka",
                       "rsa": "rsa", "procrustes": "procrustes", "gw": "gw"}  # similarity.measures -> permutation_test's


@dataclass(frozen=True)
class SimilaritySettings:
    """How `layer_similarity` compares one layer with the responses (the ``similarity.*`` section, flattened)."""

    encoder_params: dict  # RidgeEncoder keywords (delays, alphas, cv): ridge and ridge_pca
    delays: tuple[int, ...] = (1, 2, 3, 4)  # FIR delays of the non-ridge measures (`similarity.delay_features`)
    pca_components: int = 50
    pca_components_y: int | None = None
    n_perm: int = 199
    block_trs: int = 20
    seed: int = 0
    options: dict | None = None  # measure -> keyword options of permutation_test (sigma_frac, rdm_method, ...)


def layer_similarity(measure: str, x: tuple[np.ndarray, np.ndarray], data: ParticipantData,
                     masks: dict[str, np.ndarray], s: SimilaritySettings) -> dict:
    """One measure between one layer and a participant's test responses, per region, with its block-permutation null.

    ``x``: (X_train (T_train, D), X_test (T_test, D)) z-scored per run. ridge / ridge_pca fit on the training runs
    and compare predictions with responses (mean r); the other measures compare FIR-delayed test features with the
    test responses TR by TR. Returns {region: `similarity.NullResult`}.
    """
    X, Xt = x
    name = SIMILARITY_MEASURES[measure]
    opts = (s.options or {}).get(measure, {})
    if measure == "ridge":
        pred = RidgeEncoder(**s.encoder_params).fit(X, data.y_train, groups=data.groups_train).predict(
            Xt, groups=data.groups_test)
    elif measure == "ridge_pca" and s.pca_components_y is None:
        pred = sim.ridge_pca(X, data.y_train, Xt, data.y_test, min(s.pca_components, *X.shape), None, data.groups_train,
                             data.groups_test, s.encoder_params).prediction
    out = {}
    for region, m in masks.items():
        y = data.y_test[:, m]
        if measure == "ridge_pca" and s.pca_components_y is not None:  # the responses' PCA is the region's own
            res = sim.ridge_pca(X, data.y_train[:, m], Xt, y, min(s.pca_components, *X.shape),
                                min(s.pca_components_y, int(m.sum())), data.groups_train, data.groups_test, s.encoder_params)
            a, b = res.prediction, res.target
        elif measure in ("ridge", "ridge_pca"):
            a, b = pred[:, m], y
        else:
            a, b = sim.delay_features(Xt, y, s.delays, data.groups_test)
        out[region] = sim.permutation_test(name, a, b, s.block_trs, s.n_perm, s.seed, per_target=measure == "gw", **opts)
    return out
