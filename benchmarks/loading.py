"""Responses at real scale: peak memory per process of the training targets, in RAM per process (``prepare_responses``,
before issue 14) or in one node-wide store read per batch (``data/response_store.py``), with 1 and 2 processes and
two dataset sizes; and (``--throughput``) the data loader's batches/s against the demo model's training steps/s.

The generated study has ds003020's shape with the voxel count scaled down: 3 participants x ``--stories`` stories
(82 for the three long participants) x 350 TRs x ``--voxels`` targets (95,000 real; default 3,000, so every byte
count is 1/31.7 of the real one: 1.0 GB of float32 here for 33 GB real), in the LeBel layout (hf5 per participant
and story, 1 kHz wav stimuli: only their headers are read). Each process opens the study, prepares the responses
of the training runs the way ``build_datamodule`` does, then reads every training segment's rows (32 TRs, every
participant) as an epoch's batches do; it reports its peak resident set size (``ru_maxrss``), its RSS after the
imports, and the time to first batch and per epoch. The processes of a row start together and share the node
(one store, written by the first).

    python benchmarks/loading.py                      # 82 and 41 stories, 1 and 2 processes, both ways
    python benchmarks/loading.py --stories 10 --voxels 500   # a quick check
    python benchmarks/loading.py --throughput         # data loader vs training step (demo)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PARTICIPANTS, TRS, K = ("UTS01", "UTS02", "UTS03"), 350, 32


def generate(root: Path, n_stories: int, voxels: int) -> Path:
    """The LeBel layout at ``root`` (kept between runs): stories story000.. + the test story, 350 rows each."""
    import h5py
    import soundfile as sf

    stories = [f"story{i:03d}" for i in range(n_stories - 1)] + ["wheretheressmoke"]
    if (root / "done.json").is_file() and json.loads((root / "done.json").read_text()) == [stories, voxels]:
        return root
    rng = np.random.default_rng(0)
    (root / "stimuli").mkdir(parents=True, exist_ok=True)
    seconds = 2 * TRS + 22  # row j at 2j + 11 s (data/formats/lebel.py)
    for s in stories:
        sf.write(root / "stimuli" / f"{s}.wav", np.zeros(seconds * 1000, np.int16), 1000, subtype="PCM_16")
        for p in PARTICIPANTS:
            d = root / "derivative" / "preprocessed_data" / p
            d.mkdir(parents=True, exist_ok=True)
            with h5py.File(d / f"{s}.hf5", "w") as f:
                f["data"] = rng.standard_normal((TRS, voxels), dtype=np.float32)
    (root / "done.json").write_text(json.dumps([stories, voxels]))
    return root


def worker(mode: str, root: str, n_stories: int, cache: str) -> dict:
    """One process: open the study, prepare the training responses (``mode``: ram | store), read an epoch's rows."""
    rss0 = _rss_gib()
    from braintune.data.formats import lebel
    from braintune.data.response_store import store_responses
    from braintune.data.responses import prepare_responses

    imported = _rss_gib()
    start = time.perf_counter()
    study = lebel.open_study(Path(root), lebel.LebelOptions())
    runs = sorted(study.runs)[: n_stories - 1]  # the training stories (the test story left out)
    if mode == "ram":
        responses = prepare_responses(study, list(PARTICIPANTS), runs)
    else:
        responses = store_responses(study, list(PARTICIPANTS), runs, cache_dir=cache)
    ready = time.perf_counter() - start
    total = 0.0
    for r in runs:
        for s in range(0, TRS - K + 1, K):
            total += sum(float(responses.data[(p, r)][s : s + K][0, 0]) for p in PARTICIPANTS)
    return {"mode": mode, "stories": n_stories, "peak_gib": _peak_gib(), "after_imports_gib": imported, "start_gib": rss0,
            "ready_s": ready, "epoch_s": time.perf_counter() - start - ready, "check": total}


def _rss_gib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 2**20


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def row(mode: str, root: Path, n_stories: int, n_procs: int, cache: Path) -> list[dict]:
    """``n_procs`` workers started together on one node; their reports."""
    cmd = [sys.executable, __file__, "--worker", mode, str(root), str(n_stories), str(cache)]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(n_procs)]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def memory_table(args) -> str:
    root = generate(Path(args.root), args.stories, args.voxels)
    gb = len(PARTICIPANTS) * args.stories * TRS * args.voxels * 4 / 1e9
    lines = [f"generated study: {len(PARTICIPANTS)} participants x {args.stories} stories x {TRS} TRs x {args.voxels} voxels "
             f"= {gb:.2f} GB float32 (real ds003020: 95,000 voxels, x{95000 / args.voxels:.1f})", "",
             "| responses | stories | processes | peak RSS per process GiB | after imports GiB | responses ready s | epoch of rows s |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as cache:
        for mode in ("ram", "store"):
            for n_stories in (args.stories, args.stories // 2):
                for n_procs in (1, 2):
                    reports = row(mode, root, n_stories, n_procs, Path(cache) / f"{mode}-{n_stories}-{n_procs}")  # written anew
                    peak = max(r["peak_gib"] for r in reports)
                    name = "in RAM per process (before)" if mode == "ram" else "node store, rows per batch"
                    lines.append(f"| {name} | {n_stories} | {n_procs} | {peak:.2f} | {reports[0]['after_imports_gib']:.2f} | "
                                 f"{max(r['ready_s'] for r in reports):.1f} | {max(r['epoch_s'] for r in reports):.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stories", type=int, default=82)
    ap.add_argument("--voxels", type=int, default=3000)
    ap.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "braintune-loading-study"))
    ap.add_argument("--throughput", action="store_true", help="data loader batches/s vs the demo training step")
    ap.add_argument("--worker", nargs=4, metavar=("MODE", "ROOT", "STORIES", "CACHE"), help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    if args.worker:
        mode, root, stories, cache = args.worker
        print(json.dumps(worker(mode, root, int(stories), cache)))
    elif args.throughput:
        print(throughput(args.steps))
    else:
        print(memory_table(args))


def throughput(steps: int) -> str:
    """Batches/s of the demo train loader (first epoch decodes and writes the cache, the second maps it) against
    training steps/s of the demo wav2vec2."""
    import torch

    from braintune.config import load_config, to_dict
    from braintune.data import stimuli
    from braintune.data.datamodule import build_datamodule
    from braintune.training.module import BrainTuner

    tmp = tempfile.mkdtemp()
    cfg = load_config("configs/demo.yaml", [f"data.cache_dir={tmp}/cache"])
    module = BrainTuner(to_dict(cfg), {})
    dm = build_datamodule(cfg, module.pooling.span)
    module = BrainTuner(to_dict(cfg), dm.responses.n_targets)
    dm.spec = module.backbone.spec
    rows = []
    for label in ("epoch 1 (decode + write cache)", "epoch 2 (memory-mapped cache)"):
        stimuli.load_audio.cache_clear()  # the disk cache, not the in-process lru cache, is measured in epoch 2
        start, n = time.perf_counter(), 0
        for _ in dm.train_dataloader():
            n += 1
        rows.append((f"data loader, {label}", n / (time.perf_counter() - start)))
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    batches = list(dm.train_dataloader())[:steps]
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        loss = module.training_step(batch, i)
        opt.zero_grad()
        loss.backward()
        opt.step()
    rows.append((f"demo training step ({len(batches)} steps)", len(batches) / (time.perf_counter() - start)))
    return "| stage | batches/s |\n|---|---|\n" + "\n".join(f"| {name} | {rate:.2f} |" for name, rate in rows)


if __name__ == "__main__":
    main()
