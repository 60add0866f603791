"""Word attributions per TR (`attribution.Attributions.scores`, (n_trs, L), most recent word first) in; the
comparison metrics of Proietti, Capobianco & Toneva 2025 out (analysis_methods.md §3.6).

Important-word sets at cumulative thresholds, their IoU against a closed-form random baseline, attribution
spread (AUC) with paired tests and BH-FDR across thresholds, positional statistics (centre of mass, profile,
entropy, variance), a linguistic-feature breakdown from word annotations, and the masking check.
"""
from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import scipy.special
import scipy.stats

from braintune.analysis.attribution import Attributions, evaluate_objective
from braintune.analysis.attribution_context import Story
from braintune.analysis.attribution_objectives import BrainObjective
from braintune.evaluation.metrics import correlation
from braintune.evaluation.stats import fdr_bh, paired_ttest

THRESHOLDS = (1, 2, 3, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98)  # percent of attribution mass


def normalized(scores) -> np.ndarray:
    """|scores| / their sum per row, shape (n, L); NaN (outside the context) stays NaN, all-zero rows stay 0."""
    a = np.abs(np.asarray(scores, np.float64))
    total = np.nansum(a, axis=-1, keepdims=True)
    return a / np.where(total > 0, total, 1.0)


def important_sets(scores, thresholds=THRESHOLDS) -> np.ndarray:
    """Smallest sets of words whose normalised |attribution| reaches each threshold (percent).

    Returns a bool array (n_thresholds, n, L): words sorted by weight (ties: the more recent first) are taken until
    the cumulative mass reaches t/100.
    """
    w = np.nan_to_num(normalized(scores), nan=-1.0)  # (n, L); NaN sorts last
    order = np.argsort(-w, axis=-1, kind="stable")
    cum = np.cumsum(np.clip(np.take_along_axis(w, order, -1), 0, None), axis=-1)  # (n, L)
    t = np.asarray(thresholds, np.float64)[:, None, None] / 100.0
    size = (cum[None] < t - 1e-12).sum(-1) + 1  # (n_thr, n): words needed to reach t
    ranks = np.argsort(order, axis=-1)  # rank of each position
    return (ranks[None] < size[..., None]) & (w >= 0)[None]


def iou(a, b) -> np.ndarray:
    """Jaccard index of boolean sets along the last axis (NaN where both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    inter, union = (a & b).sum(-1), (a | b).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


@functools.lru_cache(maxsize=65536)
def expected_random_iou(n: int, k1: int, k2: int) -> float:
    """E[IoU] of two independent uniformly random subsets of sizes k1 and k2 from n words.

    The overlap X is hypergeometric (n items, k1 marked, k2 drawn) and the union is k1 + k2 - X, so
    ``E[IoU] = sum_x P(X = x) x / (k1 + k2 - x)`` over ``max(0, k1 + k2 - n) <= x <= min(k1, k2)``.
    """
    if not 0 <= k1 <= n or not 0 <= k2 <= n:
        raise ValueError(f"expected_random_iou: set sizes {k1}, {k2} must lie in [0, n={n}].")
    if k1 + k2 == 0:
        return float("nan")
    x = np.arange(max(0, k1 + k2 - n), min(k1, k2) + 1)
    pmf = np.exp(_log_comb(k1, x) + _log_comb(n - k1, k2 - x) - _log_comb(n, k2))  # hypergeometric, as scipy's
    return float(np.sum(pmf * x / (k1 + k2 - x)))


def _log_comb(n, k):
    """log of the binomial coefficient C(n, k) (the hypergeometric pmf without scipy's per-call set-up)."""
    return scipy.special.gammaln(n + 1) - scipy.special.gammaln(k + 1) - scipy.special.gammaln(n - k + 1)


def iou_table(sets_a, sets_b, n_context) -> tuple[np.ndarray, np.ndarray]:
    """IoU of two objectives' sets (n_thr, n, L) and its random baseline, both (n_thr, n).

    The baseline of each (threshold, TR) is `expected_random_iou` with that TR's context length ``n_context`` (n,)
    (`context_lengths`) and the two set sizes.
    """
    sets_a, sets_b = np.asarray(sets_a, bool), np.asarray(sets_b, bool)
    if sets_a.shape != sets_b.shape:
        raise ValueError(f"iou_table: set arrays differ in shape {sets_a.shape} vs {sets_b.shape}; attribute both "
                         f"objectives on the same TRs and context_words.")
    n_ctx = np.broadcast_to(np.asarray(n_context, np.int64), sets_a.shape[:2])
    base = np.vectorize(expected_random_iou, otypes=[float])(n_ctx, sets_a.sum(-1), sets_b.sum(-1))
    return iou(sets_a, sets_b), base


def context_lengths(scores) -> np.ndarray:
    """Words in each TR's context (finite scores), shape (n,)."""
    return np.isfinite(np.asarray(scores, float)).sum(-1)


def spread_auc(sets, thresholds=THRESHOLDS) -> np.ndarray:
    """Attribution spread per TR: area under "number of important words vs threshold" (thresholds as fractions).

    sets : bool (n_thr, n, L) -> (n,); larger means attribution spread over more words.
    """
    counts = np.asarray(sets, bool).sum(-1).astype(float)  # (n_thr, n)
    return np.trapezoid(counts, np.asarray(thresholds, float) / 100.0, axis=0)


def compare_paired(x_a, x_b, q: float = 0.05) -> dict:
    """Two-sided paired t-tests of a − b per row, BH-FDR over rows (thresholds).

    x_a, x_b : arrays (n_tests, n_pairs), e.g. set sizes per threshold, paired by TR or participant.
    Returns dict of arrays (n_tests,): ``mean_diff``, ``t``, ``p``, ``p_adjusted``, ``reject``.
    """
    x_a, x_b = np.atleast_2d(np.asarray(x_a, float)), np.atleast_2d(np.asarray(x_b, float))
    tests = [paired_ttest(a, b) for a, b in zip(x_a, x_b)]
    p = np.array([r.pvalue for r in tests])
    reject, adjusted = fdr_bh(p, q)
    return {"mean_diff": np.array([r.mean_diff for r in tests]), "t": np.array([r.statistic for r in tests]),
            "p": p, "p_adjusted": adjusted, "reject": reject}


def positional_stats(scores) -> dict:
    """Attribution as a distribution over context positions (0 = most recent word), per TR.

    Returns dict of arrays (n,): ``center_of_mass`` (mean position), ``variance`` (of position), ``entropy``
    (nats) and ``entropy_normalized`` (entropy / log(context length), 1 = uniform).
    """
    w = np.nan_to_num(normalized(scores))  # (n, L)
    pos = np.arange(w.shape[-1], dtype=float)
    com = (w * pos).sum(-1)
    var = (w * (pos - com[:, None]) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(w > 0, w * np.log(w), 0.0).sum(-1)
        ent_norm = ent / np.log(np.maximum(context_lengths(scores), 2))
    return {"center_of_mass": com, "variance": var, "entropy": ent, "entropy_normalized": ent_norm}


def positional_profile(sets, scores, bins=None) -> np.ndarray:
    """Share of the words at each distance (binned by ``bins`` edges; default one bin per position) that are
    important, over TRs whose context reaches that distance: (n_thr, n_bins)."""
    sets = np.asarray(sets, bool)
    valid = np.isfinite(np.asarray(scores, float))  # (n, L)
    edges = np.arange(sets.shape[-1] + 1) if bins is None else np.asarray(bins)
    idx = np.digitize(np.arange(sets.shape[-1]), edges) - 1  # (L,)
    hit = np.stack([(sets[..., idx == b] & valid[:, idx == b]).sum((-1, -2)) for b in range(len(edges) - 1)], -1)
    seen = np.array([valid[:, idx == b].sum() for b in range(len(edges) - 1)])
    return hit / np.maximum(seen, 1)


def read_word_annotations(path, n_words: int, words=None) -> dict[str, np.ndarray]:
    """A TSV with header ``word_index, word, features`` (features comma-separated, may be empty) -> feature type ->
    bool (n_words,). ``words``: the story's words, checked against the file's word column."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or not {"word_index", "word", "features"} <= set(rows[0]):
        raise ValueError(f"'{path}': expected a TSV with columns word_index, word, features; got "
                         f"{list(rows[0]) if rows else 'no rows'}.")
    out: dict[str, np.ndarray] = {}
    for line, row in enumerate(rows, start=2):
        i = int(row["word_index"])
        if not 0 <= i < n_words or (words is not None and str(words[i]).lower() != row["word"].lower()):
            raise ValueError(f"'{path}' line {line}: word_index {i} ('{row['word']}') is outside the story's "
                             f"{n_words} words or names another word; check that the file belongs to this story.")
        for feature in filter(None, (f.strip() for f in (row["features"] or "").split(","))):
            out.setdefault(feature, np.zeros(n_words, bool))[i] = True
    return out


def linguistic_breakdown(set_a, set_b, last_word, scores, annotations: dict) -> dict[str, tuple]:
    """Per feature type: the share of its in-context word occurrences marked important by a only, b only, both.

    set_a, set_b : bool (n, L) at one threshold; last_word (n,); scores (n, L) marks the context.
    Returns {feature: (a_only, b_only, both)} (NaN for a feature absent from every context).
    """
    valid = np.isfinite(np.asarray(scores, float))
    story_idx = np.asarray(last_word)[:, None] - np.arange(valid.shape[-1])[None]  # (n, L)
    a, b = np.asarray(set_a, bool) & valid, np.asarray(set_b, bool) & valid
    out = {}
    for name, has in annotations.items():
        occ = valid & np.asarray(has, bool)[np.clip(story_idx, 0, len(has) - 1)]
        n = max(occ.sum(), 1) if occ.any() else np.nan
        out[name] = ((occ & a & ~b).sum() / n, (occ & b & ~a).sum() / n, (occ & a & b).sum() / n)
    return out


def masked_words(scores, last_word, frac: float = 0.01, mode: str = "top", seed: int = 0) -> list[np.ndarray]:
    """Story indices to mask per TR: the ``max(1, ceil(frac · context))`` words of highest |attribution|
    (``mode="top"``) or as many random context words (``"random"``, the control)."""
    rng = np.random.default_rng(seed)
    out = []
    for row, last in zip(np.asarray(scores, float), np.asarray(last_word)):
        n = int(np.isfinite(row).sum())
        k = max(1, int(np.ceil(frac * n)))
        pos = np.argsort(-np.abs(row[:n]), kind="stable")[:k] if mode == "top" else rng.choice(n, k, replace=False)
        out.append(last - pos)
    return out


def masking_check(model, story: Story, objective, attributions: Attributions, frac: float = 0.01, seed: int = 0,
                  context_words: int = 640, batch_size: int = 16) -> dict:
    """Replace the top-``frac`` attributed words (and, as control, as many random words) by random story words, and
    re-measure: NWP mean cross-entropy, or BA mean Pearson r over targets across the attributed TRs.

    Returns {"measure", "original", "top", "random"}.
    """
    rng = np.random.default_rng(seed)
    trs = attributions.trs
    runs = {"original": None}
    for mode in ("top", "random"):
        picks = masked_words(attributions.scores, attributions.last_word, frac, mode, seed)
        runs[mode] = [{int(w): story.word_tokens[rng.integers(len(story.word_tokens))] for w in p} for p in picks]
    out = {"measure": "r" if isinstance(objective, BrainObjective) else "cross_entropy"}
    for name, overrides in runs.items():
        values, preds = evaluate_objective(model, story, objective, trs, overrides, context_words, batch_size)
        if preds is None:
            out[name] = float(values.mean())
        else:
            y = objective.responses[trs].cpu().numpy()
            out[name] = float(np.mean(correlation(y, preds)))
    return out
