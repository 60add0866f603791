"""DDP's cost on one device and a model of its all-reduce at N devices: step time without DDP, with DDP at world size 1
(``find_unused_parameters`` off and on, ``gradient_as_bucket_view`` off and on), and the gradient bytes every step
all-reduces (LoRA adapters vs participant heads) against the backward pass they overlap with.

One card cannot host two NCCL ranks, so the measurable part is DDP's own machinery at world size 1 (bucketing,
hooks, the unused-parameter search): NCCL (CUDA) or gloo (CPU) with one rank. The all-reduce at N ranks is modelled:
a ring all-reduce moves 2 (N - 1) / N x bytes through each GPU's link; bus bandwidths are NCCL's usual large-message
figures (NVLink/NVSwitch within an H100/H200 node ~360 GB/s; across nodes one 400 Gb/s NIC per GPU ~45 GB/s; pass
``--busbw`` to change them). DDP all-reduces a bucket as soon as its gradients are ready during backward, and the heads
are the first gradients backward produces (they sit at the output), so their all-reduce runs while the backbone's
backward still computes: the table shows how much of the model's communication that backward hides.

    python -m benchmarks.ddp_overhead                       # GPU, the LeBel recipe at 8 x 32 TRs (bf16)
    python -m benchmarks.ddp_overhead --tiny --steps 3      # CPU, demo width
"""
from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from benchmarks.training_speed import batches, config, make_step, story, timed
from braintune.config import to_dict
from braintune.data.formats.lebel import TR
from braintune.training.module import BrainTuner

DEFAULT = {"cnn_cache": True, "pos_conv": "fft", "frozen_lowp": True, "fused_adamw": True, "batched_heads": False}


class StepWrapper(nn.Module):
    """What Lightning hands DDP: a module whose forward is the training step (loss out)."""

    def __init__(self, module: BrainTuner):
        super().__init__()
        self.module = module

    def forward(self, batch: dict) -> torch.Tensor:
        return self.module.training_step(batch, 0)


def measure(args, run, n_targets, device: str, ddp: dict | None) -> tuple[float, BrainTuner]:
    """Seconds per step of the recipe, plain (``ddp`` None) or wrapped in DDP with the ``ddp`` options."""
    torch.manual_seed(0)
    module = BrainTuner(to_dict(config(args, DEFAULT)), n_targets).to(device).train()
    inputs = batches(module, run, args, n_targets, device)
    forward = None
    if ddp is not None:
        wrapped = DistributedDataParallel(StepWrapper(module), device_ids=[0] if device == "cuda" else None, **ddp)
        forward = lambda batch, _: wrapped(batch)  # noqa: E731  (DDP's forward prepares its reducer, as in Lightning)
    _, step_s = timed(make_step(module, device, forward=forward), inputs, args.steps, device)
    return step_s, module


def comm_model(module: BrainTuner, step_s: float, busbw: dict[str, float]) -> list[str]:
    """Rows of the all-reduce model: bytes of trained gradients (float32) and ring all-reduce time at N devices."""
    lora = sum(q.numel() for q in module.backbone.parameters() if q.requires_grad) * 4
    heads = sum(q.numel() for q in module.heads.parameters() if q.requires_grad) * 4
    rows = [f"gradients all-reduced per step: LoRA {lora / 1e6:.1f} MB, heads {heads / 1e6:.1f} MB (float32)", "",
            "| devices | link | all-reduce, LoRA ms | all-reduce, heads ms | total ms | share of a step (no overlap) | "
            "hidden by the backbone's backward (~2/3 of the step) |", "|---|---|---|---|---|---|---|"]
    for n, link in ((2, "nvlink"), (4, "nvlink"), (8, "nvlink"), (16, "ib"), (64, "ib")):
        t = {k: 2 * (n - 1) / n * b / (busbw[link] * 1e9) for k, b in (("lora", lora), ("heads", heads))}
        total = t["lora"] + t["heads"]
        hidden = "yes" if t["heads"] < 2 / 3 * step_s else f"{100 * (2 / 3 * step_s) / t['heads']:.0f} %"
        rows.append(f"| {n} | {link} {busbw[link]:.0f} GB/s | {1000 * t['lora']:.2f} | {1000 * t['heads']:.2f} | "
                    f"{1000 * total:.2f} | {100 * total / step_s:.1f} % | {hidden} |")
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--segment-trs", type=int, default=None)
    parser.add_argument("--context-s", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds; each setting keeps its fastest")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--busbw", type=float, nargs=2, default=(360.0, 45.0), metavar=("NVLINK", "IB"))
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    args.batch_size = args.batch_size or (1 if device == "cpu" else 8)
    args.segment_trs = args.segment_trs or (8 if device == "cpu" else 32)
    n_targets = {f"UTS0{i + 1}": n for i, n in enumerate((64, 64, 64) if args.tiny else (10057, 10057, 10058))}
    warnings.filterwarnings("ignore")
    if device == "cpu":
        torch.set_num_threads(1)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=0, world_size=1)
    rows = ["| setting | ms / step | vs no DDP |", "|---|---|---|"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = story(Path(tmp), 12 + ((args.segment_trs + 6) * TR + args.context_s) * (args.batch_size + 1) + 2 * TR)
            settings = [("no DDP", None), ("DDP, find_unused_parameters=False", {"find_unused_parameters": False}),
                        ("DDP, find_unused_parameters=True", {"find_unused_parameters": True}),
                        ("DDP, False + gradient_as_bucket_view", {"find_unused_parameters": False, "gradient_as_bucket_view": True})]
            best = {name: float("inf") for name, _ in settings}
            for _ in range(args.repeat):  # interleaved rounds; each setting keeps its fastest
                for name, opts in settings:
                    step_s, module = measure(args, run, n_targets, device, opts)
                    best[name] = min(best[name], step_s)
            plain = best["no DDP"]
            rows += [f"| {name} | {1000 * s:.1f} | {s / plain:.3f}x |" for name, s in best.items()]
    finally:
        dist.destroy_process_group()
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU (1 thread, CPU time), gloo"
    busbw = {"nvlink": args.busbw[0], "ib": args.busbw[1]}
    head = f"{card}; world size 1; {args.batch_size} x {args.segment_trs} TRs; {args.steps} timed steps, best of {args.repeat}"
    table = "\n".join([head, "",
                       *rows, "", *comm_model(module, plain, busbw)])
    print(table)
    return table


if __name__ == "__main__":
    main()
