"""Per-run layer features + a study's responses -> brain alignment: ridge encoding model per participant
and layer, fitted on the training runs and scored (Pearson r per target) on the test runs.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.formats import layout_labels
from ..data.responses import prepare_responses, zscore
from ..data.study import Study
from ..data.targets import read_labels
from ..errors import ConfigError, DataError
from .ceiling import noise_ceiling
from .encoding import RidgeEncoder
from .features import Extraction, study_features
from .metrics import correlation
from .results import AlignmentResult, ParticipantAlignment
from .rows import skip_start_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignmentSettings:
    """How alignment is measured: which layers, how features are extracted, the encoding model, the summary."""

    layers: tuple[int, ...] | None = None  # hidden states measured (None: all); the headline layer is always added
    extraction: Extraction = field(default_factory=Extraction)
    delays: tuple[int, ...] = (1, 2, 3, 4)  # FIR delays in TRs
    alphas: tuple[float, ...] | None = None  # None: RidgeEncoder's default grid
    cv: str = "leave_runs_out"
    regions: tuple[str, ...] = ()  # also summarise targets whose label contains each
    labels: str | None = None  # label table; None: the layout's own
    min_ceiling: float = 0.05
    encoder: dict = field(default_factory=dict)  # more RidgeEncoder keywords (scoring, nboots, ...: recipe.py)
    test_skip_trs: int = 0  # rows cut from the start of each test run before anything reads them (rows.py)

    def encoder_params(self) -> dict:
        params = {"delays": tuple(self.delays), "cv": self.cv, **self.encoder}
        if self.alphas is not None:
            params["alphas"] = np.asarray(self.alphas, dtype=float)
        return params

    def record(self) -> dict:
        """What summary.json records of these settings."""
        out = asdict(self)
        out["extraction"] = self.extraction.settings()
        return out


def stack_features(feats: dict[str, np.ndarray], layer_pos: int, runs: list[str]) -> np.ndarray:
    """One layer's features of ``runs``, z-scored per run and stacked in time: (sum of n_trs, D)."""
    return np.concatenate([zscore(feats[r][layer_pos]) for r in runs])


def stack_responses(responses: dict, participant: str, runs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(sum of n_trs, n_targets) responses of ``runs`` and the run index of every row."""
    Y = np.concatenate([responses[(participant, r)] for r in runs])
    groups = np.concatenate([np.full(len(responses[(participant, r)]), i) for i, r in enumerate(runs)])
    return Y, groups


def participant_alignment(study: Study, participant: str, feats: dict[str, np.ndarray], layers: list[int],
                          test_runs: list[str], encoder_params: dict, keep_layer: int | None = None) -> ParticipantAlignment:
    """Fit on every non-test run of ``participant``; r per target on its test runs, for each layer.

    With ``keep_layer``, the result also holds that layer's test responses and predictions (for CIs and tests).
    """
    runs = study.runs_of(participant)
    test = [r for r in test_runs if r in runs]
    shown = [r for r in study.with_showings(test_runs)[len(test_runs):] if r in runs]  # another showing of a test stimulus
    train = [r for r in runs if r not in test_runs and r not in shown]
    if shown:
        log.warning("%s: runs %s show a test run's stimulus; left out of the encoding model's training", participant, shown)
    if not test:
        raise DataError(f"participant '{participant}' has none of the test runs {test_runs}; set data.test_runs")
    if len(train) < 2:
        raise DataError(f"participant '{participant}' has {len(train)} training run(s); the encoding model needs at least 2")
    resp = prepare_responses(study, [participant], train + test)
    kept = resp.kept[participant]
    out = ParticipantAlignment({}, int(resp.n_targets[participant]), train, test, resp.excluded[participant], kept)
    Y, g = stack_responses(resp.data, participant, train)  # the same for every layer
    Yt, gt = stack_responses(resp.data, participant, test)
    for pos, layer in enumerate(layers):
        X, Xt = stack_features(feats, pos, train), stack_features(feats, pos, test)
        pred = RidgeEncoder(**encoder_params).fit(X, Y, groups=g).predict(Xt, groups=gt)
        out.r[layer] = correlation(Yt, pred)
        if layer == keep_layer:
            out.y_test, out.pred = Yt, pred
    repeats = study.sources[(participant, test[0])].read_repeats()
    out.ceiling = noise_ceiling(repeats[:, :, kept]) if repeats is not None else None
    return out


def study_columns(study: Study, participant: str) -> np.ndarray:
    """Indices of the participant's study targets among the file's targets (a region selection keeps a subset)."""
    source = study.sources[(participant, study.runs_of(participant)[0])]
    n = source.shape()[1]
    while not hasattr(source, "columns") and hasattr(source, "inner"):  # cache / row-cut wrappers
        source = source.inner
    return np.asarray(getattr(source, "columns", range(n)))


def target_names(study: Study, participant: str, labels: str | None) -> np.ndarray | None:
    """Label name of each of the participant's study targets (file column c has label id c + 1), or None without labels."""
    path = Path(labels) if labels else layout_labels(study, participant)
    if path is None:
        return None
    table = read_labels(path)
    return np.array([table.get(int(c) + 1, "") for c in study_columns(study, participant)], dtype=object)


def measured_layers(settings: AlignmentSettings, n_layers: int, headline_layer: int) -> list[int]:
    """``settings.layers`` (or every hidden state), with the headline layer added when missing; layers the backbone
    does not have are refused (a ``ConfigError`` naming them) before any feature is extracted."""
    layers = list(settings.layers) if settings.layers is not None else list(range(n_layers))
    deep = [l for l in layers if not -n_layers <= l < n_layers]
    if deep:
        raise ConfigError(f"alignment.layers {layers} (set, or the alignment.recipe's default) name hidden states {deep}, "
                          f"but the backbone has {n_layers} (0 = embeddings); set alignment.layers to indices below "
                          f"{n_layers}")
    return layers if headline_layer in layers else layers + [headline_layer]


def measure_alignment(backbone, headline_layer: int, study: Study, participants: list[str], test_runs: list[str],
                      settings: AlignmentSettings, device="cpu", cache=None) -> AlignmentResult:
    """Features of every run the participants heard (``cache``: a ``FeatureCache``), then ``participant_alignment``
    for each participant -> an ``AlignmentResult`` holding the headline layer's test predictions and the features."""
    layers = measured_layers(settings, backbone.num_layers, headline_layer)
    study = skip_start_rows(study, test_runs, settings.test_skip_trs)
    runs = {r: study.runs[r] for p in participants for r in study.runs_of(p)}
    feats = study_features(backbone, runs, layers, settings.extraction, device, cache)
    params = settings.encoder_params()
    results = {p: participant_alignment(study, p, feats, layers, test_runs, params, headline_layer) for p in participants}
    if settings.regions:
        for p, res in results.items():
            res.names = target_names(study, p, settings.labels)
    tr = next(iter(runs.values())).timing.tr
    record = {**settings.record(), "lookahead": settings.extraction.record(backbone, tr)}
    return AlignmentResult(headline_layer, results, record, tuple(settings.regions), settings.min_ceiling, feats, layers)
