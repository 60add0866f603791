"""Instruction-conditioned MLLM features at real size (random weights, no download): clips/s, peak memory, and
the GPU-hours the paper's setup would take.

The model is built from its transformers config class at the size transformers documents as the reference
checkpoint (Video-LLaVA-7B: CLIP ViT-L/14 towers + a 7B Llama; Qwen2-Audio-7B), on the meta device, then
materialised and initialised on the device (bf16 on GPU). The processor is the family's own with a byte-level
tokenizer (``braintune.backbones.mllm.synthetic``); clips are random frames / noise. Random weights rarely emit
EOS, so "generated" runs the full ``--max-new-tokens`` (the paper's answer length is not known).

Projection: Oota et al. 2025 extract one clip per TR of 3 movies (4,024 + 6,993 + 2,013 TRs, the test movie's
two repeats share stimuli), under 13 instructions, for 6 video models: 13,030 × 13 × 6 ≈ 1.02 M passes.

Measured on one H200 (torch 2.11, transformers 5.24, batch 8, 64 clips, 8 frames of 360x640 / 1.49 s audio):
Video-LLaVA-7B prompt 12.8 clips/s, generated (16 tokens) 8.7 clips/s, peak 27.6 GiB -> 22 / 33 GPU-h for the
paper's setup; Qwen2-Audio-7B prompt 49.1, generated 16.1 clips/s, peak 16.9 GiB -> 5.8 / 17.6 GPU-h.

    python -m benchmarks.mllm_features --device cuda --batch-size 8 --clips 64      # one GPU, bf16
    python -m benchmarks.mllm_features --tiny                                       # CPU, float32, tiny model
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from braintune.backbones.mllm import InstructedMLLM, model_from_config
from braintune.backbones.mllm.synthetic import synthetic_processor, tiny_config, token_config

PAPER_TRS = 4024 + 6993 + 2013  # Bourne + Wolf (train) + Life (test), Movie10
PAPER_INSTRUCTIONS, PAPER_MODELS = 13, 6
REAL = {  # family -> (processor sizes, config overrides on the config class defaults)
    # VideoLlavaConfig() is LanguageBind/Video-LLaVA-7B-hf's architecture (7.37 B parameters with this vocabulary).
    "video_llava": (dict(image_size=224, patch_size=14), {"text_config": {"model_type": "llama", "vocab_size": 32064}}),
    # Qwen2AudioConfig()'s Qwen2 defaults (intermediate 22016) make 12.7 B; Qwen2-Audio-7B's LM has a 11008-wide MLP
    # and a 156032-token vocabulary (from memory of the hub config, not checked offline): 8.4 B with the audio encoder.
    "qwen2_audio": (dict(n_mels=128, chunk_s=30), {"text_config": {"model_type": "qwen2", "intermediate_size": 11008,
                                                                   "vocab_size": 156032}}),
}


def build(family: str, tiny: bool, device: str, num_frames: int, batch_size: int) -> InstructedMLLM:
    """The family's model (meta device -> ``device``) behind its synthetic processor."""
    sizes, overrides = ({}, None) if tiny else REAL[family]
    proc = synthetic_processor(family, **sizes)
    config = tiny_config(family, proc, hidden=32) if tiny else {**overrides, **token_config(family, proc)}
    model = model_from_config(family, config, device=device, dtype="auto", meta_device=True)
    return InstructedMLLM(model, proc, family, num_frames=num_frames, batch_size=batch_size)


def make_clips(n: int, mllm: InstructedMLLM, frame_hw: tuple[int, int], clip_s: float, seed: int = 0) -> list[dict]:
    """Random clips of ``clip_s`` seconds: frames at 2 fps-equivalent count ``num_frames``, audio at the model's rate."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        clip = {"video": rng.integers(0, 256, (mllm.num_frames or 8, *frame_hw, 3), dtype=np.uint8), "video_fps": 2.0}
        if mllm.sampling_rate:
            clip["audio"] = (0.1 * rng.standard_normal(int(clip_s * mllm.sampling_rate))).astype(np.float32)
        out.append(clip)
    return out


def timed(mllm: InstructedMLLM, clips: list[dict], embedding: str, max_new_tokens: int) -> tuple[float, float]:
    """(clips/s, peak memory GiB) of one pass over ``clips`` after a one-batch warm-up."""
    cuda = mllm.model.device.type == "cuda"
    mllm.clip_features(clips[:mllm.batch_size], "Caption the video in a short sentence.", embedding, max_new_tokens)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    mllm.clip_features(clips, "Caption the video in a short sentence.", embedding, max_new_tokens)
    if cuda:
        torch.cuda.synchronize()
    rate = len(clips) / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return rate, peak / 2 ** 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="video_llava", choices=sorted(REAL))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per call (default 8; --tiny: 2)")
    parser.add_argument("--clips", type=int, default=None, help="timed clips (default 64; --tiny: 4)")
    parser.add_argument("--frames", type=int, default=8, help="frames per video clip")
    parser.add_argument("--frame-size", type=int, nargs=2, default=(360, 640), help="frame height width (resized)")
    parser.add_argument("--clip-s", type=float, default=1.49, help="audio seconds per clip (one Movie10 TR)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--tiny", action="store_true", help="tiny model, float32, CPU (a check that the script runs)")
    args = parser.parse_args()
    if args.tiny:
        args.device, args.frame_size = "cpu", (32, 32)
    batch, n_clips = args.batch_size or (2 if args.tiny else 8), args.clips or (4 if args.tiny else 64)
    torch.manual_seed(0)
    built = time.perf_counter()
    mllm = build(args.family, args.tiny, args.device, args.frames if args.family != "qwen2_audio" else None, batch)
    built = time.perf_counter() - built
    n_params = sum(p.numel() for p in mllm.model.parameters()) / 1e9
    clips = make_clips(n_clips, mllm, tuple(args.frame_size), args.clip_s)
    passes = PAPER_TRS * PAPER_INSTRUCTIONS * PAPER_MODELS
    print(f"{args.family}{' (tiny)' if args.tiny else ''}: {n_params:.2f} B parameters, {mllm.num_layers} hidden states "
          f"x {mllm.hidden_size}, {mllm.model.dtype}, {args.device}, built in {built:.1f} s; modalities "
          f"{list(mllm.modalities)}, {mllm.num_frames} frames, batch {batch}, {n_clips} timed clips")
    hours = "CPU-h, tiny" if args.tiny else "paper GPU-h"
    print(f"{'embedding':<10} {'new tokens':>10} {'clips/s':>9} {'peak GiB':>9} {hours:>12}")
    for embedding in ("prompt", "generated"):
        rate, peak = timed(mllm, clips, embedding, args.max_new_tokens)
        tokens = args.max_new_tokens if embedding == "generated" else 0
        print(f"{embedding:<10} {tokens:>10} {rate:>9.2f} {peak:>9.2f} {passes / rate / 3600:>12.1f}")
    print(f"{hours}: {PAPER_TRS:,} TRs x {PAPER_INSTRUCTIONS} instructions x {PAPER_MODELS} models = {passes:,} "
          "clip passes at this model's rate (each extra no-instruction baseline adds 1/13)")


if __name__ == "__main__":
    main()
