"""Audio-video backbone at its configured size in, a table of training-step throughput and peak memory out.

Builds ``backbone.arch: av`` from a config (default configs/friends_av_sts.yaml: VideoMAE-base + wav2vec2-base
architectures, random weights, no download), feeds random segments of ``--seconds`` of audio and frames at
``data.video_fps`` / ``data.frame_size``, and times forward + backward of the fused last layer.

    python benchmarks/av_throughput.py                         # real sizes, on CUDA when present
    python benchmarks/av_throughput.py --tiny                  # the demo's tiny encoders, on CPU
    python benchmarks/av_throughput.py --batch 2 --seconds 30 --precision bf16
"""
from __future__ import annotations

import argparse
import time

import torch

from braintune.backbones import build_backbone
from braintune.config import load_config


def config_overrides(cfg) -> list[str]:
    """The real config with architectures only: ``name`` -> the same architecture built from its hub defaults."""
    out = []
    for part in ("audio", "video"):
        if getattr(cfg.backbone, part).name is not None:
            out.append(f"backbone.{part}.name=null")  # default HF configs of Wav2Vec2Config / VideoMAEConfig are the base sizes
    return out


def step(model, batch: dict, layer: int, precision: str, device: str) -> None:
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    with torch.autocast(device_type=device, dtype=dtype, enabled=precision == "bf16"):
        out = model(batch, [layer])
    out.float().pow(2).mean().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/friends_av_sts.yaml")
    parser.add_argument("--tiny", action="store_true", help="use configs/demo_friends_av.yaml (tiny encoders, CPU)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=None, help="span per segment; default: the config's segment span")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    args = parser.parse_args()
    path = "configs/demo_friends_av.yaml" if args.tiny else args.config
    cfg = load_config(path)
    cfg = load_config(path, config_overrides(cfg))
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    precision = args.precision if device == "cuda" else "fp32"
    d, p = cfg.data, cfg.pooling
    seconds = args.seconds or d.segment_trs * 1.49 + p.n_windows * p.window_s + d.context_s
    model = build_backbone(cfg.backbone).to(device).train()
    n_params = sum(q.numel() for q in model.parameters())
    n_train = sum(q.numel() for q in model.parameters() if q.requires_grad)
    n_frames = int(seconds * d.video_fps)
    batch = {"audio": torch.randn(args.batch, int(seconds * d.sample_rate), device=device),
             "video": torch.randint(0, 255, (args.batch, n_frames, d.frame_size, d.frame_size, 3), dtype=torch.uint8, device=device),
             "video_fps": d.video_fps, "span_s": [seconds] * args.batch}
    step(model, batch, model.num_layers - 1, precision, device)  # warm-up (kernels, allocator)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step(model, batch, model.num_layers - 1, precision, device)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - start) / args.steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    print("| config | device | precision | params (trainable) | batch x seconds | frames/segment | s/step | stimulus s/s | peak GiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"| {path} | {name} | {precision} | {n_params / 1e6:.1f}M ({n_train / 1e6:.1f}M) | {args.batch} x {seconds:.1f} | "
          f"{n_frames} | {elapsed:.3f} | {args.batch * seconds / elapsed:.1f} | {peak:.2f} |")


if __name__ == "__main__":
    main()
