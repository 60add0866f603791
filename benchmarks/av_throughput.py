"""The audio-video recipe's training step before and after issue 14's levers: stimulus-seconds/s and peak memory.

configs/friends_av_sts.yaml (VideoMAE-base + wav2vec2-base architectures with random weights, no download; LoRA on
both encoders, fusion, gradient checkpointing, bf16 on CUDA) as ``BrainTuner`` trains it: segments of
``data.segment_trs`` Friends TRs (1.49 s) placed by the real dataset code over a synthetic soundtrack (stride-aligned
spans of one length, run statistics), with random frames at ``data.video_fps`` / ``data.frame_size``, 3
participants' heads. "today" runs HF's graph through the frozen audio CNN, the CNN on every span, the grouped
positional convolution and AdamW's multi-tensor loop; "levers" is the default ``speed`` section.

    python -m benchmarks.av_throughput                        # CUDA, batch 4 (the issue's 4 x 42.7 s)
    python -m benchmarks.av_throughput --tiny --steps 1       # the demo's tiny encoders, CPU
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.training_speed import TODAY, legacy_cnn_graph, make_step, timed
from braintune.config import load_config, to_dict
from braintune.data.dataset import SegmentDataset, collate_segments
from braintune.data.modalities import AUDIO
from braintune.data.study import Run
from braintune.data.timing import RunTiming
from braintune.training.module import BrainTuner

FRIENDS_TR = 1.49


def build(args, speed: dict) -> tuple[BrainTuner, object]:
    path = "configs/demo_friends_av.yaml" if args.tiny else "configs/friends_av_sts.yaml"
    names = [] if args.tiny else ["backbone.audio.name=null", "backbone.video.name=null"]
    cfg = load_config(path, [*names, f"data.segment_trs={args.segment_trs}",
                             *[f"speed.{k}={str(v).lower()}" for k, v in speed.items()]])
    torch.manual_seed(0)
    return BrainTuner(to_dict(cfg), {f"sub-0{i}": 1000 for i in (1, 2, 3)}), cfg


def av_batches(module: BrainTuner, cfg, tmp: Path, args, device: str) -> list[dict]:
    """Batches of segments over a synthetic soundtrack (the audio path of the real dataset) + random frames."""
    import soundfile as sf

    seconds = 12 + (args.segment_trs * FRIENDS_TR + 20) * (args.batch + 1)
    rng = np.random.default_rng(0)
    sf.write(tmp / "episode.wav", (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000, subtype="FLOAT")
    run = Run("episode", tmp / "episode.wav", RunTiming(FRIENDS_TR, int((seconds - 12) / FRIENDS_TR), 0.745), seconds)
    spec = dataclasses.replace(module.backbone.spec, modalities=(AUDIO,))  # frames are drawn below, not decoded
    n = {p: 1000 for p in module.heads.participants}
    responses = {(p, run.name): rng.standard_normal((run.timing.n_trs, k)).astype(np.float32) for p, k in n.items()}
    ds = SegmentDataset({run.name: run}, responses, list(n), args.segment_trs, module.pooling.span, cfg.data.context_s,
                        spec=spec, full_segments=True)
    out = []
    for i in range(0, len(ds) - args.batch + 1, args.batch):
        batch = collate_segments([ds[j] for j in range(i, i + args.batch)], list(n), n)
        frames = int(round(float(batch["span_s"][0]) * cfg.data.video_fps))
        batch["video"] = torch.randint(0, 255, (args.batch, frames, cfg.data.frame_size, cfg.data.frame_size, 3),
                                       dtype=torch.uint8, device=device)
        batch["video_fps"], batch["audio"] = cfg.data.video_fps, batch["audio"].to(device)
        batch["targets"] = {p: y.to(device) for p, y in batch["targets"].items()}
        batch["tr_mask"], batch["present"] = batch["tr_mask"].to(device), {p: m.to(device) for p, m in batch["present"].items()}
        out.append(batch)
    return out


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--batch", type=int, default=None, help="segments per step (default 4; CPU 1)")
    parser.add_argument("--segment-trs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    args.batch = args.batch or (4 if device == "cuda" else 1)
    warnings.filterwarnings("ignore")
    if device == "cpu":
        torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, speed, legacy in (("today", TODAY, True), ("levers (default speed.*)", {}, False)):
            module, cfg = build(args, speed)
            module = module.to(device).train()
            if legacy:
                legacy_cnn_graph(module.backbone.audio)
            inputs = av_batches(module, cfg, Path(tmp), args, device)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            _, step_s = timed(make_step(module, device), inputs, args.steps, device)
            seconds = float(np.sum(inputs[0]["span_s"]))
            peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
            rows.append((name, step_s, seconds, peak))
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU (1 thread, CPU time)"
    lines = [f"{card}; {'tiny' if args.tiny else 'VideoMAE-base + wav2vec2-base'}; {args.batch} x {rows[0][2] / args.batch:.1f} s "
             f"segments; {args.steps} timed steps", "",
             "| recipe | s / step | stimulus s/s | vs today | peak GiB | GiB per segment-s |", "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {s:.3f} | {sec / s:.1f} | {rows[0][1] / s:.2f}x | {p:.2f} | {p / sec:.4f} |" for n, s, sec, p in rows]
    print("\n".join(lines))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
