"""wav2vec2-base (from its config, no download) + LoRA as in configs/lebel_wav2vec2_multi.yaml, synthetic segments
in; a table out: samples/s, TR targets/s, peak memory and model FLOP utilisation of bf16 brain-tuning steps.

FLOPs per step are counted on one real step (forward + backward) with ``torch.utils.flop_counter.FlopCounterMode``
(this counts what runs: LoRA's frozen base weights need input gradients but no weight gradients, so the
usual 6·N·tokens would overstate them). MFU = FLOPs per step / step time / the card's dense bf16 peak.

    python -m benchmarks.gpu_throughput --batch-size 8 --segment-trs 32 --steps 20       # H100 SXM: --peak-tflops 989
    python -m benchmarks.gpu_throughput --tiny --steps 2                                 # CPU, float32, a tiny model
"""
from __future__ import annotations

import argparse
import contextlib
import resource
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from braintune.backbones import build_backbone
from braintune.config import BackboneConfig
from braintune.data.formats.lebel import TR
from braintune.heads import ParticipantHeads
from braintune.pooling import TRPooling

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 7,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def build(tiny: bool, n_targets: int, device: str):
    """Backbone (LoRA r=8 on q/k/v/out, frozen CNN), the reference 10 s mean pooling and one participant head."""
    backbone = build_backbone(BackboneConfig(arch="wav2vec2", name=None, config=TINY if tiny else {}, finetune="lora"))
    pooling = TRPooling(window_s=10.0, lag_s=-1.0, n_windows=1, combine="mean")
    heads = ParticipantHeads(pooling.out_features(backbone.hidden_size), {"UTS01": n_targets})
    return backbone.to(device), pooling, heads.to(device)


def make_batch(batch_size: int, k: int, context_s: float, pooling: TRPooling, frame_rate: float, device: str):
    """Synthetic segments: (B, S) audio covering K TRs + context, TR times (B, K), pooling weights (B, K, 1, T)."""
    tr_times = np.tile(np.arange(k) * TR + 20.0, (batch_size, 1))
    start, end = pooling.span(tr_times[0, 0], tr_times[0, -1])
    start -= context_s
    samples = int(round((end - start) * 16000))
    n_frames = int(samples / 16000 * frame_rate)  # an upper bound; weights are cropped to the real frame count below
    weights = pooling.weights(tr_times, np.full(batch_size, start), frame_rate, n_frames)
    return torch.randn(batch_size, samples, device=device), weights.to(device), end - start


def step(backbone, pooling, heads, optimizer, audio, weights, targets, autocast) -> None:
    with autocast():
        hidden = backbone(audio, [-1])[:, 0]  # (B, T, D)
        w = weights[..., : hidden.shape[1]]
        pred = heads(pooling(hidden, w))["UTS01"]  # (B, K, n)
        loss = torch.nn.functional.mse_loss(pred.float(), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=None, help="segments per step (default 8; --tiny: 2)")
    parser.add_argument("--segment-trs", type=int, default=None, help="K TRs per segment (default 32; --tiny: 8)")
    parser.add_argument("--context-s", type=float, default=8.0)
    parser.add_argument("--targets", type=int, default=30172, help="targets of the head (the reference's common space)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after one counted and one warm-up step)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the card (H100 SXM: 989)")
    parser.add_argument("--tiny", action="store_true", help="tiny model, float32, CPU (a check that the script runs)")
    args = parser.parse_args()
    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    if args.tiny:
        args.targets = min(args.targets, 64)
    args.batch_size = args.batch_size or (2 if args.tiny else 8)
    args.segment_trs = args.segment_trs or (8 if args.tiny else 32)
    torch.manual_seed(0)
    backbone, pooling, heads = build(args.tiny, args.targets, device)
    params = [q for m in (backbone, heads) for q in m.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    audio, weights, seconds = make_batch(args.batch_size, args.segment_trs, args.context_s, pooling, backbone.frame_rate, device)
    targets = torch.randn(args.batch_size, args.segment_trs, args.targets, device=device)
    bf16 = device == "cuda" and not args.tiny
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    run = lambda: step(backbone, pooling, heads, optimizer, audio, weights, targets, autocast)  # noqa: E731

    with FlopCounterMode(display=False) as counter:
        run()
    flops = counter.get_total_flops()
    run()  # warm-up (kernels, allocator)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        run()
    sync()
    step_s = (time.perf_counter() - start) / args.steps
    if device == "cuda":
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB (max_memory_allocated)"
        mfu = f"{100 * flops / step_s / (args.peak_tflops * 1e12):.1f}% of {args.peak_tflops:.0f} TFLOP/s"
        card = torch.cuda.get_device_name()
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process max RSS)"
        mfu, card = "n/a on CPU", "CPU"
    n_all = sum(q.numel() for m in (backbone, heads) for q in m.parameters())
    print(f"device {card}; {'tiny' if args.tiny else 'wav2vec2-base'} {'bf16-mixed' if bf16 else 'float32'}; LoRA r=8 on q/k/v/out; "
          f"{n_all:,} parameters, {sum(q.numel() for q in params):,} trained")
    print(f"batch {args.batch_size} segments × {args.segment_trs} TRs ({seconds:.1f} s of audio each), {args.targets} targets")
    for name, value in [("step time", f"{step_s * 1000:.1f} ms"), ("samples/s", f"{args.batch_size / step_s:.2f}"),
                        ("TR targets/s", f"{args.batch_size * args.segment_trs / step_s:.1f}"),
                        ("audio s/s", f"{args.batch_size * seconds / step_s:.1f}"),
                        ("FLOPs/step", f"{flops / 1e12:.3f} TFLOP (FlopCounterMode)"), ("peak memory", peak), ("MFU", mfu)]:
        print(f"  {name:<14}{value}")


if __name__ == "__main__":
    main()
