"""Data pipeline alone vs the demo model's training step: batches/s of the SegmentDataModule train loader
(first epoch with an empty cache, second epoch cached) against training steps/s of the demo wav2vec2.

Usage: ``python benchmarks/loading.py [--format synthetic|synthetic_friends] [--steps 5]``; prints a table.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch


def main() -> None:
    from braintune.config import load_config, to_dict
    from braintune.data import stimuli
    from braintune.data.datamodule import build_datamodule
    from braintune.pooling import TRPooling
    from braintune.training.module import BrainTuner

    ap = argparse.ArgumentParser()
    ap.add_argument("--format", default="synthetic", choices=["synthetic", "synthetic_friends"])
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    root = "data/demo_stories" if args.format == "synthetic" else f"{tmp}/friends"
    cfg = load_config("configs/demo.yaml", [f"data.format={args.format}", f"data.root={root}", f"data.cache_dir={tmp}/cache"]
                      + (["data.heldout_participants=[]", "data.synthetic.targets=[40,48,56]", "data.synthetic.participants=3",
                          "data.synthetic.stories=3", "data.synthetic.story_seconds=60"] if args.format == "synthetic_friends" else []))
    p = cfg.pooling
    dm = build_datamodule(cfg, TRPooling(p.window_s, p.lag_s, p.n_windows, p.combine).span)
    rows = []
    for label in ("epoch 1 (decode + write cache)", "epoch 2 (memory-mapped cache)"):
        if label.startswith("epoch 2"):
            stimuli.load_audio.cache_clear()  # drop the in-process lru cache so the disk cache is what is measured
        start, n = time.perf_counter(), 0
        for _ in dm.train_dataloader():
            n += 1
        rows.append((f"data loader, {label}", n / (time.perf_counter() - start)))
    module = BrainTuner(to_dict(cfg), dm.responses.n_targets)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    batches = list(dm.train_dataloader())[: args.steps]
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        loss = module.training_step(batch, i)
        opt.zero_grad()
        loss.backward()
        opt.step()
    rows.append((f"demo training step (forward+backward+AdamW, {len(batches)} steps)", len(batches) / (time.perf_counter() - start)))
    print(f"{'stage':<70} {'batches/s':>10}\n" + "\n".join(f"{name:<70} {rate:>10.2f}" for name, rate in rows))
    print(f"device: cpu, threads {torch.get_num_threads()}, format {args.format}, batch_size {cfg.data.batch_size}")


if __name__ == "__main__":
    main()
