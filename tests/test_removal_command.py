"""evaluate.py remove / similarity end to end on a planted story (tests/planted_story.py, LeBel layout with the paper's
probing-label files): the responses follow each sentence's tense, which only its first word tells, and not its
number. The model is a tiny GPT-2 of 7 blocks built so that hidden state l holds a word plus l rounds of causal
context averaging: deeper layers carry more of the tense, so the layer-wise answers are known.

Planted answers: removing tense drops alignment at every layer, removing number drops none; after removal the
probes sit at chance (residual approach and INLP); across layers the probe's drop tracks the alignment drop
(r >= 0.8); every similarity measure beats its block-permutation null at the deep layer.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from planted_story import one_thread, write_context_model, write_planted_story

from braintune.config import load_config
from braintune.errors import ConfigError


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("planted")
    return write_planted_story(tmp / "story"), write_context_model(tmp / "model"), tmp


def config(planted, out: str, *extra: str):
    root, model, tmp = planted
    return load_config(None, ["data.format=lebel", f"data.root={root}", "backbone.arch=text", "trainer.accelerator=cpu",
                              f"checkpoint={model}", f"removal.label_file={root}/labels/{{run}}.csv",
                              "alignment.delays=[2,3]", f"alignment.cache_dir={tmp / 'cache'}", f"out_dir={tmp / out}", *extra])


@pytest.fixture(scope="module")
def removed(planted):
    from braintune.commands.remove import remove

    # the residual approach with exact class-mean removal (λ -> 0); the paper's CV grid is the default
    return remove(config(planted, "remove", "removal.properties=[tense,subjnum]", "removal.residual_alphas=[1e-6]"))


def _drops(entry) -> np.ndarray:
    before, after = entry["alignment_before"]["all"], entry["alignment_after"]["all"]
    return np.array([before[k] - after[k] for k in before])


def test_removing_the_planted_property_drops_alignment_and_the_other_does_not(removed, planted):
    tense, number = removed["properties"]["tense"], removed["properties"]["subjnum"]
    assert set(tense) >= {"probe_before", "probe_after", "alignment_before", "alignment_after", "drop_vs_probe_r"}
    assert removed["alignment_metric"] == "r/ceiling" and removed["layers"] == list(range(8))
    assert min(tense["alignment_before"]["all"].values()) > 0.2  # the model carries the signal
    assert _drops(tense).min() > 0.2, tense["alignment_after"]
    assert np.abs(_drops(number)).max() < 0.03, number["alignment_after"]
    for test in tense["tests"]["all"].values():  # across the 3 participants
        assert test["paired_t"]["pvalue"] < 0.01 and "warning" in test["wilcoxon"]  # 3 pairs cannot reach 0.05
    deep = [tense["block_tests"][p]["7"]["pvalue"] for p in tense["block_tests"]]
    assert max(deep) <= 0.05  # within every participant: block sign-flip test of r_before - r_after
    summary = json.loads((planted[2] / "remove" / "summary.json").read_text())
    assert summary["properties"]["tense"]["classes"] == ["past", "present"] and "provenance" in summary
    assert summary["to_trs"] == {"method": "causal", "lookahead_s": 0.0}
    assert all((planted[2] / "remove" / png).is_file() for png in ("removal_by_layer.png", "removal_correlation.png"))


def test_probes_fall_to_chance_and_their_drop_tracks_the_alignment_drop(removed):
    tense, number = removed["properties"]["tense"], removed["properties"]["subjnum"]
    for entry in (tense, number):
        assert all(entry["reached_chance"].values()) and "warning" not in entry
    before = np.array(list(tense["probe_before"].values()))
    assert before[-1] - before[0] > 0.1  # deeper layers carry more tense (the planted model's design)
    assert tense["drop_vs_probe_r"]["all"] >= 0.8, tense["drop_vs_probe_r"]


def test_inlp_removal_reaches_chance_and_drops_alignment(planted):
    from braintune.commands.remove import remove

    summary = remove(config(planted, "inlp", "removal.properties=[tense]", "removal.method=inlp", "alignment.layers=[0,4,7]"))
    tense = summary["properties"]["tense"]
    assert all(tense["reached_chance"].values()), tense["probe_after"]
    assert tense["inlp_iterations"]["7"] >= 1 and tense["probe_before"]["7"] > tense["probe_chance"]["7"] + 0.1
    assert _drops(tense)[-1] > 0.08, (tense["alignment_before"], tense["alignment_after"])


def test_similarity_measures_beat_their_block_permutation_nulls(planted):
    from braintune.commands.similarity import similarity

    summary = similarity(config(planted, "similarity", "alignment.layers=[0,7]", "similarity.n_perm=39",
                                "similarity.pca_components=8", "similarity.measures=[ridge,ridge_pca,cka,rbf_cka,rsa,procrustes,gw]"))
    assert summary["features"]["mode"] == "words" and summary["features"]["lookahead_s"] == 0.0
    for name, m in summary["measures"].items():
        sign = 1 if m["higher_is_similar"] else -1
        for p, regions in m["participants"].items():
            deep = regions["all"]["7"]
            assert deep["n_blocks"] >= 6 and deep["n_perm"] == 39 and 0 < deep["p_value"] <= 1
            if name in ("ridge", "ridge_pca", "cka", "rsa"):  # every participant, at p <= 0.05
                assert deep["p_value"] <= 0.05, (name, p, deep)
        if name != "gw":  # on average more similar than the null (GW's per-target null: see the report)
            assert sign * (m["layers"]["all"]["7"] - m["null_mean"]["all"]["7"]) > 0, name
    ridge = summary["measures"]["ridge"]["layers"]["all"]
    assert ridge["7"] > ridge["0"]  # context makes the deep layer better
    assert (planted[2] / "similarity" / "similarity_by_layer.png").is_file()


def test_bad_settings_name_the_key(planted):
    from braintune.commands.remove import remove
    from braintune.commands.similarity import similarity

    with pytest.raises(ConfigError, match="similarity.block_trs"):
        similarity(config(planted, "bad1", "similarity.block_trs=10"))
    with pytest.raises(ConfigError, match=r"similarity.measures \['cca'\]"):
        similarity(config(planted, "bad2", "similarity.measures=[cca]"))
    with pytest.raises(ConfigError, match="constituency parse"):
        remove(config(planted, "bad3", "removal.properties=[tree_depth]"))
    with pytest.raises(ConfigError, match=r"put \{run\} in the path"):
        remove(config(planted, "bad4", f"removal.label_file={planted[0]}/labels/story01.csv"))
    with pytest.raises(ConfigError, match="no sentence-final punctuation"):
        remove(config(planted, "bad5", "removal.properties=[sen_len]", "removal.label_file=null"))
