"""A story dataset in the LeBel ds003020 layout whose responses follow one planted, context-dependent sentence
property ("tense") and not another ("subjnum"), with the paper's probing-label files (for the analysis tests).

Each sentence opens with a tense pair (``once upon``: past, ``upon once``: present) and a number marker (``alone`` /
``together``), then 5-12 neutral words, and ends with a pair that agrees with the tense (``the end`` / ``end the``):
the tense is in the words' order only, so no single word (and no count of words) tells it. Both properties are
sentence-level and copied to every word, so a word carries them only through its context (the markers). A
participant's targets mix the per-TR sum of ±1 (past / present) over the words that end in the TR, convolved with
a haemodynamic response, plus noise; "subjnum" never enters the responses. Timing as ds003020: triggers every
2 s, audio from 10 s after the first, hf5 rows = volumes 10 .. n-11 (row j at audio time 2j + 11 s).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import soundfile as sf

from braintune.data.formats.lebel import TEST_STORY, expected_rows, first_row_s
from braintune.data.formats.synthetic import hrf

NEUTRAL = ("cat dog tree house river stone bird road light door hill boat field glass rain wind bread chair song wall "
           "apple lamp coat horse cloud table forest window garden bridge candle mirror basket pocket ladder engine "
           "button carpet island market needle orange pillow rabbit saddle temple tunnel valley wagon yellow anchor "
           "barrel castle dragon feather hammer jacket kettle lemon marble napkin").split()  # 60: they span the model's width
TENSE = {1: ("yesterday", "then"), 0: ("today", "now")}  # planted: past (1) / present (0): opening and closing word
NUMBER = {1: "together", 0: "alone"}  # not planted
VOCAB = NEUTRAL + [w for pair in TENSE.values() for w in pair] + list(NUMBER.values())
SR = 8000


@contextmanager
def one_thread():
    """One torch / BLAS thread: tiny matrices run as fast on a free machine and far faster on a shared one, at a
    predictable cost that never fights the other tests (the test modules' autouse fixtures)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def write_textgrid(path: Path, words: list, seconds: float) -> None:
    """Long-format Praat TextGrid, one "word" tier, gaps as empty intervals (as ds003020's TextGrids)."""
    intervals, t = [], 0.0
    for a, b, text in words:
        intervals += [(t, a, "")] if a > t else []
        intervals.append((a, b, text))
        t = b
    intervals.append((t, seconds, ""))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {seconds}",
             "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
             '        name = "word"', "        xmin = 0", f"        xmax = {seconds}", f"        intervals: size = {len(intervals)}"]
    for i, (a, b, text) in enumerate(intervals, 1):
        lines += [f"        intervals [{i}]:", f"            xmin = {a:.4f}", f"            xmax = {b:.4f}",
                  f'            text = "{text}"']
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def sentences(rng: np.random.Generator, n_words: int, language: str = "tense") -> tuple[list[str], np.ndarray, np.ndarray]:
    """``n_words`` words of the planted language, and each word's tense and number (sentence-level, 0/1).

    ``language="topics"``: no tense words; a sentence's neutral words come from the first 30 (tense 1) or the last
    30 (tense 0) of ``NEUTRAL``, so the planted label is the sentence's topic, told by the words themselves."""
    words, tense, number = [], [], []
    while len(words) < n_words:
        t, n = int(rng.integers(2)), int(rng.integers(2))
        if language == "topics":
            sent = [NUMBER[n], *rng.choice(NEUTRAL[:30] if t else NEUTRAL[30:], int(rng.integers(11, 16)))]
        else:
            sent = [TENSE[t][0], NUMBER[n], *rng.choice(NEUTRAL, int(rng.integers(11, 16))), TENSE[t][1]]
        words += sent
        tense += [t] * len(sent)
        number += [n] * len(sent)
    return words[:n_words], np.array(tense[:n_words]), np.array(number[:n_words])


def _timed(rng: np.random.Generator, seconds: float, language: str):
    words, tense, number = sentences(rng, int(seconds / 0.5), language)
    timed, t = [], rng.uniform(0.1, 0.4)
    for k, w in enumerate(words):
        dur = rng.uniform(0.5, 0.8)
        if t + dur > seconds - 0.3:
            break
        timed.append((t, t + dur, w))
        t += dur + rng.uniform(0.1, 0.3) + (0.5 if k + 1 < len(words) and words[k + 1] in ("yesterday", "today") else 0.0)
    n = len(timed)
    return timed, tense[:n], number[:n]


def write_planted_story(root: Path, stories: int = 4, seconds: float = 180.0, participants: int = 3,
                        targets: int = 16, noise: float = 0.6, seed: int = 0, test_seconds: float = 300.0,
                        language: str = "tense") -> Path:
    """Write the dataset under ``root`` (also ``labels/{story}.csv`` in the paper's probing-label layout)."""
    rng, train_seconds = np.random.default_rng(seed), seconds
    names = [f"story{i + 1:02d}" for i in range(stories)] + [TEST_STORY]
    weights = {f"UTS{p + 1:02d}": rng.standard_normal(targets) for p in range(participants)}
    for w in weights.values():
        w[: targets // 4] = 0.0  # a quarter of the targets: noise only
    h = hrf(2.0)
    for story in names:
        seconds = test_seconds if story == TEST_STORY else train_seconds
        n_rows = expected_rows(seconds)
        row_t = first_row_s() + 2.0 * np.arange(n_rows)  # audio time of each hf5 row
        timed, tense, number = _timed(rng, seconds, language)
        write_textgrid(root / "derivative" / "TextGrids" / f"{story}.TextGrid", timed, seconds)
        (root / "stimuli").mkdir(parents=True, exist_ok=True)
        sf.write(root / "stimuli" / f"{story}.wav", np.zeros(int(seconds * SR), np.float32), SR)
        labels = root / "labels" / f"{story}.csv"
        labels.parent.mkdir(parents=True, exist_ok=True)
        labels.write_text(",word,tense,subjnum\n" + "".join(
            f"{i},{w},{'past' if t else 'present'},{'NNS' if n else 'NN'}\n"
            for i, ((_, _, w), t, n) in enumerate(zip(timed, tense, number))))
        ends, sign = np.array([b for _, b, _ in timed]), 2.0 * tense - 1.0
        grid = np.arange(-20, n_rows + 20) * 2.0 + row_t[0]  # volumes before row 0 too (HRF history)
        x = np.array([sign[(ends >= t - 2.0) & (ends < t)].sum() for t in grid])
        z = np.convolve(x, h)[: len(grid)][20:20 + n_rows]
        z = (z - z.mean()) / z.std()
        for p, w in weights.items():
            out = root / "derivative" / "preprocessed_data" / p
            out.mkdir(parents=True, exist_ok=True)
            with h5py.File(out / f"{story}.hf5", "w") as f:
                if story == TEST_STORY:
                    reps = z[None, :, None] * w + noise * rng.standard_normal((3, n_rows, targets))
                    f["data"] = reps.mean(0).astype(np.float32)
                    f["individual_repeats"] = reps.astype(np.float32)
                else:
                    f["data"] = (z[:, None] * w + noise * rng.standard_normal((n_rows, targets))).astype(np.float32)
    (root / "truth.json").write_text(json.dumps({"planted": "tense", "unplanted": "subjnum", "vocab": VOCAB}))
    return root


def write_context_model(directory: Path, n_layer: int = 7, width: int = 32, alpha: float = 0.3, seed: int = 0) -> Path:
    """A tiny GPT-2 whose every block adds ``alpha`` x the causal mean of its (normalised) inputs: hidden state ``l``
    holds a word's embedding plus ``l`` rounds of context, so deeper layers carry more of a sentence property that
    only context tells. Saved as a model entry (``save_pretrained`` + tokenizer + ``braintune_config.yaml``).

    Queries and keys are 0 (uniform causal attention), values the identity, the MLPs 0, position embeddings 0;
    word embeddings are seeded N(0, 1)."""
    import torch
    from transformers import GPT2Config, GPT2Model

    from braintune.backbones.text import word_tokenizer
    from braintune.config import load_config, save_config

    tokenizer = word_tokenizer(VOCAB)
    config = GPT2Config(n_embd=width, n_layer=n_layer, n_head=1, n_positions=64, vocab_size=len(tokenizer),
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(seed)
    model = GPT2Model(config)
    with torch.no_grad():
        model.wte.weight.normal_(0.0, 1.0)
        model.wpe.weight.zero_()
        for block in model.h:
            block.attn.c_attn.weight.zero_()
            block.attn.c_attn.bias.zero_()
            block.attn.c_attn.weight[:, 2 * width:] = torch.eye(width)  # values: the normalised input
            block.attn.c_proj.weight.copy_(alpha * torch.eye(width))
            block.attn.c_proj.bias.zero_()
            for p in block.mlp.parameters():
                p.zero_()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    cfg = load_config(None, ["backbone.arch=text", f"backbone.name={directory}", "backbone.finetune=frozen"])
    save_config(cfg, Path(directory) / "braintune_config.yaml")
    return Path(directory)
