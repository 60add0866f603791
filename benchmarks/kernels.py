"""Kernel timings behind the training levers, one table: attention over a training segment (SDPA unmasked, SDPA with
the block-causal band as a dense mask, flex attention's block-sparse band), wav2vec2's grouped positional
convolution (cuDNN / oneDNN convolution, FFT, im2col + matmul), and the frozen CNN feature encoder.

Sizes are wav2vec2-base's at issue 14's segment: 8 segments x 81 s = 4,050 frames, 12 heads of 64, 768 channels,
positional kernel 128 in 16 groups; bf16 on CUDA (forward + backward where a gradient flows in training: attention,
and the positional convolution when the backbone is fully fine-tuned), float32 on CPU (``--small`` sizes). The band
is the recipe's: one block per TR (2 s), each seeing 8 s back (``band.past_s``) and nothing past its end.

    python -m benchmarks.kernels              # CUDA
    python -m benchmarks.kernels --small      # CPU-sized check (no flex attention on CPU)
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2Config
from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2FeatureEncoder, Wav2Vec2PositionalConvEmbedding

from braintune.backbones import band, posconv
from braintune.data.timing import Blocks


def bench(fn, device: str, repeat: int = 10) -> float:
    """Milliseconds per call of ``fn`` (after 3 warm-up calls): CUDA events, or CPU time of this process."""
    for _ in range(3):
        fn()
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(repeat):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / repeat
    t = time.process_time()
    for _ in range(repeat):
        fn()
    return 1000 * (time.process_time() - t) / repeat


def attention_rows(b: int, t: int, heads: int, device: str, dtype, repeat: int) -> list[tuple[str, float]]:
    q, k, v = (torch.randn(b, heads, t, 64, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    ends = np.arange(2.0, t / 50 + 2.0, 2.0)[None].repeat(b, 0)  # one block per 2 s TR
    frame_band = band.FrameBand.from_blocks(Blocks(ends, 8.0), 50.0, t, device)
    dense = frame_band.dense()

    def run(attend):
        def go():
            out = attend()
            out.backward(torch.ones_like(out))
        return go

    rows = [("attention, SDPA unmasked (fwd+bwd)", bench(run(lambda: F.scaled_dot_product_attention(q, k, v)), device, repeat)),
            ("attention, SDPA dense band mask (fwd+bwd)",
             bench(run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=dense)), device, repeat))]
    if device == "cuda":
        rows.append(("attention, flex block-sparse band (fwd+bwd)",
                     bench(run(lambda: band._flex(q, k, v, frame_band, None)), device, repeat)))
    else:
        rows.append(("attention, grouped SDPA per block (CPU path, fwd+bwd)",
                     bench(run(lambda: band._grouped(q, k, v, frame_band, None, 0.0)), device, repeat)))
    allowed = dense.float().mean().item()
    return [(f"{name}; band keeps {100 * allowed:.1f} % of pairs", ms) for name, ms in rows]


def posconv_rows(b: int, t: int, device: str, dtype, repeat: int) -> list[tuple[str, float]]:
    module = Wav2Vec2PositionalConvEmbedding(Wav2Vec2Config()).to(device)
    x = torch.randn(b, t, 768, device=device, requires_grad=True)
    rows = []
    autocast = torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32)
    for method in ("conv", "fft", "unfold"):
        posconv.install(module, method)
        module.requires_grad_(False)

        def forward():
            with torch.no_grad(), autocast:
                module(x)

        def train():
            with autocast:
                out = module(x)
            out.float().sum().backward()

        rows.append((f"positional conv, {method}, forward (frozen: the LoRA recipe)", bench(forward, device, repeat)))
        module.requires_grad_(True)
        rows.append((f"positional conv, {method}, fwd+bwd (full fine-tuning)", bench(train, device, max(repeat // 2, 1))))
    return rows


def cnn_row(b: int, seconds: float, device: str, dtype, repeat: int) -> list[tuple[str, float]]:
    encoder = Wav2Vec2FeatureEncoder(Wav2Vec2Config()).to(device)
    audio = torch.randn(b, int(seconds * 16000), device=device)

    def forward():
        with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
            encoder(audio)

    return [(f"frozen CNN feature encoder, forward ({b} x {seconds:.0f} s)", bench(forward, device, repeat))]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CPU-sized: 1 segment of 1,000 frames, 4 heads")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.small else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if device == "cpu":
        torch.set_num_threads(1)
    b, t, heads = (8, 4050, 12) if not args.small else (1, 1000, 4)
    rows = attention_rows(b, t, heads, device, dtype, args.repeat) + posconv_rows(b, t, device, dtype, args.repeat)
    rows += cnn_row(b, t / 50, device, dtype, args.repeat)
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU (1 thread, CPU time)"
    table = (f"{card}; {str(dtype).split('.')[-1]}; {b} x {t} frames, {heads} heads\n\n| kernel | ms |\n|---|---|\n"
             + "\n".join(f"| {name} | {ms:.2f} |" for name, ms in rows))
    print(table)
    return table


if __name__ == "__main__":
    main()
