"""Demo synthetic stories + the demo's tiny wav2vec2 in, a table out: training seconds per epoch and held-out
alignment for (a) braintune's segments of K TRs and (b) the reference recipe's one 10 s window per TR.

Both approaches start from the same weights, use the same heads, pooling definition (mean of the frames
in ``[t + 1 s - 10 s, t + 1 s]``), MSE loss, AdamW and the same number of TR targets per optimizer step.
(b) follows bridge-ai-neuro/multi-brain-tuning (``make_delayed`` over 2 s chunks, TR times + 1 s): every
TR is one 10 s waveform, encoded independently, its frames mean-pooled. "val r" is the mean Pearson r between
the heads' predictions and the validation story's responses, with either inference; "test alignment r" is the
demo's brain alignment of the tuned backbone (ridge encoding model on its layer features, test story).

    python -m benchmarks.segment_vs_window                       # 3 epochs, K = 16
    python -m benchmarks.segment_vs_window --epochs 5 --segment-trs 32
    python -m benchmarks.segment_vs_window backbone.config.hidden_size=256 backbone.config.intermediate_size=1024
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from braintune.config import load_config, to_dict
from braintune.data.datamodule import build_datamodule
from braintune.data.stimuli import crop, load_audio
from braintune.evaluation.alignment import measure_alignment
from braintune.pooling import TRPooling
from braintune.training.module import BrainTuner

REFERENCE = ["pooling.window_s=10.0", "pooling.lag_s=-1.0", "pooling.n_windows=1", "pooling.combine=mean"]


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
    hidden = module.backbone(audio, [module.layer])[:, 0]  # (B, T, D)
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


@torch.no_grad()
def heldout_r(module, segment_batches, window_batches) -> tuple[float, float]:
    """Mean Pearson r over participants and targets of the validation story, with segment and with window inference."""
    module.eval()
    out = []
    for kind, batches in (("segment", segment_batches), ("window", window_batches)):
        pred, true = {}, {}
        for batch in batches:
            if kind == "segment":
                for p, y_hat in module(batch).items():
                    rows = module._rows(batch, p)
                    pred.setdefault(p, []).append(y_hat[rows]), true.setdefault(p, []).append(batch["targets"][p][rows])
            else:
                audio, targets = batch
                feats = module.backbone(audio, [module.layer])[:, 0].mean(1)[:, None]
                for p, y_hat in module.heads(feats, list(targets)).items():
                    pred.setdefault(p, []).append(y_hat[:, 0]), true.setdefault(p, []).append(targets[p])
        rs = [np.nanmean([np.corrcoef(a, b)[0, 1] for a, b in zip(torch.cat(pred[p]).T.numpy(), torch.cat(true[p]).T.numpy())])
              for p in pred]
        out.append(float(np.mean(rs)))
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--segment-trs", type=int, default=16)
    parser.add_argument("--targets-per-step", type=int, default=32, help="TR targets per optimizer step, both approaches")
    parser.add_argument("--context-s", type=float, default=4.0, help="(a)'s left context before a segment's first window")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. backbone.config.hidden_size=256 (a wider model)")
    args = parser.parse_args()
    k = args.segment_trs
    sizes = [f"data.segment_trs={k}", f"data.context_s={args.context_s}", f"data.batch_size={max(args.targets_per_step // k, 1)}"]
    cfg = load_config("configs/demo.yaml", REFERENCE + sizes + args.overrides)
    p = cfg.pooling
    dm = build_datamodule(cfg, TRPooling(p.window_s, p.lag_s, p.n_windows, p.combine).span)
    windows = lambda runs, shuffle: DataLoader(  # noqa: E731
        TRWindows(dm.study, runs, dm.responses.data, dm.splits.participants, cfg.data.sample_rate),
        batch_size=args.targets_per_step, shuffle=shuffle)
    seg_train, seg_val = list(dm.train_dataloader()), list(dm.val_dataloader())
    win_val = list(windows(dm.splits.val_runs, False))
    rows = []
    for name, train_batches, step in (("(a) segments", lambda: seg_train, segment_loss),
                                      ("(b) 10 s window per TR", lambda: windows(dm.splits.train_runs, True), window_loss)):
        torch.manual_seed(0)
        module = BrainTuner(to_dict(cfg), dm.responses.n_targets)
        optimizer = torch.optim.AdamW(module.parameters(), lr=args.lr)
        audio_s = sum(b["audio"].numel() for b in seg_train) if step is segment_loss else None  # padded B × S
        seconds = [timed_epoch(module, optimizer, train_batches(), step) for _ in range(args.epochs)]
        if audio_s is None:
            audio_s = len(windows(dm.splits.train_runs, False).dataset) * 10.0 * cfg.data.sample_rate
        # brain alignment of the tuned backbone, measured as the demo does (ridge on layer features, test story)
        encoding, _ = measure_alignment(module.backbone, dm.study, dm.splits.participants, dm.splits.test_runs, cfg,
                                        module.layer, cache=None)
        rows.append((name, np.mean(seconds), audio_s / cfg.data.sample_rate, *heldout_r(module, seg_val, win_val),
                     encoding["mean_r"]))
    print(f"demo stories: {len(dm.splits.train_runs)} train runs, validation {dm.splits.val_runs}, participants "
          f"{dm.splits.participants}; {args.epochs} epochs, {args.targets_per_step} TR targets per step, K = {k}, "
          f"context {args.context_s} s")
    print(f"{'approach':<26}{'CPU s/epoch':>14}{'audio s/epoch':>15}{'val r (seg inf.)':>18}{'val r (win inf.)':>18}"
          f"{'test alignment r':>18}")
    for name, sec, audio, r_seg, r_win, r_enc in rows:
        print(f"{name:<26}{sec:>14.2f}{audio:>15.0f}{r_seg:>18.3f}{r_win:>18.3f}{r_enc:>18.3f}")
    print(f"speed-up of (a) over (b): {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
