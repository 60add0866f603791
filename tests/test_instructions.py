"""Instruction sets, winner-take-all maps, pairwise variance partitioning and model-class tests, with planted answers."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from braintune.analysis.instruction_pairs import partition_pairs, region_percentages
from braintune.analysis.instructions import (
    InstructionSet,
    group_maps,
    instruction_alignment,
    instruction_map,
    layer_map,
    load_instructions,
    region_shares,
)
from braintune.analysis.model_classes import compare_classes, model_scores, save_maps, sign_flip_test, write_surface, write_volume
from braintune.evaluation.partition import variance_partition

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "instructions"
RIDGE = dict(alphas=np.logspace(-1, 4, 11), cv=3, delays=(0,), backend="numpy")
PAPER_VIDEO = ["Action Recognition", "Video Understanding", "Visual Question Answering", "Video Captioning",
               "Object & Scene Recognition", "Commonsense Reasoning", "Spatial Understanding", "Temporal Ordering",
               "Video Reasoning", "Narrative Understanding", "Emotion & Sentiment", "Global Appearance",
               "Linking Events"]


def test_shipped_instruction_sets_are_the_papers_and_label_their_wording():
    video = load_instructions(CONFIGS / "video.yaml")
    assert [video.names[k] for k in video.keys] == PAPER_VIDEO and len(video.group_labels) == 5
    assert video.prompts["video_captioning"] == "Caption the video in a short sentence."
    assert {k for k in video.keys if video.sources[k][0] == "paper"} == {"video_captioning"}
    assert all(video.groups[k] in video.group_labels and video.sources[k][1] == "braintune" for k in video.keys)
    assert sum(len(video.members(g)) for g in video.group_labels) == 13
    audio = load_instructions(CONFIGS / "audio.yaml")
    assert [audio.names[k] for k in audio.keys] == ["Audio Understanding", "Audio Comprehension", "Audio Captioning",
                                                    "Sound Event Detection", "Speaker Identification"]
    assert audio.group_labels == {} and all(g is None for g in audio.groups.values())


def test_bad_instruction_file_lists_every_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("modality: video\ngroups: {g1: one}\ninstructions:\n  a: {name: A, prompt: p, group: g2}\n"
                    "  b: {name: B, promt: p}\n")
    with pytest.raises(ValueError, match="bad.yaml") as err:
        load_instructions(path)
    for part in ("group 'g2' is not one of ['g1']", "instructions.b: unknown key 'promt'", "instructions.b: missing 'prompt'"):
        assert part in str(err.value)
    with pytest.raises(FileNotFoundError, match="configs/instructions/video.yaml"):
        load_instructions(tmp_path / "none.yaml")


def planted(n_i=4, n_l=3, per=15, n_p=2, seed=0):
    """Features X[i, l] = base_l + own_{i,l}; targets 0..n_i*per-1 follow own_{k,1} of instruction k, the next
    n_l*per follow base_l (shared by every instruction at layer l)."""
    rng = np.random.default_rng(seed)
    n_t, d = 900, 6
    base = rng.standard_normal((n_l, n_t, d))
    own = rng.standard_normal((n_i, n_l, n_t, d))
    feats = base[None] + own  # (I, L, T, D)
    drivers = [own[k, 1] for k in range(n_i) for _ in range(per)] + [base[l] for l in range(n_l) for _ in range(per)]
    w = rng.standard_normal((len(drivers), d))
    signal = np.stack([x @ wi for x, wi in zip(drivers, w)], 1)  # (T, V)
    ys = [signal + 1.5 * rng.standard_normal(signal.shape) for _ in range(n_p)]
    groups, split = np.repeat(np.arange(3), 200), slice(0, 600)
    test = slice(600, 900)
    scores = instruction_alignment(feats[:, :, split], feats[:, :, test], [y[split] for y in ys], [y[test] for y in ys],
                                   groups, np.repeat([0, 1], 150), ceiling=np.full((n_p, signal.shape[1]), 0.9),
                                   **RIDGE)
    truth_i = np.repeat(np.arange(n_i), per)
    truth_l = np.repeat(np.arange(n_l), per)
    return scores, truth_i, truth_l


@pytest.fixture(scope="module")
def planted_scores():
    return planted()


def test_winner_take_all_recovers_planted_instructions_and_layers(planted_scores):
    scores, truth_i, truth_l = planted_scores
    assert scores.shape == (4, 3, 2, 105)
    names = ["i0", "i1", "i2", "i3"]
    imap = instruction_map(scores, names)
    n_i = len(truth_i)
    assert np.mean(imap.winner[:n_i] == truth_i) >= 0.9
    lmap = layer_map(scores)
    assert lmap.labels == ["0", "1", "2"] and np.mean(lmap.winner[n_i:] == truth_l) >= 0.9
    assert np.mean(instruction_map(scores, names, layer=1).winner[:n_i] == truth_i) >= 0.9
    regions = {f"planted_{k}": np.arange(105) // 15 == k for k in range(4)}
    shares = region_shares(imap, regions)
    assert list(shares)[0] == "whole_brain" and all(shares[f"planted_{k}"][f"i{k}"] >= 0.9 for k in range(4))
    iset = InstructionSet("video", tuple(names), {n: n for n in names}, {n: n for n in names},
                          {"i0": "g", "i1": "g", "i2": "h", "i3": "h"}, {"g": "G", "h": "H"},
                          {n: ("braintune", "braintune") for n in names})
    within = group_maps(scores, iset)
    assert within["g"].labels == ["i0", "i1"]
    assert np.mean(within["g"].winner[:30] == truth_i[:30]) >= 0.9
    assert np.mean(within["h"].winner[30:60] == truth_i[30:60] - 2) >= 0.9


def test_pair_partition_matches_variance_partition_and_finds_planted_parts():
    rng = np.random.default_rng(3)
    n_t, d = 900, 4
    shared, only_a, only_b = (rng.standard_normal((n_t, d)) for _ in range(3))
    spaces = {"A": np.hstack([shared, only_a]), "B": np.hstack([shared, only_b]), "C": rng.standard_normal((n_t, d))}
    signal = np.hstack([shared @ rng.standard_normal((d, 10)), only_a @ rng.standard_normal((d, 10))])
    Y = signal + rng.standard_normal(signal.shape)
    Y = (Y - Y.mean(0)) / Y.std(0)
    tr, te, g, gt = slice(0, 600), slice(600, 900), np.repeat(np.arange(3), 200), np.repeat([0, 1], 150)
    res = partition_pairs({k: v[tr] for k, v in spaces.items()}, {k: v[te] for k, v in spaces.items()},
                          Y[tr], g, Y[te], gt, **RIDGE)
    assert res.pairs == [(0, 1), (0, 2), (1, 2)] and res.r_joint.shape == (3, 20)
    oracle = variance_partition(spaces["A"][tr], spaces["B"][tr], Y[tr], g, spaces["A"][te], spaces["B"][te], Y[te],
                                gt, **RIDGE)
    r2 = res.partition("r2")
    for key, ref in (("a", "r2_a"), ("b", "r2_b"), ("joint", "r2_joint"), ("shared", "shared"), ("unique_a", "unique_a")):
        np.testing.assert_allclose(r2[key][0], oracle[ref], atol=1e-6)
    regions = {"shared_driven": np.arange(20) < 10, "a_driven": np.arange(20) >= 10}
    for unit, ceiling in (("r2", None), ("r", np.full(20, 0.8))):
        pct = region_percentages(res.partition(unit, ceiling), regions)
        assert pct["shared_driven"]["shared"][0] > 80 and pct["a_driven"]["unique_a"][0] > 80
        assert abs(sum(pct["whole_brain"][k][0] for k in ("shared", "unique_a", "unique_b")) - 100) < 1e-9
    np.testing.assert_allclose(res.partition("r", np.full(20, 0.8))["a"], res.partition("r")["a"] / 0.8)


def test_model_class_comparison_pairing_reaches_significance_only_with_enough_pairs():
    rng = np.random.default_rng(0)
    regions = np.repeat([f"parcel{k}" for k in range(40)], 5)
    b = rng.normal(0.3, 0.1, (4, 200))
    a = b + 0.03 + 0.05 * rng.standard_normal(b.shape)
    res = compare_classes(a, b, regions)
    assert res.pairing == "participant_x_region" and res.n_pairs == 160 and res.pvalue < 0.01
    with pytest.warns(UserWarning, match="cannot give p below 0.0625"):
        per_subject = compare_classes(a, b, pairing="participant")
    assert per_subject.n_pairs == 4 and per_subject.pvalue == pytest.approx(1 / 16) and "exact" in per_subject.test
    assert sign_flip_test(np.array([1.0, 2, 3, 4]), "two-sided") == (pytest.approx(2 / 16), pytest.approx(2 / 16))
    null_p = [compare_classes(rng.normal(0, 1, (4, 200)), rng.normal(0, 1, (4, 200)), regions, n_perm=1000,
                              seed=s).pvalue for s in range(200)]
    assert 0.02 <= np.mean(np.array(null_p) < 0.05) <= 0.09  # calibrated under the null
    scores = rng.normal(0, 0.01, (3, 5, 4, 200))
    scores[:, 3] += 0.2  # planted best layer
    np.testing.assert_allclose(model_scores(scores), scores[:, 3].mean(0))
    with pytest.raises(ValueError, match="label each of the 200 targets"):
        compare_classes(a, b, regions[:10])


def test_maps_are_written_as_data(tmp_path, planted_scores):
    scores, _, _ = planted_scores
    imap = instruction_map(scores, ["i0", "i1", "i2", "i3"])
    data = np.load(save_maps(tmp_path / "maps" / "wta.npz", instruction=imap, scores=scores))
    assert np.array_equal(data["instruction_winner"], imap.winner) and list(data["instruction_labels"]) == imap.labels
    mask = np.zeros((6, 6, 4), np.uint8)
    mask.reshape(-1)[np.linspace(0, mask.size - 1, 105).astype(int)] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(tmp_path / "mask.nii.gz"))
    vol = nib.load(str(write_volume(imap.winner, tmp_path / "mask.nii.gz", tmp_path / "wta.nii.gz"))).get_fdata()
    assert np.array_equal(vol[mask == 1], imap.winner) and np.isnan(vol[mask == 0]).all()
    ref = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(np.zeros(105, np.float32))])
    nib.save(ref, str(tmp_path / "ref.func.gii"))
    surf = nib.load(str(write_surface(imap.best, tmp_path / "ref.func.gii", tmp_path / "wta.func.gii")))
    np.testing.assert_allclose(surf.darrays[0].data, imap.best.astype(np.float32))
    with pytest.raises(ValueError, match="has 105 vertices"):
        write_surface(imap.best[:5], tmp_path / "ref.func.gii", tmp_path / "x.func.gii")
