"""Input attribution of brain predictions vs next-word prediction (issue 12), on tiny LMs built from configs.

Planted answers: a response driven by one kind of word two TRs back puts BA attribution on those words (not when
the responses are shuffled); a tiny GPT-2 trained on a bigram puts NWP attribution on the previous word; IG is
complete; Gradient×Input equals a finite difference; masking the top words hurts more than masking random ones.
The BA story uses a GPT-2 whose embedding rows are set so that the word kind lies on one direction (the ridge
must see it linearly); its random-init blocks add little to the residual stream.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from braintune.analysis import attribution as A
from braintune.analysis import attribution_context as C
from braintune.analysis.attribution_metrics import masking_check, positional_stats
from braintune.evaluation.encoding import RidgeEncoder
from braintune.evaluation.resample import zscore_runs

KIND, FILL = [f"kind{i}" for i in range(10)], [f"fill{i}" for i in range(30)]
N_TR, CONTEXT = 500, 40


def tokenizer(vocab, bert=False) -> PreTrainedTokenizerFast:
    """Offline WordPiece tokenizer (``##`` pieces make multi-token words); BERT specials when ``bert``."""
    ids = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *vocab])}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if bert:
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
            ("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]")


def gpt2(n_vocab, n_positions=256) -> GPT2LMHeadModel:
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=n_vocab, n_positions=n_positions,
                                      bos_token_id=0, eos_token_id=0)).eval()


def fit_head(model, story, responses):
    """The pipeline: per-TR features, z-scored, FIR ridge; the head maps raw features."""
    X = A.story_tr_features(model, story, layer=1, context_words=CONTEXT)
    enc = RidgeEncoder(cv=5).fit(zscore_runs(X), responses)
    return enc, X, A.RidgeHead.from_encoder(enc, X.mean(0), X.std(0))


@pytest.fixture(scope="module")
def planted():
    torch.manual_seed(0)
    tok = tokenizer(KIND + FILL)
    model = gpt2(len(tok))
    u = torch.zeros(32)
    u[0] = 1.0
    rows = torch.randn(len(tok), 32, generator=torch.Generator().manual_seed(0))
    rows[:, 0] = 0
    rows = rows / rows.norm(dim=1, keepdim=True)  # every word unit-norm; only kind words have a u component
    kind_ids = tok.convert_tokens_to_ids(KIND)
    rows[kind_ids] = 0.6 * rows[kind_ids] + 0.8 * u
    model.get_input_embeddings().weight.data.copy_(rows)
    rng = np.random.default_rng(0)
    is_kind = rng.random(N_TR * 4) < 0.25  # 4 words per 2 s TR, 0.5 s apart (the Harry Potter rate)
    words = [KIND[rng.integers(10)] if k else FILL[rng.integers(30)] for k in is_kind]
    story = A.tokenize_story(tok, words, np.arange(len(words)) * 0.5, 2.0, N_TR)
    drive = np.r_[0, 0, is_kind.reshape(N_TR, 4).sum(1)[:-2]].astype(float)  # kind words two TRs back
    Y = zscore_runs(drive[:, None] * rng.standard_normal(200)[None] + 0.5 * rng.standard_normal((N_TR, 200)))
    return dict(tok=tok, model=model, story=story, words=words, is_kind=is_kind, Y=Y, trs=np.arange(4, N_TR, 3))


@pytest.fixture(scope="module")
def bigram():
    """Tiny GPT-2 trained (150 Adam steps) on sequences where word i+1 = perm[word i] with p = 0.9."""
    torch.manual_seed(0)
    vocab = [f"w{i}" for i in range(20)]
    tok = tokenizer(vocab)
    ids = torch.tensor(tok.convert_tokens_to_ids(vocab))
    perm, rng = np.random.default_rng(1).permutation(20), np.random.default_rng(0)

    def sample(n, length):
        x = np.zeros((n, length), int)
        x[:, 0] = rng.integers(20, size=n)
        for j in range(1, length):
            x[:, j] = np.where(rng.random(n) < 0.9, perm[x[:, j - 1]], rng.integers(20, size=n))
        return x
    model = gpt2(len(tok), 64).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        x = ids[torch.as_tensor(sample(32, 24))]
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    words = [vocab[i] for i in sample(1, 400)[0]]
    return dict(model=model.eval(), story=A.tokenize_story(tok, words, np.arange(400) * 0.5, 2.0, 100), loss=loss.item())


def delayed_raw(X, delays):
    """(T, F) raw features -> (T, K, F) rows t - d (zeros before the run) and present (T, K)."""
    t = np.arange(len(X))[:, None] - np.asarray(delays)[None]
    return np.where((t >= 0)[..., None], X[np.clip(t, 0, None)], 0.0), t >= 0


@pytest.mark.parametrize("delays", [(1, 2, 3, 4), (0, 2, 5)])
def test_ridge_head_equals_encoder_predict_on_raw_features(delays):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 6)) * rng.uniform(0.5, 3, 6) + rng.uniform(-2, 2, 6)
    X[:, 2] = 1.5  # a constant column, z-scored to 0: the head must ignore it
    Y = rng.standard_normal((120, 5))
    enc = RidgeEncoder(delays=delays, cv=3, alpha_convention="himalaya", alphas=np.logspace(-2, 2, 5)).fit(
        zscore_runs(X), Y)
    head = A.RidgeHead.from_encoder(enc, X.mean(0), X.std(0))
    feats, present = delayed_raw(X, delays)
    out = head(torch.as_tensor(feats, dtype=torch.float32), torch.as_tensor(present)).numpy()
    np.testing.assert_allclose(out, enc.predict(zscore_runs(X)), atol=1e-5)
    sub = A.BrainObjective(head, Y, targets=[4, 1]).head  # target subset; the original head is untouched
    np.testing.assert_allclose(sub(torch.as_tensor(feats, dtype=torch.float32), torch.as_tensor(present)).numpy(),
                               out[:, [4, 1]], atol=1e-6)
    assert head.weight.shape[-1] == 5
    assert A.top_targets([0.1, np.nan, 0.5, 0.3], 2).tolist() == [2, 3]  # the BA target set: top-k by test r


def test_attribution_forward_reproduces_the_pipeline_prediction(planted):
    """With contexts covering the whole (short) story, the differentiable path = features -> z-score -> predict."""
    story = A.tokenize_story(planted["tok"], planted["words"][:120], np.arange(120) * 0.5, 2.0, 30)
    X = A.story_tr_features(planted["model"], story, layer=1, context_words=200)
    enc = RidgeEncoder(cv=3).fit(zscore_runs(X), planted["Y"][:30])
    head = A.RidgeHead.from_encoder(enc, X.mean(0), X.std(0))
    trs = np.arange(1, 30)
    b = A.build_batch(story, trs, enc.delays, context_words=200, max_tokens=256)
    with torch.no_grad():
        emb = planted["model"].get_input_embeddings()(b["input_ids"])
        feats = A.layer_features(planted["model"], emb, b["attention_mask"], b["pool"], layer=1)
        pred = head(feats, b["present"]).numpy()
    np.testing.assert_allclose(pred, enc.predict(zscore_runs(X))[trs], atol=1e-4)


def planted_share(att, story, is_kind):
    """Share of TRs (with kind words at t-2) whose top 10 % of context words hold >= 80 % of those words."""
    hits = []
    for row, t, last in zip(att.scores, att.trs, att.last_word):
        n = np.isfinite(row).sum()
        top = last - np.argsort(-np.abs(row[:n]))[:int(np.ceil(0.1 * n))]
        planted = np.flatnonzero((story.word_tr == t - 2) & is_kind)
        if len(planted):
            hits.append(np.isin(planted, top).mean() >= 0.8)
    return np.mean(hits), len(hits)


def test_ba_attribution_concentrates_on_the_planted_words(planted):
    enc, _, head = fit_head(planted["model"], planted["story"], planted["Y"])
    att = A.attribute(planted["model"], planted["story"], A.BrainObjective(head, planted["Y"], layer=1),
                      trs=planted["trs"], context_words=CONTEXT, batch_size=16)
    share, n = planted_share(att, planted["story"], planted["is_kind"])
    shuffled = planted["Y"][np.random.default_rng(1).permutation(N_TR)]
    _, _, head_s = fit_head(planted["model"], planted["story"], shuffled)
    att_s = A.attribute(planted["model"], planted["story"], A.BrainObjective(head_s, shuffled, layer=1),
                        trs=planted["trs"], context_words=CONTEXT, batch_size=16)
    share_s, _ = planted_share(att_s, planted["story"], planted["is_kind"])
    print(f"planted share {share:.3f} of {n} TRs (cv r {enc.cv_scores_.mean():.2f}); shuffled {share_s:.3f}")
    assert share >= 0.9 and share_s <= 0.3


def test_nwp_attribution_on_a_bigram_lm_is_on_the_previous_word(bigram):
    att = A.attribute(bigram["model"], bigram["story"], A.NextWordObjective(), context_words=24)
    mass = np.nan_to_num(np.abs(att.scores) / np.nansum(np.abs(att.scores), 1, keepdims=True))
    com = positional_stats(att.scores)["center_of_mass"]
    print(f"train loss {bigram['loss']:.3f}; mass at word 0 {mass[:, 0].mean():.3f}; CoM {com.mean():.3f}")
    assert mass[:, 0].mean() > 0.8 and np.mean(mass.argmax(1) == 0) >= 0.95 and com.mean() < 2.0  # uniform: 11.5


def objective_gap(model, story, objective, trs, context, max_tokens, mode, scale=None):
    """F(x) - F(0) straight from the forward function (no Captum), and F itself for a scaled embedding."""
    b = A.build_batch(story, trs, objective.delays, context, max_tokens, mode)
    f = A.objective_function(model, objective)
    args = [b[k] for k in A.BATCH_KEYS]
    with torch.no_grad():
        emb = model.get_input_embeddings()(b["input_ids"])
        if scale is not None:
            return f(emb * scale(b["word_pos"]).to(emb.dtype)[..., None], *args).numpy()
        return (f(emb, *args) - f(torch.zeros_like(emb), *args)).numpy()


def test_integrated_gradients_is_complete(bigram):
    """Sum of word attributions = F(x) - F(zero embeddings), within the 20-step quadrature error."""
    trs, obj = np.arange(10, 30, 2), A.NextWordObjective()
    gap = objective_gap(bigram["model"], bigram["story"], obj, trs, 24, 64, "causal")
    errs = []
    for steps in (20, 60):
        att = A.attribute(bigram["model"], bigram["story"], obj, trs=trs, method="ig", n_steps=steps, context_words=24)
        total = np.nansum(att.scores, 1)
        np.testing.assert_allclose(total - gap, att.delta, atol=1e-4)  # Captum's own delta agrees
        errs.append(np.abs(total - gap).max() / np.abs(gap).max())
    print(f"IG completeness error (max over TRs / max gap): 20 steps {errs[0]:.4f}, 60 steps {errs[1]:.5f}")
    assert errs[0] < 0.05 and errs[1] < 0.005


@pytest.mark.parametrize("case", ["nwp", "ba"])
def test_gradient_x_input_equals_a_finite_difference(case, bigram, planted):
    """GxI of word j = d/de F(x with word j's embedding scaled by 1 + e) at e = 0 (central difference)."""
    if case == "nwp":
        model, story, obj, ctx, eps = bigram["model"].double(), bigram["story"], A.NextWordObjective(), 24, 1e-4
    else:
        _, _, head = fit_head(planted["model"], planted["story"], planted["Y"])
        model, story, obj, ctx, eps = planted["model"], planted["story"], A.BrainObjective(
            head, planted["Y"], layer=1), CONTEXT, 1e-1  # float32 model: a larger step (MSE is quadratic in ŷ)
    t, mode = 40, "causal" if case == "nwp" else None
    try:
        att = A.attribute(model, story, obj, trs=[t], context_words=ctx)
        fd = []
        for j in range(8):
            f = [objective_gap(model, story, obj, [t], ctx, None, mode, lambda pos, s=s, j=j: 1 + s * (pos == j).double())
                 for s in (-eps, eps)]
            fd.append((f[1][0] - f[0][0]) / (2 * eps))
    finally:
        bigram["model"].float()
    np.testing.assert_allclose(att.scores[0, :8], fd, rtol=1e-3 if case == "nwp" else 1e-2, atol=1e-4 * np.abs(fd).max())


def test_checkpoint_skips_finished_trs_and_refuses_other_settings(bigram, tmp_path, monkeypatch):
    obj, seen = A.NextWordObjective(), []
    original = A._attribute_batch

    def spy(model, fwd, batch, *args):
        seen.extend(batch["trs"].tolist())
        return original(model, fwd, batch, *args)
    monkeypatch.setattr(A, "_attribute_batch", spy)
    first = A.attribute(bigram["model"], bigram["story"], obj, trs=np.arange(5, 11), context_words=24, batch_size=3,
                        checkpoint_dir=tmp_path)
    full = A.attribute(bigram["model"], bigram["story"], obj, trs=np.arange(5, 17), context_words=24, batch_size=3,
                       checkpoint_dir=tmp_path)
    assert seen == list(range(5, 11)) + list(range(11, 17)) and len(list(tmp_path.glob("shard_*.npz"))) == 4
    np.testing.assert_array_equal(full.scores[:6], first.scores)
    fresh = A.attribute(bigram["model"], bigram["story"], obj, trs=np.arange(5, 17), context_words=24)
    np.testing.assert_allclose(full.scores, fresh.scores, atol=1e-6)
    with pytest.raises(ValueError, match="other settings"):
        A.attribute(bigram["model"], bigram["story"], obj, trs=[5], method="ig", context_words=24,
                    checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"TRs \[0\] have no context words"):
        A.attribute(bigram["model"], bigram["story"], obj, trs=[0, 5], context_words=24)


def test_masked_lm_next_word_and_multi_token_words():
    """BERT: [CLS] context [MASK]x(next word's pieces) [SEP]; pieces averaged per word; specials get no score."""
    tok = tokenizer(["the", "cat", "play", "##ing", "run", "##s"], bert=True)
    words = ["the", "cat", "playing", "runs"] * 10
    story = A.tokenize_story(tok, words, np.arange(40) * 0.5, 2.0, 10)
    play, ing, mask = tok.convert_tokens_to_ids(["play", "##ing", "[MASK]"])
    assert story.prefix == (2,) and story.suffix == (3,) and story.word_tokens[2] == (play, ing)
    b = A.build_batch(story, [2], (1, 2), context_words=6, max_tokens=64, next_word="masked")
    ids, pos = b["input_ids"][0].tolist(), b["word_pos"][0].tolist()
    # context = words 2..7 (TR 1 ends at word 7): playing runs the cat playing runs, next word "the"
    assert ids[0] == 2 and ids[-2:] == [mask, 3] and pos[:4] == [-1, 5, 5, 4] and pos[-2:] == [-1, -1]
    assert b["labels"][0].tolist() == [tok.convert_tokens_to_ids("the")] and ids[b["pred_pos"][0, 0]] == mask
    # TR 1 = the cat playing runs: 1/4 per word, split over its pieces; TR 0 in context = playing runs
    np.testing.assert_allclose(b["pool"][0, 0, 1:11].numpy(), [0] * 4 + [1 / 4, 1 / 4] + [1 / 8] * 4)
    np.testing.assert_allclose(b["pool"][0, 1].numpy(), [0] + [1 / 4] * 4 + [0] * 8)
    short = A.tokenize_story(tok, ["the", "cat", "runs", "the", "playing"], np.arange(5) * 0.5, 2.0, 2)
    causal = A.build_batch(short, [1], (1,), context_words=6, max_tokens=64, next_word="causal")
    assert causal["input_ids"][0, 6:8].tolist() == [play, ing]  # [CLS] the cat run ##s the | play ##ing [SEP]
    assert causal["labels"][0].tolist() == [play, ing] and causal["label_w"][0].tolist() == [0.5, 0.5]
    assert causal["pred_pos"][0].tolist() == [5, 6]  # teacher forcing: each piece read one position earlier
    torch.manual_seed(0)
    bert = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=64)).eval()
    att = A.attribute(bert, story, A.NextWordObjective(delays=(1, 2), masked=True), context_words=6)
    assert att.trs[0] == 1 and np.isfinite(att.scores[0, :4]).all() and np.isnan(att.scores[0, 4:]).all()
    assert np.isfinite(att.scores[1:]).all() and (att.objective > 0).all()  # TR 1 had 4 context words, later 6


def test_context_is_capped_at_the_model_positions(bigram, caplog):
    C._log_cap.cache_clear()
    with caplog.at_level(logging.INFO, logger="braintune.analysis.attribution_context"):
        b = A.build_batch(bigram["story"], [80, 81], (1, 2, 3, 4), context_words=640, max_tokens=64)
    assert "exceed the model's 64 positions" in caplog.text
    assert b["input_ids"].shape[1] <= 63 and b["n_context"].tolist() == [63, 63]  # room kept for the next word


def test_negative_correlation_objective_sums_to_minus_T_times_mean_r(planted):
    from braintune.evaluation.metrics import correlation
    enc, X, head = fit_head(planted["model"], planted["story"], planted["Y"])
    trs = np.arange(4, N_TR)
    _, pred = A.evaluate_objective(planted["model"], planted["story"], A.BrainObjective(head, planted["Y"], layer=1),
                                   trs, context_words=CONTEXT)
    y = zscore_runs(planted["Y"][trs])
    obj = A.BrainObjective(head, np.r_[np.zeros((4, 200)), y], layer=1, kind="negcorr", pred_mean=pred.mean(0),
                           pred_std=pred.std(0))
    values, _ = A.evaluate_objective(planted["model"], planted["story"], obj, trs, context_words=CONTEXT)
    np.testing.assert_allclose(values.sum(), -len(trs) * correlation(y, pred).mean(), rtol=1e-4)


@pytest.mark.parametrize("case", ["ba", "nwp"])
def test_masking_the_top_words_hurts_more_than_random_words(case, planted, bigram):
    if case == "ba":
        _, _, head = fit_head(planted["model"], planted["story"], planted["Y"])
        model, story, obj, ctx = planted["model"], planted["story"], A.BrainObjective(head, planted["Y"], layer=1), 40
        trs = np.arange(4, N_TR, 2)
    else:
        model, story, obj, ctx, trs = bigram["model"], bigram["story"], A.NextWordObjective(), 24, None
    att = A.attribute(model, story, obj, trs=trs, context_words=ctx, batch_size=32)
    res = masking_check(model, story, obj, att, frac=0.01, context_words=ctx)
    print(case, res)
    sign = -1 if case == "ba" else 1  # r falls, cross-entropy rises
    assert sign * (res["top"] - res["original"]) > 2 * sign * (res["random"] - res["original"]) > -0.05


def test_next_word_loss_equals_cross_entropy_of_the_full_logits(bigram):
    """The ``logits_to_keep`` shortcut gives HF's own next-token cross-entropy (oracle: full logits + torch CE)."""
    trs = np.arange(20, 30)
    values, _ = A.evaluate_objective(bigram["model"], bigram["story"], A.NextWordObjective(), trs, context_words=24)
    b = A.build_batch(bigram["story"], trs, (1, 2, 3, 4), 24, 64, "causal")
    with torch.no_grad():
        logits = bigram["model"](input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    rows = torch.arange(len(trs))
    ce = torch.nn.functional.cross_entropy(logits[rows, b["pred_pos"][:, 0]], b["labels"][:, 0], reduction="none")
    np.testing.assert_allclose(values, ce.numpy(), rtol=1e-5)
