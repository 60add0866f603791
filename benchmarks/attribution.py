"""Random-weight GPT-2 and a synthetic story in; a table of attributed TRs per second (BA and NWP, Gradient×Input
and Integrated Gradients) and the projected device-hours of the Harry Potter setup of Proietti et al. 2025 out.

    python benchmarks/attribution.py                              # tiny GPT-2 on CPU, float32
    python benchmarks/attribution.py --device cuda --size gpt2    # GPT2Config() (124M), 640-word contexts, bf16

Words arrive every 0.5 s and TRs last 2 s (4 words per TR, as in Harry Potter); the tokenizer is word-level (one
token per word). The BA head maps layer n_layer//2 through 4 FIR delays to ``--voxels`` targets.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from braintune.analysis.attribution import BrainObjective, NextWordObjective, RidgeHead, attribute
from braintune.analysis.attribution_context import tokenize_story

SIZES = {"tiny": dict(n_layer=2, n_embd=64, n_head=2), "gpt2": {}}
# The paper's setup (analysis_methods.md §3): Harry Potter chapter 9, 5,176 words, TR 2 s, 8 participants, 5 LLMs
# of 1.2-2.6B parameters, 3 layers per model (best early / middle / late) for BA; NWP once per model; IG on 2 models.
HP_WORDS, HP_PARTICIPANTS, HP_MODELS, HP_LAYERS, HP_IG_MODELS = 5176, 8, 5, 3, 2
TOKENS_PER_WORD = 1.3  # byte-level BPE on English prose; this benchmark feeds 1 token per word
PARAM_RATIO = 1.2e9 / 85e6  # ~1.2B non-embedding parameters (Llama3.2-1B, Falcon3-1B, ...) vs GPT-2 small's 85M


def build(size: str, voxels: int, n_words: int, device: str):
    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(8000)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    cfg = GPT2Config(vocab_size=len(vocab), bos_token_id=0, eos_token_id=0, **SIZES[size])
    model = GPT2LMHeadModel(cfg).to(device).eval()
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in rng.integers(0, 8000, n_words)]
    n_trs = n_words // 4
    story = tokenize_story(tokenizer, words, np.arange(n_words) * 0.5, 2.0, n_trs)
    d = cfg.n_embd
    head = RidgeHead(rng.standard_normal((4 * d, voxels)) / np.sqrt(4 * d), (1, 2, 3, 4), np.zeros(d), np.ones(d))
    ba = BrainObjective(head, rng.standard_normal((n_trs, voxels)), layer=cfg.n_layer // 2).to(device)
    return model, story, ba, NextWordObjective()


def time_attribution(model, story, objective, trs, method, args) -> float:
    """Seconds per TR (one warm-up batch first)."""
    kw = dict(method=method, n_steps=args.ig_steps, context_words=args.context_words, batch_size=args.batch_size,
              bf16=not args.fp32)
    attribute(model, story, objective, trs=trs[:args.batch_size], **kw)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    attribute(model, story, objective, trs=trs, **kw)
    sync()
    return (time.perf_counter() - start) / len(trs)


def bf16_agreement(model, story, objective, trs, args) -> str:
    """bf16 autocast vs float32 on the same TRs: correlation of normalised |word scores|, IoU of the 10 % sets."""
    from braintune.analysis.attribution_metrics import important_sets, iou, normalized

    kw = dict(trs=trs, context_words=args.context_words, batch_size=args.batch_size)
    low, full = (attribute(model, story, objective, bf16=b, **kw) for b in (True, False))
    a, b = normalized(low.scores), normalized(full.scores)
    ok = np.isfinite(a)
    r = np.corrcoef(a[ok], b[ok])[0, 1]
    overlap = np.nanmean(iou(*(important_sets(x.scores, (10,))[0] for x in (low, full))))
    rel = np.max(np.abs(low.objective - full.objective) / np.abs(full.objective))
    return f"r(|scores|) {r:.4f}, IoU of 10 % sets {overlap:.3f}, max rel. objective diff {rel:.2e}"


def projection(per_tr: dict) -> list[tuple[str, float]]:
    """Device-hours of the paper's runs from the measured seconds per TR, scaled to its models."""
    n_trs = HP_WORDS / 4  # TRs holding words (4 words per 2 s TR)
    scale = TOKENS_PER_WORD * PARAM_RATIO
    rows = [("BA GxI: TRs x participants x layers x models", n_trs * HP_PARTICIPANTS * HP_LAYERS * HP_MODELS,
             per_tr[("BA", "gxi")]),
            ("NWP GxI: TRs x models", n_trs * HP_MODELS, per_tr[("NWP", "gxi")])]
    if ("BA", "ig") in per_tr:
        rows.append(("BA IG (validation): TRs x participants x layers x 2 models",
                     n_trs * HP_PARTICIPANTS * HP_LAYERS * HP_IG_MODELS, per_tr[("BA", "ig")]))
    return [(name, count, count * sec * scale / 3600) for name, count, sec in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", default="tiny", choices=list(SIZES))
    parser.add_argument("--context-words", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=8, help="TR contexts per forward/backward")
    parser.add_argument("--trs", type=int, default=None, help="TRs timed (default 16 on CPU, 64 on CUDA)")
    parser.add_argument("--voxels", type=int, default=20000, help="targets of the BA head (HP: ~20-30k per participant)")
    parser.add_argument("--ig-steps", type=int, default=20)
    parser.add_argument("--no-ig", action="store_true", help="skip Integrated Gradients (20x the GxI cost)")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA")
    parser.add_argument("--check-bf16", action="store_true", help="also compare bf16 and float32 attributions (CUDA)")
    args = parser.parse_args()
    n = args.trs or (16 if args.device == "cpu" else 64)
    torch.manual_seed(0)
    model, story, ba, nwp = build(args.size, args.voxels, args.context_words + 4 * (n + 8), args.device)
    trs = np.arange(story.n_trs - n - 1, story.n_trs - 1)  # TRs whose contexts hold the full context_words
    per_tr = {}
    for obj_name, objective in (("BA", ba), ("NWP", nwp)):
        for method in ("gxi",) if args.no_ig else ("gxi", "ig"):
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            per_tr[(obj_name, method)] = time_attribution(model, story, objective, trs, method, args)
            peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if args.device == "cuda" else "-"
            print(f"  {obj_name:<4} {method:<4} {1 / per_tr[(obj_name, method)]:>9.2f} TR/s   "
                  f"{1000 * per_tr[(obj_name, method)]:>9.1f} ms/TR   peak {peak}", flush=True)
    if args.check_bf16 and args.device == "cuda":
        for obj_name, objective in (("BA", ba), ("NWP", nwp)):
            print(f"  bf16 vs float32, {obj_name} GxI on {len(trs[:32])} TRs: "
                  f"{bf16_agreement(model, story, objective, trs[:32], args)}", flush=True)
    card = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    n_par = sum(p.numel() for p in model.parameters())
    print(f"\ndevice {card}; GPT-2 '{args.size}' random weights, {n_par / 1e6:.1f}M parameters, "
          f"{'float32' if args.fp32 or args.device == 'cpu' else 'bf16 autocast'}; {args.context_words}-word contexts "
          f"(1 token/word), batch {args.batch_size}, {len(trs)} TRs timed, BA head {args.voxels} voxels at layer "
          f"{ba.layer}, IG {args.ig_steps} steps")
    if args.size != "gpt2":
        print("\n(projected hours need the GPT-2-size run: --device cuda --size gpt2)")
        return
    print(f"\nProjected device-hours for Harry Potter ({HP_WORDS} words = {HP_WORDS // 4} TRs, {HP_PARTICIPANTS} "
          f"participants, {HP_MODELS} models, {HP_LAYERS} layers each) on this device:")
    print(f"assumptions: cost/TR scales with tokens ({TOKENS_PER_WORD} BPE tokens/word) and with non-embedding "
          f"parameters (x{PARAM_RATIO:.1f}, 1.2B vs 85M); attention over <=1k tokens ignored; one GPU, no overlap.")
    for name, count, hours in projection(per_tr):
        print(f"  {name:<62} {count:>9,.0f} TR-runs  {hours:>9.1f} h")
    print("  (paper, H100: ~1,500 h GxI, 329 h IG, 3.6 h NWP)")


if __name__ == "__main__":
    main()
