"""``evaluate.py attribute`` end to end on tiny synthetic stories (LeBel layout, TextGrids) with a tiny GPT-2, and the
parts of the pipeline the library tests (test_attribution*.py) do not cover: words on the TR clock, layer thirds and
their choice on training runs only, the head of an attributed run, the LM head of every kind of model entry, the
sharded (multi-process) attribution and the command's errors."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from braintune.analysis import attribution as A
from braintune.analysis.attribution_context import story_from_words
from braintune.analysis.attribution_encoding import brain_objective, choose_layers, fit_layer, layer_groups, select_targets
from braintune.analysis.lm_head import language_model
from braintune.backbones.text import build_text, word_tokenizer
from braintune.commands.evaluate import main
from braintune.config import load_config
from braintune.data.modalities import load_words
from braintune.data.responses import zscore
from braintune.data.timing import RunTiming
from braintune.data.words import Word

ROOT = Path(__file__).resolve().parents[1]
TINY_GPT2 = "{model_type: gpt2, n_embd: 16, n_layer: 3, n_head: 2, n_positions: 64, activation_function: gelu_pytorch_tanh}"


def overrides(root, out, *extra) -> list[str]:
    """The shipped demo config, smaller: 3 training stories + the test story of 60 s (20 TRs each), 2 participants
    of 8 targets, a 3-block GPT-2."""
    return ["-c", "configs/demo_attribution.yaml", f"data.root={root}", "data.synthetic.participants=2",
            "data.synthetic.stories=3", "data.synthetic.story_seconds=60", "data.synthetic.targets=[8,8]",
            f"backbone.config={TINY_GPT2}", "alignment.alphas=[1.0,100.0]", "attribution.max_trs=8",
            "attribution.batch_size=8", f"out_dir={out}", *extra]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One attribution run of the command (shared by the checks below)."""
    root = tmp_path_factory.mktemp("attribute")
    out = root / "out"
    records, logger = [], logging.getLogger("braintune")
    handler, level = logging.Handler(), logger.level
    handler.emit = records.append
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        assert main(["attribute", *overrides(root / "data", out)]) == 0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return {"root": root, "out": out, "summary": json.loads((out / "summary.json").read_text()),
            "log": " ".join(r.getMessage() for r in records)}


def test_command_writes_every_metric_per_layer_third(run):
    s, out = run["summary"], run["out"]
    assert list(s["groups"]) == ["early", "middle", "late"]
    assert s["encoding"]["groups"] == {"early": [1], "middle": [2], "late": [3]}  # 3 blocks: one per third
    assert s["encoding"]["chosen"] == {"early": 1, "middle": 2, "late": 3} and s["processes"] == 1
    assert s["runs"] == ["wheretheressmoke"] and s["participants"] == ["UTS01", "UTS02"]
    assert s["encoding"]["train_runs"]["UTS01"] == ["story01", "story02", "story03"]  # never the attributed run
    assert s["n_trs"] == {"wheretheressmoke": 8} and s["lm"]["class"] == "GPT2LMHeadModel"
    assert s["context"]["requested_words"] == 640 and s["context"]["model_positions"] == 64
    assert 0 < s["context"]["words_max"] <= 63 and "capped at the model's 64 positions" in run["log"]
    assert s["lookahead"]["lookahead_s"] == 0.0 and s["lookahead"]["words_end_s_before_tr"] == {"wheretheressmoke": 2.0}
    n_thr = len(s["groups"]["early"]["thresholds"])
    for name, g in s["groups"].items():
        iou, base = np.array(g["iou"]["mean"]), np.array(g["iou"]["random"])
        assert len(iou) == n_thr == 15 and np.all((0 <= iou) & (iou <= 1)) and np.all((0 < base) & (base <= 1))
        assert np.all(np.diff(g["set_size"]["ba"]) >= 0) and np.all(np.diff(g["set_size"]["nwp"]) >= 0)
        assert set(g["spread_auc"]) == {"ba", "nwp", "ba_vs_nwp"} and 0 <= g["spread_auc"]["ba_vs_nwp"]["p_adjusted"] <= 1
        assert len(g["iou"]["vs_random"]["p_adjusted"]) == n_thr and g["n_rows"] == 16 and g["n_trs"] == 8
        assert set(g["positional"]["ba"]) == {"center_of_mass", "variance", "entropy", "entropy_normalized"}
        assert list(g["profile"]["ba"]) == ["10", "60", "80"] and len(g["profile"]["edges"]) >= 2
        assert g["masking"]["measure"] == "r" and sorted(g["masking"]["each"]) == [
            f"ba/{name}/{p}/wheretheressmoke" for p in ("UTS01", "UTS02")]
    assert s["nwp"]["masking"]["measure"] == "cross_entropy" and s["nwp"]["spread_auc"] > 0
    assert sorted(s["plots"]) == ["iou_vs_threshold.png", "positional_profiles.png", "spread_by_layer.png"]
    for name in s["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "provenance" in s and (out / "config.yaml").is_file()


def test_attributions_npz_holds_scores_per_tr_and_word(run):
    with np.load(run["out"] / "attributions.npz") as f:
        words, trs, last = f["run/wheretheressmoke/words"], f["run/wheretheressmoke/trs"], f["run/wheretheressmoke/last_word"]
        nwp, ba = f["nwp/wheretheressmoke/scores"], f["ba/middle/UTS02/wheretheressmoke/scores"]
        assert int(f["layer/middle"]) == 2 and len(trs) == 8 and np.all(np.diff(trs) > 0)
        assert nwp.shape == ba.shape == (8, 640) and nwp.dtype == np.float32
        n = np.isfinite(nwp).sum(1)
        assert np.array_equal(n, np.isfinite(ba).sum(1)) and np.all(n <= 63)  # same contexts, capped by positions
        assert np.all(np.isnan(nwp[np.arange(640)[None] >= n[:, None]]))  # NaN beyond each TR's context
        assert np.all(last < len(words)) and np.all(last - n + 1 >= 0)  # column j is word last_word - j
        assert f["ba/middle/UTS02/wheretheressmoke/objective"].shape == (8,)


def test_rerun_resumes_from_the_checkpoints_and_refuses_other_settings(run, capsys):
    """Every TR is already attributed: the second run (now with word annotations) computes none (same numbers) and
    adds the linguistic breakdown; other settings are refused."""
    shards = sorted((run["out"] / "attribution_checkpoints").rglob("shard_*.npz"))
    stamps = [p.stat().st_mtime_ns for p in shards]
    assert len(shards) == 7  # NWP + 3 thirds x 2 participants, 8 TRs in one batch each
    words = load_words(str(run["root"] / "data" / "derivative" / "TextGrids" / "wheretheressmoke.TextGrid"), 2.0)
    table = run["root"] / "wheretheressmoke.tsv"  # the synthetic vocabulary: one word list per tone pitch
    table.write_text("word_index\tword\tfeatures\n" + "".join(
        f"{i}\t{w.text}\t{'low' if w.text in ('low', 'deep', 'bass') else 'other'}\n" for i, w in enumerate(words)))
    argv = overrides(run["root"] / "data", run["out"], "attribution.masking=false",
                     f"attribution.annotations={run['root'] / '{run}.tsv'}")
    assert main(["attribute", *argv]) == 0
    assert [p.stat().st_mtime_ns for p in shards] == stamps
    again = json.loads((run["out"] / "summary.json").read_text())
    assert again["groups"]["late"]["iou"] == run["summary"]["groups"]["late"]["iou"] and "masking" not in again["nwp"]
    shares = again["groups"]["late"]["linguistic"]["60"]
    assert set(shares) == {"low", "other"} and all(0 <= v <= 1 for f in shares.values() for v in f.values())
    assert main(["attribute", *overrides(run["root"] / "data", run["root"] / "x", "attribution.annotations=no_{run}.tsv")]) == 2
    assert "'attribution.annotations' names 'no_wheretheressmoke.tsv'" in capsys.readouterr().err
    assert main(["attribute", *overrides(run["root"] / "data", run["out"], "attribution.method=ig")]) == 2
    assert "other settings" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_share_the_trs_and_merge_to_the_single_process_attributions(run):
    """``trainer.devices=2`` on CPU: Lightning Fabric's DDP launch (gloo), as training is launched. Each process
    attributes every other TR into the checkpoints and rank 0 merges them: the numbers of the single-process run."""
    out = run["root"] / "two"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    argv = overrides(run["root"] / "data", out, "trainer.devices=2", "attribution.masking=false")
    done = subprocess.run([sys.executable, "evaluate.py", "attribute", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["processes"] == 2
    with np.load(run["out"] / "attributions.npz") as one, np.load(out / "attributions.npz") as two:
        assert sorted(one.files) == sorted(two.files)
        for key in one.files:
            if one[key].dtype.kind == "f":
                np.testing.assert_allclose(two[key], one[key], atol=1e-6, err_msg=key)
            else:
                np.testing.assert_array_equal(two[key], one[key], err_msg=key)
        trs = one["run/wheretheressmoke/trs"]
    shards = [np.load(p)["trs"] for p in sorted((out / "attribution_checkpoints" / "nwp" / "wheretheressmoke").glob(
        "shard_*.npz"))]
    assert sorted(map(tuple, shards)) == sorted([tuple(trs[0::2]), tuple(trs[1::2])])  # one shard per process


def test_bad_settings_are_refused_all_at_once_and_thirds_need_three_blocks(run, capsys):
    argv = overrides(run["root"] / "data", run["root"] / "bad", "attribution.targets=best",
                     "attribution.thresholds=[50,10]", "attribution.layers=[early,first]")
    assert main(["attribute", *argv]) == 2
    err = capsys.readouterr().err
    assert "'attribution.targets' is 'best'" in err and "'attribution.thresholds'" in err and "'attribution.layers'" in err
    two = TINY_GPT2.replace("n_layer: 3", "n_layer: 2")
    assert main(["attribute", *overrides(run["root"] / "data", run["root"] / "bad2", f"backbone.config={two}")]) == 2
    assert "thirds need at least 3" in capsys.readouterr().err


def test_words_join_the_tr_in_which_they_end():
    """TR j holds the words that ended in [t_j - TR, t_j): a word ending at t_j belongs to TR j + 1."""
    tok = word_tokenizer(["a", "b"])
    words = [Word(0.0, e, "a") for e in (0.5, 0.99, 1.0, 2.9, 3.0, 7.5)]
    story = story_from_words(tok, words, RunTiming(2.0, 3, 1.0))  # TR times 1, 3, 5
    np.testing.assert_array_equal(story.word_tr, [0, 0, 1, 1, 2, 4])  # the last ends after the last TR (in no TR)
    np.testing.assert_array_equal(A.default_trs(story, (1,)), [1, 2])  # TR 0 has no earlier TR's words


def test_layer_thirds_and_a_choice_made_on_training_runs_only():
    assert layer_groups(["early", "middle", "late"], 13) == {"early": [1, 2, 3, 4], "middle": [5, 6, 7, 8],
                                                            "late": [9, 10, 11, 12]}
    assert layer_groups([-1, "late"], 8) == {"layer7": [7], "late": [6, 7]}
    with pytest.raises(ValueError, match="outside the model's 8 hidden states"):
        layer_groups([9], 8)
    rng = np.random.default_rng(0)
    feats, w = {r: rng.standard_normal((2, 60, 5)) for r in "abcd"}, rng.standard_normal((5, 6))
    ys = {r: zscore(np.roll(feats[r][1] @ w, 1, 0) + rng.standard_normal((60, 6))) for r in "abcd"}  # layer 1, 1 TR back
    params = {"alphas": np.array([1.0, 10.0]), "delays": (1, 2), "cv": "leave_runs_out"}
    fits = [fit_layer(feats, pos, ys, ["a", "b", "c"], ["d"], params) for pos in (0, 1)]
    noise = {**ys, "d": rng.standard_normal((60, 6))}  # other responses on the attributed run
    refit = fit_layer(feats, 1, noise, ["a", "b", "c"], ["d"], params)
    np.testing.assert_array_equal(refit.cv_r, fits[1].cv_r)  # the attributed run never enters the choice
    assert not np.allclose(refit.test_r, fits[1].test_r)
    assert choose_layers({"g": [0, 1]}, {0: fits[0].cv_r.mean(), 1: fits[1].cv_r.mean()}) == {"g": 1}
    assert select_targets("top:2", np.array([0.1, 0.5, 0.3, np.nan]), None, "P").tolist() == [1, 2]
    assert select_targets("region:sts", np.zeros(3), np.array(["L_STS", "V1", "R_sts"]), "P").tolist() == [0, 2]
    with pytest.raises(ValueError, match="no labels"):
        select_targets("region:STS", np.zeros(3), None, "UTS01")


@pytest.mark.parametrize("kind", ["mse", "negcorr"])
def test_head_of_an_attributed_run_equals_the_encoder_prediction(kind):
    """The run's own z-scoring goes into the head: raw features through the head = encoder.predict(zscore(raw))."""
    rng = np.random.default_rng(1)
    feats = {r: (rng.standard_normal((1, 50, 4)) * 3 + 2) for r in "abc"}
    ys = {r: zscore(rng.standard_normal((50, 3))) for r in "abc"}
    fit = fit_layer(feats, 0, ys, ["a", "b"], ["c"], {"alphas": np.array([1.0]), "delays": (1, 2, 3, 4),
                                                            "cv": "leave_runs_out"})
    obj = brain_objective(fit, feats["c"][0], ys["c"], layer=1, kind=kind)
    t = np.arange(50)[:, None] - np.array([1, 2, 3, 4])[None]
    raw = np.where((t >= 0)[..., None], feats["c"][0][np.clip(t, 0, None)], 0.0)  # (T, K, F) rows t - d
    pred = obj.head(torch.as_tensor(raw, dtype=torch.float32), torch.as_tensor(t >= 0)).numpy()
    expected = fit.encoder.predict(zscore(feats["c"][0]))
    np.testing.assert_allclose(pred, expected, atol=1e-5)
    if kind == "negcorr":
        np.testing.assert_allclose(obj.pred_mean.numpy(), expected.mean(0), atol=1e-5)


def test_language_model_reads_the_head_of_an_exported_directory(tmp_path):
    """An untied LM head saved with the model is read from its directory; the body is the backbone's own network."""
    tok = word_tokenizer(["a", "b", "c"])
    torch.manual_seed(0)
    saved = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=len(tok), n_positions=32,
                                       tie_word_embeddings=False, bos_token_id=0, eos_token_id=0)).eval()
    saved.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    cfg = load_config(None, ["backbone.arch=text", f"backbone.name={tmp_path}"])
    backbone = build_text(cfg.backbone)
    lm, record = language_model(backbone, str(tmp_path))
    assert lm.transformer is backbone.model and record["objective"] == "causal" and not record["fresh_head_weights"]
    assert not record["tied_to_input_embeddings"]
    ids = torch.tensor([[2, 3, 4, 2]])
    with torch.no_grad():
        torch.testing.assert_close(lm(input_ids=ids).logits, saved(input_ids=ids).logits)
    bare, record = language_model(backbone, None, seed=0)  # no checkpoint for the untied head: fresh, and said so
    assert record["fresh_head_weights"] == ["lm_head.weight"]
    bert = load_config(None, ["backbone.arch=text", "backbone.text_vocab=[a,b,c]", "backbone.config={model_type: bert, "
                              "hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32}"])
    lm, record = language_model(build_text(bert.backbone))
    assert type(lm).__name__ == "BertForMaskedLM" and record["objective"] == "masked"
