"""Timed words of a run + a backbone in, one vector per word and layer out (L, n_words, D), and those word
vectors on the run's TR clock (L, n_trs, D) (Oota et al. 2023's word-level features, analysis_methods.md §1.3).

Each word is encoded with its preceding ``context_words`` words (20 in the paper) as one input whose last word is
the word itself; its vector is the mean of the last word's sub-token states. Nothing after the word is ever in
the input, so a word's vector depends on that word and the ones before it, for causal and bidirectional models
alike. Text backbones (``word_states``) encode batches of windows; other backbones (speech, audio-video) read the
stimulus span from the window's first word onset to the word's end and average the frames inside the word.

To the TR clock (`words_to_trs`), two rules:

* ``causal`` (default): TR ``t`` sums the vectors of the words that *end* in ``[t - window_s, t)`` (window = the
  TR), braintune's input window with no lag. A TR never holds a word that had not ended by its time, so the
  features look ahead by 0 s, as every other braintune feature path is bounded.
* ``lanczos``: the paper's Huth-lab ``lanczosinterp2D`` from word mid-times (3 lobes, cutoff 1/TR). The kernel is
  symmetric: TR ``t`` also sums words whose mid-time is up to 3 TRs later (6 s at TR 2 s). `lookahead_s` gives
  that reach (+ half the longest word), and the summaries record it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from braintune.data.modalities import WORDS, backbone_inputs, collate_stimulus, read_span
from braintune.data.study import Run
from braintune.data.timing import window_to_slice
from braintune.data.words import Word
from braintune.evaluation.resample import lanczos_resample

TO_TRS = ("causal", "lanczos")
LANCZOS_LOBES = 3  # the reference pipelines' window (Huth lanczosinterp2D)


def word_windows(texts: Sequence[str], context_words: int) -> list[list[str]]:
    """Word ``i`` with its ``context_words`` predecessors (fewer at the start): n_words lists of <= context+1 words."""
    if context_words < 0:
        raise ValueError(f"word_windows: context_words={context_words} must be >= 0")
    return [list(texts[max(0, i - context_words): i + 1]) for i in range(len(texts))]


@torch.no_grad()
def word_features(backbone, words: Sequence[Word], layers: Sequence[int], context_words: int = 20,
                  batch_size: int = 64, run: Run | None = None, device="cpu") -> np.ndarray:
    """Per-word hidden states of ``layers``: (L, n_words, D) float32.

    Parameters
    ----------
    backbone : a braintune backbone; text ones need ``word_states(texts)``, others read ``run``'s stimulus
    words : the run's words in time order (``data.modalities.load_words``)
    layers : hidden-state indices (0 = embeddings)
    context_words : preceding words in each word's input
    batch_size : windows per forward pass (text backbones)
    run : the run the words belong to (needed by non-text backbones, which read its audio / video)
    """
    layers = list(layers)
    if not len(words):
        return np.zeros((len(layers), 0, backbone.hidden_size), np.float32)
    if WORDS in backbone.modalities and hasattr(backbone, "word_states"):
        windows = word_windows([w.text for w in words], context_words)
        out = []
        for i in range(0, len(windows), batch_size):
            states = backbone.word_states(windows[i: i + batch_size])  # per window (L_all, n_window_words, D)
            out.append(torch.stack([s[layers, -1] for s in states], dim=1).float().cpu().numpy())  # (L, b, D)
        return np.concatenate(out, axis=1)
    if run is None:
        raise ValueError(f"word_features: {type(backbone).__name__} reads {backbone.modalities}, not words; pass the "
                         f"run whose stimulus it reads")
    return np.stack([_span_word(backbone, run, words, i, layers, context_words, device) for i in range(len(words))],
                    axis=1)


def _span_word(backbone, run: Run, words: Sequence[Word], i: int, layers: list[int], context_words: int,
               device) -> np.ndarray:
    """(L, D): frames inside word ``i`` of the span from its context's first onset to its end (one item per pass:
    padding a batch would put silence after shorter spans)."""
    start, end = words[max(0, i - context_words)].start_s, words[i].end_s
    batch = collate_stimulus([read_span(run, start, end, backbone.spec)])
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    hidden = backbone(backbone_inputs(batch, backbone.modalities), layers)[0]  # (L, T, D)
    i0, i1 = window_to_slice(words[i].start_s - start, end - start, backbone.frame_rate)
    i0, i1 = min(i0, hidden.shape[1] - 1), min(max(i1, i0 + 1), hidden.shape[1])
    return hidden[:, i0:i1].mean(1).float().cpu().numpy()


def words_to_trs(features: np.ndarray, words: Sequence[Word], tr_times: np.ndarray, method: str = "causal",
                 window_s: float | None = None) -> np.ndarray:
    """Word vectors (L, n_words, D) -> (L, n_trs, D) float32 on the TR times (seconds) of a run.

    ``causal``: TR ``t`` sums the words ending in ``[t - window_s, t)`` (window default: the TR; empty TRs are 0).
    ``lanczos``: ``lanczos_resample`` from word mid-times, 3 lobes, cutoff 1/TR (rows not normalised, as Huth's).
    """
    features, tr_times = np.asarray(features), np.asarray(tr_times, dtype=np.float64)
    if features.ndim != 3 or features.shape[1] != len(words):
        raise ValueError(f"words_to_trs: features must be (L, n_words={len(words)}, D), got {features.shape}")
    n_layers, n_words, dim = features.shape
    flat = features.transpose(1, 0, 2).reshape(n_words, n_layers * dim)  # (n_words, L*D)
    if method == "causal":
        window = window_s or float(np.median(np.diff(tr_times)))
        ends = np.array([w.end_s for w in words])
        first = np.searchsorted(ends, tr_times - window, side="left")  # words end sorted when onsets are
        last = np.searchsorted(ends, tr_times, side="left")
        if np.any(np.diff(ends) < 0):  # overlapping words: fall back to a mask
            inside = (ends[None] >= (tr_times - window)[:, None]) & (ends[None] < tr_times[:, None])
            out = inside.astype(np.float64) @ flat
        else:
            cum = np.vstack([np.zeros((1, flat.shape[1])), np.cumsum(flat, axis=0, dtype=np.float64)])
            out = cum[last] - cum[first]
    elif method == "lanczos":
        mids = np.array([(w.start_s + w.end_s) / 2 for w in words])
        out = lanczos_resample(flat, mids, tr_times, window=LANCZOS_LOBES) if n_words else np.zeros((len(tr_times), flat.shape[1]))
    else:
        raise ValueError(f"words_to_trs: method {method!r} is not one of {TO_TRS}")
    return out.reshape(len(tr_times), n_layers, dim).transpose(1, 0, 2).astype(np.float32)


def lookahead_s(method: str, words: Sequence[Word], tr: float) -> float:
    """Seconds of stimulus after a TR's time that its features may hold: 0 for ``causal``; for ``lanczos`` the
    kernel's reach past the TR (3 lobes of 1/TR: 3 TRs) plus half the longest word (a word sits at its mid-time)."""
    if method == "causal":
        return 0.0
    half = max((w.end_s - w.start_s) / 2 for w in words) if len(words) else 0.0
    return float(LANCZOS_LOBES * tr + half)
