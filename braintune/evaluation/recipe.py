"""A few reporting choices in, the multi-participant paper's evaluation as ``AlignmentSettings`` out.

``alignment.recipe=reference`` runs what Moussa & Toneva 2025 ran to measure brain alignment
(bridge-ai-neuro/multi-brain-tuning @ 3c368d2, ``src/wav2vec_evaluate.py``, ``src/utils/brn_eval_utils.py``,
``src/utils/brn_align_utils.py``, ``src/ridge_utils/ridge.py``). Each constant names the line it comes from;
docs/reference_recipe.md sets them against the code one by one, with every place braintune's default differs.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .alignment import AlignmentSettings
from .features import Extraction

REFERENCE_CODE = "bridge-ai-neuro/multi-brain-tuning@3c368d2"
# config.LAYERS_TO_SAVE: hidden-state indices (0 = the CNN's projected output, 12 = the last layer)
LAYERS = (2, 5, 7, 8, 10, 12)
# wav2vec_evaluate.get_wav_features(chunksz=100, contextsz=16000) -> extract_speech_features: every snippet is
# [end - (contextsz + chunksz), end] = 16.1 s, ending every 0.1 s; the last frame of each layer is the feature
SNIPPET_S = 16.0 + 0.1
STRIDE_S = 0.1
# brn_eval_utils: ndelays = 4; delays = range(1, ndelays + 1)
DELAYS = (1, 2, 3, 4)
# wav2vec_evaluate.predict_encoding: alphas = np.logspace(1, 4, 15), in Huth units (ridge.py penalises alpha**2)
ALPHAS = tuple(float(a) for a in np.logspace(1, 4, 15))
# predict_encoding: nboots = 3; chunklen = 20; nchunks = int(len(Rresp) * 0.25 / chunklen);
# bootstrap_ridge(..., use_corr=False, single_alpha=False): one alpha per voxel, chosen on sign(R²)·sqrt|R²|
RIDGE = {"scoring": "r2_huth", "alpha_convention": "huth", "nboots": 3, "chunklen": 20, "nchunks": None,
         "dtype": "float64"}
# predict_encoding: Presp = fmri_tensors[story][40:] (and the features [trim_start=50 : -5] of the simulated TRs)
TEST_SKIP_TRS = 40
# brn_align_utils.get_vol_base_(cc_thr=0.05) -> get_fil_acc: voxels with cc_max <= 0.05 are NaN
MIN_CEILING = 0.05


def reference_settings(layers: tuple[int, ...] | None = None, regions: tuple[str, ...] = (), labels: str | None = None,
                       batch: int = 32, trim_trs: int = 0) -> AlignmentSettings:
    """The reference recipe's ``AlignmentSettings``: causal 16.1 s sliding features every 0.1 s Lanczos-resampled to
    the TR times, FIR delays 1-4, Huth bootstrap ridge (3 draws of 25 % of the training TRs in 20-TR chunks, one α
    per target from logspace(1, 4, 15) chosen on R²), test rows from row 40, ceiling threshold 0.05.

    Parameters
    ----------
    layers : tuple of int, optional
        Hidden states to measure; None: the reference's `LAYERS` (a 12-layer base model).
    regions, labels, batch
        Reporting and speed only (``alignment.regions``, ``data.labels``, ``alignment.sliding_batch``).
    trim_trs : int
        The study's ``data.trim_trs``: the reference fits on every hf5 row of the training stories, so it must be 0.
    """
    if trim_trs:
        raise ConfigError(f"alignment.recipe=reference fits on every row of the training runs and scores the test "
                          f"run from row {TEST_SKIP_TRS} (wav2vec_evaluate.predict_encoding), but data.trim_trs="
                          f"{trim_trs} drops rows at both ends; set data.trim_trs=0")
    extraction = Extraction(mode="sliding", sliding_context_s=SNIPPET_S, sliding_stride_s=STRIDE_S, batch=batch)
    return AlignmentSettings(layers=LAYERS if layers is None else tuple(layers), extraction=extraction, delays=DELAYS,
                             alphas=ALPHAS, cv="bootstrap", regions=tuple(regions), labels=labels,
                             min_ceiling=MIN_CEILING, encoder=dict(RIDGE), test_skip_trs=TEST_SKIP_TRS)
