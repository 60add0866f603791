"""Per-run layer features + a study's responses -> brain alignment: ridge encoding model per participant
and layer, fitted on the training runs and scored (Pearson r per target) on the test runs.
"""
from __future__ import annotations

import logging

import numpy as np

from ..data.responses import prepare_responses, zscore
from ..data.study import DataError, Study
from .ceiling import noise_ceiling, normalized_r
from .encoding import RidgeEncoder
from .metrics import correlation

log = logging.getLogger(__name__)


def stack_features(feats: dict[str, np.ndarray], layer_pos: int, runs: list[str]) -> np.ndarray:
    """One layer's features of ``runs``, z-scored per run and stacked in time: (sum of n_trs, D)."""
    return np.concatenate([zscore(feats[r][layer_pos]) for r in runs])


def stack_responses(responses: dict, participant: str, runs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(sum of n_trs, n_targets) responses of ``runs`` and the run index of every row."""
    Y = np.concatenate([responses[(participant, r)] for r in runs])
    groups = np.concatenate([np.full(len(responses[(participant, r)]), i) for i, r in enumerate(runs)])
    return Y, groups


def participant_alignment(study: Study, participant: str, feats: dict[str, np.ndarray], layers: list[int],
                          test_runs: list[str], encoder_params: dict, keep_layer: int | None = None) -> dict:
    """Fit on every non-test run of ``participant``; r per target on its test runs, for each layer.

    Returns {"r": {layer: (n_targets,)}, "n_targets", "train_runs", "test_runs", "ceiling": (n_targets,) | None};
    with ``keep_layer``, also "y_test" (n_test_trs, n_targets) and "pred" (same shape) of that layer (for
    bootstrap CIs over blocks of TRs).
    """
    runs = study.runs_of(participant)
    test = [r for r in test_runs if r in runs]
    train = [r for r in runs if r not in test_runs]
    if not test:
        raise DataError(f"participant '{participant}' has none of the test runs {test_runs}; set data.test_runs")
    if len(train) < 2:
        raise DataError(f"participant '{participant}' has {len(train)} training run(s); the encoding model needs at least 2")
    resp = prepare_responses(study, [participant], train + test)
    out = {"r": {}, "n_targets": int(resp.n_targets[participant]), "train_runs": train, "test_runs": test,
           "excluded": resp.excluded[participant], "kept": resp.kept[participant]}
    Y, g = stack_responses(resp.data, participant, train)  # the same for every layer
    Yt, gt = stack_responses(resp.data, participant, test)
    for pos, layer in enumerate(layers):
        X, Xt = stack_features(feats, pos, train), stack_features(feats, pos, test)
        enc = RidgeEncoder(**encoder_params).fit(X, Y, groups=g)
        pred = enc.predict(Xt, groups=gt)
        out["r"][layer] = correlation(Yt, pred)
        if layer == keep_layer:
            out["y_test"], out["pred"] = Yt, pred
    repeats = study.sources[(participant, test[0])].read_repeats()
    out["ceiling"] = noise_ceiling(repeats[:, :, resp.kept[participant]]) if repeats is not None else None
    return out


def study_columns(study: Study, participant: str) -> np.ndarray:
    """Indices of the participant's study targets among the file's targets (a region selection keeps a subset)."""
    source = study.sources[(participant, study.runs_of(participant)[0])]
    n = source.shape()[1]
    while not hasattr(source, "columns") and hasattr(source, "inner"):  # cache / row-cut wrappers
        source = source.inner
    return np.asarray(getattr(source, "columns", range(n)))


def region_masks(names: np.ndarray, regions: list[str]) -> dict[str, np.ndarray]:
    """(n_targets,) label names -> {region: targets whose name contains it (case-insensitive), "other": the rest}."""
    low = np.char.lower(names.astype(str))
    masks = {r: np.char.find(low, r.lower()) >= 0 for r in regions}
    masks["other"] = ~np.any(list(masks.values()), axis=0) if masks else np.ones(len(names), bool)
    return masks


def target_names(study: Study, participant: str, labels: str | None) -> np.ndarray | None:
    """Label name of each of the participant's study targets (file column c has label id c + 1), or None without labels."""
    from pathlib import Path

    from ..data.formats import layout_labels
    from ..data.targets import read_labels

    path = Path(labels) if labels else layout_labels(study, participant)
    if path is None:
        return None
    columns = study_columns(study, participant)  # a region selection keeps a subset of the file's columns
    table = read_labels(path)
    return np.array([table.get(int(c) + 1, "") for c in columns], dtype=object)


def summarize(results: dict[str, dict], headline_layer: int, names: dict[str, np.ndarray] | None = None,
              regions: list[str] = (), min_ceiling: float = 0.05) -> dict:
    """Per-participant results -> the JSON summary: mean r at the headline layer, per participant, per layer, and
    with label ``names`` (per participant, over the study's targets) and ``regions``, per region inside / "other".
    Where the test run has repeats: ``mean_r_normalized`` = mean of r / ceiling over the targets whose ceiling is
    >= ``min_ceiling`` (``n_targets_normalized`` of them), per participant, per layer and overall."""
    participants = {}
    for p, res in results.items():
        entry = {"mean_r": float(np.mean(res["r"][headline_layer])), "n_targets": res["n_targets"],
                 "layers": {str(l): float(np.mean(r)) for l, r in res["r"].items()}, "excluded_targets": res["excluded"]}
        if regions and names and names.get(p) is not None:
            r = res["r"][headline_layer]
            masks = region_masks(names[p][res["kept"]], list(regions))
            entry["regions"] = {k: float(r[m].mean()) if m.any() else None for k, m in masks.items()}
        if res["ceiling"] is not None:
            entry["mean_ceiling"] = float(np.nanmean(res["ceiling"]))
            entry.update(_normalized(res, headline_layer, min_ceiling))
        participants[p] = entry
    layers = sorted(next(iter(results.values()))["r"]) if results else []
    per_region = [e["regions"] for e in participants.values() if "regions" in e]
    region_means = {k: float(np.mean([d[k] for d in per_region if d[k] is not None] or [np.nan])) for k in (per_region[0] if per_region else {})}
    normalized = [e["mean_r_normalized"] for e in participants.values() if e.get("mean_r_normalized") is not None]
    return {
        **({"regions": region_means} if region_means else {}),
        **({"mean_r_normalized": float(np.mean(normalized)), "min_ceiling": min_ceiling} if normalized else {}),
        "mean_r": float(np.mean([e["mean_r"] for e in participants.values()])) if participants else float("nan"),
        "layer": headline_layer,
        "participants": participants,
        "layers": {str(l): float(np.mean([results[p]["r"][l].mean() for p in results])) for l in layers},
    }


def _normalized(res: dict, headline_layer: int, min_ceiling: float) -> dict:
    """mean r / ceiling over the targets with ceiling >= min_ceiling (None when no target qualifies)."""
    def mean(r):
        nr = normalized_r(r, res["ceiling"], min_ceiling)
        return float(np.nanmean(nr)) if np.isfinite(nr).any() else None

    kept = np.isfinite(normalized_r(res["r"][headline_layer], res["ceiling"], min_ceiling))
    return {"mean_r_normalized": mean(res["r"][headline_layer]), "n_targets_normalized": int(kept.sum()),
            "layers_normalized": {str(l): mean(r) for l, r in res["r"].items()}}


def arrays_for_npz(results: dict[str, dict]) -> dict[str, np.ndarray]:
    """Per-target arrays, keyed ``{participant}/layer{l}`` (and ``{participant}/ceiling``), for ``np.savez``."""
    arrays = {}
    for p, res in results.items():
        for l, r in res["r"].items():
            arrays[f"{p}/layer{l}"] = r
        if res["ceiling"] is not None:
            arrays[f"{p}/ceiling"] = res["ceiling"]
    return arrays


def layer_list(cfg, backbone, headline_layer: int) -> list[int]:
    """``alignment.layers`` (or every hidden state), with the headline layer added when missing."""
    a = cfg.alignment
    layers = list(a.layers) if a.layers is not None else list(range(backbone.num_layers))
    return layers if headline_layer in layers else layers + [headline_layer]


def encoder_params(cfg) -> dict:
    a = cfg.alignment
    params = {"delays": tuple(a.delays), "cv": a.cv}
    if a.alphas is not None:
        params["alphas"] = np.asarray(a.alphas, dtype=float)
    return params


def alignment_features(backbone, study: Study, participants: list[str], layers: list[int], cfg, device="cpu",
                       cache=None) -> dict[str, np.ndarray]:
    """{run: (L, n_trs, D)} of every run the participants heard, by ``alignment.extraction`` (cached when given)."""
    from .features import study_features

    a, d = cfg.alignment, cfg.data
    runs = {r: study.runs[r] for p in participants for r in study.runs_of(p)}
    stimulus = dict(video_fps=d.video_fps, frame_size=d.frame_size, context_words=d.context_words)
    sliding = (dict(context_s=a.sliding_context_s, stride_s=a.sliding_stride_s, batch=a.sliding_batch)
               if a.extraction == "sliding" else None)
    return study_features(backbone, runs, layers, a.window_s, a.chunk_s, d.context_s, d.sample_rate, device,
                          stimulus=stimulus, sliding=sliding, cache=cache)


def measure_alignment(backbone, study: Study, participants: list[str], test_runs: list[str], cfg, headline_layer: int,
                      device="cpu", cache=None, details: dict | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Features of every run the participants heard, then ``participant_alignment`` for each -> (summary, arrays).

    ``cache``: a ``cache.FeatureCache`` for the features. ``details``, when given, receives "results"
    (per participant, with the headline layer's test predictions), "features", "layers" and "names".
    """
    a, d = cfg.alignment, cfg.data
    layers = layer_list(cfg, backbone, headline_layer)
    feats = alignment_features(backbone, study, participants, layers, cfg, device, cache)
    keep = headline_layer if details is not None else None
    results = {p: participant_alignment(study, p, feats, layers, test_runs, encoder_params(cfg), keep) for p in participants}
    names = {p: target_names(study, p, d.labels) for p in participants} if a.regions else None
    if details is not None:
        details.update(results=results, features=feats, layers=layers, names=names)
    return summarize(results, headline_layer, names, list(a.regions), a.min_ceiling), arrays_for_npz(results)
