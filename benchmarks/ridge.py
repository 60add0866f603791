"""Synthetic encoding problem in, a table of fit time, peak memory and agreement per ridge solver out.

Compares braintune's `RidgeEncoder` (SVD-path solver and himalaya solver) with himalaya
`RidgeCV` and scikit-learn `RidgeCV(alpha_per_target=True)` on the problem of
encoding_anchors.md §3: 3,000 train + 500 test TRs × 768 features × 20,000 targets, float32,
10 alphas, 5 contiguous folds, per-target α. Each method runs in its own subprocess; peak RSS
comes from a 10 ms /proc/self/status VmRSS sampler (and ru_maxrss), minus the RSS after
the data were built and the libraries imported.

    python benchmarks/ridge.py                   # 20k targets, CPU methods
    python benchmarks/ridge.py --targets 2000    # quick
    python benchmarks/ridge.py --device cuda     # adds torch_cuda runs when a GPU exists
    python benchmarks/ridge.py --repeat 3        # on a shared machine: fastest of 3 runs
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CPU_METHODS = ["braintune-svd", "braintune-himalaya", "himalaya", "himalaya-batched",
               "sklearn-gcv"]
CUDA_METHODS = ["braintune-svd-cuda", "himalaya-cuda"]


def make_data(n_train, n_test, n_features, n_targets, seed=0):
    """X: power-law spectrum, AR(1) rho=0.5; Y = X W gain + N(0,1), 40 % noise-only targets."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    Z = rng.standard_normal((n, n_features), dtype=np.float32)
    for t in range(1, n):
        Z[t] = 0.5 * Z[t - 1] + np.sqrt(0.75) * Z[t]
    X = Z * (np.arange(1, n_features + 1, dtype=np.float32) ** -0.5)
    X = (X - X[:n_train].mean(0)) / X[:n_train].std(0)
    Y = np.empty((n, n_targets), dtype=np.float32)
    for start in range(0, n_targets, 5000):  # chunked so the generator's temporaries stay small
        cols = slice(start, min(start + 5000, n_targets))
        k = cols.stop - cols.start
        W = rng.standard_normal((n_features, k), dtype=np.float32) / np.sqrt(n_features)
        snr = 10 ** rng.uniform(-2, 0, k).astype(np.float32) * (rng.uniform(size=k) > 0.4)
        Y[:, cols] = (X @ W) * np.sqrt(snr) + rng.standard_normal((n, k), dtype=np.float32)
    Y -= Y[:n_train].mean(0)
    return X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]


def _rss_gib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2 ** 20
    return float("nan")


def _cpu_seconds():
    # CPU time of this process (all threads): robust to other jobs sharing the cores.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PeakRSS(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.running = _rss_gib(), True

    def run(self):
        while self.running:
            self.peak = max(self.peak, _rss_gib())
            time.sleep(0.01)


def _fit(method, X, Y, alphas, folds, batch):
    """Fit one method; return (predict function, chosen penalties per target)."""
    from sklearn.model_selection import KFold
    cv = KFold(folds)
    if method.startswith("braintune"):
        from braintune.evaluation.encoding import RidgeEncoder
        solver = "himalaya" if method == "braintune-himalaya" else "svd"
        backend = "torch_cuda" if method.endswith("cuda") else "numpy"
        enc = RidgeEncoder(alphas=alphas, delays=(0,), cv=cv, alpha_convention="himalaya",
                           scoring="r2", solver=solver, backend=backend,
                           n_targets_batch=batch).fit(X, Y)
        return enc.predict, enc.alphas_
    if method.startswith("himalaya"):
        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV
        from himalaya.scoring import r2_score
        backend = set_backend("torch_cuda" if method.endswith("cuda") else "numpy")
        params = dict(score_func=r2_score)
        if method == "himalaya-batched":
            params["n_targets_batch"] = batch
        model = RidgeCV(alphas=alphas, cv=cv, solver_params=params,
                        Y_in_cpu=method.endswith("cuda")).fit(X, Y)
        return (lambda Xt: backend.to_numpy(model.predict(Xt))), backend.to_numpy(model.best_alphas_)
    if method == "sklearn-gcv":
        from sklearn.linear_model import RidgeCV
        model = RidgeCV(alphas=alphas, alpha_per_target=True, fit_intercept=False).fit(X, Y)
        return model.predict, np.asarray(model.alpha_)
    raise ValueError(f"unknown method {method!r}; choose from {CPU_METHODS + CUDA_METHODS}")


def child(args):
    X, Y, Xt, Yt = make_data(args.samples, args.test, args.features, args.targets)
    import himalaya.ridge  # noqa: F401  (imports outside the measured window)
    import sklearn.linear_model  # noqa: F401
    from braintune.evaluation.metrics import correlation
    if args.method.endswith("cuda"):
        import torch
        torch.set_num_threads(args.threads)
    alphas = np.logspace(0, 4, args.alphas)
    base = _rss_gib()
    sampler = PeakRSS()
    sampler.start()
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    predict, chosen = _fit(args.method, X, Y, alphas, args.folds, args.batch)
    if args.method.endswith("cuda"):
        import torch
        torch.cuda.synchronize()
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    sampler.running = False
    sampler.join()
    peak = max(sampler.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    r = correlation(Yt, np.asarray(predict(Xt)))
    np.save(Path(args.out) / f"{args.method}_r.npy", r)
    np.save(Path(args.out) / f"{args.method}_alpha.npy", np.asarray(chosen, dtype=np.float64))
    extra = {}
    if args.method.endswith("cuda"):
        import torch
        extra["gpu_peak_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    print(json.dumps(dict(seconds=seconds, cpu=cpu, peak=peak, incr=peak - base, **extra)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000, help="training TRs")
    parser.add_argument("--test", type=int, default=500, help="test TRs")
    parser.add_argument("--features", type=int, default=768)
    parser.add_argument("--targets", type=int, default=20000)
    parser.add_argument("--alphas", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10000, help="n_targets_batch")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--methods", nargs="*", default=None,
                        help=f"subset of {CPU_METHODS + CUDA_METHODS}")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per method (interleaved); the fastest is reported")
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        return child(args)

    methods = args.methods or (CPU_METHODS + (CUDA_METHODS if args.device == "cuda" else []))
    env = dict(os.environ, **{k: str(args.threads) for k in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                         env.get("PYTHONPATH", "")])
    passthrough = [f"--{k}={getattr(args, k)}" for k in (
        "samples", "test", "features", "targets", "alphas", "folds", "batch", "threads")]
    print(f"# {args.samples}+{args.test} TRs x {args.features} features x {args.targets} targets,"
          f" {args.alphas} alphas, {args.folds}-fold, float32, {args.threads} threads")
    results = {}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.repeat):  # methods interleaved; the fastest run of each is kept
            for method in methods:
                res = _run_child(method, out, passthrough, env)
                if res is not None and (method not in results
                                        or res["seconds"] < results[method]["seconds"]):
                    results[method] = res
    _print_table(results)


def _run_child(method, out, passthrough, env):
    proc = subprocess.run([sys.executable, __file__, f"--method={method}", f"--out={out}",
                           *passthrough], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{method}: failed (rc={proc.returncode}): {proc.stderr.strip()[-400:]}")
        return None
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["r"] = np.load(Path(out) / f"{method}_r.npy")
    res["alpha"] = np.load(Path(out) / f"{method}_alpha.npy")
    return res


def _print_table(results):
    ref = results.get("himalaya") or results.get("himalaya-cuda")
    print(f"| {'method':<20} | fit s | CPU s | peak GiB | incr GiB | mean r | max |Δr| vs himalaya "
          f"| same α |")
    print("|" + "---|" * 8)
    for method, res in results.items():
        dr = np.abs(res["r"] - ref["r"]).max() if ref is not None else float("nan")
        same = (np.mean(np.isclose(res["alpha"], ref["alpha"], rtol=1e-4))
                if ref is not None else float("nan"))
        gpu = f" (GPU {res['gpu_peak_gib']:.2f} GiB)" if "gpu_peak_gib" in res else ""
        print(f"| {method:<20} | {res['seconds']:.1f} | {res['cpu']:.1f} | {res['peak']:.2f} | {res['incr']:.2f}{gpu}"
              f" | {res['r'].mean():.4f} | {dr:.1e} | {100 * same:.1f} % |")


if __name__ == "__main__":
    main()
