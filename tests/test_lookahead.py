"""The look-ahead bound, proved the way it can fail: change the stimulus after time T, re-extract, and every row whose
pooling window ends at or before T − the recorded bound is unchanged, while rows well after T change — in training's
forward pass and in evaluation, for speech (group-normalised CNN + a positional convolution wider than the tolerance),
audio-video and bidirectional text backbones. The same comparison with full attention is the negative control: it
must see the change before T (otherwise the test could pass by accident).

Run-level normalisation statistics are computed once per run and frozen: both versions of the stimulus are
normalised with the original run's (``run_audio_moments`` is pinned to it), as one run's statistics are one
constant of that run."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from braintune.backbones import build_backbone, speech
from braintune.config import load_config, to_dict
from braintune.data.dataset import SegmentDataset, collate_segments
from braintune.data.formats.synthetic_friends import write_movie
from braintune.data.modalities import load_words
from braintune.data.stimuli import run_audio_moments
from braintune.data.study import Run
from braintune.data.timing import RunTiming
from braintune.evaluation.features import Extraction, segment_features
from braintune.training.module import BrainTuner

SR, TR, N_TRS, SECONDS, CHANGE_S = 16000, 2.0, 18, 40.0, 21.0
TIMING = RunTiming(TR, N_TRS, 1.0)  # rows at 1, 3, ..., 35 s (the middle of each volume)
DEMO = "configs/demo.yaml"


def _audio_pair(tmp_path):
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(int(SECONDS * SR))).astype(np.float32)
    changed = wave.copy()
    changed[int(CHANGE_S * SR):] = (0.3 * rng.standard_normal(len(changed) - int(CHANGE_S * SR))).astype(np.float32)
    paths = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(paths[0], wave, SR, subtype="FLOAT")
    sf.write(paths[1], changed, SR, subtype="FLOAT")
    return paths


@pytest.fixture
def frozen_stats(monkeypatch):
    """Pin every run's normalisation statistics to those of the first run asked for (the original stimulus)."""
    first = []
    log_mel_max = speech._run_log_mel_max

    def pinned(path, *args):
        first.append(first[0] if first else path)
        return run_audio_moments(first[0], *args)

    def pinned_max(path, *args):
        first.append(first[0] if first else path)
        return log_mel_max(first[0], *args)

    monkeypatch.setattr(speech, "run_audio_moments", pinned)
    monkeypatch.setattr(speech, "_run_log_mel_max", pinned_max)


def _check(rows_a: np.ndarray, rows_b: np.ndarray, window_ends: np.ndarray, bound: float, atol: float = 1e-4) -> None:
    """rows (n_trs, ...) before and after the change; windows ending by CHANGE_S - bound must agree."""
    safe = window_ends <= CHANGE_S - bound
    late = window_ends >= CHANGE_S + 4.0
    assert safe.sum() >= 3 and late.sum() >= 3
    np.testing.assert_allclose(rows_a[safe], rows_b[safe], atol=atol, rtol=0)
    per_row = np.abs(rows_a[late] - rows_b[late]).reshape(late.sum(), -1).max(1)
    assert (per_row > 10 * atol).all(), per_row


def _leaks(rows_a, rows_b, window_ends, bound, atol: float = 1e-4) -> bool:
    safe = window_ends <= CHANGE_S - bound
    return bool(np.abs(rows_a[safe] - rows_b[safe]).max() > 10 * atol)


def _extract(backbone, path, words=None, mode="bounded", chunk_s=SECONDS):
    run = Run("r", path, TIMING, SECONDS, words)
    ex = Extraction(mode=mode, chunk_s=chunk_s, past_s=4.0, context_s=4.0, lookahead_s=0.0)  # a chunk holds T
    with torch.no_grad():
        return segment_features(backbone.eval(), run, list(range(backbone.num_layers)), ex), ex


@pytest.mark.parametrize("arch", ["wav2vec2", "whisper"])
def test_evaluation_features_never_see_past_the_bound_speech(tmp_path, frozen_stats, arch):
    a, b = _audio_pair(tmp_path)
    cfg = load_config(DEMO) if arch == "wav2vec2" else load_config(None, [
        "backbone.arch=whisper", "backbone.finetune=full",
        "backbone.config={d_model: 16, encoder_layers: 2, decoder_layers: 1, encoder_attention_heads: 2, "
        "decoder_attention_heads: 2, encoder_ffn_dim: 32, decoder_ffn_dim: 32}"])
    torch.manual_seed(0)
    backbone = build_backbone(cfg.backbone, cfg.data)
    if arch == "wav2vec2":
        assert backbone.run_norm is not None and backbone.future_reach_s > 0.1  # group norm and a wide positional conv
    chunk = SECONDS if arch == "wav2vec2" else 24.0  # Whisper's window is 30 s
    fa, ex = _extract(backbone, a, chunk_s=chunk)
    fb, _ = _extract(backbone, b, chunk_s=chunk)
    bound = ex.record(backbone, TR)["lookahead_bound_s"]
    ends = TIMING.times()
    atol = 1e-5 if arch == "wav2vec2" else 1e-7  # a tiny random Whisper moves little (its leak: ~2e-5)
    _check(fa.transpose(1, 0, 2), fb.transpose(1, 0, 2), ends, bound, atol=atol)
    ua, _ = _extract(backbone, a, mode="unbounded", chunk_s=chunk)
    ub, _ = _extract(backbone, b, mode="unbounded", chunk_s=chunk)
    assert _leaks(ua.transpose(1, 0, 2), ub.transpose(1, 0, 2), ends, bound, atol=atol)  # the control sees the future


def _segments(cfg, backbone, runs: dict, tr_times_from: int = 0):
    items = []
    for name, run in runs.items():
        ds = SegmentDataset({name: run}, {("p", name): np.zeros((N_TRS, 3), np.float32)}, ["p"], segment_trs=N_TRS,
                            span=_span(cfg), context_s=cfg.data.context_s, spec=backbone.spec)
        items.append(ds[0])
    return collate_segments(items, ["p"], {"p": 3})


def _span(cfg):
    from braintune.pooling import TRPooling

    p = cfg.pooling
    return TRPooling(p.window_s, p.lag_s, p.n_windows, p.combine).span


@pytest.mark.parametrize("band_training", [True, False])
def test_training_forward_never_sees_past_the_bound(tmp_path, frozen_stats, band_training):
    a, b = _audio_pair(tmp_path)
    cfg = load_config(DEMO, [f"band.training={str(band_training).lower()}", "band.past_s=4.0", "data.context_s=4.0"])
    torch.manual_seed(0)
    module = BrainTuner(to_dict(cfg), {"p": 3}).eval()
    batch = _segments(cfg, module.backbone, {"a": Run("a", a, TIMING, SECONDS), "b": Run("b", b, TIMING, SECONDS)})
    with torch.no_grad():
        feats = module.features(batch).numpy()  # (2, K, F)
    bound = cfg.band.lookahead_s + module.backbone.future_reach_s
    ends = TIMING.times() - cfg.pooling.lag_s
    if band_training:
        _check(feats[0], feats[1], ends, bound)
    else:  # full attention over the 18-TR segment: early TRs see the change
        assert _leaks(feats[0], feats[1], ends, bound)


def test_audio_video_backbone_bound(tmp_path, frozen_stats):
    fps, size = 8, 32
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (int(SECONDS * fps), size, size, 3), dtype=np.uint8)
    wave = (0.1 * rng.standard_normal(int(SECONDS * SR))).astype(np.float32)
    frames_b, wave_b = frames.copy(), wave.copy()
    frames_b[int(CHANGE_S * fps):] = 255 - frames_b[int(CHANGE_S * fps):]
    wave_b[int(CHANGE_S * SR):] *= 3.0
    a = write_movie(tmp_path / "a.mkv", frames, wave)
    b = write_movie(tmp_path / "b.mkv", frames_b, wave_b)
    cfg = load_config("configs/demo_friends_av.yaml", [f"data.cache_dir={tmp_path / 'cache'}"])
    torch.manual_seed(0)
    backbone = build_backbone(cfg.backbone, cfg.data)
    fa, ex = _extract(backbone, a)
    fb, _ = _extract(backbone, b)
    bound = ex.record(backbone, TR)["lookahead_bound_s"]
    assert bound >= backbone.clip_frames / fps  # a VideoMAE clip's joint attention is declared, not hidden
    _check(fa.transpose(1, 0, 2), fb.transpose(1, 0, 2), TIMING.times(), bound, atol=2e-4)
    ua, _ = _extract(backbone, a, mode="unbounded")
    ub, _ = _extract(backbone, b, mode="unbounded")
    assert _leaks(ua.transpose(1, 0, 2), ub.transpose(1, 0, 2), TIMING.times(), bound)


def _textgrid(path, words):
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {SECONDS}",
             "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
             '        name = "word"', "        xmin = 0", f"        xmax = {SECONDS}", f"        intervals: size = {len(words)}"]
    for i, (t0, t1, w) in enumerate(words, 1):
        lines += [f"        intervals [{i}]:", f"            xmin = {t0}", f"            xmax = {t1}", f'            text = "{w}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bidirectional_text_backbone_bound(tmp_path):
    vocab = ["red", "green", "blue", "cat", "dog", "sun"]
    rng = np.random.default_rng(2)
    onsets = np.arange(0.2, SECONDS - 0.5, 0.7)
    words_a = [(float(t), float(t) + 0.3, vocab[rng.integers(3)]) for t in onsets]
    words_b = [(t0, t1, w if t0 < CHANGE_S else vocab[3 + rng.integers(3)]) for t0, t1, w in words_a]
    a, b = _textgrid(tmp_path / "a.TextGrid", words_a), _textgrid(tmp_path / "b.TextGrid", words_b)
    cfg = load_config(None, ["backbone.arch=text", "backbone.finetune=full", f"backbone.text_vocab=[{', '.join(vocab)}]",
                             "backbone.config={model_type: bert, hidden_size: 16, num_hidden_layers: 2, "
                             "num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 512}",
                             "data.context_words=8"])
    torch.manual_seed(0)
    backbone = build_backbone(cfg.backbone, cfg.data)
    assert not backbone.causal
    load_words.cache_clear()
    fa, ex = _extract(backbone, tmp_path / "silence.wav", a)
    fb, _ = _extract(backbone, tmp_path / "silence.wav", b)
    bound = ex.record(backbone, TR)["lookahead_bound_s"]
    _check(fa.transpose(1, 0, 2), fb.transpose(1, 0, 2), TIMING.times(), bound, atol=1e-6)
    ua, _ = _extract(backbone, tmp_path / "silence.wav", a, mode="unbounded")
    ub, _ = _extract(backbone, tmp_path / "silence.wav", b, mode="unbounded")
    assert _leaks(ua.transpose(1, 0, 2), ub.transpose(1, 0, 2), TIMING.times(), bound, atol=1e-6)


def test_impossible_bounds_are_refused_naming_the_key(tmp_path):
    from braintune.data.datamodule import build_datamodule
    from braintune.errors import ConfigError, DataError

    cfg = load_config(DEMO, [f"data.root={tmp_path / 'stories'}", "data.synthetic.stories=2", "data.synthetic.story_seconds=40",
                             "data.synthetic.participants=2", "data.synthetic.targets=[4,4]", "data.heldout_participants=[]",
                             "band.lookahead_s=20.0"])
    with pytest.raises(DataError, match=r"band.lookahead_s is 20.0 s .*=8 TRs lasts 16.00 s; allowed: 0 <= band.lookahead_s < 16.00"):
        build_datamodule(cfg, _span(cfg))
    with pytest.raises(ConfigError, match="band.past_s"):
        load_config(DEMO, ["band.past_s=-1"])
    a, _ = _audio_pair(tmp_path)
    backbone = build_backbone(load_config(DEMO).backbone)
    from braintune.evaluation.features import sliding_features

    with pytest.raises(ConfigError, match="alignment.sliding_context_s is 1.0 s, shorter than one TR"):
        sliding_features(backbone, Run("r", a, TIMING, SECONDS), [0], Extraction(mode="sliding", sliding_context_s=1.0))
