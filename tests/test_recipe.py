"""alignment.recipe=reference (issue 10 §5): the multi-participant paper's evaluation settings, as its code has them
(docs/reference_recipe.md), reach the encoder and the scored rows: on a tiny planted study, the recipe's r per
target equals a direct Huth-bootstrap RidgeEncoder fit selecting α on R² over the same rows (and differs from
selecting on r), the test run is scored from row 40 on, and the command records the recipe.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from braintune.config import load_config
from braintune.data.responses import noise_ceiling, zscore
from braintune.data.study import H5Response, Run, Study
from braintune.data.timing import RunTiming
from braintune.errors import ConfigError, DataError
from braintune.evaluation import recipe
from braintune.evaluation.alignment import participant_alignment
from braintune.evaluation.encoding import RidgeEncoder
from braintune.evaluation.metrics import correlation
from braintune.evaluation.rows import skip_start_rows

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"story01": 160, "story02": 140, "story03": 150}
TEST, TEST_ROWS, N_REPEATS, D, V = "wheretheressmoke", 110, 4, 12, 30


def test_settings_are_the_reference_codes():
    s = recipe.reference_settings()
    assert s.layers == (2, 5, 7, 8, 10, 12) and s.delays == (1, 2, 3, 4) and s.cv == "bootstrap"
    np.testing.assert_allclose(s.alphas, np.logspace(1, 4, 15))
    assert s.extraction.mode == "sliding" and s.extraction.sliding_context_s == pytest.approx(16.1)
    assert s.extraction.sliding_stride_s == 0.1 and s.min_ceiling == 0.05 and s.test_skip_trs == 40
    params = s.encoder_params()
    assert {k: params[k] for k in ("scoring", "alpha_convention", "nboots", "chunklen", "nchunks")} == {
        "scoring": "r2_huth", "alpha_convention": "huth", "nboots": 3, "chunklen": 20, "nchunks": None}
    record = s.record()
    assert record["encoder"]["scoring"] == "r2_huth" and record["test_skip_trs"] == 40
    with pytest.raises(ConfigError, match="data.trim_trs=5 drops rows"):
        recipe.reference_settings(trim_trs=5)


def test_config_selects_the_recipe_and_the_default_stays_braintunes():
    from braintune.commands.common import alignment_settings

    ours = alignment_settings(load_config(ROOT / "configs" / "demo.yaml", []))
    assert ours.cv == "leave_runs_out" and ours.extraction.mode != "sliding" and ours.encoder == {}
    assert ours.test_skip_trs == 0
    ref = alignment_settings(load_config(ROOT / "configs" / "demo.yaml", ["alignment.recipe=reference",
                                                                          "alignment.layers=[1,3]"]))
    assert ref == recipe.reference_settings(layers=(1, 3))
    with pytest.raises(ConfigError, match="set data.trim_trs=0"):
        alignment_settings(load_config(ROOT / "configs" / "demo.yaml", ["alignment.recipe=reference", "data.trim_trs=2"]))


def _write(path: Path, data: np.ndarray, repeats: np.ndarray | None = None) -> H5Response:
    with h5py.File(path, "w") as f:
        f["data"] = data
        if repeats is not None:
            f["individual_repeats"] = repeats
    return H5Response(path, repeats_key=None if repeats is None else "individual_repeats")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """One participant, 3 training runs and a repeated test run: y = delayed(X) @ W + noise whose size varies over
    targets (so the best α varies too), features X smooth in time."""
    tmp = tmp_path_factory.mktemp("recipe")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4 * D, V)) * np.linspace(0.02, 0.2, V)
    feats, runs, sources, repeats = {}, {}, {}, None
    for name, n in {**TRAIN, TEST: TEST_ROWS}.items():
        x = np.cumsum(rng.standard_normal((n, D)), 0) * 0.3 + rng.standard_normal((n, D))
        lagged = np.concatenate([np.vstack([np.zeros((d, D)), x[:-d]]) for d in (1, 2, 3, 4)], 1)
        signal = lagged @ w
        feats[name] = x[None].astype(np.float32)  # (1 layer, n, D)
        runs[name] = Run(name, tmp / f"{name}.wav", RunTiming(2.0, n, 11.0))
        if name == TEST:
            repeats = signal + 3.0 * rng.standard_normal((N_REPEATS, n, V))
            sources[("UTS01", name)] = _write(tmp / f"{name}.hf5", repeats.mean(0), repeats)
        else:
            sources[("UTS01", name)] = _write(tmp / f"{name}.hf5", signal + 3.0 * rng.standard_normal((n, V)))
    return Study("synthetic", tmp, runs, sources), feats, repeats


def test_scoring_starts_at_row_40_of_the_test_run_everywhere(planted):
    study, _, repeats = planted
    cut = skip_start_rows(study, [TEST], 40)
    t, t0 = cut.runs[TEST].timing, study.runs[TEST].timing
    assert (t.n_trs, t.first_tr_s) == (TEST_ROWS - 40, 11.0 + 80.0) and study.runs[TEST].timing == t0
    src = cut.sources[("UTS01", TEST)]
    np.testing.assert_array_equal(src.read(), study.sources[("UTS01", TEST)].read()[40:])
    np.testing.assert_allclose(src.read_repeats(), repeats[:, 40:], rtol=1e-6)
    assert cut.sources[("UTS01", "story01")] is study.sources[("UTS01", "story01")]
    assert skip_start_rows(study, [TEST], 0) is study
    with pytest.raises(DataError, match="leaves fewer than 2 rows in test run"):
        skip_start_rows(study, [TEST], TEST_ROWS - 1)


def test_recipe_settings_reach_the_encoder(planted):
    """Oracle: RidgeEncoder(cv="bootstrap", scoring="r2_huth", ...) fitted directly on the same z-scored rows."""
    study, feats, repeats = planted
    settings = recipe.reference_settings(layers=(0,))
    cut = skip_start_rows(study, [TEST], settings.test_skip_trs)
    cut_feats = {**feats, TEST: feats[TEST][:, 40:]}  # sliding features at the remaining TR times
    res = participant_alignment(cut, "UTS01", cut_feats, [0], [TEST], settings.encoder_params(), keep_layer=0)

    X = np.concatenate([zscore(feats[r][0]) for r in TRAIN])
    Y = np.concatenate([zscore(study.sources[("UTS01", r)].read()) for r in TRAIN])
    groups = np.repeat(np.arange(len(TRAIN)), list(TRAIN.values()))
    Xt, Yt = zscore(feats[TEST][0][40:]), zscore(study.sources[("UTS01", TEST)].read()[40:])

    def direct(scoring):
        enc = RidgeEncoder(alphas=np.logspace(1, 4, 15), delays=(1, 2, 3, 4), cv="bootstrap", scoring=scoring,
                           nboots=3, chunklen=20, dtype="float64").fit(X, Y, groups=groups)
        return enc, correlation(Yt, enc.predict(Xt))

    enc, r = direct("r2_huth")
    assert enc.n_splits_ == 3 and int(0.25 * len(X) / 20) == 5  # 3 draws of 5 chunks of 20 TRs held out
    np.testing.assert_allclose(res.r[0], r, atol=1e-6)
    np.testing.assert_allclose(res.y_test, Yt, atol=1e-6)
    np.testing.assert_allclose(res.ceiling, noise_ceiling(repeats[:, 40:]), atol=1e-5)
    # selecting α on r (use_corr=True) picks other α here, so the r2_huth setting is what made r equal
    enc_r, r_corr = direct("r")
    assert (enc_r.alphas_ != enc.alphas_).sum() >= 5
    assert np.abs(res.r[0] - r_corr).max() > 1e-3


def test_command_scores_the_cut_test_run_and_records_the_recipe(tmp_path, monkeypatch):
    """evaluate.py alignment with alignment.recipe=reference on the synthetic LeBel-layout study; the sliding
    extractor is replaced by a cheap one that records the runs it was given (the backbone is not the point here)."""
    from braintune.commands.alignment import alignment
    from braintune.evaluation import features

    seen = {}

    def fake_sliding(backbone, run, layers, ex, device="cpu"):
        seen[run.name] = (run.timing, ex)
        t = run.timing.times()
        return np.stack([np.stack([np.sin(t / (k + 2)) for k in range(6)], 1)] * len(layers)).astype(np.float32)

    monkeypatch.setitem(features.EXTRACTORS, "sliding", fake_sliding)
    base = [f"data.root={tmp_path / 'data'}", "alignment.recipe=reference", "alignment.cache_dir=null",
            "alignment.after_training=false", "trainer.accelerator=cpu", f"out_dir={tmp_path / 'out'}"]
    with pytest.raises(ConfigError, match=r"name hidden states \[5, 7, 8, 10, 12\]"):
        alignment(load_config(ROOT / "configs" / "demo.yaml", base))  # the demo backbone has 4 hidden states
    summary = alignment(load_config(ROOT / "configs" / "demo.yaml", base + ["alignment.layers=[1,3]"]))
    assert summary["recipe"] == "reference"
    settings = summary["settings"]
    assert settings["encoder"]["scoring"] == "r2_huth" and settings["test_skip_trs"] == 40
    assert settings["extraction"]["mode"] == "sliding" and settings["cv"] == "bootstrap"
    from braintune.commands.common import open_splits

    study, splits = open_splits(load_config(ROOT / "configs" / "demo.yaml", base))
    for run in splits.test_runs:
        full = study.runs[run].timing
        timing, ex = seen[run]
        assert (timing.n_trs, timing.first_tr_s) == (full.n_trs - 40, full.first_tr_s + 40 * full.tr)
        assert ex.sliding_context_s == pytest.approx(16.1)
    for p in summary["participants"].values():
        assert p["n_targets"] > 0 and "mean_ceiling" in p
