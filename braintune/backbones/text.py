"""Timed words [(onset_s, text)] per segment -> hidden states (B, L, T, D) on a ``rate_hz`` grid over the span.

A segment's words (``data.context_words`` words before the span, then the span's own words) are tokenized as one
sequence and encoded once; a word's vector is the mean of its sub-token states. Each word of the span is then
placed at the grid step holding its onset, and words sharing a step are summed (as TRIBE sums words into
2 Hz bins); steps without a word stay zero. ``TRPooling`` then averages the steps inside each TR window, so
a TR's feature is proportional to the sum of the word vectors whose onsets fall in its window.
Causal models (GPT-2, Llama) see only preceding words. Bidirectional ones (BERT) see the rest of the segment, unless
the inputs carry ``blocks`` (``data.timing.Blocks``): then a token sees the tokens of words whose onsets fall in its
own TR block or earlier ones (block-causal attention over words, ``backbones.band``). Whether a model is causal is
measured once at build (does changing a later token change an earlier one's state?), not looked up by name.
When a segment's tokens exceed the model's positions, the oldest context tokens are dropped and a warning logged:
how many are dropped depends on the segment's later words, so keep ``data.context_words`` + segment words below it.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerFast
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from ..data.modalities import WORDS
from ..data.timing import time_to_index
from . import band
from .hub import BackboneError, config_from_overrides, load_pretrained

log = logging.getLogger(__name__)

PREFIX_SPACE_TOKENIZERS = ("GPT2TokenizerFast", "RobertaTokenizerFast", "BartTokenizerFast")  # byte-level BPE


class TextBackbone(nn.Module):
    modalities = (WORDS,)
    lora_targets = ("c_attn", "q_proj", "v_proj", "query", "value")  # GPT-2, Llama, BERT attention projections

    def __init__(self, model: nn.Module, tokenizer, rate_hz: float = 10.0):
        super().__init__()
        if not tokenizer.is_fast:
            raise BackboneError(f"the tokenizer of {type(model).__name__} is not a fast tokenizer; word alignment needs one")
        if tokenizer.pad_token is None:  # GPT-2 / Llama ship without one; padded positions are masked anyway
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.model, self.tokenizer, self.frame_rate = model, tokenizer, rate_hz
        cfg = model.config
        self.hidden_size = cfg.hidden_size
        self.num_layers = cfg.num_hidden_layers + 1
        self.max_tokens = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 1024)
        self.causal = _is_causal(model, tokenizer)
        self.attention = [] if self.causal else band.install(model)
        self.future_reach_s = 0.0  # words enter at their onsets; attention is causal or block-causal

    def word_states(self, texts: list[list[str]], word_blocks: list[np.ndarray] | None = None) -> list[torch.Tensor]:
        """Per item, (L_all, n_words, D): every hidden state, each word the mean of its sub-tokens. ``word_blocks``
        (per item, the block of each word) makes a bidirectional model's attention block-causal over words."""
        enc = self.tokenizer(texts, is_split_into_words=True, return_tensors="pt", padding=True)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        keep = self.max_tokens  # longer sequences lose their oldest context tokens; the span's words come last
        if ids.shape[1] > keep:
            log.warning("a text segment has %d tokens, more than the model's %d positions: its oldest context tokens are "
                        "dropped (lower data.context_words or data.segment_trs)", ids.shape[1], keep)
        word_ids = [enc.word_ids(i)[-keep:] for i in range(len(texts))]
        ids, mask = ids[:, -keep:], mask[:, -keep:]
        device = next(self.model.parameters()).device
        if self.attention:
            band.set_band(self.attention, None if word_blocks is None else _token_band(word_ids, word_blocks, device))
        out = self.model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
        states = torch.stack(out.hidden_states, dim=1)  # (B, L_all, N_tok, D)
        result = []
        for i, words in enumerate(texts):
            avg = torch.zeros(len(words), ids.shape[1], device=device, dtype=states.dtype)
            for t, w in enumerate(word_ids[i]):
                if w is not None and mask[i, t]:
                    avg[w, t] = 1.0
            avg = avg / avg.sum(1, keepdim=True).clamp(min=1.0)
            result.append(torch.einsum("wt,ltd->lwd", avg, states[i]))  # (L_all, n_words, D)
        return result

    def forward(self, inputs: dict, layers: list[int] | None = None) -> torch.Tensor:
        """{WORDS: B lists of (onset_s from the span start, text), "span_s": (B,)} -> (B, L, T, D)."""
        words, span_s = inputs[WORDS], inputs["span_s"]
        layers = list(range(self.num_layers)) if layers is None else list(layers)
        n_steps = int(time_to_index(float(max(span_s)), self.frame_rate)) + 1
        device = next(self.model.parameters()).device
        out = torch.zeros(len(words), len(layers), n_steps, self.hidden_size, device=device)
        filled = [i for i, w in enumerate(words) if w]
        if not filled:
            return out
        blocks = inputs.get("blocks")
        word_blocks = None if blocks is None or self.causal else [
            np.searchsorted(blocks.ends_s[i], [max(t, 0.0) for t, _ in words[i]], side="right") for i in filled]
        states = self.word_states([[text for _, text in words[i]] for i in filled], word_blocks)
        for i, s in zip(filled, states):
            onsets = torch.tensor([t for t, _ in words[i]], dtype=torch.float64)
            placed = onsets >= 0  # negative onsets are context words
            steps = torch.as_tensor(time_to_index(onsets[placed].numpy(), self.frame_rate)).clamp(max=n_steps - 1).to(device)
            chosen = s[layers][:, placed.to(device)].to(out.dtype)  # (L, n_placed, D)
            out[i].index_add_(1, steps, chosen)
        return out

    def freeze_feature_encoder(self) -> None:
        """The token embeddings play the part of a speech model's feature encoder: kept as pretrained."""
        self.model.get_input_embeddings().requires_grad_(False)


def _token_band(word_ids: list[list], word_blocks: list[np.ndarray], device) -> band.FrameBand:
    """Token intervals: a token sees every token of its word's block and earlier blocks. Special tokens before the
    first word belong to block 0, those after the last word (and padding) to the last word's block."""
    blocks = []
    for ids, wb in zip(word_ids, word_blocks):
        per_token = [wb[w] if w is not None else -1 for w in ids]
        last = 0
        for t, b in enumerate(per_token):  # special tokens take the block of the word before them (0 at the start)
            per_token[t] = last if b < 0 else b
            last = per_token[t]
        blocks.append(np.asarray(per_token))
    blocks = np.stack(blocks)  # (B, N), non-decreasing along N
    hi = np.stack([np.searchsorted(b, b, side="right") for b in blocks])
    return band.FrameBand(torch.zeros_like(torch.as_tensor(hi), device=device), torch.as_tensor(hi, device=device))


@torch.no_grad()
def _is_causal(model: nn.Module, tokenizer) -> bool:
    """Whether a token's states ignore later tokens: change the last of three tokens and compare the first's."""
    device, n = next(model.parameters()).device, len(tokenizer)
    if n < 2:  # one token cannot tell; treat the model as bidirectional (block-causal attention bounds it either way)
        return False
    ids = torch.tensor([[0, 1, 2], [0, 1, 3]], device=device) % n
    was_training = model.training
    model.eval()
    first = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][:, 0]
    model.train(was_training)
    return bool(torch.allclose(first[0], first[1], atol=1e-6))


def word_tokenizer(vocab: list[str]) -> PreTrainedTokenizerFast:
    """An offline word-level tokenizer (one id per lower-cased word, ``[UNK]`` otherwise) for models built from config."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    words = sorted({w.lower() for w in vocab})
    ids = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def build_text(cfg) -> TextBackbone:
    """``backbone.arch: text``: a hub checkpoint (``name``) or, with ``name`` None, ``config.model_type`` built from config
    with the word-level tokenizer over ``text_vocab``."""
    if cfg.name is not None:
        tokenizer = AutoTokenizer.from_pretrained(cfg.name)
        if type(tokenizer).__name__ in PREFIX_SPACE_TOKENIZERS:  # pre-split words need a leading space to tokenize as in text
            tokenizer = AutoTokenizer.from_pretrained(cfg.name, add_prefix_space=True)
        return TextBackbone(load_pretrained(AutoModel, cfg.name), tokenizer, cfg.text_rate_hz)
    overrides = dict(cfg.config)
    model_type = overrides.pop("model_type", None)
    if model_type not in CONFIG_MAPPING:
        raise BackboneError(f"backbone.config.model_type '{model_type}' is not a transformers model type; e.g. gpt2, bert, llama")
    if not cfg.text_vocab:
        raise BackboneError("backbone.text_vocab is empty: a text model built from config (backbone.name null) needs the word list "
                            "for its offline tokenizer; or set backbone.name to a hub checkpoint")
    tokenizer = word_tokenizer(list(cfg.text_vocab))
    overrides.setdefault("vocab_size", len(tokenizer))
    known = CONFIG_MAPPING[model_type]().to_dict()
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):  # the hub defaults (e.g. 50256) lie outside this vocabulary
        if key in known:
            overrides.setdefault(key, tokenizer.pad_token_id)
    model = AutoModel.from_config(config_from_overrides(CONFIG_MAPPING[model_type], overrides, model_type))
    return TextBackbone(model, tokenizer, cfg.text_rate_hz)
