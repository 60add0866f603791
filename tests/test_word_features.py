"""Word-level features: each word's vector is the last word of its own window (its preceding context_words words), so
it never depends on later words; on the TR clock the causal rule sums exactly the words that ended in each TR's
window (by hand), Lanczos equals the resampler from word mid-times and records its reach; a speech backbone reads
the span up to each word's end."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from braintune.analysis.word_features import lookahead_s, word_features, word_windows, words_to_trs
from braintune.backbones import build_backbone
from braintune.config import load_config
from braintune.data.modalities import read_span
from braintune.data.study import Run
from braintune.data.timing import RunTiming
from braintune.data.words import Word
from braintune.evaluation.resample import lanczos_resample

VOCAB = ["low", "deep", "bass", "mid", "warm", "round", "high", "bright"]
TINY = ["backbone.arch=text", "backbone.finetune=frozen", f"backbone.text_vocab=[{', '.join(VOCAB)}]",
        "backbone.config={model_type: gpt2, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 64}"]


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_backbone(load_config(None, TINY).backbone).eval()


def _words(texts, step=0.5, dur=0.3):
    return [Word(i * step, i * step + dur, t) for i, t in enumerate(texts)]


def test_windows_end_at_each_word():
    assert word_windows(list("abcde"), 2) == [["a"], ["a", "b"], ["a", "b", "c"], ["b", "c", "d"], ["c", "d", "e"]]


def test_a_word_is_its_windows_last_word_and_never_sees_later_words(backbone):
    texts = ["low", "deep", "bass", "mid", "warm", "round", "high"]
    feats = word_features(backbone, _words(texts), [0, 2], context_words=3, batch_size=4)  # (2, 7, 16)
    with torch.no_grad():
        ref = backbone.word_states([texts[2:6]])[0][[0, 2], -1]  # word 5 with its 3 preceding words
    np.testing.assert_allclose(feats[:, 5], ref.numpy(), rtol=1e-5, atol=1e-6)
    changed = word_features(backbone, _words(texts[:5] + ["bright", "bright"]), [0, 2], 3)
    np.testing.assert_allclose(changed[:, :5], feats[:, :5], rtol=1e-5, atol=1e-6)  # later words change nothing before
    context = word_features(backbone, _words(["high"] + texts[1:]), [2], 3)
    np.testing.assert_allclose(context[:, 4:], feats[[1], 4:], rtol=1e-5, atol=1e-6)  # out of every window from word 4
    assert not np.allclose(context[:, 1:4], feats[[1], 1:4])  # inside the window of words 1..3


def test_causal_tr_features_sum_the_words_that_ended_in_each_window():
    words = [Word(0.1, 0.5, "a"), Word(0.6, 1.9, "b"), Word(2.0, 2.2, "c"), Word(2.5, 4.0, "d"), Word(4.5, 4.9, "e")]
    feats = np.arange(5, dtype=float)[None, :, None] * np.ones((2, 1, 3))  # word k -> value k, 2 layers, D = 3
    out = words_to_trs(feats, words, np.array([2.0, 4.0, 6.0]))  # windows [0, 2), [2, 4), [4, 6)
    # ends 0.5, 1.9 -> TR 0; 2.2 -> TR 1 (4.0 ends exactly at t=4: not yet heard in [2, 4)); 4.0, 4.9 -> TR 2
    np.testing.assert_allclose(out[0, :, 0], [0 + 1, 2, 3 + 4])
    assert out.shape == (2, 3, 3) and lookahead_s("causal", words, 2.0) == 0.0


def test_lanczos_from_mid_times_and_its_reach():
    words = [Word(0.1 + 0.7 * i, 0.5 + 0.7 * i, "w") for i in range(20)]
    feats = np.random.default_rng(0).standard_normal((3, 20, 4))
    times = np.arange(1.0, 14.0, 2.0)
    out = words_to_trs(feats, words, times, "lanczos")
    mids = np.array([(w.start_s + w.end_s) / 2 for w in words])
    ref = lanczos_resample(feats.transpose(1, 0, 2).reshape(20, 12), mids, times, window=3)
    np.testing.assert_allclose(out, ref.reshape(len(times), 3, 4).transpose(1, 0, 2), rtol=1e-5, atol=1e-6)
    assert lookahead_s("lanczos", words, 2.0) == pytest.approx(3 * 2.0 + 0.2)  # 3 lobes of one TR + half a word
    with pytest.raises(ValueError, match="causal"):
        words_to_trs(feats, words, times, "nearest")


def test_a_speech_backbone_reads_the_span_up_to_each_words_end(tmp_path):
    cfg = load_config(None, ["backbone.arch=wav2vec2", "backbone.finetune=frozen",
                             "backbone.config={conv_dim: [16,16,16,16,16,16,16], hidden_size: 16, num_hidden_layers: 1, "
                             "num_attention_heads: 2, intermediate_size: 32, num_conv_pos_embeddings: 16, "
                             "num_conv_pos_embedding_groups: 2}"])
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone, cfg.data).eval()
    wav = tmp_path / "run.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32) * 0.1, 16000)
    run = Run("run", wav, RunTiming(1.0, 3, 0.5), 3.0)
    words = _words(["a", "b", "c", "d"], step=0.6, dur=0.4)
    feats = word_features(model, words, [0, 1], context_words=1, run=run)
    assert feats.shape == (2, 4, 16) and np.isfinite(feats).all()
    later = word_features(model, words[:3] + [Word(1.8, 2.9, "d")], [0, 1], context_words=1, run=run)
    np.testing.assert_allclose(later[:, :3], feats[:, :3], rtol=1e-5, atol=1e-6)  # a later word changes no earlier one
    with pytest.raises(ValueError, match="pass the run"):
        word_features(model, words, [0], 1)



def test_a_speech_word_is_read_from_its_contexts_first_onset_to_its_own_end(tmp_path, monkeypatch):
    """Planted spans: with one word of context, word i is read over [onset of word i - 1, end of word i]."""
    import braintune.analysis.word_features as wf

    cfg = load_config(None, ["backbone.arch=wav2vec2", "backbone.finetune=frozen",
                             "backbone.config={conv_dim: [16,16,16,16,16,16,16], hidden_size: 16, num_hidden_layers: 1, "
                             "num_attention_heads: 2, intermediate_size: 32, num_conv_pos_embeddings: 16, "
                             "num_conv_pos_embedding_groups: 2}"])
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone, cfg.data).eval()
    wav = tmp_path / "run.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32) * 0.1, 16000)
    spans = []

    def spy(run, start, end, spec):
        spans.append((start, end))
        return read_span(run, start, end, spec)

    monkeypatch.setattr(wf, "read_span", spy)
    word_features(model, _words(["a", "b", "c", "d"], step=0.6, dur=0.4), [1], context_words=1,
                  run=Run("run", wav, RunTiming(1.0, 3, 0.5), 3.0))
    np.testing.assert_allclose(spans, [(0.0, 0.4), (0.0, 1.0), (0.6, 1.6), (1.2, 2.2)])
