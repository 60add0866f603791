"""Per-participant scores or per-target predictions in, p-values and confidence intervals out.

* Paired tests across participants / layers (`wilcoxon`, `paired_ttest`, scipy underneath),
  warning when the number of pairs cannot reach the requested α.
* Bootstrap CIs: `bootstrap_ci` for i.i.d. values (participants, paired differences) and
  `block_bootstrap_ci` for r over autocorrelated TRs.
* `block_permutation_test`: a per-target null for r that keeps the TR autocorrelation
  (Huth-lab block shuffle, encoding_anchors.md §8); `fdr_bh` across targets or tests.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.stats

from braintune.evaluation.metrics import correlation


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired test: statistic, p-value, pairs used, mean of a − b, test name."""
    statistic: float
    pvalue: float
    n: int
    mean_diff: float
    test: str


def _paired(a, b, where: str) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"{where}: a and b must be 1-D with one value per pair (participant, "
                         f"layer, ...); got shapes {a.shape} and {b.shape}.")
    keep = np.isfinite(a) & np.isfinite(b)
    if (~keep).any():
        warnings.warn(f"{where}: dropped {int((~keep).sum())} pairs with NaN.", stacklevel=3)
    return a[keep] - b[keep]


def min_wilcoxon_p(n: int, alternative: str = "two-sided") -> float:
    """Smallest exact p a Wilcoxon signed-rank test on n non-zero pairs can give.

    All differences of one sign: 1/2ⁿ one-sided, 2/2ⁿ two-sided (n = 4 → 0.125).
    """
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2 ** n)


def wilcoxon(a, b, alternative: str = "two-sided", alpha: float = 0.05) -> PairedTest:
    """Wilcoxon signed-rank test of a − b (zero differences dropped, scipy "wilcox").

    Warns when the non-zero pairs are too few for any outcome to reach ``alpha``.

    Parameters
    ----------
    a, b : arrays of shape (n_pairs,)
    alternative : {"two-sided", "greater", "less"}
    alpha : float
        Significance level the caller will use; only for the power warning.
    """
    diff = _paired(a, b, "wilcoxon")
    n = int(np.count_nonzero(diff))
    if n == 0:
        raise ValueError("wilcoxon: all paired differences are zero (or NaN); nothing to test.")
    if min_wilcoxon_p(n, alternative) > alpha:
        warnings.warn(
            f"wilcoxon: with {n} non-zero pairs the smallest possible {alternative} p is "
            f"{min_wilcoxon_p(n, alternative):.4g} > alpha={alpha}; the test cannot reject. "
            f"Add participants/pairs, or report effect sizes with bootstrap_ci.", stacklevel=2)
    res = scipy.stats.wilcoxon(diff, alternative=alternative)
    return PairedTest(float(res.statistic), float(res.pvalue), n, float(diff.mean()), "wilcoxon")


def paired_ttest(a, b, alternative: str = "two-sided") -> PairedTest:
    """Paired t-test of a − b (scipy ``ttest_rel``), pairs with NaN dropped."""
    diff = _paired(a, b, "paired_ttest")
    if len(diff) < 2:
        raise ValueError(f"paired_ttest: needs at least 2 pairs, got {len(diff)}.")
    res = scipy.stats.ttest_1samp(diff, 0.0, alternative=alternative)
    return PairedTest(float(res.statistic), float(res.pvalue), len(diff), float(diff.mean()),
                      "paired_ttest")


def mean_sem(values, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean (ddof=1, ``scipy.stats.sem``) along ``axis``, NaN ignored."""
    values = np.asarray(values, float)
    sem = np.asarray(scipy.stats.sem(values, axis=axis, ddof=1, nan_policy="omit"), float)  # masked array -> NaN-free
    return np.nanmean(values, axis=axis), sem


def bootstrap_ci(values, n_boot: int = 10000, ci: float = 0.95, seed: int = 0,
                 method: str = "percentile") -> tuple[float, float]:
    """Bootstrap CI of the mean of i.i.d. values (e.g. per-participant paired differences).

    Parameters
    ----------
    values : array of shape (n,)
    n_boot, ci, seed : resamples, confidence level, random seed
    method : {"percentile", "BCa", "basic"}, passed to ``scipy.stats.bootstrap``
    """
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"bootstrap_ci: needs a 1-D array with >= 2 finite values, got "
                         f"{len(values)}.")
    res = scipy.stats.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=ci,
                                method=method, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _blocks(n: int, block_len: int, where: str) -> list[np.ndarray]:
    if not 1 <= block_len <= n // 2:
        raise ValueError(f"{where}: block_len={block_len} must be between 1 and n_TRs/2 = "
                         f"{n // 2}; use blocks longer than the autocorrelation (10-40 TRs).")
    return [np.arange(s, min(s + block_len, n)) for s in range(0, n, block_len)]


def _check_pair(y_true, y_pred, where: str):
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"{where}: y_true and y_pred must both be (n_TRs, n_targets); got "
                         f"{y_true.shape} and {y_pred.shape}.")
    return y_true, y_pred


def block_bootstrap_ci(y_true, y_pred, block_len: int, n_boot: int = 1000, ci: float = 0.95,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI of Pearson r per target, resampling blocks of contiguous TRs.

    Blocks of ``block_len`` TRs (the last one may be shorter) are drawn with replacement
    until the series is refilled, keeping the within-block autocorrelation.

    Returns
    -------
    low, high : arrays of shape (n_targets,)
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "block_bootstrap_ci")
    blocks = _blocks(len(y_true), block_len, "block_bootstrap_ci")
    boots = np.stack([correlation(y_true[rows], y_pred[rows]) for rows in _block_resamples(blocks, n_boot, seed)])
    tail = 100 * (1 - ci) / 2
    return np.percentile(boots, tail, axis=0), np.percentile(boots, 100 - tail, axis=0)


def paired_block_bootstrap_ci(y_true, pred_a, pred_b, block_len: int, n_boot: int = 1000, ci: float = 0.95,
                              seed: int = 0) -> tuple[float, float]:
    """Percentile CI of mean over targets of r(y, pred_b) - r(y, pred_a), the same blocks of TRs for both models.

    y_true, pred_a, pred_b : arrays of shape (n_TRs, n_targets)
    """
    y_true, pred_a = _check_pair(y_true, pred_a, "paired_block_bootstrap_ci")
    _, pred_b = _check_pair(y_true, pred_b, "paired_block_bootstrap_ci")
    blocks = _blocks(len(y_true), block_len, "paired_block_bootstrap_ci")
    diffs = [np.nanmean(correlation(y_true[rows], pred_b[rows]) - correlation(y_true[rows], pred_a[rows]))
             for rows in _block_resamples(blocks, n_boot, seed)]
    tail = 100 * (1 - ci) / 2
    return float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail))


def _block_resamples(blocks: list[np.ndarray], n_boot: int, seed: int):
    """``n_boot`` row orders, each made of ``len(blocks)`` blocks drawn with replacement."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield np.concatenate([blocks[j] for j in rng.integers(0, len(blocks), len(blocks))])


def block_permutation_test(y_true, y_pred, block_len: int, n_perm: int = 1000, seed: int = 0,
                           method: str = "shuffle") -> np.ndarray:
    """One-sided p-value per target that r(y_true, y_pred) exceeds chance.

    The null permutes the prediction in time while keeping its autocorrelation:
    "shuffle" reorders blocks of ``block_len`` TRs (Huth-lab ``permutation_test``);
    "circular" rolls it by a random shift in [block_len, n_TRs − block_len]. An i.i.d.
    TR shuffle (block_len=1) is anti-conservative on autocorrelated fMRI.
    p = (1 + #{r_null ≥ r}) / (1 + n_perm).

    Parameters
    ----------
    y_true, y_pred : arrays of shape (n_TRs, n_targets)

    Returns
    -------
    p : array of shape (n_targets,)
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "block_permutation_test")
    if method not in ("shuffle", "circular"):
        raise ValueError(f"block_permutation_test: method={method!r} is not 'shuffle' or "
                         f"'circular'.")
    n = len(y_true)
    blocks = _blocks(n, block_len, "block_permutation_test")
    observed = correlation(y_true, y_pred)
    rng = np.random.default_rng(seed)
    exceed = np.zeros(y_true.shape[1])
    for _ in range(n_perm):
        if method == "shuffle":
            rows = np.concatenate([blocks[j] for j in rng.permutation(len(blocks))])
        else:
            rows = np.roll(np.arange(n), rng.integers(block_len, n - block_len + 1))
        exceed += correlation(y_true, y_pred[rows]) >= observed
    return (1.0 + exceed) / (1.0 + n_perm)


def fdr_bh(p, q: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg FDR over a family of p-values (NaN entries are left out).

    Returns
    -------
    reject : bool array, same shape as p
    p_adjusted : float array, same shape as p (NaN where p is NaN)
    """
    p = np.asarray(p, float)
    ok = np.isfinite(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("fdr_bh: p-values must lie in [0, 1].")
    adjusted = np.full(p.shape, np.nan)
    if ok.any():
        adjusted[ok] = scipy.stats.false_discovery_control(p[ok], method="bh")
    return np.where(ok, adjusted <= q, False), adjusted


def holm(p) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error) over a family, e.g. the layers of one comparison.

    p_(i) adjusted = max_{j ≤ i} min(1, (m − j + 1)·p_(j)) over the sorted finite p-values; NaN stays NaN.
    """
    p = np.asarray(p, float)
    ok = np.flatnonzero(np.isfinite(p))
    out = np.full(p.shape, np.nan)
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out
