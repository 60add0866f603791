"""Issue 14's training-throughput levers, one at a time, in one table: ms per step and per TR target, TR targets/s,
speed-up over today's recipe, peak memory per segment-second; plus the reference recipe's 10 s window per TR on the
same model and device.

The LeBel recipe (configs/lebel_wav2vec2_multi.yaml: wav2vec2-base architecture with random weights, no download;
LoRA r=8 on q/k/v/out, frozen CNN, block-causal attention, 10 s mean pooling) with 3 participants of 10,057 targets
(30,172 in all, heads 23 M parameters), on segments read from a synthetic story through the real dataset code
(stride-aligned spans of one length, run statistics). Rows are cumulative: each adds one lever to the row above.
"today" is the recipe before issue 14 (HF's frozen CNN still builds an autograd graph, CNN on every span, cuDNN /
oneDNN grouped positional convolution, autocast casts of frozen weights every step, AdamW's multi-tensor loop).
The window recipe is the reference's one 10 s waveform per TR (bridge-ai-neuro/multi-brain-tuning), mean-pooled
last layer, full attention, as benchmarks/segment_vs_window.py runs it, at today's settings and with the levers
that apply to it.

Timing: CUDA wall time between synchronisations (bf16 autocast); on CPU the CPU time of this process (float32; on a
shared machine wall time mostly measures the other processes). The first step of a row (it fills the CNN cache:
one pass over the story) is reported apart. Peak memory: CUDA's allocator peak over the timed steps; on CPU with
``--memory``, the memory guard's measure (tensors saved for backward + parameters + gradients, training/memory.py).

    python -m benchmarks.training_speed                                   # GPU: 8 x 32 TRs, 10 timed steps
    python -m benchmarks.training_speed --base --batch-size 1 --segment-trs 8 --steps 2   # CPU, real width
    python -m benchmarks.training_speed --tiny --steps 2                  # CPU, demo width (a check that it runs)
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from braintune.config import load_config, to_dict
from braintune.data.dataset import SegmentDataset, collate_segments
from braintune.data.formats.lebel import TR
from braintune.data.study import Run
from braintune.data.timing import RunTiming
from braintune.training.memory import step_peak_bytes
from braintune.training.module import BrainTuner
from braintune.training.speed import build_optimizer

TODAY = {"cnn_cache": False, "pos_conv": "conv", "frozen_lowp": False, "fused_adamw": False, "batched_heads": False}
LEVERS = [  # (row, speed settings added to the row above, HF's graph through the frozen CNN)
    ("today (before issue 14)", {}, True),
    ("+ frozen CNN builds no graph", {}, False),
    ("+ CNN frame cache", {"cnn_cache": True}, False),
    ("+ FFT positional conv", {"pos_conv": "fft"}, False),
    ("+ frozen weights cast once", {"frozen_lowp": True}, False),
    ("+ fused AdamW = the default", {"fused_adamw": True}, False),
    ("  default + batched heads", {"batched_heads": True}, False),
    ("  default, im2col positional conv", {"batched_heads": False, "pos_conv": "unfold"}, False),
]
TINY = ["configs/demo.yaml", "backbone.finetune=lora", "backbone.freeze_feature_encoder=true", "pooling.window_s=10.0",
        "pooling.lag_s=-1.0", "pooling.n_windows=1", "pooling.combine=mean"]


def config(args, speed: dict):
    path, *extra = TINY if args.tiny else ["configs/lebel_wav2vec2_multi.yaml", "backbone.name=null"]
    overrides = [*extra, f"data.segment_trs={args.segment_trs}", f"data.context_s={args.context_s}",
                 "backbone.config.mask_time_prob=0.0", *[f"speed.{k}={str(v).lower()}" for k, v in speed.items()]]
    return load_config(path, overrides)


def legacy_cnn_graph(backbone) -> None:
    """Today's behaviour: HF's feature encoder marks its input as requiring grad in training, frozen or not."""
    encoder = backbone.encoder
    forward = encoder.forward

    def marked(input_values):
        encoder._requires_grad = True  # HF's default, which freezing its parameters left up
        return forward(input_values)

    encoder.forward = marked


def story(tmp: Path, seconds: float) -> Run:
    """A synthetic LeBel-clock story: tone bursts in noise, ``seconds`` long."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    wave = 0.05 * rng.standard_normal(len(t)) + 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)
    sf.write(tmp / "story.wav", wave.astype(np.float32), 16000, subtype="FLOAT")
    return Run("story", tmp / "story.wav", RunTiming(TR, int((seconds - 12) / TR), 11.0), seconds)


def batches(module: BrainTuner, run: Run, args, n_targets: dict, device) -> list[dict]:
    """Every segment of the story, ``args.batch_size`` per batch, targets on ``device``."""
    rng = np.random.default_rng(1)
    responses = {(p, run.name): rng.standard_normal((run.timing.n_trs, n)).astype(np.float32) for p, n in n_targets.items()}
    ds = SegmentDataset({run.name: run}, responses, list(n_targets), args.segment_trs, module.pooling.span,
                        args.context_s, spec=module.backbone.spec, full_segments=True)
    items = [ds[i] for i in range(len(ds))]
    out = []
    for i in range(0, len(items) - args.batch_size + 1, args.batch_size):
        batch = collate_segments(items[i : i + args.batch_size], list(n_targets), n_targets)
        batch["audio"] = batch["audio"].to(device)
        batch["targets"] = {p: y.to(device) for p, y in batch["targets"].items()}
        batch["tr_mask"], batch["present"] = batch["tr_mask"].to(device), {p: m.to(device) for p, m in batch["present"].items()}
        out.append(batch)
    return out


def make_step(module: BrainTuner, device: str, windows: bool = False, forward=None):
    """One optimizer step as Lightning runs it: autocast forward, backward, clip at 1.0, AdamW, zero grads.
    ``forward(batch) -> loss`` replaces ``module.training_step`` (e.g. a DDP-wrapped step)."""
    groups = [{"params": [q for q in module.backbone.parameters() if q.requires_grad], "lr": 1e-4},
              {"params": [q for q in module.heads.parameters() if q.requires_grad], "lr": 1e-4}]
    opt = build_optimizer(groups, 0.01, module.speed_cfg.fused_adamw)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" else contextlib.nullcontext

    def step(batch) -> None:
        with autocast():
            loss = window_loss(module, *batch) if windows else (forward or module.training_step)(batch, 0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([q for g in groups for q in g["params"]], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def window_loss(module: BrainTuner, audio: torch.Tensor, targets: dict) -> torch.Tensor:
    """The reference's step: (N, 10 s) windows -> mean-pooled layer -> heads -> MSE (benchmarks/segment_vs_window.py)."""
    hidden = module.backbone({"audio": audio}, [module.layer])[:, 0]  # (N, T, D)
    preds = module.heads(hidden.mean(1)[:, None], list(targets))
    return torch.stack([torch.nn.functional.mse_loss(preds[p][:, 0].float(), y) for p, y in targets.items()]).mean()


def timed(step, inputs: list, steps: int, device: str) -> tuple[float, float]:
    """(seconds of the first step, mean seconds of ``steps`` later steps) cycling over ``inputs``."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    clock = time.perf_counter if device == "cuda" else time.process_time
    sync()
    start = clock()
    step(inputs[0])
    sync()
    first = clock() - start
    step(inputs[1 % len(inputs)])  # warm-up (allocator, kernels, flex-attention masks)
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = clock()
    for i in range(steps):
        step(inputs[(i + 2) % len(inputs)])
    sync()
    return first, (clock() - start) / steps


def windows_input(run: Run, n: int, n_targets: dict, device) -> tuple[torch.Tensor, dict]:
    """``n`` reference windows: the 10 s of waveform ending 1 s after each of ``n`` TRs, and their targets."""
    from braintune.data.stimuli import crop, load_audio

    wave = load_audio(run.stimulus, 16000)
    times = run.timing.times()[np.arange(n) % run.timing.n_trs]
    audio = torch.from_numpy(np.stack([crop(wave, t + 1.0 - 10.0, t + 1.0, 16000) for t in times])).to(device)
    return audio, {p: torch.randn(n, k, device=device) for p, k in n_targets.items()}


def measure(args, name: str, speed: dict, legacy: bool, run: Run, n_targets: dict, device: str, windows: int = 0):
    """One row: build the recipe with ``speed``, time its steps (segments, or ``windows`` reference windows)."""
    torch.manual_seed(0)
    module = BrainTuner(to_dict(config(args, speed)), n_targets).to(device).train()
    if legacy:
        legacy_cnn_graph(module.backbone)
    inputs = [windows_input(run, windows, n_targets, device)] * 2 if windows else batches(module, run, args, n_targets, device)
    first, step_s = timed(make_step(module, device, windows=bool(windows)), inputs, args.steps, device)
    targets = windows or args.batch_size * args.segment_trs
    seconds = windows * 10.0 if windows else float(np.sum(inputs[0]["span_s"]))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    if device == "cpu" and args.memory and not windows:  # the memory guard's CPU measure (training/memory.py)
        peak = step_peak_bytes(module, inputs[0], torch.device("cpu"), None) / 2**30
    return {"name": name, "step_ms": 1000 * step_s, "per_target_ms": 1000 * step_s / targets,
            "targets_s": targets / step_s, "first_s": first, "peak_gib": peak, "gib_per_seg_s": peak / seconds}


def rows_to_markdown(rows: list[dict]) -> str:
    today = rows[0]["per_target_ms"]
    lines = ["| recipe | ms / step | ms / TR target | TR targets/s | vs today | first step s | peak GiB | GiB per segment-s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['step_ms']:.1f} | {r['per_target_ms']:.3f} | {r['targets_s']:.0f} | "
                     f"{today / r['per_target_ms']:.2f}x | {r['first_s']:.2f} | {r['peak_gib']:.2f} | {r['gib_per_seg_s']:.4f} |")
    return "\n".join(lines)


def lever_rows(args, run: Run, n_targets: dict, device: str) -> list[dict]:
    """Every picked row of ``LEVERS`` (cumulative settings), then the two window rows; each printed when measured
    (a time limit keeps the rows done)."""
    picked = range(len(LEVERS)) if args.rows == "all" else [int(r) for r in args.rows.split(",")]
    todo, speed = [], dict(TODAY)
    for i, (name, change, legacy) in enumerate(LEVERS):
        speed.update(change)
        if i in picked:
            todo.append((name, dict(speed), legacy, 0))
    if args.windows:
        default = {**TODAY, "pos_conv": "fft", "frozen_lowp": True, "fused_adamw": True}
        todo += [("10 s window per TR, today", TODAY, True, args.windows), ("10 s window per TR, levers", default, False, args.windows)]
    rows = []
    for name, speed, legacy, windows in todo:
        rows.append(measure(args, name, speed, legacy, run, n_targets, device, windows))
        print("row:", rows_to_markdown(rows).splitlines()[-1], file=sys.stderr, flush=True)  # kept if a time limit stops us
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=None, help="segments per step (default 8; CPU: 1)")
    parser.add_argument("--segment-trs", type=int, default=None, help="K TRs per segment (default 32; CPU: 8)")
    parser.add_argument("--context-s", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--windows", type=int, default=None, help="reference windows per step (default 128; CPU: 8)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over every row; each row keeps its fastest")
    parser.add_argument("--rows", default="all", help="comma-separated row numbers of the lever table (0 = today)")
    parser.add_argument("--tiny", action="store_true", help="demo width on CPU")
    parser.add_argument("--memory", action="store_true", help="CPU: peak column = saved-for-backward + parameter + "
                        "gradient bytes of one step (the memory guard's CPU measure)")
    parser.add_argument("--base", action="store_true", help="wav2vec2-base width even on CPU")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    small = device == "cpu"
    args.batch_size = args.batch_size or (1 if small else 8)
    args.segment_trs = args.segment_trs or (8 if small else 32)
    args.windows = args.windows if args.windows is not None else (8 if small else 128)
    n_targets = {f"UTS0{i + 1}": n for i, n in enumerate((64, 64, 64) if args.tiny else (10057, 10057, 10058))}
    warnings.filterwarnings("ignore")
    if device == "cpu":
        torch.set_num_threads(1)  # CPU time of one thread: spinning worker threads of a shared machine inflate it
    with tempfile.TemporaryDirectory() as tmp:
        span = (args.segment_trs + 6) * TR + args.context_s
        run = story(Path(tmp), 12 + span * (args.batch_size + 1) + 2 * TR)
        rounds = [lever_rows(args, run, n_targets, device) for _ in range(args.repeat)]
    rows = [min(versions, key=lambda r: r["step_ms"]) for versions in zip(*rounds)]  # the fastest round of each row
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU (1 thread, CPU time of the process)"
    width = "demo width" if args.tiny else "wav2vec2-base"
    table = (f"{card}; {width}, {'bf16-mixed' if device == 'cuda' else 'float32'}; {args.batch_size} segments x "
             f"{args.segment_trs} TRs per step ({args.windows} windows per window step); {sum(n_targets.values())} targets; "
             f"{args.steps} timed steps, best of {args.repeat} round(s)\n\n" + rows_to_markdown(rows))
    print(table)
    return table


if __name__ == "__main__":
    main()
