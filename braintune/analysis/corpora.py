"""A corpus name + a tokenizer's vocabulary in, a token-id stream out: the training data of the ``trained_on``
control LMs (Parra 2025: is alignment specific to models trained on human language?).

* ``random``: token ids drawn uniformly from the vocabulary (no structure at all);
* ``brackets``: a nested-bracket language over the vocabulary (Papadimitriou & Jurafsky 2020): the vocabulary is
  split into opening and closing halves, token ``i`` of the first half is closed by token ``i`` of the second, and
  brackets nest up to ``max_depth`` (hierarchical structure, no meaning);
* ``shuffled``: the words of a human text in random order (word statistics without syntax);
* ``code``: Python source (the standard library of this interpreter, read offline, files in sorted order);
* ``text``: a text file as it is (e.g. the stories' transcripts, or any other language).
"""
from __future__ import annotations

import sysconfig
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ID_CORPORA = ("random", "brackets")  # generated over the vocabulary
TEXT_CORPORA = ("shuffled", "code", "text", "stories")  # words of a text


def random_tokens(vocab_ids: Sequence[int], n_tokens: int, seed: int = 0) -> np.ndarray:
    """(n_tokens,) ids drawn uniformly from ``vocab_ids``."""
    vocab_ids = np.asarray(vocab_ids)
    if vocab_ids.size < 2:
        raise ValueError(f"random_tokens: the vocabulary has {vocab_ids.size} token(s); a corpus needs >= 2")
    return np.random.default_rng(seed).choice(vocab_ids, n_tokens)


def nested_brackets(vocab_ids: Sequence[int], n_tokens: int, max_depth: int = 8, p_open: float = 0.5,
                    seed: int = 0) -> np.ndarray:
    """(n_tokens,) ids of a nested-bracket language: ``vocab_ids[:k]`` open, ``vocab_ids[k:2k]`` close them.

    At depth 0 a bracket opens, at ``max_depth`` the innermost one closes, otherwise a bracket opens with
    probability ``p_open``; a closing token always matches the innermost open bracket. Every prefix is well nested.
    """
    vocab_ids = np.asarray(vocab_ids)
    k = len(vocab_ids) // 2
    if k < 1 or max_depth < 1 or not 0 < p_open < 1:
        raise ValueError(f"nested_brackets: needs >= 2 vocabulary ids (got {len(vocab_ids)}), max_depth >= 1 "
                         f"(got {max_depth}) and 0 < p_open < 1 (got {p_open})")
    rng = np.random.default_rng(seed)
    kinds, coins = rng.integers(k, size=n_tokens), rng.random(n_tokens)
    out, stack = np.empty(n_tokens, dtype=vocab_ids.dtype), []
    for i in range(n_tokens):
        if not stack or (len(stack) < max_depth and coins[i] < p_open):
            stack.append(kinds[i])
            out[i] = vocab_ids[kinds[i]]
        else:
            out[i] = vocab_ids[k + stack.pop()]
    return out


def shuffled_words(words: Sequence[str], seed: int = 0) -> list[str]:
    """The same words in a random order."""
    order = np.random.default_rng(seed).permutation(len(words))
    return [words[i] for i in order]


def code_text(max_chars: int) -> str:
    """Python source of the standard library (sorted files, concatenated) up to ``max_chars`` characters."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        size += len(text)
        if size >= max_chars:
            break
    if not parts:
        raise FileNotFoundError(f"code corpus: no Python sources under '{root}'; use lm.corpus=text with a code file")
    return "\n".join(parts)[:max_chars]


def read_text(path: str | Path) -> str:
    """A corpus text file (UTF-8), with a message naming the key when it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lm.text_file '{path}' does not exist; point it at a UTF-8 text file")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ValueError(f"lm.text_file '{path}' is empty; a corpus needs text")
    return text


def frequent_words(words: Sequence[str], n: int) -> list[str]:
    """The ``n`` most frequent lower-cased words (ties in first-seen order): a word-level vocabulary."""
    return [w for w, _ in Counter(w.lower() for w in words).most_common(n)]
