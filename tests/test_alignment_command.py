"""evaluate.py alignment / compare end to end on a tiny synthetic study: compare base vs a 1-epoch checkpoint
(summary keys, statistics against an oracle from the .npz arrays, nested efficiency curves, PNGs), the feature
cache is re-used (no backbone pass the second time), ceiling-normalised r against a by-hand oracle, causal
sliding-window extraction with a planted ramp, and r maps of BIDS volumes written back into the NIfTI mask.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from braintune.config import load_config
from braintune.data.modalities import StimulusSpec
from braintune.data.study import Run
from braintune.data.timing import RunTiming

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.synthetic.participants=4", "data.synthetic.stories=3", "data.synthetic.story_seconds=60",
        "data.synthetic.targets=[20,24,16,20]", "data.segment_trs=8", "data.context_s=2.0",
        "trainer.progress_bar=false", "trainer.accelerator=cpu", "alignment.after_training=false",
        "alignment.layers=[1,3]", "alignment.n_boot=200"]


def config(root: Path, out: Path, *extra: str):
    return load_config(ROOT / "configs" / "demo.yaml", TINY + [f"data.root={root}", f"out_dir={out}", *extra])


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stories") / "data"


@pytest.fixture(scope="module")
def compared(root, tmp_path_factory):
    from braintune.commands.alignment import compare
    from braintune.commands.train import train

    tmp = tmp_path_factory.mktemp("compare")
    trained = train(config(root, tmp / "train", "trainer.max_epochs=1"))
    ckpt = trained["checkpoint"] or str(tmp / "train" / "checkpoints" / "last.ckpt")
    cfg = config(root, tmp / "cmp", f"alignment.models=[base,{ckpt}]", f"alignment.cache_dir={tmp / 'cache'}",
                 "alignment.block_trs=4")  # a 60 s test story: 4-TR blocks leave patterns enough to reach p < 0.05
    return cfg, compare(cfg)


def test_compare_writes_differences_tests_and_plots(compared):
    cfg, summary = compared
    out = Path(cfg.out_dir)
    assert set(json.loads((out / "summary.json").read_text())) >= {"models", "differences", "tests", "efficiency"}
    names = list(summary["models"])
    assert len(names) == 2 and names[0] == "base"
    key = f"{names[1]} - base"
    diff, tests = summary["differences"][key], summary["tests"][key]
    # oracle: per-participant mean r from each model's per-target arrays
    arrays = [np.load(out / f"alignment_{n.replace('/', '_')}.npz") for n in names]
    for layer in ("1", "3"):
        per_p = [np.mean(arrays[1][f"{p}/layer{layer}"]) - np.mean(arrays[0][f"{p}/layer{layer}"])
                 for p in summary["models"]["base"]["participants"]]
        assert diff["layers"][layer]["mean_diff"] == pytest.approx(np.mean(per_p), abs=1e-6)
        tuned = tests["across_participants"]["tuned"][layer]  # UTS01-03; UTS04 is held out and tested apart
        assert "cannot reject" in tuned["wilcoxon"].get("warning", "")  # 3 pairs: smallest two-sided p is 0.25
        assert tuned["paired_t"]["n"] == 3 and tuned["paired_t"]["p_holm"] >= tuned["paired_t"]["pvalue"]
        assert "at least 2 pairs" in tests["across_participants"]["heldout"][layer]["paired_t"]["error"]
    assert summary["recipe"] == "braintune" and tests["headline_layer"] == summary["models"]["base"]["layer"]
    assert tests["groups"] == {"tuned": ["UTS01", "UTS02", "UTS03"], "heldout": ["UTS04"]}
    per_target, layer = np.load(out / tests["per_target"]), tests["headline_layer"]
    for group, members in tests["groups"].items():
        for p in members:  # oracle: the per-target r difference from each model's own arrays
            t, r = tests["block_sign_flip"][group][p], [a[f"{p}/layer{layer}"] for a in arrays]
            np.testing.assert_allclose(per_target[f"{p}/diff"], r[1] - r[0], atol=1e-6)
            assert t["statistic"] == pytest.approx(np.mean(r[1] - r[0]), abs=1e-6) and t["n_targets"] == len(r[0])
            assert t["n_reject_max"] == per_target[f"{p}/reject_max"].sum() and 0 <= t["pvalue"] <= 1
            assert t["exact"] and t["n_patterns"] == 2 ** t["n_blocks"] and t["min_p"] == 2 / 2 ** t["n_blocks"]
    for head in diff["headline"]["participants"].values():
        lo, hi = head["ci"]
        assert lo <= head["mean_diff"] <= hi
    for png in ("alignment_by_layer.png", "data_efficiency.png"):
        assert (out / png).stat().st_size > 1000
    assert "no brain maps" in summary["brain_maps"]["base"]


def test_efficiency_curves_are_nested_and_matched(compared):
    _, summary = compared
    eff = summary["efficiency"]
    assert eff["reference_model"] == "base"
    for entry in eff["models"].values():
        assert entry["n_runs"] == [1, 2, 3] and entry["fractions"][-1] == 1.0
        assert list(entry["participants"]) == ["UTS04"]  # the held-out participant of configs/demo.yaml
        subsets = entry["train_runs"]
        assert all(set(a) < set(b) for a, b in zip(subsets, subsets[1:]))
        assert "data_factor" in entry and "fraction_to_match" in entry
    base = eff["models"]["base"]
    assert eff["reference_alignment"] == pytest.approx(base["scores"][-1])
    assert base["fraction_to_match"] <= 1.0  # the reference reaches its own full-data alignment


@pytest.fixture(scope="module")
def aligned(root, tmp_path_factory):
    from braintune.commands.alignment import alignment

    tmp = tmp_path_factory.mktemp("align")
    cfg = config(root, tmp / "first", f"alignment.cache_dir={tmp / 'cache'}")
    return tmp, cfg, alignment(cfg)


def test_second_evaluation_reuses_cached_features(aligned, root, monkeypatch):
    from braintune.commands import alignment as command
    from braintune.evaluation import features

    tmp, _, first = aligned
    assert first["feature_cache"]["misses"] == 4 and first["feature_cache"]["hits"] == 0

    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone ran although every run's features were cached")

    monkeypatch.setitem(features.EXTRACTORS, "bounded", no_backbone)
    second = command.alignment(config(root, tmp / "second", f"alignment.cache_dir={tmp / 'cache'}"))
    assert second["feature_cache"] == {**first["feature_cache"], "hits": 4, "misses": 0}
    assert second["mean_r"] == first["mean_r"]
    with pytest.raises(AssertionError, match="cached"):  # another window is another cache entry
        command.alignment(config(root, tmp / "third", f"alignment.cache_dir={tmp / 'cache'}", "alignment.window_s=4.0"))


def test_normalized_alignment_is_r_over_ceiling_on_kept_targets(aligned):
    _, cfg, summary = aligned
    arrays = np.load(Path(cfg.out_dir) / "alignment.npz")
    assert cfg.alignment.min_ceiling == 0.05
    means = []
    for p, entry in summary["participants"].items():
        r, ceiling = arrays[f"{p}/layer{summary['layer']}"], arrays[f"{p}/ceiling"]
        keep = ceiling >= 0.05
        assert entry["n_targets_normalized"] == keep.sum() > 0
        assert entry["mean_r_normalized"] == pytest.approx(np.mean(r[keep] / ceiling[keep]), rel=1e-6)
        means.append(entry["mean_r_normalized"])
    assert summary["mean_r_normalized"] == pytest.approx(np.mean(means))


class RampStub(torch.nn.Module):
    """Frames every 320 samples; hidden state l of a frame = (l + 1) x the frame's last sample."""
    frame_rate, num_layers, modalities = 50.0, 2, ("audio",)

    def __init__(self, sample_rate: int):
        super().__init__()
        self.lengths = []
        self.spec = StimulusSpec(self.modalities, sample_rate)

    def forward(self, inputs, layers=None):
        audio = inputs["audio"]
        self.lengths += [audio.shape[1]] * audio.shape[0]
        frames = audio[:, 319::320]  # (B, T)
        return torch.stack([frames * (l + 1) for l in layers], 1)[..., None]  # (B, L, T, 1)


def test_sliding_extraction_lanczos_resamples_last_frames(tmp_path):
    from braintune.evaluation.features import Extraction, sliding_features
    from braintune.evaluation.resample import lanczos_resample

    sr, duration = 16000, 30.0
    t = np.arange(int(duration * sr)) / sr
    sf.write(tmp_path / "ramp.wav", (t / 100).astype(np.float32), sr, subtype="FLOAT")  # sample value = its time / 100
    run = Run("ramp", tmp_path / "ramp.wav", RunTiming(tr=2.0, n_trs=15), duration_s=duration)
    stub = RampStub(sr)
    ex = Extraction("sliding", sliding_context_s=3.2, sliding_stride_s=0.5, batch=7)
    feats = sliding_features(stub, run, [0, 1], ex)
    assert feats.shape == (2, 15, 1)
    ends = np.arange(1, 61) * 0.5  # snippet end times 0.5 .. 30 s
    assert stub.lengths == [int(3.2 * sr)] * len(ends)  # every snippet carries the full causal context
    last = (ends - 1 / sr) / 100  # the stub's last frame holds the snippet's last sample
    expected = lanczos_resample(last[:, None], ends, run.timing.times(), window=3)[:, 0]
    np.testing.assert_allclose(feats[0, :, 0], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(feats[1], 2 * feats[0], rtol=1e-5)
    inner = slice(3, 12)  # away from the run edges, the low-passed ramp is a scaled copy of the TR times
    ratio = feats[0, inner, 0] / run.timing.times()[inner]
    assert np.ptp(ratio) < 0.01 * ratio.mean()


def test_region_bars_only_when_regions_are_known(tmp_path):
    from braintune.evaluation.plots import plot_regions

    models = {"base": {"regions": {"STS": 0.1, "other": 0.05}}, "tuned": {"regions": {"STS": 0.3, "other": None}}}
    assert plot_regions(models, tmp_path / "regions.png").stat().st_size > 1000
    assert plot_regions({"base": {"layers": {}}}, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def write_bids_volumes(root: Path, participants=("sub-01", "sub-02"), tasks=("a", "b", "c"), n_trs=16, tr=1.5):
    """Three 24 s stories per participant, 4x4x3 random volumes, a 12-voxel mask."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    (root / "stimuli").mkdir(parents=True)
    for task in tasks:
        sf.write(root / "stimuli" / f"{task}.wav", rng.standard_normal(24 * 16000).astype(np.float32) * 0.1, 16000)
    for p in participants:
        func = root / p / "func"
        func.mkdir(parents=True)
        for task in tasks:
            stem = f"{p}_task-{task}_run-1"
            (func / f"{stem}_events.tsv").write_text(f"onset\tduration\tstim_file\n0.0\t24.0\t{task}.wav\n")
            img = nib.Nifti1Image(rng.standard_normal((4, 4, 3, n_trs)).astype(np.float32), np.eye(4))
            img.header.set_zooms((3, 3, 3, tr))
            nib.save(img, func / f"{stem}_space-MNI_desc-preproc_bold.nii.gz")
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1:3, 1:3, :] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), root / "mask.nii.gz")
    return mask


def test_bids_volume_alignment_writes_r_maps(tmp_path):
    import nibabel as nib

    from braintune.commands.alignment import alignment
    from braintune.data.formats import open_study

    mask = write_bids_volumes(tmp_path / "bids")
    base = [f"data.root={tmp_path / 'bids'}", "data.format=bids", f"data.bids.mask={tmp_path / 'bids' / 'mask.nii.gz'}",
            "data.heldout_participants=[]", "alignment.cache_dir=null", "alignment.layers=[1]", "alignment.delays=[1,2]"]
    runs = sorted(open_study(load_config(ROOT / "configs" / "demo.yaml", base).data).runs)
    cfg = load_config(ROOT / "configs" / "demo.yaml", base + [f"data.test_runs=[{runs[-1]}]", f"out_dir={tmp_path / 'out'}"])
    summary = alignment(cfg)
    maps = summary["brain_maps"]
    assert set(maps) == {"sub-01", "sub-02"}
    for p in maps:  # the mask's voxels as NIfTI, and the volume pictures
        assert {f"brain_maps/r_map_{p}{s}" for s in (".nii.gz", "_glass.png", "_slices.png")} <= set(maps[p]["files"])
    arrays = np.load(tmp_path / "out" / "alignment.npz")
    volume = np.asarray(nib.load(tmp_path / "out" / "brain_maps" / "r_map_sub-02.nii.gz").get_fdata())
    np.testing.assert_allclose(volume[mask.astype(bool)], arrays[f"sub-02/layer{summary['layer']}"], rtol=1e-5)


def test_compare_draws_differences_where_the_block_test_rejects(tmp_path):
    import nibabel as nib

    from braintune.commands.alignment import compare
    from braintune.data.formats import open_study

    mask = write_bids_volumes(tmp_path / "bids")
    base = [f"data.root={tmp_path / 'bids'}", "data.format=bids", f"data.bids.mask={tmp_path / 'bids' / 'mask.nii.gz'}",
            "data.heldout_participants=[]", "alignment.cache_dir=null", "alignment.layers=[1]", "alignment.delays=[1,2]",
            "alignment.efficiency_runs=[1]", "alignment.n_boot=64", "alignment.block_trs=4"]
    runs = sorted(open_study(load_config(ROOT / "configs" / "demo.yaml", base).data).runs)
    cfg = load_config(ROOT / "configs" / "demo.yaml", base + [f"data.test_runs=[{runs[-1]}]", f"out_dir={tmp_path / 'out'}",
                                                               "alignment.models=[base,untrained:base]"])
    summary = compare(cfg)
    out = tmp_path / "out"
    key = next(k for k in summary["tests"] if k.endswith(" - base"))
    per_target = np.load(out / summary["tests"][key]["per_target"])
    for p in ("sub-01", "sub-02"):
        name = next(f for f in summary["brain_maps"][key][p]["files"] if f.endswith("_difference.nii.gz"))
        volume = np.asarray(nib.load(out / name).get_fdata())[mask.astype(bool)]
        expected = np.where(per_target[f"{p}/reject_max"], per_target[f"{p}/diff"], np.nan)  # oracle: the saved test
        np.testing.assert_allclose(volume, expected, rtol=1e-5, atol=1e-6)
