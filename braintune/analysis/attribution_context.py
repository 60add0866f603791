"""A run's timed words and a tokenizer in; the attribution contexts out: one right-padded batch of token ids per set
of TRs, with the pooling weights that turn token states into per-TR word features and the next word's labels
(Proietti, Capobianco & Toneva 2025; analysis_methods.md §3.5).

A word belongs to TR ``j`` when its time lies in ``[start_s + j·tr_s, start_s + (j + 1)·tr_s)``. `story_from_words`
uses each word's *end* and ``start_s`` = the first TR's time minus one TR, so TR ``j`` holds the words that ended in
``[t_j - TR, t_j)``: the causal rule of ``analysis.word_features.words_to_trs``. The context of TR ``t`` ends at the
last word of TR ``t - min(delays)``, so nothing in it had not ended ``min(delays)`` TRs before ``t``.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from braintune.data.timing import RunTiming, time_to_index
from braintune.data.words import Word

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Story:
    """One run's words tokenized once: sub-token ids per word, each word's TR, and the tokenizer's special ids."""
    word_tokens: tuple
    word_tr: np.ndarray  # (n_words,)
    n_trs: int
    prefix: tuple
    suffix: tuple
    pad_id: int
    mask_id: int | None


def tokenize_story(tokenizer, words, times_s, tr_s: float, n_trs: int, start_s: float = 0.0) -> Story:
    """Words (strings) with a time each in seconds -> `Story`; a word belongs to the TR ``[start_s + j·tr_s, +tr_s)``.

    The words are tokenized once, as pre-split words (byte-level BPE tokenizers such as GPT-2's need
    ``add_prefix_space=True``, as `backbones.text` loads them); special tokens are taken from the tokenizer.
    """
    times = np.asarray(times_s, np.float64)
    if len(times) != len(words) or np.any(np.diff(times) < 0):
        raise ValueError(f"tokenize_story: {len(words)} words and {len(times)} times; give one time per word, "
                         f"in increasing order.")
    enc = tokenizer(list(words), is_split_into_words=True, add_special_tokens=False)
    per_word = [[] for _ in words]
    for tok, w in zip(enc["input_ids"], enc.word_ids()):
        per_word[w].append(int(tok))
    probe = tokenizer([str(words[0])], is_split_into_words=True)
    marks = probe.word_ids()
    first = marks.index(0)
    last = len(marks) - marks[::-1].index(0)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Story(tuple(tuple(t) for t in per_word), np.asarray(time_to_index(times, 1.0 / tr_s, start_s)).reshape(-1),
                 int(n_trs), tuple(probe["input_ids"][:first]), tuple(probe["input_ids"][last:]), int(pad),
                 tokenizer.mask_token_id)


def story_from_words(tokenizer, words: Sequence[Word], timing: RunTiming) -> Story:
    """A run's words (``data.modalities.load_words``) on its TR clock: TR ``j`` holds the words that *ended* in
    ``[t_j - TR, t_j)`` (``t_j`` the middle of volume ``j``), so features never hold a word still being spoken at the
    TR's time. Words ending after the last TR belong to no TR and enter no context (one may be the next word that
    the NWP objective predicts)."""
    ends = np.maximum.accumulate(np.array([w.end_s for w in words], np.float64))  # overlapping words keep time order
    return tokenize_story(tokenizer, [w.text for w in words], ends, timing.tr, timing.n_trs,
                          timing.first_tr_s - timing.tr)


def context_end(story: Story, trs, delays) -> np.ndarray:
    """Index of the last context word for each TR (the last word of TR ``t - min(delays)``; -1 if none)."""
    return np.searchsorted(story.word_tr, np.asarray(trs) - min(delays), side="right") - 1


def default_trs(story: Story, delays, next_word: bool = False) -> np.ndarray:
    """TRs with a context (and, for NWP, a next word after it), from ``min(delays)`` on."""
    trs = np.arange(min(delays), story.n_trs)
    end = context_end(story, trs, delays)
    return trs[(end >= 0) & ((not next_word) | (end + 1 < len(story.word_tokens)))]


@functools.cache
def _log_cap(context_words: int, max_tokens: int) -> None:
    log.info("attribution: %d-word contexts exceed the model's %d positions for some TRs; their oldest words are "
             "dropped", context_words, max_tokens)


def _item(story: Story, t: int, end: int, delays, context_words: int, max_tokens, next_word, swap: dict):
    """One context: token ids, distance-from-end of each token's word (-1: none), pool rows, next-word labels."""
    start = max(0, end - context_words + 1)
    toks = [list(swap.get(w, story.word_tokens[w])) for w in range(start, end + 1)]
    lens = np.array([len(x) for x in toks], dtype=np.int64)
    if max_tokens is not None:  # room for the specials and the longest next word, so BA and NWP contexts match
        room = max_tokens - len(story.prefix) - len(story.suffix) - max(map(len, story.word_tokens))
        fit = max(1, int(np.searchsorted(np.cumsum(lens[::-1]), room, side="right")))  # newest words that fit
        if fit < len(lens):
            _log_cap(context_words, max_tokens)
            start, toks, lens = end + 1 - fit, toks[-fit:], lens[-fit:]
    offs = len(story.prefix) + np.concatenate([[0], np.cumsum(lens)])
    ids = list(story.prefix) + [i for x in toks for i in x]
    pos = [-1] * len(story.prefix) + np.repeat(end - np.arange(start, end + 1), lens).tolist()
    pool, tr_ctx = np.zeros((len(delays), len(ids))), story.word_tr[start:end + 1]
    for k, d in enumerate(delays):
        sel = np.flatnonzero((tr_ctx == t - d) & (lens > 0))
        for j in sel:
            pool[k, offs[j]:offs[j + 1]] = 1.0 / (len(sel) * lens[j])
    pred, labels = [], []
    if next_word is not None and end + 1 < len(story.word_tokens):
        labels = list(story.word_tokens[end + 1])
        pred = [len(ids) + i - (next_word == "causal") for i in range(len(labels))]
        ids += [story.mask_id] * len(labels) if next_word == "masked" else labels
        pos += [-1] * len(labels)
    return ids + list(story.suffix), pos + [-1] * len(story.suffix), pool, pred, labels, end - start + 1


def build_batch(story: Story, trs, delays, context_words: int = 640, max_tokens=None, next_word=None,
                overrides=None) -> dict:
    """Right-padded contexts for ``trs``; ``next_word`` in {None, "causal", "masked"}; ``overrides[i]`` maps word
    index -> replacement token ids in context i.

    Returns a dict of tensors: input_ids, attention_mask, word_pos (B, N); pool (B, K, N) (token weights giving the
    mean of word means per TR ``t - delays[k]``); present (B, K); trs, last_word, n_context (B,); pred_pos, labels,
    label_w (B, M) (positions whose logits score the next word's tokens, their ids and weights 1/M_i).
    """
    trs = np.asarray(trs, dtype=np.int64)
    items = [_item(story, int(t), int(e), delays, context_words, max_tokens, next_word, (overrides or {})[i]
                   if overrides else {}) for i, (t, e) in enumerate(zip(trs, context_end(story, trs, delays)))]
    n, m, b = max(len(it[0]) for it in items), max(1, max(len(it[3]) for it in items)), len(items)
    out = {"input_ids": torch.full((b, n), story.pad_id), "attention_mask": torch.zeros(b, n, dtype=torch.long),
           "word_pos": torch.full((b, n), -1), "pool": torch.zeros(b, len(delays), n),
           "pred_pos": torch.zeros(b, m, dtype=torch.long), "labels": torch.zeros(b, m, dtype=torch.long),
           "label_w": torch.zeros(b, m)}
    for i, (ids, pos, pool, pred, labels, _) in enumerate(items):
        out["input_ids"][i, :len(ids)], out["attention_mask"][i, :len(ids)] = torch.tensor(ids), 1
        out["word_pos"][i, :len(pos)] = torch.tensor(pos)
        out["pool"][i, :, :pool.shape[1]] = torch.as_tensor(pool)
        if labels:
            out["pred_pos"][i, :len(pred)], out["labels"][i, :len(labels)] = torch.tensor(pred), torch.tensor(labels)
            out["label_w"][i, :len(labels)] = 1.0 / len(labels)
    out["present"] = torch.as_tensor(trs[:, None] - np.asarray(delays)[None] >= 0)
    out["trs"] = torch.as_tensor(trs)
    out["last_word"] = torch.as_tensor(context_end(story, trs, delays))
    out["n_context"] = torch.tensor([it[5] for it in items])
    return out
