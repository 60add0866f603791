"""Text backbone: words at known onsets land on the right grid steps, context changes word states (causal),
span/context word selection, and on synthetic stories whose signal is driven by word identity, alignment of
a tiny GPT-2 rises with brain-tuning."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from braintune.backbones import build_backbone
from braintune.commands.train import train
from braintune.config import load_config
from braintune.data.modalities import span_words
from braintune.data.words import Word

VOCAB = ["low", "deep", "bass", "mid", "warm", "round", "high", "bright", "clear", "top", "sharp", "thin"]
TINY = ["backbone.arch=text", "backbone.finetune=full", "backbone.freeze_feature_encoder=false",
        "backbone.config={model_type: gpt2, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 128}",
        f"backbone.text_vocab=[{', '.join(VOCAB)}]"]


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_backbone(load_config(None, TINY).backbone).eval()


def test_words_are_placed_at_their_onset_steps_and_summed(backbone):
    words = [(-0.5, "low"), (0.05, "mid"), (0.31, "high"), (0.35, "top"), (1.0, "thin")]
    with torch.no_grad():
        out = backbone({"words": [words], "span_s": np.array([1.5])}, [2])[0, 0]  # (T, D)
        states = backbone.word_states([[t for _, t in words]])[0][2]  # (n_words, D)
    assert out.shape == (16, 16)  # 10 Hz grid over 1.5 s: steps 0..15
    nonzero = torch.nonzero(out.abs().sum(1) > 0).flatten().tolist()
    assert nonzero == [0, 3, 10]  # 0.05 s -> step 0, 0.31 and 0.35 s -> step 3, 1.0 s -> step 10
    torch.testing.assert_close(out[3], states[2] + states[3])  # words sharing a step are summed
    torch.testing.assert_close(out[10], states[4])


def test_word_vector_is_mean_of_its_tokens_and_context_matters(backbone):
    with torch.no_grad():
        ids = backbone.tokenizer(["mid high"], return_tensors="pt")["input_ids"]
        ref = backbone.model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]  # (2, D)
        states = backbone.word_states([["mid", "high"]])[0][-1]
        with_context = backbone.word_states([["low", "bass", "mid", "high"]])[0][-1]
    torch.testing.assert_close(states, ref)
    assert not torch.allclose(with_context[2:], states)  # preceding words change a causal model's states


def test_span_words_keeps_context_before_the_span():
    words = tuple(Word(t, t + 0.2, f"w{i}") for i, t in enumerate(np.arange(0.0, 10.0, 1.0)))
    got = span_words(words, 4.0, 7.0, context_words=2)
    assert [t for _, t in got] == ["w2", "w3", "w4", "w5", "w6"]
    assert [round(o, 6) for o, _ in got] == [-2.0, -1.0, 0.0, 1.0, 2.0]


def test_unknown_model_type_is_refused():
    from braintune.backbones import BackboneError

    with pytest.raises(BackboneError, match="model_type"):
        build_backbone(load_config(None, TINY + ["backbone.config={model_type: nope}"]).backbone)


def test_text_alignment_rises_with_tuning(tmp_path):
    cfg = load_config("configs/demo_story_text.yaml", [
        f"out_dir={tmp_path / 'run'}", f"data.root={tmp_path / 'data'}", "trainer.max_epochs=10",
        "data.synthetic.stories=4", "data.synthetic.story_seconds=120.0", "data.synthetic.participants=2",
        "data.synthetic.targets=[32, 32]", "alignment.layers=[2]"])
    summary = train(cfg)
    before, after = summary["alignment"]["before"]["mean_r"], summary["alignment"]["after"]["mean_r"]
    assert after > before + 0.01, (before, after)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["alignment"]["after"]["mean_r"] == pytest.approx(after)


def test_bert_builds_and_gpt2_lora_trains_only_adapters():
    bert = build_backbone(load_config(None, TINY + [
        "backbone.config={model_type: bert, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2,"
        " intermediate_size: 32}"]).backbone)
    out = bert({"words": [[(0.1, "low"), (0.5, "MID"), (0.7, "unknownword")], []], "span_s": np.array([1.0, 0.8])}, [1])
    assert out.shape == (2, 1, 11, 16) and out[1].abs().sum() == 0  # an item without words stays zero
    gpt2 = build_backbone(load_config(None, TINY + ["backbone.finetune=lora", "backbone.lora.target_modules=[c_attn]"]).backbone)
    trainable = [n for n, p in gpt2.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
