"""The config sections of the analyses (``removal.*``, ``similarity.*``, ``lm.*``): typed dataclasses that
``braintune.config.Config`` includes, and the allowed values of their choice keys (``CHOICES``).

The encoding model of every alignment number (delays, alphas, CV, regions, ceiling threshold, block length) is
``alignment.*``, shared with ``evaluate.py alignment``; these sections hold only what the analyses add.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class RemovalConfig:
    """``evaluate.py remove``: linguistic properties removed from word-level features (Oota et al. 2023)."""

    properties: list[str] = field(default_factory=lambda: ["sen_len", "word_len"])  # label columns or computed names
    label_file: Optional[str] = None  # CSV/TSV of per-word labels; "{run}" in the path is replaced by each run's name
    index_column: Optional[str] = None  # word-index column of label_file (None: an unnamed first column, or file order)
    n_bins: int = 3  # numeric properties with more distinct values become this many balanced classes
    sentences: str = "punctuation"  # sentence ends for computed sen_len: punctuation | pauses
    pause_s: float = 0.5  # sentences=pauses: a silence of at least this between two words ends a sentence
    spacy_model: str = "en_core_web_sm"  # installed spaCy pipeline for pos, dep_depth, dep_tree_depth, tense, subjnum, objnum
    context_words: int = 20  # preceding words encoded with each word (the paper's 20)
    batch_words: int = 64  # word windows per forward pass
    to_trs: str = "causal"  # causal (words that ended in each TR's window: no look-ahead) | lanczos (the paper's; looks ~3 TRs ahead)
    method: str = "residual"  # residual (ridge map from the one-hot property, residual kept) | inlp
    residual_alphas: Optional[list[float]] = None  # residual: λ grid, chosen per dimension by CV (None: the paper's 1e-6..1e9)
    fit_on: str = "all"  # all: fit the removal on every word (the paper) | train: on training runs, applied to the test run
    probe_folds: int = 5  # contiguous CV folds of the linear probe (inside the training words)
    chance_tol: float = 0.03  # a probe within this of majority-class accuracy counts as at chance
    inlp_max_iter: int = 20  # most classifiers INLP projects out
    n_perm: int = 1000  # sign patterns of the per-participant block sign-flip test of the drop


@dataclass
class SimilarityConfig:
    """``evaluate.py similarity``: similarity measures beyond ridge, with block-permutation nulls (Parra 2025)."""

    measures: list[str] = field(default_factory=lambda: ["ridge", "ridge_pca", "cka", "rsa", "procrustes", "gw"])
    features: str = "auto"  # auto (words for text backbones, else backbone) | words (removal's word features) | backbone (alignment's)
    pca_components: int = 50  # ridge_pca: components of the representation, fitted on training TRs only
    pca_components_y: Optional[int] = None  # ridge_pca: also reduce the responses (None: keep every target)
    n_perm: int = 199  # block permutations per measure, layer, participant and region
    block_trs: int = 20  # TRs per permuted block (>= 20)
    rdm_method: str = "correlation"  # rsa: rsatoolbox RDM (correlation | euclidean)
    rbf_sigma: float = 0.8  # rbf_cka: bandwidth as a fraction of the median distance between TRs
    procrustes_components: Optional[int] = None  # procrustes: keep this many principal components of each side
    gw_metric: str = "euclidean"  # gw: distance between TRs


@dataclass
class LMConfig:
    """``python -m braintune.lm train``: a small causal LM of ``backbone.config``'s architecture trained on a corpus."""

    corpus: str = "random"  # random | brackets | shuffled | code | text | stories
    text_file: Optional[str] = None  # text and shuffled: the corpus file (shuffled without one: the study's training transcripts)
    n_tokens: int = 200000  # corpus length in tokens (random, brackets; text corpora are cut to it)
    vocab_size: int = 5000  # word-level tokenizer: most frequent corpus words added to backbone.text_vocab
    max_depth: int = 8  # brackets: deepest nesting
    p_open: float = 0.5  # brackets: probability of opening a bracket when both are allowed
    seq_len: int = 64  # tokens per training sequence
    batch_size: int = 32
    max_steps: int = 1000
    lr: float = 1.0e-3
    warmup_fraction: float = 0.05
    weight_decay: float = 0.01
    val_fraction: float = 0.05  # held-out sequences for the validation loss
    save_steps: int = 200  # checkpoint every this many steps (resume continues from the last one)
    log_steps: int = 20


CHOICES = {
    "removal.sentences": ("punctuation", "pauses"),
    "removal.to_trs": ("causal", "lanczos"),
    "removal.method": ("residual", "inlp"),
    "removal.fit_on": ("all", "train"),
    "similarity.features": ("auto", "words", "backbone"),
    "similarity.rdm_method": ("correlation", "euclidean"),
    "lm.corpus": ("random", "brackets", "shuffled", "code", "text", "stories"),
}
