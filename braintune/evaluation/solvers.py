"""Ridge solvers for ``RidgeEncoder``: (X, Y, CV splits, penalties) -> per-target best α, CV score and weights.

"svd" is braintune's spectral path: per fold one eigendecomposition of the float64 Gram
``X_trainᵀ X_train`` (the ``V`` and ``s²`` of the SVD of ``X_train``); per target batch ``Xᵀ Y``
once, from which every fold's ``Vᵀ X_trainᵀ Y_train`` follows by subtracting the held-out rows;
the validation scores of all penalties from a partial-fraction ("pole") expansion costing one
float64 r × r product per fold, whatever the number of penalties; the refit, each target at its
own α, from two products. "himalaya" wraps ``himalaya.ridge.solve_ridge_cv_svd``. Both run on
numpy or torch (CPU / CUDA) arrays. Issue 14; timings in benchmarks/RESULTS.md.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

# ------------------------------------------------------------------------------------------
# Scores computed along the sample axis (-2), for numpy arrays and torch tensors alike.
# Inputs: y (n, T) and predictions (..., n, T); output (..., T). Constant columns score 0.

def _center(a):
    return a - a.mean(-2)[..., None, :]


def _score_r(y, pred):
    yc, pc = _center(y), _center(pred)
    num = (yc * pc).sum(-2)
    den = ((yc ** 2).sum(-2) * (pc ** 2).sum(-2)) ** 0.5
    ok = den > 0
    return num / (den + ~ok) * ok


def _score_r2(y, pred):
    ss_tot = (_center(y) ** 2).sum(-2)
    ok = ss_tot > 0
    return (1.0 - ((y - pred) ** 2).sum(-2) / (ss_tot + ~ok)) * ok


def _score_r2_huth(y, pred):
    # Huth ridge_corr(use_corr=False): R² = 1 − Var(y − ŷ) / ((1 + Var(y)) / 2), reported in
    # "correlation units" sign(R²)·sqrt|R²|. The (1+Var)/2 denominator assumes z-scored y.
    res_var = (_center(y - pred) ** 2).mean(-2)
    y_var = (_center(y) ** 2).mean(-2)
    r2 = 1.0 - res_var / ((1.0 + y_var) / 2.0)
    zero = r2 == 0
    return r2 / (abs(r2) ** 0.5 + zero)


SCORE_FUNCS = {"r": _score_r, "r2": _score_r2, "r2_huth": _score_r2_huth}


def _finish_scores(num, pp, y_ss, mean_sq, n_val, score):
    """``SCORE_FUNCS[score]`` from per-target sums over the validation samples.

    Parameters
    ----------
    num, pp : arrays of shape (n_alphas, T)
        Σ ŷc·yc and Σ ŷc², with ŷc, yc the predictions and targets centred per column.
    y_ss : array of shape (T,)
        Σ yc².
    mean_sq : array of shape (n_alphas, T) or None
        n_val · (ȳ − mean ŷ)², which "r2" adds to the centred residual Σ (yc − ŷc)².

    Returns
    -------
    scores : array of shape (n_alphas, T); constant columns score 0.
    """
    if score == "r":
        den = (pp.clip(min=0) * y_ss) ** 0.5
        ok = den > 0
        return num / (den + ~ok) * ok
    res = (y_ss - 2 * num + pp).clip(min=0)  # Σ (yc − ŷc)²
    if score == "r2":
        ok = y_ss > 0
        return (1.0 - (res + mean_sq) / (y_ss + ~ok)) * ok
    r2 = 1.0 - (res / n_val) / ((1.0 + y_ss / n_val) / 2.0)
    return r2 / (abs(r2) ** 0.5 + (r2 == 0))


# ------------------------------------------------------------------------------------------
# Array backend of the spectral path: numpy, or torch on the CPU or a CUDA GPU.

class _Xp:
    """The few array operations the spectral path needs, on numpy or torch."""

    def __init__(self, backend: str):
        self.torch, self.cuda = None, backend == "torch_cuda"
        if backend != "numpy":
            import torch
            self.torch, self.device = torch, ("cuda" if self.cuda else "cpu")

    def asarray(self, a, dtype: str):
        """``a`` (numpy, or this backend) as a ``dtype`` array of this backend."""
        if self.torch is None:
            return np.asarray(a, dtype=dtype)
        return self.torch.as_tensor(a, dtype=getattr(self.torch, dtype), device=self.device)

    def eigh(self, a):
        """``eigh`` on one CPU thread: LAPACK's is thousands of small BLAS calls, each a sync of
        all threads; on a shared 2-core machine 2 threads took 0.4-9 s for 768 × 768, one thread
        0.15-0.27 s (issue 14)."""
        if self.torch is None:
            from threadpoolctl import threadpool_limits
            with threadpool_limits(1, user_api="blas"):
                return np.linalg.eigh(a)
        if self.cuda:
            return self.torch.linalg.eigh(a)
        threads = self.torch.get_num_threads()
        self.torch.set_num_threads(1)
        try:
            return self.torch.linalg.eigh(a)
        finally:
            self.torch.set_num_threads(threads)

    def sum_sq(self, P):  # Σ over axis -2 of P²; einsum makes no temporary
        return np.einsum("ant,ant->at", P, P) if self.torch is None else (P * P).sum(-2)

    def sum_prod(self, P, y):  # Σ over axis -2 of P·y
        return np.einsum("ant,nt->at", P, y) if self.torch is None else (P * y).sum(-2)

    def empty(self, shape, dtype: str):
        if self.torch is None:
            return np.empty(shape, dtype=dtype)
        return self.torch.empty(shape, dtype=getattr(self.torch, dtype), device=self.device)

    def mul(self, a, b, out):
        return np.multiply(a, b, out=out) if self.torch is None else self.torch.mul(a, b, out=out)

    def cat(self, arrays):
        return np.concatenate(arrays, 1) if self.torch is None else self.torch.cat(arrays, 1)

    def argmax_max(self, scores):
        if self.torch is None:
            return scores.argmax(0), scores.max(0)
        best = scores.max(0)
        return best.indices, best.values

    def to_numpy(self, a):
        return a if self.torch is None else a.cpu().numpy()


# ------------------------------------------------------------------------------------------
# The spectral path. Returns (best alpha index (T,), CV score at that alpha (T,), coef (p, T)).

_CHUNK_ELEMENTS = {False: 2 ** 21, True: 2 ** 24}  # per target chunk: CPU 8 MiB (cache-sized),
# CUDA 64 MiB of float32 predictions (direct path) or float64 spectral terms (pole path)
_NEAR_RTOL = 1e-7  # eigenvalues closer than this × λ_max are paired exactly, not by poles


def _train_eigh(xp, X64, gram, train, rtol=1e-12):
    """Eigenpairs of ``X_trainᵀ X_train`` and how it differs from the full ``Xᵀ X``.

    The Gram is downdated from ``gram = Xᵀ X`` when n_features ≤ n_train, else taken on the
    smaller side (``X_train X_trainᵀ = U Λ Uᵀ``, ``V = X_trainᵀ U Λ^-½``). In float64 its
    eigenvalues are exact to ~1e-16·λ_max, finer than those of a float32 SVD (s to ~1e-7·s_max):
    squaring costs no precision, and the eigendecomposition takes 0.1-0.2 s (768 × 768, one
    thread) against 0.6 s for the SVD of the 2,400 × 768 block (numpy, one thread). Directions
    with λ ≤ rtol·λ_max are dropped: they carry no training signal (``Vᵀ X_trainᵀ Y`` vanishes
    along them).

    Parameters
    ----------
    X64 : float64 array of shape (n_samples, n_features)
    gram : float64 array of shape (n_features, n_features), ``X64ᵀ X64``
    train : int array of shape (n_train,); repeated indices weigh a row more

    Returns
    -------
    lam : float64 array of shape (r,), ascending
    V : float64 array of shape (n_features, r), orthonormal columns
    out : int array of shape (n_out,), the rows whose training weight is not 1
    Xo : float64 array of shape (n_out, n_features), those rows times (1 − weight), so that
        ``X_trainᵀ Y_train = Xᵀ Y − Xoᵀ Y[out]``
    """
    count = np.bincount(train, minlength=X64.shape[0])
    out = np.flatnonzero(count != 1)
    Xo = X64[xp.asarray(out, "int64")] * xp.asarray(1.0 - count[out], "float64")[:, None]
    if X64.shape[1] <= len(train):
        lam, V = xp.eigh(gram - X64[xp.asarray(out, "int64")].T @ Xo)
    else:
        Xt = X64[xp.asarray(train, "int64")]
        lam, V = xp.eigh(Xt @ Xt.T)
    keep = lam > rtol * max(float(lam[-1]), 0.0)
    lam, V = lam[keep], V[:, keep]
    if X64.shape[1] > len(train):
        V = Xt.T @ (V / lam ** 0.5)
    return lam, V, out, Xo


def _pole_expansion(lam, XvV, pen):
    """Spectral terms giving ``Σ_i ŷ_i²`` of the validation predictions of every α at once.

    With ``G = (X_val V)ᵀ (X_val V)``, ``d_k = 1 / (λ_k + α)`` and ``b = Vᵀ X_trainᵀ y``,
    ``Σ ŷ² = Σ_kl G_kl d_k d_l b_k b_l``. Partial fractions,
    ``d_k d_l = (d_k − d_l) / (λ_l − λ_k)``, turn it into
    ``Σ_k d_k² G_kk b_k² + 2 Σ_k (d_k − d_ref) b_k (M b)_k`` with ``M_kl = G_kl / (λ_l − λ_k)``
    (antisymmetric, so any ``d_ref`` can be subtracted; ``d_ref = 1 / (λ_ref + α)`` with
    λ_ref mid-spectrum keeps the weights small when α ≫ λ and the sum free of cancellation).
    One float64 product ``M b`` (2·r² FLOP per target) then serves every α, against
    2·n_alphas·n_val·r for the predictions themselves. Pairs closer than
    ``_NEAR_RTOL·λ_max`` (which would divide by ~0) are summed exactly, in ``near``.

    Parameters
    ----------
    lam : float64 array of shape (r,), ascending
    XvV : float64 array of shape (n_val, r), validation features in the eigenbasis
    pen : float64 array of shape (n_alphas,)

    Returns
    -------
    poles : dict of numpy float64 arrays: ``M`` (r, r); ``L`` (3·A, 4·r), the block matrix
        [[d²·diag G, 2(d − d_ref), 0, 0], [0, 0, d, 0], [0, 0, 0, d]] that `_pole_stats` applies
        in one product; ``near`` (m,) indices in clusters of close eigenvalues and ``Gn`` (m, m)
        their within-cluster G (zero diagonal). None when m² > n_val·r/4, where the direct
        predictions are cheaper.
    """
    G = XvV.T @ XvV
    cluster = np.concatenate([[0], np.cumsum(np.diff(lam) > _NEAR_RTOL * lam[-1])])
    same = cluster[:, None] == cluster[None, :]
    near = np.flatnonzero(np.bincount(cluster)[cluster] > 1)
    if len(near) ** 2 > XvV.size / 4:
        return None
    M = np.where(same, 0.0, G / np.where(same, 1.0, lam[None, :] - lam[:, None]))
    Gn = np.where(same, G, 0.0)[np.ix_(near, near)]
    np.fill_diagonal(Gn, 0.0)
    d = 1.0 / (lam[None, :] + pen[:, None])  # (A, r)
    lam_ref = (lam[0] + lam[-1]) / 2
    W = (lam_ref - lam[None, :]) * d / (lam_ref + pen[:, None])
    n_alphas, r = d.shape  # L: one product gives Σ ŷc², Σ ŷc·yc and mean ŷ from [b², b∘Mb, c∘b, m∘b]
    L = np.zeros((3 * n_alphas, 4 * r))
    L[:n_alphas, :r], L[:n_alphas, r:2 * r] = d * d * np.diag(G), 2 * W
    L[n_alphas:2 * n_alphas, 2 * r:3 * r] = L[2 * n_alphas:, 3 * r:] = d
    return dict(M=M, L=L, near=near, Gn=Gn)


def _fold_basis(xp, X64, gram, train, val, pen, dtype):
    """Everything one CV fold needs, independent of the targets.

    Returns
    -------
    fold : dict
        ``V`` (p, r); ``XvV`` (n_val, r) = ``X_val V`` centred per column, and ``mean``
        (r,) its column means (float64; ``mean_b`` in ``dtype``); ``XoV`` (n_out, r) = ``Xo V`` (`_train_eigh`) unless
        ``same`` (the rows left out of training are the validation rows, as for KFold);
        ``D1`` (n_alphas, r) = 1 / (λ + α) (float64); ``poles`` (`_pole_expansion`, backend
        arrays) or, when None, ``H`` (n_alphas·n_val, r) = the stacked ``XvV D_α``.
    """
    lam, V, out, Xo = _train_eigh(xp, X64, gram, train)
    val_b = xp.asarray(val, "int64")
    XvV = X64[val_b] @ V
    mean = XvV.mean(0)
    XvV = XvV - mean
    D1 = 1.0 / (lam[None, :] + xp.asarray(pen, "float64")[:, None])
    fold = dict(V=xp.asarray(V, dtype), XvV=xp.asarray(XvV, dtype), mean=mean, D1=D1,
                mean_b=xp.asarray(mean, dtype),
                val=val_b, same=np.array_equal(out, val), out=xp.asarray(out, "int64"),
                XoV=xp.asarray(Xo @ V, dtype))
    poles = _pole_expansion(xp.to_numpy(lam), xp.to_numpy(XvV), np.asarray(pen, np.float64))
    if poles is None:
        fold["H"] = xp.asarray((XvV[None] * D1[:, None, :]).reshape(-1, XvV.shape[1]), dtype)
    fold["poles"] = None if poles is None else {
        k: xp.asarray(v, "int64" if k == "near" else "float64") for k, v in poles.items()}
    return fold


def _fold_scores(xp, fold, Z, Yb, score):
    """Validation score of every penalty on one fold, for one batch of targets.

    ``B = Vᵀ X_trainᵀ Y_train`` is ``Vᵀ Xᵀ Y`` less the held-out rows' share: 2·r·(p + n_val)
    FLOP per target and no gather of the training rows. The held-out share, ``C``, is also
    what the scores need: ``Σ ŷc·yc = Σ_k d_k C_k b_k``.

    Parameters
    ----------
    fold : dict from `_fold_basis`
    Z : array of shape (p, T_b), ``Xᵀ Y`` of the batch
    Yb : array of shape (n_samples, T_b)
    score : str

    Returns
    -------
    scores : float64 array of shape (n_alphas, T_b)
    """
    Yv = Yb[fold["val"]]  # (n_val, T_b)
    n_val, y_mean = Yv.shape[0], Yv.mean(0)
    Yc = Yv - y_mean
    C = fold["XvV"].T @ Yc  # (r, T_b), centred X_val V against centred Y_val
    B = fold["V"].T @ Z  # (r, T_b)
    if fold["same"]:  # (X_val V)ᵀ Y_val = C + n_val · mean ȳᵀ
        B -= C + n_val * fold["mean_b"][:, None] * y_mean
    else:
        B -= fold["XoV"].T @ Yb[fold["out"]]
    stats = _direct_stats if fold["poles"] is None else _pole_stats
    width = fold["D1"].shape[0] * n_val if fold["poles"] is None else 4 * B.shape[0]
    chunk = max(1, _CHUNK_ELEMENTS[xp.cuda] // width)
    num, pp, pbar = (xp.cat(parts) for parts in zip(*[
        stats(xp, fold, B[:, c:c + chunk], C[:, c:c + chunk], Yc[:, c:c + chunk])
        for c in range(0, B.shape[1], chunk)]))
    y_mean, y_ss = xp.asarray(y_mean, "float64"), xp.asarray((Yc * Yc).sum(0), "float64")
    mean_sq = n_val * (y_mean - pbar) ** 2 if score == "r2" else None
    return _finish_scores(num, pp, y_ss, mean_sq, n_val, score)


def _pole_stats(xp, fold, B, C, Yc):
    """Σ ŷc·yc, Σ ŷc² and mean ŷ of every α for a chunk of targets (`_pole_expansion`).

    Parameters
    ----------
    B, C : arrays of shape (r, T_c), ``Vᵀ X_trainᵀ Y_train`` and the centred ``(X_val V)ᵀ Y_val``
    Yc : array of shape (n_val, T_c), unused (the sums come from ``B`` and ``C``)

    Returns
    -------
    num, pp, pbar : float64 arrays of shape (n_alphas, T_c)
    """
    poles, D1 = fold["poles"], fold["D1"]
    (n_alphas, r), b, c = D1.shape, xp.asarray(B, "float64"), xp.asarray(C, "float64")
    E = xp.empty((4 * r, b.shape[1]), "float64")  # written in place: two BLAS calls a chunk
    xp.mul(b, b, E[:r])
    xp.mul(b, poles["M"] @ b, E[r:2 * r])
    xp.mul(c, b, E[2 * r:3 * r])
    xp.mul(fold["mean"][:, None], b, E[3 * r:])
    out = poles["L"] @ E  # (3·A, T_c): Σ ŷc², Σ ŷc·yc, mean ŷ
    pp = out[:n_alphas]
    if len(poles["near"]):
        t = D1[:, poles["near"], None] * b[poles["near"]][None]  # (A, m, T_c)
        pp += (t * (poles["Gn"] @ t)).sum(1)
    return out[n_alphas:2 * n_alphas], pp, out[2 * n_alphas:]


def _direct_stats(xp, fold, B, C, Yc):
    """`_pole_stats` from the predictions themselves, ``(X_val V)c diag(d) B`` for all α in one
    product with the stacked ``H`` (for spectra with many near-equal eigenvalues)."""
    n_alphas = fold["D1"].shape[0]
    P = (fold["H"] @ B).reshape(n_alphas, -1, B.shape[1])  # (A, n_val, T_c), centred
    pbar = fold["D1"] @ (fold["mean"][:, None] * xp.asarray(B, "float64"))
    return xp.asarray(xp.sum_prod(P, Yc), "float64"), xp.asarray(xp.sum_sq(P), "float64"), pbar


def _fit_svd_path(X, Y, splits, penalties, score, n_targets_batch, backend, dtype):
    """Per-target ridge CV on one eigendecomposition of ``Xᵀ X`` per fold (module docstring).

    FLOP per target: 2·n·p for ``Xᵀ Y``; per fold 2·r·(p + n_val) for ``B`` and ``C`` and
    2·r² (float64) for the pole expansion, whatever the number of α; 4·p·r for the refit.
    himalaya's ``solve_ridge_cv_svd`` costs 2·n_alphas·n_val·n_train per fold and
    2·n_alphas_used·p·n for its refit (encoding_anchors.md §2). Memory beyond the inputs and
    outputs is O((n_samples + p) · n_targets_batch).
    """
    xp = _Xp(backend)
    X64 = xp.asarray(X, "float64")
    gram = X64.T @ X64
    folds = [_fold_basis(xp, X64, gram, np.asarray(train), np.asarray(val), penalties, dtype)
             for train, val in splits]
    lam, V, _, _ = _train_eigh(xp, X64, gram, np.arange(len(X)))
    Xb, V, lam, pen = (xp.asarray(a, dtype) for a in (X64, V, lam, penalties))
    del X64, gram
    results = _Results(X.shape[1], Y.shape[1], dtype, xp)
    for cols, Yb in _target_batches(xp, Y, n_targets_batch, dtype):
        Z = Xb.T @ Yb  # (p, T_b)
        scores = sum(_fold_scores(xp, fold, Z, Yb, score) for fold in folds)
        best, cv_scores = xp.argmax_max(scores / len(folds))  # (T_b,), (T_b,)
        B = V.T @ Z  # (r, T_b); refit: each target at its own α in one pass
        B /= lam[:, None] + pen[best][None, :]
        results.put(cols, best, cv_scores, V @ B)
    return results.finish()


def _target_batches(xp, Y, size, dtype):
    """Yield (columns, ``Y[:, columns]`` as a ``dtype`` array of the backend), ``size`` at a time."""
    n_targets = Y.shape[1]
    batches = [slice(i, min(i + size, n_targets)) for i in range(0, n_targets, size)]
    if xp.cuda:
        yield from _cuda_batches(xp.torch, Y, batches, dtype)
        return
    for cols in batches:
        Yb = Y[:, cols] if Y.dtype == dtype else Y[:, cols].astype(dtype)  # numpy: a view
        yield cols, Yb if xp.torch is None else xp.torch.from_numpy(np.ascontiguousarray(Yb))


def _cuda_batches(torch, Y, batches, dtype, piece_elements=2 ** 23):
    """`_target_batches` on CUDA: each batch is sent in row blocks through two small pinned buffers.

    Pinned memory is slow to allocate (on an H200 host, 2 buffers of a whole 50,000-target batch
    added ~0.75 s to a fit, issue 14), so the buffers hold ``piece_elements`` (32 MiB in
    float32) whatever the batch size; a block is gathered on the host while the previous one
    crosses to the GPU, and batch i+1 is gathered while the GPU works on batch i.
    """
    n, tdtype = Y.shape[0], getattr(torch, dtype)
    size = max(piece_elements, batches[0].stop - batches[0].start)  # at least one row of a batch
    pinned = [torch.empty(size, dtype=tdtype, pin_memory=True) for _ in range(2)]
    sent = [None, None]  # event after the copy that last read each buffer

    def send(cols):
        width = cols.stop - cols.start
        on_gpu = torch.empty((n, width), dtype=tdtype, device="cuda")
        rows = size // width
        for k, start in enumerate(range(0, n, rows)):
            stop, k = min(start + rows, n), k % 2
            if sent[k] is not None:
                sent[k].synchronize()
            host = pinned[k][:(stop - start) * width].view(stop - start, width)
            host.copy_(torch.from_numpy(Y[start:stop, cols]))  # multi-threaded gather + cast
            on_gpu[start:stop].copy_(host, non_blocking=True)
            sent[k] = torch.cuda.Event()
            sent[k].record()
        return on_gpu

    following = send(batches[0])
    for i, cols in enumerate(batches):
        current = following
        yield cols, current  # the caller queues batch i's work before asking for i + 1
        if i + 1 < len(batches):
            following = send(batches[i + 1])


class _Results:
    """Per-target outputs, filled batch by batch: best α index, CV score, coef (p, T).

    On CUDA a batch's outputs go to pinned host memory without blocking and are written out one
    batch later, so the host never waits for the GPU's current batch.
    """

    def __init__(self, n_features, n_targets, dtype, xp):
        self.best = np.empty(n_targets, dtype=np.int64)
        self.cv_scores = np.empty(n_targets)
        self.coef = np.empty((n_features, n_targets), dtype=dtype)
        self.xp, self.pending = xp, []

    def put(self, cols, best, cv_scores, coef):
        arrays = (best, cv_scores, coef)
        if not self.xp.cuda:
            return self._write(cols, arrays, None)
        torch = self.xp.torch
        host = tuple(torch.empty(a.shape, dtype=a.dtype, pin_memory=True) for a in arrays)
        for h, a in zip(host, arrays):
            h.copy_(a, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        self.pending.append((cols, host, done))
        while len(self.pending) > 1:
            self._write(*self.pending.pop(0))

    def _write(self, cols, arrays, done):
        if done is not None:
            done.synchronize()
        best, cv_scores, coef = (self.xp.to_numpy(a) for a in arrays)
        self.best[cols], self.cv_scores[cols], self.coef[:, cols] = best, cv_scores, coef

    def finish(self):
        for pending in self.pending:
            self._write(*pending)
        return self.best, self.cv_scores, self.coef


# ------------------------------------------------------------------------------------------
# himalaya, for comparison and as an alternative.

@contextmanager
def _himalaya_backend(name: str):
    # himalaya's backend is a global; restore the caller's choice afterwards.
    from himalaya.backend import get_backend, set_backend
    previous = get_backend().name
    try:
        yield set_backend(name)
    finally:
        set_backend(previous)


def _fit_himalaya(X, Y, splits, penalties, score, n_targets_batch, backend, dtype):
    """himalaya ``solve_ridge_cv_svd`` with ``local_alpha=True`` on precomputed splits."""
    from himalaya.ridge import solve_ridge_cv_svd
    with _himalaya_backend(backend) as hb:
        on_gpu = backend == "torch_cuda"
        best_alphas, coef, cv_scores = solve_ridge_cv_svd(
            hb.asarray(np.asarray(X, dtype=dtype)),
            hb.asarray(np.asarray(Y, dtype=dtype), device="cpu" if on_gpu else None),
            alphas=hb.asarray(np.asarray(penalties, dtype=dtype)), cv=splits,
            score_func=SCORE_FUNCS[score], local_alpha=True, n_targets_batch=n_targets_batch,
            Y_in_cpu=on_gpu, warn=False)
        best_alphas, coef = hb.to_numpy(best_alphas), hb.to_numpy(coef)
        cv_scores = hb.to_numpy(cv_scores).reshape(-1)
    best = np.abs(np.log(best_alphas)[None, :] - np.log(penalties)[:, None]).argmin(0)
    return best, cv_scores, coef.astype(dtype, copy=False)


SOLVER_FUNCS = {"svd": _fit_svd_path, "himalaya": _fit_himalaya}
