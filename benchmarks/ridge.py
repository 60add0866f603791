"""Synthetic encoding problem in, a table of fit time, added memory and agreement per ridge solver out.

braintune's `RidgeEncoder` (spectral path; numpy, torch CPU or CUDA) against himalaya `RidgeCV`
under the settings named on the command line (backend, ``n_targets_batch``, ``n_alphas_batch``,
``n_targets_batch_refit``, ``Y_in_cpu``, scikit-learn's ``assume_finite``), on the problem of
encoding_anchors.md §3: 3,000 train + 500 test TRs × 768 features × N targets, float32, 10 α,
5 contiguous folds, per-target α, R² as the CV score (issue 14).

Side by side: the data of each size are generated once and saved; every run is a fresh
subprocess that loads them, warms the method up on a tiny problem, then fits once; the runs of
all methods are interleaved (``--repeat`` rounds), and the table keeps each method's fastest
run, its ratio to the fastest himalaya setting (the reference), and its α agreement and
test-r difference against that reference. "fit CPU s" is the process CPU time of that fit (all
threads), which other jobs on the machine disturb less than wall time. Added memory is the
peak RSS during the fit minus the RSS before it (10 ms sampler and ru_maxrss), and on CUDA the
peak of allocated GPU memory during the fit. The 1-minute load average is recorded before
every run: on a shared machine compare rows only within one table.

    python benchmarks/ridge.py                                     # 20k targets, default methods
    python benchmarks/ridge.py --targets 20000 80000 --repeat 3
    python benchmarks/ridge.py --methods braintune "himalaya:backend=torch,n_targets_batch=10000"
    python benchmarks/ridge.py --device cuda --targets 80000 300000 --repeat 3
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CPU_METHODS = ["braintune", "himalaya:backend=numpy", "himalaya:backend=numpy,n_targets_batch=10000",
               "himalaya:backend=torch", "himalaya:backend=torch,n_targets_batch=10000"]
CUDA_METHODS = ["braintune:backend=torch_cuda", "himalaya:backend=torch_cuda",
                "himalaya:backend=torch_cuda,n_targets_batch=100000"]
BRAINTUNE_KEYS = {"backend", "n_targets_batch"}
HIMALAYA_KEYS = {"backend", "n_targets_batch", "n_alphas_batch", "n_targets_batch_refit", "Y_in_cpu",
                 "assume_finite"}


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


def parse_method(spec: str):
    """``"name[:key=value,...]"`` -> (name, settings); values are ints, or True/False/None."""
    name, _, rest = spec.partition(":")
    settings = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        constants = {"None": None, "True": True, "False": False}
        settings[key] = constants[value] if value in constants else int(value) if value.isdigit() else value
    allowed = {"braintune": BRAINTUNE_KEYS, "himalaya": HIMALAYA_KEYS}.get(name)
    if allowed is None or not set(settings) <= allowed:
        raise SystemExit(f"method {spec!r}: name must be braintune or himalaya, keys one of "
                         f"{sorted(allowed or BRAINTUNE_KEYS | HIMALAYA_KEYS)}")
    return name, settings


# ------------------------------------------------------------------------------------------
# One run (child process).

def _rss_gib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2 ** 20
    return float("nan")


class PeakRSS(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.running = _rss_gib(), True

    def run(self):
        while self.running:
            self.peak = max(self.peak, _rss_gib())
            time.sleep(0.01)


def _fit(spec, X, Y, alphas, folds, batch):
    """Fit one method; return (predict function, chosen α per target)."""
    from sklearn.model_selection import KFold
    name, settings = parse_method(spec)
    backend = settings.get("backend", "numpy")
    if name == "braintune":
        from braintune.evaluation.encoding import RidgeEncoder
        enc = RidgeEncoder(alphas=alphas, delays=(0,), cv=KFold(folds), alpha_convention="himalaya",
                           scoring="r2", solver="svd", backend=backend,
                           n_targets_batch=settings.get("n_targets_batch", batch)).fit(X, Y)
        return enc.predict, enc.alphas_
    import sklearn
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import r2_score
    hb = set_backend(backend)
    params = dict(score_func=r2_score, **{k: v for k, v in settings.items()
                                          if k in ("n_targets_batch", "n_alphas_batch", "n_targets_batch_refit")})
    with sklearn.config_context(assume_finite=bool(settings.get("assume_finite", False))):
        model = RidgeCV(alphas=alphas, cv=KFold(folds), solver_params=params,
                        Y_in_cpu=bool(settings.get("Y_in_cpu", False))).fit(X, Y)
    return (lambda Xt: hb.to_numpy(model.predict(Xt))), hb.to_numpy(model.best_alphas_)


def _profiler(torch, cuda):
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    return torch.profiler.profile(activities=activities)


def child(args):
    data = {k: np.load(Path(args.data) / f"{k}.npy") for k in ("X", "Y", "Xt", "Yt")}
    import torch
    torch.set_num_threads(args.threads)
    from braintune.evaluation.metrics import correlation
    cuda = "torch_cuda" in args.method
    alphas = np.logspace(0, 4, args.alphas)
    small = make_data(200, 10, 20, 50, seed=1)  # warm-up: BLAS threads, CUDA context, solver handles
    _fit(args.method, small[0], small[1], alphas, args.folds, args.batch)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    gpu_base = torch.cuda.memory_allocated() if cuda else 0
    base, sampler = _rss_gib(), PeakRSS()
    sampler.start()
    profiler = _profiler(torch, cuda) if args.profile else contextlib.nullcontext()
    t0, cpu0 = time.perf_counter(), time.process_time()
    with profiler:
        predict, chosen = _fit(args.method, data["X"], data["Y"], alphas, args.folds, args.batch)
        if cuda:
            torch.cuda.synchronize()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if args.profile:  # where the time of this (slowed) run went, slowest operators first
        table = profiler.key_averages().table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total",
                                              row_limit=25)
        slug = "".join(c if c.isalnum() else "_" for c in args.method)
        (Path(args.profile) / f"profile_{slug}_{data['Y'].shape[1]}.txt").write_text(table)
    sampler.running = False
    sampler.join()
    peak = max(sampler.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    r = correlation(data["Yt"], np.asarray(predict(data["Xt"])))
    out = Path(args.out)
    np.save(out / "r.npy", r)
    np.save(out / "alpha.npy", np.asarray(chosen, dtype=np.float64))
    gpu = (torch.cuda.max_memory_allocated() - gpu_base) / 2 ** 30 if cuda else None
    print(json.dumps(dict(seconds=seconds, cpu=cpu, incr=peak - base, gpu=gpu)))


# ------------------------------------------------------------------------------------------
# Side-by-side runs (parent process).

def _run(method, data_dir, args, env):
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, f"--method={method}", f"--data={data_dir}", f"--out={out}",
               *[f"--{k}={getattr(args, k)}" for k in ("alphas", "folds", "batch", "threads")],
               *([f"--profile={args.profile}"] if args.profile else [])]
        load = os.getloadavg()[0]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"  {method}: failed (rc={proc.returncode}): {proc.stderr.strip()[-600:]}", flush=True)
            return None
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res.update(load=load, r=np.load(Path(out) / "r.npy"), alpha=np.load(Path(out) / "alpha.npy"))
    print(f"  {method}: {res['seconds']:.2f} s (load {load:.2f})", flush=True)
    return res


def run_size(n_targets, methods, args, env):
    """All runs of one size, interleaved; returns {method: list of results}."""
    with tempfile.TemporaryDirectory() as data_dir:
        arrays = make_data(args.samples, args.test, args.features, n_targets)
        for key, a in zip(("X", "Y", "Xt", "Yt"), arrays):
            np.save(Path(data_dir) / f"{key}.npy", a)
        del arrays
        runs = {m: [] for m in methods}
        for round_ in range(args.repeat):
            order = methods if round_ % 2 == 0 else methods[::-1]  # neither side always first
            for method in order:
                res = _run(method, data_dir, args, env)
                if res is not None:
                    runs[method].append(res)
    return runs


def print_table(n_targets, runs, save_dir=None):
    """Markdown rows: fastest run of each method, against the fastest himalaya setting."""
    best = {m: min(rs, key=lambda r: r["seconds"]) for m, rs in runs.items() if rs}
    him = [m for m in best if m.startswith("himalaya")]
    ref = best[min(him, key=lambda m: best[m]["seconds"])] if him else None
    for method, res in best.items():
        times = "/".join(f"{r['seconds']:.1f}" for r in runs[method])
        ratio = ref["seconds"] / res["seconds"] if ref else float("nan")
        same = np.isclose(res["alpha"], ref["alpha"], rtol=1e-4) if ref else np.zeros(len(res["r"]), bool)
        dr = np.abs(res["r"] - ref["r"]) if ref else np.full(len(res["r"]), np.nan)
        gpu = "" if res["gpu"] is None else f"{res['gpu']:.2f}"
        mark = " (ref)" if res is ref else ""
        agree = f"{100 * same.mean():.3f} % | {dr[same].max(initial=0):.1e} / {dr.max():.1e}" if ref else "– | –"
        print(f"| {method}{mark} | {n_targets} | {res['seconds']:.2f} | {times} | {ratio:.2f}× | {res['cpu']:.1f} | "
              f"{res['incr']:.2f} | {gpu} | {agree} | {res['r'].mean():.4f} | {res['load']:.2f} |")
    if save_dir:  # chosen α and test r of each method's fastest run, e.g. to examine disagreements
        np.savez_compressed(Path(save_dir) / f"ridge_{n_targets}.npz", methods=np.array(list(best)),
                            alpha=np.stack([best[m]["alpha"] for m in best]), r=np.stack([best[m]["r"] for m in best]))


def _machine(device):
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    text = f"{cpu} ({os.cpu_count()} CPUs)"
    if device == "cuda":
        import torch
        text += f", {torch.cuda.get_device_name()}"
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000, help="training TRs")
    parser.add_argument("--test", type=int, default=500, help="test TRs")
    parser.add_argument("--features", type=int, default=768)
    parser.add_argument("--targets", type=int, nargs="+", default=[20000], help="one table block per size")
    parser.add_argument("--alphas", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10000, help="braintune n_targets_batch")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="'braintune[:backend=...,n_targets_batch=...]' or 'himalaya[:backend=...,"
                             f"n_targets_batch=...,...]'; default: {CPU_METHODS} (cpu), {CUDA_METHODS} (cuda)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the fastest run is kept")
    parser.add_argument("--save", help="folder for ridge_<targets>.npz: chosen α and test r of each method")
    parser.add_argument("--profile", help="folder for a torch.profiler table of every run (slows the runs)")
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        return child(args)
    methods = args.methods or (CUDA_METHODS if args.device == "cuda" else CPU_METHODS)
    for spec in methods:
        parse_method(spec)
    env = dict(os.environ, **{k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS")})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  {_machine(args.device)}, {args.threads} threads; "
          f"load {os.getloadavg()}")
    print(f"# {args.samples}+{args.test} TRs x {args.features} features, {args.alphas} alphas, "
          f"{args.folds}-fold, float32, R² CV score; fastest of {args.repeat} interleaved runs")
    print("# " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), flush=True)
    tables = [(n, run_size(n, methods, args, env)) for n in args.targets]
    print("\n| method | targets | fit s | runs s | speed-up vs ref | fit CPU s | added RAM GiB | added GPU GiB "
          "| same α as ref | max abs Δr vs ref (same-α targets / all) | mean test r | load |")
    print("|" + "---|" * 12)
    for n_targets, runs in tables:
        print_table(n_targets, runs, args.save)


if __name__ == "__main__":
    main()
