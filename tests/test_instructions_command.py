"""``evaluate.py instructions`` end to end on a synthetic Friends-layout dataset with a tiny offline Video-LLaVA: targets
planted on one instruction's (or one layer's) features are won by it in the WTA maps, the feature cache serves the
second run, features are bit-identical across extractions; plus sharding, the unimodal baselines and the errors."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

pytest.importorskip("torchvision", reason="transformers' video processors need torchvision")

from planted_story import one_thread  # noqa: E402

from braintune.analysis.instruction_data import BrainData, brain_data, study_ceiling  # noqa: E402
from braintune.analysis.instruction_settings import resolve_instructions  # noqa: E402
from braintune.backbones import build_backbone  # noqa: E402
from braintune.commands.alignment import measure_model  # noqa: E402
from braintune.commands.common import open_splits  # noqa: E402
from braintune.commands.evaluate import main  # noqa: E402
from braintune.commands.instructions import clip_settings, model_entries  # noqa: E402
from braintune.config import BackboneConfig, DataConfig, load_config  # noqa: E402
from braintune.data.formats.algonauts import run_name  # noqa: E402
from braintune.data.formats.synthetic_friends import FriendsSpec, write_friends_dataset  # noqa: E402
from braintune.errors import BackboneError, ConfigError, DataError  # noqa: E402
from braintune.evaluation.cache import FeatureCache  # noqa: E402
from braintune.evaluation.clips import (  # noqa: E402
    ClipSettings,
    ClipStore,
    clip_spec,
    encode_clips,
    extract_clip_features,
    process_shard,
    wait_for_entries,
)
from braintune.evaluation.encoding import make_delayed  # noqa: E402
from braintune.models import load_model  # noqa: E402

DEMO = "configs/demo_instructions.yaml"
N_PER_INSTRUCTION, N_PER_LAYER, PLANTED_LAYERS = 6, 3, (1, 2)  # 3 x 6 + 2 x 3 = the 24 targets


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def friends(tmp_path_factory):
    """Four participants on one 24-target space; six 60 s Friends parts and Movie10 life01 shown twice."""
    root = tmp_path_factory.mktemp("friends4")
    write_friends_dataset(root, FriendsSpec(participants=4, episodes=3, episode_seconds=60.0, targets=[24] * 4))
    return root


def overrides(root, cache) -> list[str]:
    """The demo config on ``root`` read as Algonauts (rows untrimmed, so planted rows map 1:1), kept small."""
    return ["data.format=algonauts", f"data.root={root}", "data.trim_trs=0", "data.clip_frames=4",
            f"alignment.cache_dir={cache}", "analysis.max_new_tokens=2",
            "analysis.baselines=[{name: no_instruction, kind: no_instruction}]"]


def _hat(X: np.ndarray, groups: np.ndarray, penalty: float = 100.0) -> np.ndarray:
    """(T, T) ridge hat matrix of X z-scored per run and FIR-delayed (1..5 TRs), as the encoding model sees it: what a
    ridge fit on these features can reproduce (large-variance directions), not merely their span."""
    Xz = np.concatenate([(X[groups == g] - X[groups == g].mean(0)) / (X[groups == g].std(0) + 1e-8)
                         for g in np.unique(groups)])
    Xd = make_delayed(Xz, [1, 2, 3, 4, 5], groups)
    return Xd @ np.linalg.solve(Xd.T @ Xd + penalty * np.eye(Xd.shape[1]), Xd.T)


def planted_directions(favoured: list, others: list, n: int, rng, weight: float) -> np.ndarray:
    """(T, n) unit-variance signals in the directions ridge reproduces from the ``favoured`` feature spaces (on
    average) and not from the ``others``: the top eigenvectors of mean H_favoured - weight · mean H_others (H: ridge
    hat matrices), mixed at random."""
    gap = sum(favoured) / len(favoured) - weight * sum(others) / len(others)
    vecs = np.linalg.eigh(gap)[1][:, -3:]
    sig = vecs @ rng.standard_normal((3, n))
    return (sig - sig.mean(0)) / sig.std(0)


def plant(root, study, store: ClipStore, prompts: list, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overwrite every response file with targets driven by the cached features: 6 per instruction (at the last
    layer, in directions the other instructions' features miss) and 3 per planted layer (directions that layer
    spans for every instruction and the other layers do not), plus independent noise per participant."""
    rng = np.random.default_rng(seed)
    first = {}  # one run per stimulus: showings share their features
    for name, run in sorted(study.runs.items()):
        first.setdefault(str(run.stimulus), name)
    reps = list(first.values())
    groups = np.concatenate([np.full(study.runs[r].timing.n_trs, i) for i, r in enumerate(reps)])
    n_layers = store.backbone.num_layers
    P = {(i, l): _hat(np.concatenate([store.load(study.runs[r], p, l) for r in reps]), groups)
         for i, p in enumerate(prompts) for l in range(n_layers)}
    top, idx = n_layers - 1, range(len(prompts))
    parts = [planted_directions([P[(k, top)]], [P[(j, m)] for j in idx if j != k for m in range(n_layers)],
                                N_PER_INSTRUCTION, rng, weight=6.0) for k in idx]  # each competitor counts
    parts += [planted_directions([P[(j, l)] for j in idx], [P[(j, m)] for j in idx for m in range(n_layers) if m != l],
                                 N_PER_LAYER, rng, weight=1.0) for l in PLANTED_LAYERS]  # layer maps average
    signal, bounds = np.hstack(parts), np.cumsum([0] + [study.runs[r].timing.n_trs for r in reps])
    for path in sorted((root / "fmri").glob("sub-*/func/*.h5")):
        with h5py.File(path, "a") as f:
            for key in f:
                i = reps.index(first[str(study.runs[run_name(key)[0]].stimulus)])
                s = signal[bounds[i]:bounds[i + 1]]
                f[key][...] = (s + 0.5 * rng.standard_normal(s.shape)).astype(np.float32)
    return np.repeat(np.arange(len(prompts)), N_PER_INSTRUCTION), np.repeat(PLANTED_LAYERS, N_PER_LAYER)


def test_instructions_command_recovers_planted_answers_from_cached_identical_features(friends, tmp_path):
    args = ["instructions", "-c", DEMO, *overrides(friends, tmp_path / "cache")]
    assert main([*args, f"out_dir={tmp_path / 'first'}", "analysis.surface_pictures=none"]) == 0
    first = json.loads((tmp_path / "first" / "summary.json").read_text())
    made = first["extraction"]["main"]
    assert made["entries_found"] == 0 and made["entries_written"] == 4 * 8 * 3  # 3 prompts + none, 8 runs, 3 layers
    assert made["clips_encoded"] == 4 * 7 * 40 and made["clips_per_s"] > 0  # life01's two showings encoded once

    cfg = load_config(DEMO, overrides(friends, tmp_path / "cache"))
    entry = model_entries(cfg)[0]
    model = load_model("base", entry.config)
    store = ClipStore(model.backbone, clip_settings(cfg), FeatureCache(cfg.alignment.cache_dir, model.key))
    study, _ = open_splits(cfg)
    prompts = list(entry.instructions.prompts.values())
    truth_i, truth_l = plant(friends, study, store, prompts)

    assert main([*args, f"out_dir={tmp_path / 'second'}", "analysis.surface_pictures=main"]) == 0
    out = tmp_path / "second"
    summary = json.loads((out / "summary.json").read_text())
    served = summary["extraction"]["main"]
    assert served["clips_encoded"] == 0 and served["entries_found"] == 96 and served["entries_written"] == 0
    maps = np.load(out / "maps" / "wta_maps.npz")
    assert list(maps["instruction_labels"]) == list(entry.instructions.keys)
    n_i = len(truth_i)
    assert np.mean(maps["instruction_winner"][:n_i] == truth_i) >= 0.9
    assert np.mean(maps["layer_labels"][maps["layer_winner"][n_i:]].astype(int) == truth_l) >= 0.9
    # the summary the issue asks for
    scores = np.load(out / "scores_main.npz")["scores"].mean(1)  # (instructions, targets) at each best layer
    for k, name in enumerate(entry.instructions.keys):
        got, own = summary["instructions"][name], truth_i == k
        assert got["best_layer"] == 2 and got["mean_r_normalized"] > 0.1  # planted on the last layer
        assert set(got["per_region"]) == {"whole_brain", "Vis", "STS", "other"}
        assert scores[k, :n_i][own].mean() > 0.5 > np.delete(scores, k, 0)[:, :n_i][:, own].mean()
    assert summary["ceiling"]["kind"] == "extrapolated" and summary["ceiling"]["method"] == "cross_subject"
    assert set(summary["wta"]) >= {"instruction", "layer", "group-perceptual_visual-instruction"}
    assert set(summary["partition"]["pairs"]["action_recognition|video_understanding"]) == {"r", "r2"}
    classes = summary["class_comparison"]
    assert classes["pairing"] == "participant_x_region" and classes["comparisons"]["instruction_tuned > no_instruction"][
        "p_fdr"] < 0.01  # the planted targets follow the instructed features
    assert summary["settings"]["test_stimuli"] == [["life01_run-1", "life01_run-2"]]
    for name in ("maps/wta_instruction.nii.gz", "maps/wta_instruction_shares.png", "maps/wta_layer.nii.gz"):
        assert (out / name).is_file() and name in summary["maps"]["files"]
    assert (out / "maps" / "wta_instruction_surface.png").is_file() or summary["maps"]["notes"]
    # bit-identical: a fresh extraction (no cache) of one run gives the cached features exactly
    run = study.runs["s06e01a"]
    fresh = ClipStore(model.backbone, clip_settings(cfg), None)
    extract_clip_features(model.backbone, {"s06e01a": run}, {"a": prompts[0]}, fresh)
    for layer in range(3):
        assert np.array_equal(fresh.load(run, prompts[0], layer), store.load(run, prompts[0], layer))


def test_brain_data_averages_showings_and_keeps_common_targets(friends):
    cfg = load_config(DEMO, overrides(friends, None))
    study, splits = open_splits(cfg)
    data = brain_data(study, splits.participants, splits.train_runs + splits.val_runs, splits.test_runs)
    assert data.test_groups == [["life01_run-1", "life01_run-2"]] and data.n_test == [40]
    assert len(data.train_runs) == 6 and data.Y[0].shape == (240, 24) and data.Yt[0].shape == (40, 24)
    showings = [study.sources[("sub-01", r)].read() for r in data.test_groups[0]]
    z = [(s - s.mean(0)) / s.std(0) for s in showings]
    np.testing.assert_allclose(data.Yt[0], (z[0] + z[1]) / 2, atol=1e-5)
    assert data.repeats[0].shape == (2, 40, 24)
    ceiling, info = study_ceiling(data, "repeats")
    assert ceiling.shape == (4, 24) and info["kind"] == "repeats"
    assert study_ceiling(data, "none")[0] is None
    three = BrainData(data.participants[:3], data.train_runs, data.test_groups, data.n_test, data.Y[:3], data.Yt[:3],
                      data.groups, data.groups_test, data.targets, None)
    ceiling, info = study_ceiling(three, "cross_subject", n_boot=5)
    assert ceiling.shape == (3, 24) and info["kind"] == "lower_bound" and "lower bound" in info["note"]
    with pytest.raises(DataError, match="shown more than once"):
        study_ceiling(three, "repeats")


def test_sharded_extraction_splits_stimuli_and_rank0_waits(friends, tmp_path, monkeypatch):
    cfg = load_config(None, ["data.format=algonauts", f"data.root={friends}", "data.trim_trs=0", "backbone.arch=ast",
                             "backbone.finetune=frozen", "backbone.config={hidden_size: 16, num_hidden_layers: 1, "
                             "num_attention_heads: 2, intermediate_size: 32, max_length: 200, num_mel_bins: 32}"])
    model = load_model("base", cfg)
    study, splits = open_splits(cfg)
    runs = dict(study.runs)
    stores = [ClipStore(model.backbone, ClipSettings(1.49), FeatureCache(tmp_path / "c", model.key)) for _ in range(2)]
    with pytest.raises(DataError, match="waited"):
        wait_for_entries(stores[0], runs, {"none": None}, timeout_s=0.0, poll_s=0.0)
    done = [extract_clip_features(model.backbone, runs, {"none": None}, s, shard=(k, 2)) for k, s in enumerate(stores)]
    assert not set(done[0].runs) & set(done[1].runs) and set(done[0].runs) | set(done[1].runs) == set(runs)
    assert {"life01_run-1", "life01_run-2"} <= set(done[0].runs) or {"life01_run-1", "life01_run-2"} <= set(done[1].runs)
    wait_for_entries(stores[0], runs, {"none": None}, timeout_s=0.0)  # every entry is there now
    feats = stores[0].load(runs["life01_run-2"], None, 1)
    assert feats.shape == (40, 16) and np.array_equal(feats, stores[1].load(runs["life01_run-1"], None, 1))
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_shard() == (3, 4, 1)


def test_demo_baselines_encode_clips_through_the_same_path(friends):
    cfg = load_config(DEMO, [o for o in overrides(friends, None) if not o.startswith("analysis.baselines")])
    entries = model_entries(cfg)
    assert [(e.name, e.kind, e.shares) for e in entries[1:]] == [
        ("no_instruction", "no_instruction", "main"), ("av", "multimodal", None), ("videomae", "unimodal", None),
        ("ast", "unimodal", None)]
    study, _ = open_splits(cfg)
    run = {"s06e01a": study.runs["s06e01a"]}
    for e in entries[2:]:
        model = load_model("base", e.config)
        store = ClipStore(model.backbone, ClipSettings(1.49, frames=8), None)
        record = extract_clip_features(model.backbone, run, {"none": None}, store)
        feats = store.load(run["s06e01a"], None, model.backbone.num_layers - 1)
        assert record.clips == 40 and feats.shape == (40, 32) and np.isfinite(feats).all()
        assert feats.std(0).mean() > 1e-4, e.name  # each clip's own stimulus moves its features


def test_clips_end_at_each_tr_and_hold_the_frames_asked_for(friends):
    cfg = load_config(DEMO, overrides(friends, None))
    study, _ = open_splits(cfg)
    run = study.runs["s06e01a"]
    spans = ClipSettings(clip_s=1.49).spans(run)
    np.testing.assert_allclose(spans[:2], [[-0.745, 0.745], [0.745, 2.235]])  # row j at 1.49 j + 0.745 (mid-volume)
    model = load_model("base", model_entries(cfg)[0].config)
    spec = clip_spec(model.backbone, ClipSettings(1.49, frames=4), run)
    assert spec.video_fps == pytest.approx(4 / 1.49) and spec.modalities == ("video",)
    with pytest.raises(ConfigError, match="cannot follow an instruction"):
        encode_clips(torch.nn.Identity(), [{}], "Describe.", ClipSettings(), "cpu")


def test_unimodal_baselines_give_frame_clocks_and_stay_inside_their_chunks():
    data = DataConfig(video_fps=8.0, frame_size=32)
    vm = build_backbone(BackboneConfig(arch="videomae", finetune="frozen", config=dict(
        image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=16, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=32)), data).eval()
    video = torch.randint(0, 256, (2, 10, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        out = vm({"video": video})
        assert out.shape == (2, 3, 6, 16) and vm.frame_rate == 4.0 and vm.future_reach_s == 0.5
        changed = video.clone()
        changed[:, 4:] = 0  # frames of the second clip on
        np.testing.assert_allclose(vm({"video": changed})[:, :, :2], out[:, :, :2], atol=1e-5)
    ast = build_backbone(BackboneConfig(arch="ast", finetune="frozen", config=dict(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_length=100,
        num_mel_bins=32)), data).eval()
    audio = 0.1 * torch.randn(1, 40000)  # 2.5 s: two chunks of 9 steps (0.9 s) each and part of a third
    with torch.no_grad():
        out = ast({"audio": audio})
        assert out.shape == (1, 2, 25, 16) and ast.frame_rate == 10.0
        late = audio.clone()
        late[:, 20000:] = 0
        np.testing.assert_allclose(ast({"audio": late})[:, :, :9], out[:, :, :9], atol=1e-5)  # the first chunk alone
        assert np.abs(ast({"audio": late})[:, :, 18:] - out[:, :, 18:]).max() > 1e-4


def test_mllm_backbone_is_frozen_and_refuses_training():
    cfg = BackboneConfig(arch="mllm", config={"hidden": 16, "layers": 1})
    with pytest.raises(BackboneError, match="backbone.finetune=frozen"):
        build_backbone(cfg)
    cfg.finetune = "frozen"
    backbone = build_backbone(cfg)
    with pytest.raises(BackboneError, match="evaluate.py instructions"):
        backbone.frame_rate  # noqa: B018  training reads it first (check_pooling)
    assert backbone.num_layers == 2 and backbone.modalities == ("video",)
    cfg.mllm.family = "instructblipvideo"
    with pytest.raises(BackboneError, match="data.clip_frames=4"):
        build_backbone(cfg).check_frames(16)
    cfg.config = {"hidden": 16, "size": 3}
    with pytest.raises(BackboneError, match=r"\['size'\]"):
        build_backbone(cfg)


def test_instruction_lists_and_files_resolve_with_clear_errors():
    inline = resolve_instructions([{"caption": "Caption the video."}, {"name": "none", "prompt": None}])
    assert inline.keys == ("caption", "none") and inline.prompts["none"] is None
    picked = resolve_instructions({"file": "configs/instructions/video.yaml", "names": ["video_captioning"]})
    assert picked.prompts == {"video_captioning": "Caption the video in a short sentence."}
    assert picked.group_labels == {"language_narrative": "language and narrative understanding"}
    for bad, match in ((None, "not set"), ([{"a": "x"}, {"a": "y"}], "repeated"), (["caption"], "not one"),
                       ({"file": "configs/instructions/video.yaml", "names": ["nope"]}, r"\['nope'\]"),
                       ({"path": "x.yaml"}, "keys")):
        with pytest.raises(ConfigError, match=match):
            resolve_instructions(bad)


def test_command_errors_name_the_key_before_any_work(tmp_path, capsys):
    base = ["instructions", "-c", DEMO, f"out_dir={tmp_path / 'o'}", f"data.root={tmp_path / 'none'}"]
    cases = [(["backbone.arch=wav2vec2"], "backbone.arch: mllm"),
             (["analysis.pairs=[[action_recognition, nope]]"], "analysis.pairs"),
             (["analysis.baselines=[{name: x, backbone: {arch: av, widht: 3}}]"], "analysis.baselines[0]"),
             (["analysis.baselines=[{name: main}]"], "unique"),
             (["analysis.embedding=mean"], "analysis.embedding"),
             (["data.clip_frames=0"], "data.clip_frames")]
    for extra, match in cases:
        try:
            code = main([*base, *extra])
        except SystemExit as stop:  # config errors stop in parse_args
            code = stop.code
        assert code == 2
        assert match in capsys.readouterr().err
    cfg = load_config(DEMO, ["alignment.ceiling=cross_subject"])
    with pytest.raises(ConfigError, match="alignment.ceiling=repeats"):
        measure_model(cfg, None, None, None)
