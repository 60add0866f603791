"""Measured responses and two models' predictions of the same test TRs in, a block sign-flip test of r_b − r_a out.

The across-target Wilcoxon test of r_b vs r_a treats 10^3–10^5 voxels as independent pairs, but voxels
share noise (spatial correlation) and TRs are autocorrelated, so its p-values are far too small (issue 10;
tests/test_blocktest.py measures it). Here the null keeps both dependences:

* **time**: the test rows are cut into contiguous blocks of ``block_trs`` TRs, longer than the
  autocorrelation of the residuals, and the resampling unit is a block;
* **space**: every resample applies one block pattern to *all* targets at once, so the correlation of
  the targets' statistics under the null is the real one.

A resample swaps the two models' predictions inside the flipped blocks (the sign flip of the paired
difference per block) and recomputes r_b − r_a for every target. Under H0 "the two models' predictions
are exchangeable given the measured response", every pattern is as likely as the observed one. Pearson r
only needs per-block sums (Σŷ, Σŷ², Σ(y − ȳ)ŷ), so all patterns are scored at once by matrix products of
the (n_patterns, n_blocks) flip matrix with (n_blocks, n_targets) block sums.

Reported: the headline test of the mean over targets of r_b − r_a, and per-target p-values corrected
across targets by the max statistic (family-wise error, Westfall–Young single step) or by BH-FDR.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from braintune.evaluation.metrics import correlation
from braintune.evaluation.stats import fdr_bh

ALTERNATIVES = ("two-sided", "greater", "less")
CORRECTIONS = ("max", "bh")
_CHUNK_ELEMENTS = 2 ** 20  # patterns × targets scored per matrix product (~8 MB per array)
_TIE_TOL = 1e-10  # r differences equal up to rounding count as ties (the identity must count)


@dataclass(frozen=True, eq=False)
class BlockTestResult:
    """Result of `block_sign_flip_test`; "diff" is always r_b − r_a (model b minus model a).

    Attributes
    ----------
    statistic : float
        Mean over targets of r_b − r_a (the headline).
    pvalue : float
        Permutation p-value of ``statistic`` (global test over targets).
    diff, r_a, r_b : arrays of shape (n_targets,)
        Per-target r_b − r_a, and each model's Pearson r (`braintune.evaluation.metrics.correlation`).
    pvalue_targets : array of shape (n_targets,)
        Per-target p-values corrected across targets: max-statistic adjusted ("max") or BH-adjusted ("bh").
    pvalue_targets_uncorrected : array of shape (n_targets,)
        Per-target permutation p-values before correction.
    reject : bool array of shape (n_targets,)
        ``pvalue_targets <= alpha``.
    n_blocks, n_patterns : int
        Blocks of TRs, and sign patterns scored (identity included).
    exact : bool
        True when all 2^n_blocks patterns were enumerated, False when patterns were sampled.
    min_p : float
        Smallest p-value this design can give (see `block_sign_flip_test`).
    block_trs : int
        Requested block length in TRs (the last block of a run may be longer, never shorter).
    correction, alternative : str
    alpha : float
    warning : str or None
        Set (and also issued as a ``UserWarning``) when ``min_p > alpha``: the test cannot reject.
    """
    statistic: float
    pvalue: float
    diff: np.ndarray
    r_a: np.ndarray
    r_b: np.ndarray
    pvalue_targets: np.ndarray
    pvalue_targets_uncorrected: np.ndarray
    reject: np.ndarray
    n_blocks: int
    n_patterns: int
    exact: bool
    min_p: float
    block_trs: int
    correction: str
    alternative: str
    alpha: float
    warning: str | None


def block_starts(n_rows: int, block_trs: int, run_lengths: Sequence[int] | None = None) -> np.ndarray:
    """First row of each block of contiguous TRs; blocks never cross a run boundary.

    Each run is cut into ``run_length // block_trs`` blocks; the remainder (fewer than ``block_trs``
    rows) is merged into the run's last block, so every block has between ``block_trs`` and
    ``2·block_trs − 1`` rows (65 rows, 20-TR blocks → blocks of 20, 20 and 25 rows).

    Parameters
    ----------
    n_rows : int
        Number of test rows (TRs), all runs concatenated.
    block_trs : int
        Block length in TRs.
    run_lengths : sequence of int, optional
        Rows of each run, in the order they are concatenated; default one run of ``n_rows``.

    Returns
    -------
    starts : int array of shape (n_blocks,)
        Block k covers rows ``starts[k]`` to ``starts[k + 1] − 1`` (the last block ends at ``n_rows − 1``).
    """
    if isinstance(block_trs, bool) or not isinstance(block_trs, (int, np.integer)) or block_trs < 1:
        raise ValueError(f"block_trs={block_trs!r} must be a positive integer number of TRs; use a "
                         f"block longer than the autocorrelation of the responses (10-40 TRs).")
    lengths = [int(n_rows)] if run_lengths is None else [int(n) for n in run_lengths]
    if sum(lengths) != n_rows or any(n < 1 for n in lengths):
        raise ValueError(f"run_lengths={list(lengths)} must be positive and sum to the {n_rows} test rows; "
                         f"pass the number of TRs of each concatenated test run.")
    starts, offset = [], 0
    for i, n in enumerate(lengths):
        if block_trs > n:
            where = "the test run" if run_lengths is None else f"test run {i} (of {len(lengths)})"
            raise ValueError(f"block_trs={block_trs} is larger than {where}, which has {n} TRs; use "
                             f"block_trs <= {n}, or concatenate more test runs.")
        starts.extend(offset + np.arange(n // block_trs) * block_trs)
        offset += n
    return np.asarray(starts, dtype=np.intp)


def min_pvalue(n_blocks: int, n_perm: int, alternative: str = "two-sided") -> float:
    """Smallest p-value a block sign-flip test can reach.

    Exact enumeration (2^n_blocks ≤ n_perm): the identity always counts, 1/2^n_blocks one-sided; two-sided,
    flipping every block negates the statistic, so it ties too: 2/2^n_blocks (3 blocks → 1/8 one-sided,
    1/4 two-sided). Sampled patterns: 1/(n_perm + 1).
    """
    if 2 ** n_blocks <= n_perm:
        return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2 ** n_blocks)
    return 1.0 / (n_perm + 1)


def _flip_patterns(n_blocks: int, n_perm: int, seed: int, chunk: int):
    """First (exact, n_patterns), then chunks of ≤ ``chunk`` flip patterns (c, n_blocks), 1 = swap in that block."""
    exact = 2 ** n_blocks <= n_perm
    total = 2 ** n_blocks if exact else n_perm
    yield exact, total
    rng = np.random.default_rng(seed)
    bits = np.arange(n_blocks)
    for lo in range(0, total, chunk):
        hi = min(total, lo + chunk)
        if exact:
            yield ((np.arange(lo, hi)[:, None] >> bits) & 1).astype(np.float64)
        else:
            yield rng.integers(0, 2, size=(hi - lo, n_blocks)).astype(np.float64)


def _column_slices(n_rows: int, n_targets: int):
    """Slices of targets small enough that (n_rows, slice) temporaries stay ~8 MB on 10^5 targets."""
    step = max(1, _CHUNK_ELEMENTS // n_rows)
    return [slice(lo, lo + step) for lo in range(0, n_targets, step)]


class _BlockSums:
    """Per-block sums of one test set, from which r of any swap pattern follows in closed form.

    Swapping A and B in flipped blocks F (c, K): Σ B' = ΣB + F @ (S_A − S_B) per block sum, likewise Σ B'²
    and Σ (y − ȳ)·B'; A' gets the opposite change. Then
    r = Σ(y − ȳ)P / sqrt(Σ(y − ȳ)² · (ΣP² − (ΣP)²/T)).
    """

    def __init__(self, y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, starts: np.ndarray):
        n, n_targets = y_true.shape
        keys = ("sa", "sb", "qa", "qb", "ca", "cb", "yy", "y2")
        sums = {k: np.empty((len(starts), n_targets)) for k in keys}          # (K, V)
        for cols in _column_slices(n, n_targets):
            y = y_true[:, cols]
            yc = y - y.mean(0)                                                 # (T, v)
            # r is shift-invariant and a swap keeps a shift common to both models: centring on the
            # pooled mean avoids cancellation in ΣP² − (ΣP)²/T.
            shift = 0.5 * (pred_a[:, cols].mean(0) + pred_b[:, cols].mean(0))
            a, b = pred_a[:, cols] - shift, pred_b[:, cols] - shift            # (T, v)
            for k, x in zip(keys, (a, b, a * a, b * b, yc * a, yc * b, yc * yc, y * y)):
                sums[k][:, cols] = np.add.reduceat(x, starts, axis=0)
        self.n = n
        self.tot = {k: v.sum(0) for k, v in sums.items()}                     # (V,)
        self.delta = {k: sums[k + "a"] - sums[k + "b"] for k in ("s", "q", "c")}  # (K, V)
        self.yy = self.tot["yy"]
        # A target whose measured response is constant scores r = 0 for both models (as `correlation`).
        self.y_dead = self.yy <= 1e-20 * self.tot["y2"]
        self.scale = self.tot["qa"] + self.tot["qb"]

    def _r(self, s, q, c):
        var = q - s * s / self.n                                               # (c, V)
        ok = (var > 1e-12 * self.scale) & ~self.y_dead
        return np.where(ok, c / np.sqrt(np.where(ok, var * self.yy, 1.0)), 0.0)

    def diff(self, flips: np.ndarray) -> np.ndarray:
        """r_b' − r_a' for each pattern: flips (c, K) → (c, V)."""
        d = {k: flips @ v for k, v in self.delta.items()}                     # (c, V)
        r_b = self._r(self.tot["sb"] + d["s"], self.tot["qb"] + d["q"], self.tot["cb"] + d["c"])
        r_a = self._r(self.tot["sa"] - d["s"], self.tot["qa"] - d["q"], self.tot["ca"] - d["c"])
        return r_b - r_a


def _oriented(x, alternative: str):
    """Map a statistic so that larger means more evidence against H0."""
    return np.abs(x) if alternative == "two-sided" else (x if alternative == "greater" else -x)


def _check(y_true, pred_a, pred_b, n_perm, correction, alternative, alpha):
    arrays = [np.asarray(x, dtype=np.float64) for x in (y_true, pred_a, pred_b)]
    shapes = [x.shape for x in arrays]
    if len(set(shapes)) != 1 or arrays[0].ndim != 2 or shapes[0][0] < 2:
        raise ValueError(f"block_sign_flip_test: y_true, pred_a and pred_b must all be (n_TRs, n_targets) "
                         f"with n_TRs >= 2 and the same shape; got {shapes[0]}, {shapes[1]} and {shapes[2]}.")
    for name, x in zip(("y_true", "pred_a", "pred_b"), arrays):
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x).all(0)).sum())
            raise ValueError(f"block_sign_flip_test: {name} has NaN or inf in {bad} of {x.shape[1]} targets; "
                             f"drop those targets (and report how many) before testing.")
    if correction not in CORRECTIONS:
        raise ValueError(f"block_sign_flip_test: correction={correction!r} is not one of {CORRECTIONS}.")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"block_sign_flip_test: alternative={alternative!r} is not one of {ALTERNATIVES}.")
    if not 0 < alpha < 1:
        raise ValueError(f"block_sign_flip_test: alpha={alpha!r} must lie in (0, 1).")
    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise ValueError(f"block_sign_flip_test: n_perm={n_perm!r} must be a positive integer (e.g. 1000).")
    return arrays


def block_sign_flip_test(y_true, pred_a, pred_b, block_trs: int = 20, n_perm: int = 1000, seed: int = 0,
                         correction: str = "max", alternative: str = "two-sided", alpha: float = 0.05,
                         run_lengths: Sequence[int] | None = None) -> BlockTestResult:
    """Paired block sign-flip test of r(y, pred_b) − r(y, pred_a), per target and averaged over targets.

    The test rows are cut into blocks of ``block_trs`` contiguous TRs (`block_starts`: the remainder of a
    run joins its last block). A sign pattern swaps the two models' predictions in the flipped blocks, the
    same blocks for every target. All 2^n_blocks patterns are enumerated when 2^n_blocks ≤ ``n_perm``
    (``exact``; p = #{patterns at least as extreme, identity included} / 2^n_blocks), else ``n_perm``
    patterns are drawn uniformly (p = (1 + #{as extreme}) / (1 + n_perm)). With several concatenated test
    runs (``run_lengths``), r is computed over all rows, as `correlation` on the concatenation, and
    blocks stay inside their run.

    Per-target p-values: "max" compares each target's statistic with the null distribution of the maximum
    over targets (controls the family-wise error across targets; note that targets whose r difference
    varies more dominate the maximum); "bh" applies `braintune.evaluation.stats.fdr_bh` at ``alpha`` to the
    uncorrected per-target permutation p-values.

    Validity: H0 is that the two models' predictions are exchangeable within blocks given y. The test is
    approximate: flipping neighbouring blocks independently drops their covariance, so the null variance is
    short by about 2φ/((1 − φ²)·block_trs), φ the lag-1 autocorrelation of the per-TR terms of r_b − r_a
    (about the product of the lag-1 autocorrelations of y and of the prediction errors). With AR(1) ρ = 0.7
    in both (φ ≈ 0.49) and 20-TR blocks that is 6 %: at α = 0.05 the global test rejects ~6 % of nulls and
    the max-corrected family ~7.7 %; 40-TR blocks give ~5 % and ~5.8 % (2000 simulations as in
    tests/test_blocktest.py). Use blocks several times longer than the autocorrelation, as long as enough
    blocks remain (``min_p``).

    Parameters
    ----------
    y_true, pred_a, pred_b : arrays of shape (n_TRs, n_targets)
        Measured test responses and the two models' predictions of them (b is compared against a).
    block_trs : int
        Block length in TRs (default 20 TRs, e.g. 30 s at TR = 1.49 s).
    n_perm : int
        Sign patterns to draw when 2^n_blocks > n_perm; below that, the enumeration is exact.
    seed : int
        Seed of the sampled patterns (unused when exact).
    correction : {"max", "bh"}
    alternative : {"two-sided", "greater", "less"}
        "greater": model b aligns better (r_b > r_a).
    alpha : float
        Level for ``reject`` and the power warning.
    run_lengths : sequence of int, optional
        Rows of each concatenated test run (summing to n_TRs); default one run.

    Returns
    -------
    BlockTestResult
        ``min_p`` is `min_pvalue`; when it exceeds ``alpha`` the result carries a warning, also issued.
    """
    y_true, pred_a, pred_b = _check(y_true, pred_a, pred_b, n_perm, correction, alternative, alpha)
    starts = block_starts(len(y_true), block_trs, run_lengths)
    sums = _BlockSums(y_true, pred_a, pred_b, starts)
    cols = _column_slices(*y_true.shape)
    r_a = np.concatenate([correlation(y_true[:, c], pred_a[:, c]) for c in cols])  # (V,)
    r_b = np.concatenate([correlation(y_true[:, c], pred_b[:, c]) for c in cols])
    diff = r_b - r_a
    obs_t = _oriented(diff, alternative) - _TIE_TOL                           # (V,)
    obs_g = _oriented(diff.mean(), alternative) - _TIE_TOL

    patterns = _flip_patterns(len(starts), n_perm, seed, max(1, _CHUNK_ELEMENTS // diff.size))
    exact, total = next(patterns)
    count_g, count_t, null_max = 0, np.zeros(diff.shape, np.int64), []
    for flips in patterns:
        null = sums.diff(flips)                                                # (c, V)
        count_g += int((_oriented(null.mean(1), alternative) >= obs_g).sum())
        null = _oriented(null, alternative)
        count_t += (null >= obs_t).sum(0)
        null_max.append(null.max(1))
    null_max = np.sort(np.concatenate(null_max))                              # (total,)
    count_max = total - np.searchsorted(null_max, obs_t, side="left")         # #{max ≥ obs} per target

    def to_p(count):
        return count / total if exact else (1.0 + count) / (1.0 + total)

    p_raw = to_p(count_t).astype(np.float64)
    if correction == "max":
        p_targets = to_p(count_max).astype(np.float64)
    else:
        p_targets = fdr_bh(p_raw, q=alpha)[1]
    min_p = min_pvalue(len(starts), n_perm, alternative)
    message = None
    if min_p > alpha:
        message = (f"block_sign_flip_test: {len(starts)} blocks of >= {block_trs} TRs give "
                   f"{2 ** len(starts) if exact else total + 1} sign patterns; the smallest reachable "
                   f"{alternative} p is {min_p:.4g} > alpha={alpha}, so the test cannot reject. Use more test "
                   f"TRs (concatenate runs with run_lengths) or shorter blocks if the autocorrelation allows"
                   f"{'' if exact else ', or a larger n_perm'}.")
        warnings.warn(message, stacklevel=2)
    return BlockTestResult(
        statistic=float(diff.mean()), pvalue=float(to_p(count_g)), diff=diff, r_a=r_a, r_b=r_b,
        pvalue_targets=p_targets, pvalue_targets_uncorrected=p_raw, reject=p_targets <= alpha,
        n_blocks=len(starts), n_patterns=total if exact else total + 1, exact=exact, min_p=min_p,
        block_trs=int(block_trs), correction=correction, alternative=alternative, alpha=float(alpha),
        warning=message)
