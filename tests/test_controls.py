"""Model controls (untrained, shuffled, no_positions, trained_on) and the control LMs (python -m braintune.lm train):
what each control changes and what it keeps, on tiny GPT-2 / Llama / wav2vec2 models built from configs; the corpora;
LM training that resumes and becomes a model entry; and on a planted story whose responses follow the sentences'
topic, a model trained by braintune on that language aligns better than the same architecture untrained."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from planted_story import VOCAB, one_thread, sentences, write_planted_story

from braintune.analysis import corpora
from braintune.config import load_config
from braintune.errors import ConfigError
from braintune.models import load_model

GPT2 = ["backbone.arch=text", "backbone.finetune=frozen", f"backbone.text_vocab=[{', '.join(VOCAB)}]",
        "backbone.config={model_type: gpt2, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 64}", "trainer.accelerator=cpu"]
LLAMA = GPT2[:3] + ["backbone.config={model_type: llama, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, "
                    "num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 64}", "trainer.accelerator=cpu"]
WAV2VEC2 = ["backbone.arch=wav2vec2", "backbone.finetune=frozen", "trainer.accelerator=cpu",
            "backbone.config={conv_dim: [16,16,16,16,16,16,16], hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, "
            "intermediate_size: 32, num_conv_pos_embeddings: 16, num_conv_pos_embedding_groups: 2}"]


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    with one_thread():
        yield


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.backbone.named_parameters()}


def test_untrained_is_the_same_architecture_freshly_and_reproducibly_initialised():
    cfg = load_config(None, GPT2)
    base, fresh = _params(load_model("base", cfg)), load_model("untrained:base", cfg)
    again = _params(load_model("untrained:base", cfg))
    new = _params(fresh)
    assert new.keys() == base.keys() and all(new[k].shape == base[k].shape for k in base)
    changed = [k for k in base if not torch.equal(new[k], base[k])]
    assert len(changed) >= len([k for k in base if base[k].std() > 0]) - 1  # every random tensor is new (LN: 1, 0)
    assert all(torch.equal(new[k], again[k]) for k in base)  # seeded
    assert fresh.name == "untrained:base" and fresh.key != load_model("base", cfg).key
    wte = new["model.wte.weight"]
    assert abs(float(wte.std()) - 0.02) < 0.005  # GPT-2's own init scheme (initializer_range 0.02), not torch's


def test_shuffled_permutes_each_tensor_and_keeps_its_values():
    cfg = load_config(None, GPT2)
    base, shuffled = _params(load_model("base", cfg)), _params(load_model("shuffled:base", cfg))
    for k, v in base.items():
        torch.testing.assert_close(torch.sort(shuffled[k].flatten()).values, torch.sort(v.flatten()).values)
    assert not torch.equal(shuffled["model.wte.weight"], base["model.wte.weight"])
    assert not torch.equal(shuffled["model.h.0.attn.c_attn.weight"], base["model.h.0.attn.c_attn.weight"])


def _states(model, words) -> torch.Tensor:
    with torch.no_grad():
        return model.backbone.word_states([words])[0]  # (L, n_words, D)


def test_no_positions_zeroes_gpt2_position_table_and_changes_nothing_else():
    """Position-sensitive input: one word repeated. Without positions every copy has the same states at every layer
    (a causal model then averages identical values); with GPT-2's position table they differ."""
    cfg = load_config(None, GPT2)
    base, blind = load_model("base", cfg), load_model("no_positions:base", cfg)
    words = ["cat"] * 6
    assert float(_states(base, words).std(dim=1).max()) > 1e-3
    assert float(_states(blind, words).std(dim=1).max()) < 1e-5
    before, after = _params(base), _params(blind)
    assert [k for k in before if not torch.equal(before[k], after[k])] == ["model.wpe.weight"]
    assert float(after["model.wpe.weight"].abs().max()) == 0.0


def test_no_positions_disables_llama_rotation_and_changes_nothing_else():
    """Position-sensitive input: the same words before the last one, in two orders. After one attention layer a
    model without positions sees them as a bag (the last word's layer-1 state is the same); rotary angles tell the
    orders apart. A word at position 0 (rotation by 0) and every weight are unchanged."""
    cfg = load_config(None, LLAMA)
    base, blind = load_model("base", cfg), load_model("no_positions:base", cfg)
    a, b = ["cat", "dog", "tree", "river", "lamp"], ["tree", "cat", "river", "dog", "lamp"]
    assert not torch.allclose(_states(base, a)[1, -1], _states(base, b)[1, -1], atol=1e-5)
    torch.testing.assert_close(_states(blind, a)[1, -1], _states(blind, b)[1, -1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_states(base, ["cat"]), _states(blind, ["cat"]))
    assert all(torch.equal(x, y) for x, y in zip(_params(base).values(), _params(blind).values()))


def test_no_positions_bypasses_the_wav2vec2_positional_convolution():
    """The encoder's input (what its first layer norm receives) is the projected CNN features alone, where the base
    model adds the positional convolution of them; every weight is kept."""
    cfg = load_config(None, WAV2VEC2)
    base, blind = load_model("base", cfg), load_model("no_positions:base", cfg)
    inputs = {"audio": torch.randn(1, 16000), "start_s": np.zeros(1), "span_s": np.ones(1)}
    seen = {}
    for name, m in (("base", base), ("blind", blind)):
        enc = m.backbone.model.encoder
        hooks = [enc.pos_conv_embed.register_forward_hook(lambda mod, args, out, n=name: seen.update({f"{n}_in": args[0]})),
                 enc.layer_norm.register_forward_hook(lambda mod, args, out, n=name: seen.update({f"{n}_norm": args[0]}))]
        with torch.no_grad():
            seen[f"{name}_h"] = m.backbone(inputs)
        for h in hooks:
            h.remove()
    torch.testing.assert_close(seen["blind_in"], seen["base_in"])  # the same CNN features reach the encoder
    torch.testing.assert_close(seen["blind_norm"], seen["blind_in"])  # + 0: the positional term is gone
    with torch.no_grad():
        pos = base.backbone.model.encoder.pos_conv_embed(seen["base_in"])
    torch.testing.assert_close(seen["base_norm"], seen["base_in"] + pos)
    assert not torch.allclose(seen["base_h"], seen["blind_h"])
    assert all(torch.equal(a, b) for a, b in zip(_params(base).values(), _params(blind).values()))


def test_controls_refuse_what_they_cannot_do(tmp_path):
    cfg = load_config(None, GPT2)
    with pytest.raises(ConfigError, match="lm.json"):
        load_model(f"trained_on:{tmp_path}", cfg)  # a directory that no LM run wrote
    with pytest.raises(ConfigError, match="controls: .*no_positions.*shuffled.*trained_on.*untrained"):
        load_model("nonsense", cfg)


def test_corpora_have_their_structure():
    ids = corpora.nested_brackets(list(range(10, 20)), 4000, max_depth=4, seed=1)
    depth, deepest = 0, 0
    for i in ids:  # 10..14 open, 15..19 close the bracket of the same kind
        depth += 1 if i < 15 else -1
        deepest = max(deepest, depth)
        assert depth >= 0
    assert deepest == 4 and set(np.unique(ids)) == set(range(10, 20))
    stack = []
    for i in ids:
        if i < 15:
            stack.append(i)
        else:
            assert stack.pop() == i - 5  # every closing token matches the innermost open one
    counts = np.bincount(corpora.random_tokens([3, 4, 5, 6], 40000, seed=2))[3:]
    assert np.abs(counts / 40000 - 0.25).max() < 0.01
    words = "a b c d e f".split()
    assert sorted(corpora.shuffled_words(words, 3)) == sorted(words)
    assert "def " in corpora.code_text(5000) and len(corpora.code_text(5000)) == 5000


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
    """A planted story whose responses follow each sentence's topic (which half of the vocabulary its words come
    from), and an LM trained by braintune on 20k more words of that language."""
    from braintune.commands.lm import train_lm

    tmp = tmp_path_factory.mktemp("topics")
    root = write_planted_story(tmp / "story", language="topics")
    (tmp / "corpus.txt").write_text(" ".join(sentences(np.random.default_rng(7), 20000, "topics")[0]))
    base = GPT2 + ["data.format=lebel", f"data.root={root}", "trainer.progress_bar=false"]
    lm = ["lm.corpus=text", f"lm.text_file={tmp / 'corpus.txt'}", "lm.seq_len=32", "lm.batch_size=16", "lm.lr=3e-3",
          "lm.save_steps=100", "lm.log_steps=50", f"out_dir={tmp / 'lm'}"]
    first = train_lm(load_config(None, base + lm + ["lm.max_steps=100"]))
    record = train_lm(load_config(None, base + lm + ["lm.max_steps=150"]))  # resumes from checkpoint-100
    return tmp, base, first, record


def test_lm_training_resumes_logs_and_becomes_a_model_entry(topics):
    tmp, base, first, record = topics
    out = tmp / "lm"
    assert first["steps"] == 100 and first["resumed_from"] is None
    assert record["steps"] == 150 and record["resumed_from"].endswith("checkpoint-100")
    assert record["val_loss"] < first["val_loss"] < np.log(record["vocab_size"])  # it learns; below a uniform guess
    assert json.loads((out / "lm.json").read_text())["corpus"] == "text"
    assert (out / "braintune_config.yaml").is_file() and (out / "summary.json").is_file()
    metrics = list((out / "logs").glob("version_*/metrics.csv"))
    assert metrics and "lm/train/loss" in metrics[-1].read_text().splitlines()[0]
    model = load_model(f"trained_on:{out}", load_config(None, base))
    assert model.name.startswith("trained_on:text:") and model.backbone.num_layers == 3


def test_untrained_aligns_worse_than_the_trained_model_with_a_text_driven_signal(topics):
    """The topic is told by which words a sentence uses; the trained LM groups each topic's words (they share
    contexts), a fresh initialisation does not, so a linear map from its features to the topic fits worse."""
    from braintune.commands.similarity import similarity

    tmp, base, _, _ = topics
    scores = {}
    for control in ("trained_on", "untrained"):
        cfg = load_config(None, base + [f"checkpoint={control}:{tmp / 'lm'}", "alignment.delays=[2,3]", "alignment.cache_dir=null",
                                        "similarity.measures=[ridge]", "similarity.n_perm=19", f"out_dir={tmp / control}"])
        scores[control] = similarity(cfg)["measures"]["ridge"]["layers"]["all"]
    trained, untrained = (np.array(list(scores[c].values())) for c in ("trained_on", "untrained"))
    assert trained.min() > untrained.max() + 0.08, scores
