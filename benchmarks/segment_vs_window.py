"""Demo synthetic stories + the demo's tiny wav2vec2 in, a table out: backbone CPU seconds per TR target in training and
the causal-evaluation alignment after tuning, for (a) segments with full attention ("unbounded"), (b) segments with
block-causal attention ("banded", braintune's default: each TR sees nothing past its window) and (c) the reference
recipe's one 10 s window per TR.

All three start from the same weights, use the same heads, pooling definition (mean of the frames in
``[t + 1 s - 10 s, t + 1 s]``), MSE loss, AdamW and the same number of TR targets per optimizer step. (c) follows
bridge-ai-neuro/multi-brain-tuning (every TR is one 10 s waveform, encoded independently, its frames mean-pooled).
"alignment" is the brain alignment of the tuned backbone measured the same causal way for all three (ridge on
``bounded`` features of the test story: each TR's feature sees nothing after the TR), mean and 95 % t-interval over
seeds. Timing is CPU time of this process (forward + backward + step), so a shared machine's other load matters less.

    python -m benchmarks.segment_vs_window                                   # demo width, 3 seeds x 4 epochs
    python -m benchmarks.segment_vs_window --timing-only --epochs 1 backbone.config.hidden_size=768 \
        backbone.config.intermediate_size=3072 backbone.config.num_attention_heads=12    # wav2vec2-base width
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.stats
import torch
from torch.utils.data import DataLoader, Dataset

from braintune.commands.common import alignment_settings
from braintune.config import load_config, to_dict
from braintune.data.datamodule import build_datamodule
from braintune.data.stimuli import crop, load_audio
from braintune.evaluation.alignment import measure_alignment
from braintune.pooling import TRPooling
from braintune.training.module import BrainTuner

REFERENCE = ["pooling.window_s=10.0", "pooling.lag_s=-1.0", "pooling.n_windows=1", "pooling.combine=mean",
             "backbone.freeze_feature_encoder=true"]  # the recipe: its 10 s window, its frozen CNN feature encoder


class TRWindows(Dataset):
    """(b): one item per TR of every run: the 10 s of waveform ending 1 s after the TR, zero-padded at the start."""

    def __init__(self, study, runs, responses, participants, sample_rate, window_s=10.0, shift_s=1.0):
        self.items = [(r, i, t) for r in runs for i, t in enumerate(study.runs[r].timing.times())]
        self.study, self.responses, self.participants = study, responses, participants
        self.sample_rate, self.window_s, self.shift_s = sample_rate, window_s, shift_s

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, j):
        run, i, t = self.items[j]
        wave = load_audio(self.study.runs[run].stimulus, self.sample_rate)
        audio = crop(wave, t + self.shift_s - self.window_s, t + self.shift_s, self.sample_rate)
        return torch.from_numpy(audio), {p: torch.from_numpy(self.responses[(p, run)][i]) for p in self.participants}


def window_loss(module, audio, targets):
    """(b)'s step: (B, S) windows -> mean-pooled last layer (B, D) -> heads -> mean MSE over participants."""
    hidden = module.backbone({"audio": audio}, [module.layer])[:, 0]  # (B, T, D), each window normalised on its own
    preds = module.heads(hidden.mean(1)[:, None], list(targets))  # {p: (B, 1, n_p)}
    return torch.stack([torch.nn.functional.mse_loss(preds[p][:, 0], y) for p, y in targets.items()]).mean()


def segment_loss(module, batch):
    """(a)'s step: segments -> per-TR pooled features -> heads -> mean MSE over participants (masked rows)."""
    preds = module(batch)
    losses = [torch.nn.functional.mse_loss(pred[module._rows(batch, p)], batch["targets"][p][module._rows(batch, p)])
              for p, pred in preds.items()]
    return torch.stack(losses).mean()


def timed_epoch(module, optimizer, batches, step) -> float:
    """Seconds spent in forward + backward + optimizer step over one epoch (data loading excluded).

    CPU time of this process (all its threads), not wall time: on a shared machine wall time mostly
    measures the other processes.
    """
    module.train()
    spent = 0.0
    for batch in batches:
        start = time.process_time()
        loss = step(module, *batch) if isinstance(batch, (list, tuple)) else step(module, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        spent += time.process_time() - start
    return spent


APPROACHES = (("(a) segments, full attention", ["band.training=false"], "segments"),
              ("(b) segments, block-causal", ["band.training=true"], "segments"),
              ("(c) 10 s window per TR", [], "windows"))


def run_one(cfg, dm, kind: str, seed: int, args) -> tuple[float, float]:
    """Train one approach for ``args.epochs`` from seed ``seed``; return (CPU s per TR target, test alignment r)."""
    windows = TRWindows(dm.study, dm.splits.train_runs, dm.responses.data, dm.splits.participants, cfg.data.sample_rate)
    torch.manual_seed(seed)
    module = BrainTuner(to_dict(cfg), dm.responses.n_targets)
    dm.spec = module.backbone.spec
    optimizer = torch.optim.AdamW(module.parameters(), lr=args.lr)
    if kind == "segments":
        batches, step = (lambda: list(dm.train_dataloader())[: args.max_steps]), segment_loss
    else:
        gen = torch.Generator().manual_seed(seed)
        batches = lambda: list(DataLoader(windows, batch_size=args.targets_per_step, shuffle=True,  # noqa: E731
                                          generator=gen))[: args.max_steps]
        step = window_loss
    targets, seconds = 0, 0.0
    for _ in range(args.epochs):
        epoch = batches()
        targets += sum(int(b["tr_mask"].sum()) if kind == "segments" else len(b[0]) for b in epoch)
        seconds += timed_epoch(module, optimizer, epoch, step)
    if args.timing_only:
        return seconds / targets, float("nan")
    result = measure_alignment(module.backbone, module.layer, dm.study, dm.splits.participants, dm.splits.test_runs,
                               alignment_settings(cfg))
    return seconds / targets, result.summary()["mean_r"]


def interval(values: list[float]) -> str:
    values = np.asarray(values, float)
    if len(values) < 2 or not np.isfinite(values).all():
        return f"{np.mean(values):.3f}"
    half = scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return f"{values.mean():.3f} [{values.mean() - half:.3f}, {values.mean() + half:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--segment-trs", type=int, default=16)
    parser.add_argument("--targets-per-step", type=int, default=32, help="TR targets per optimizer step, every approach")
    parser.add_argument("--context-s", type=float, default=8.0, help="left context before a segment's first window")
    parser.add_argument("--max-steps", type=int, default=None, help="optimizer steps per epoch (timing of wide models)")
    parser.add_argument("--timing-only", action="store_true", help="skip the alignment (wide models)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. backbone.config.hidden_size=768")
    args = parser.parse_args()
    k = args.segment_trs
    sizes = [f"data.segment_trs={k}", f"data.context_s={args.context_s}", f"data.batch_size={max(args.targets_per_step // k, 1)}"]
    rows = []
    for name, extra, kind in APPROACHES:
        cfg = load_config("configs/demo.yaml", REFERENCE + sizes + extra + args.overrides)
        p = cfg.pooling
        dm = build_datamodule(cfg, TRPooling(p.window_s, p.lag_s, p.n_windows, p.combine).span)
        runs = [run_one(cfg, dm, kind, seed, args) for seed in range(args.seeds)]
        rows.append((name, np.mean([r[0] for r in runs]), [r[1] for r in runs]))
    width = load_config("configs/demo.yaml", args.overrides).backbone.config.get("hidden_size")
    print(f"demo stories, width {width}; {args.seeds} seed(s) x {args.epochs} epoch(s); {args.targets_per_step} TR targets "
          f"per step; K = {k}; context {args.context_s} s; alignment: ridge on bounded features of the test story")
    print(f"{'approach':<32}{'CPU ms per TR target':>22}{'vs windows':>12}  {'test alignment r, mean [95% CI]':<34}")
    for name, sec, r in rows:
        print(f"{name:<32}{1000 * sec:>22.2f}{rows[-1][1] / sec:>11.1f}x  {interval(r):<34}")


if __name__ == "__main__":
    main()
