"""A story's words, a frozen LM and a fitted ridge head in; per-TR word attributions of brain alignment (BA) and
next-word prediction (NWP) out (Proietti, Capobianco & Toneva 2025; analysis_methods.md §3.5).

For TR ``t`` the LM reads one context of ``context_words`` words ending at the last word of TR ``t - min(delays)``.
BA: word states (mean of sub-tokens at layer ℓ) are averaged per TR, the TRs ``t - d`` feed `RidgeHead`, and the
objective is the MSE to the recorded response. NWP: cross-entropy of the next word's sub-tokens (teacher forcing),
or of the masked next word for masked LMs. Captum's Gradient×Input (or Integrated Gradients) on the input
embeddings gives token scores, summed to words; one backward per batch of TRs covers all targets of the objective.
The contexts are built in `attribution_context`, the objectives live in `attribution_objectives` (both re-exported).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients

from braintune.analysis.attribution_context import Story, build_batch, default_trs, story_from_words, tokenize_story
from braintune.analysis.attribution_objectives import BrainObjective, NextWordObjective, RidgeHead, top_targets

__all__ = ["Attributions", "BrainObjective", "NextWordObjective", "RidgeHead", "Story", "attribute", "build_batch",
           "default_trs", "evaluate_objective", "layer_features", "next_word_loss", "objective_function",
           "pooled_states", "story_from_words", "story_layer_features", "story_tr_features", "tokenize_story", "top_targets"]
BATCH_KEYS = ("attention_mask", "pool", "present", "trs", "pred_pos", "labels", "label_w")


def layer_features(model, embeds, attention_mask, pool, layer: int, bf16: bool = False) -> torch.Tensor:
    """Input embeddings (B, N, D) -> per-TR features (B, K, D): layer-ℓ token states pooled by ``pool`` (B, K, N)."""
    return pooled_states(model, embeds, attention_mask, pool, [layer], bf16)[:, 0]


def pooled_states(model, embeds, attention_mask, pool, layers, bf16: bool = False) -> torch.Tensor:
    """Input embeddings (B, N, D) -> per-TR features (B, L, K, D) of each hidden state in ``layers``, from one forward."""
    with torch.autocast(embeds.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model.base_model(inputs_embeds=embeds, attention_mask=attention_mask, output_hidden_states=True)
    states = torch.stack([out.hidden_states[layer] for layer in layers], 1)  # (B, L, N, D)
    return torch.einsum("bkn,blnd->blkd", pool.to(_wide(states.dtype)), states.to(_wide(states.dtype)))


def next_word_loss(model, embeds, attention_mask, pred_pos, labels, label_w, bf16: bool = False) -> torch.Tensor:
    """Mean cross-entropy (B,) of the next word's tokens ``labels`` (B, M) read at logits positions ``pred_pos``.

    Causal LMs that take ``logits_to_keep`` project only the positions in use onto the vocabulary (a handful per
    context instead of all ~800: the LM head of a 50k-128k vocabulary would otherwise dominate the cost).
    """
    keep = torch.unique(pred_pos) if _keeps_logits(type(model)) else None  # (U,)
    extra = {} if keep is None else {"logits_to_keep": keep}
    with torch.autocast(embeds.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(inputs_embeds=embeds, attention_mask=attention_mask, **extra).logits  # (B, U or N, V)
    index = pred_pos if keep is None else torch.searchsorted(keep, pred_pos)  # (B, M)
    picked = logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1]))  # (B, M, V)
    picked = picked.to(_wide(picked.dtype))
    nll = -torch.log_softmax(picked, -1).gather(2, labels[..., None])[..., 0]  # (B, M)
    return (nll * label_w.to(nll.dtype)).sum(1)


@functools.cache
def _keeps_logits(model_class) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def _wide(dtype: torch.dtype) -> torch.dtype:
    """float32 for bf16/fp16 activations (losses and pooling in full precision), float64 kept for checks."""
    return torch.promote_types(dtype, torch.float32)


def objective_function(model, objective, bf16: bool = False):
    """``f(embeds, *batch[BATCH_KEYS]) -> (B,)``: the objective as a function of the input embeddings (for Captum)."""
    def forward(embeds, attention_mask, pool, present, trs, pred_pos, labels, label_w):
        if isinstance(objective, NextWordObjective):
            return next_word_loss(model, embeds, attention_mask, pred_pos, labels, label_w, bf16)
        return objective(layer_features(model, embeds, attention_mask, pool, objective.layer, bf16), present, trs)
    return forward


@dataclass
class Attributions:
    """Word attributions of one objective: row i is TR ``trs[i]``; column j the j-th most recent context word
    (story index ``last_word[i] - j``); NaN beyond the context. ``delta`` is IG's completeness error (NaN for GxI)."""
    trs: np.ndarray  # (n,)
    last_word: np.ndarray  # (n,)
    scores: np.ndarray  # (n, context_words), signed
    objective: np.ndarray  # (n,) F(x)
    delta: np.ndarray  # (n,)


@contextlib.contextmanager
def _frozen(model):
    """Eval mode and no parameter gradients during attribution; both restored afterwards."""
    flags, training = [p.requires_grad for p in model.parameters()], model.training
    model.eval().requires_grad_(False)
    try:
        yield
    finally:
        model.train(training)
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def _setup(model, story: Story, objective, bf16: bool, trs=None):
    """Next-word mode, position limit, device, effective bf16 and the checked TRs of one call."""
    nwp = isinstance(objective, NextWordObjective)
    if nwp and objective.masked and story.mask_id is None:
        raise ValueError("NextWordObjective(masked=True): the story's tokenizer has no mask token; use a masked LM's "
                         "tokenizer or masked=False for causal LMs.")
    mode = ("masked" if objective.masked else "causal") if nwp else None
    cfg, device = model.config, next(model.parameters()).device
    max_tokens = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if objective is not None:
        valid = default_trs(story, objective.delays, nwp)
        trs = valid if trs is None else np.asarray(trs, np.int64).reshape(-1)
        if not np.isin(trs, valid).all():
            raise ValueError(f"TRs {trs[~np.isin(trs, valid)][:10].tolist()} have no context words before them (or, for "
                             f"NWP, no next word) in this {story.n_trs}-TR story; pass TRs from default_trs().")
    return mode, max_tokens, device, bool(bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported()), trs


def _checkpoint_meta(story: Story, objective, method: str, n_steps: int, context_words: int) -> dict:
    """What a shard folder must match: the story, the objective (for BA: its layer, responses and head) and method."""
    if isinstance(objective, NextWordObjective):
        name = repr(objective)
    else:  # cheap fingerprints: another participant's responses or head changes them
        name = (f"BrainObjective({objective.kind}, layer {objective.layer}, responses "
                f"{float(objective.responses.double().sum()):.6e}, head {float(objective.head.weight.double().abs().sum()):.6e})")
    return {"objective": name, "story": [len(story.word_tokens), story.n_trs, hash(story.word_tokens)],
            "method": method, "n_steps": n_steps, "context_words": context_words}


def _attribute_batch(model, fwd, batch: dict, method: str, n_steps: int, width: int, device):
    args = tuple(batch[k].to(device) for k in BATCH_KEYS)
    embeds = model.get_input_embeddings()(batch["input_ids"].to(device)).detach().requires_grad_()  # (B, N, D)
    if method == "gxi":
        seen = []  # Captum runs F(x) once for the gradient: keep it rather than run the LM again

        def kept(*inputs):
            seen.append(fwd(*inputs))
            return seen[-1]
        attr, delta = InputXGradient(kept).attribute(embeds, additional_forward_args=args), None
        value = seen[0].detach()
    else:
        attr, delta = IntegratedGradients(fwd).attribute(  # n_steps forwards of B contexts each: GxI's memory
            embeds, baselines=torch.zeros_like(embeds), additional_forward_args=args, n_steps=n_steps,
            internal_batch_size=len(embeds), return_convergence_delta=True)
        with torch.no_grad():
            value = fwd(embeds, *args)
    tok = attr.detach().sum(-1).float().cpu()  # (B, N)
    pos = batch["word_pos"]
    words = torch.zeros(len(tok), width).scatter_add_(1, pos.clamp(min=0), tok * (pos >= 0))  # (B, L)
    words[torch.arange(width)[None] >= batch["n_context"][:, None]] = float("nan")
    nan = torch.full((len(tok),), float("nan"))
    return {"trs": batch["trs"].numpy(), "last_word": batch["last_word"].numpy(), "scores": words.numpy(),
            "objective": value.float().cpu().numpy(), "delta": (nan if delta is None else delta.detach().float().cpu()).numpy()}


def _open_checkpoint(path, meta: dict) -> list[dict]:
    """Finished shards of ``path`` (created if absent); a run with other settings in the same folder is refused."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta_file = path / "attribution.json"
    if meta_file.exists():
        old = json.loads(meta_file.read_text())
        if old != meta:
            diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            raise ValueError(f"checkpoint '{path}' holds attributions with other settings ({diff}: {old} vs {meta}); "
                             f"use another checkpoint_dir or delete it.")
    tmp = path / f"attribution.json.{os.getpid()}"  # processes of one launch may write it at once: rename is atomic
    tmp.write_text(json.dumps(meta))
    tmp.replace(meta_file)
    return [dict(np.load(f)) for f in sorted(path.glob("shard_*.npz"))]


def attribute(model, story: Story, objective, trs=None, method: str = "gxi", n_steps: int = 20,
              context_words: int = 640, batch_size: int = 8, checkpoint_dir=None, bf16: bool = True) -> Attributions:
    """Word attributions of ``objective`` (`BrainObjective` or `NextWordObjective`) for each TR of ``trs``.

    ``method``: "gxi" (Captum ``InputXGradient``) or "ig" (``IntegratedGradients``, ``n_steps``, zero-embedding
    baseline). ``checkpoint_dir``: each finished batch is written there as ``shard_<first TR>.npz``; TRs already
    there are skipped on restart. ``bf16``: autocast the LM in bf16 on a GPU (head and loss stay float32).
    """
    if method not in ("gxi", "ig"):
        raise ValueError(f"attribute: method={method!r} is not 'gxi' or 'ig'.")
    mode, max_tokens, device, bf16, trs = _setup(model, story, objective, bf16, trs)
    meta = _checkpoint_meta(story, objective, method, n_steps, context_words)
    shards = [] if checkpoint_dir is None else _open_checkpoint(checkpoint_dir, meta)
    done = set(np.concatenate([s["trs"] for s in shards]).tolist()) if shards else set()
    todo = [t for t in trs.tolist() if t not in done]
    fwd = objective_function(model, objective, bf16)
    with _frozen(model):
        for i in range(0, len(todo), batch_size):
            batch = build_batch(story, todo[i:i + batch_size], objective.delays, context_words, max_tokens, mode)
            shard = _attribute_batch(model, fwd, batch, method, n_steps, context_words, device)
            shards.append(shard)
            if checkpoint_dir is not None:  # written then renamed: a killed run leaves no half shard
                tmp = Path(checkpoint_dir) / f"tmp_{todo[i]:06d}.npz"
                np.savez(tmp, **shard)
                tmp.replace(Path(checkpoint_dir) / f"shard_{todo[i]:06d}.npz")
    merged = {k: np.concatenate([s[k] for s in shards]) if shards else np.zeros(0) for k in Attributions.__annotations__}
    row = {t: i for i, t in enumerate(merged["trs"].tolist())}
    take = np.array([row[t] for t in trs.tolist()], dtype=np.int64)
    return Attributions(**{k: v[take] for k, v in merged.items()})


def evaluate_objective(model, story: Story, objective, trs=None, overrides=None,
                       context_words: int = 640, batch_size: int = 16, bf16: bool = True):
    """Objective values (n,) for ``trs`` and, for BA, the head's predictions (n, n_targets) (else None).

    ``overrides[i]``: {word index: replacement token ids} applied to context i (the masking check).
    """
    mode, max_tokens, device, bf16, trs = _setup(model, story, objective, bf16, trs)
    values, preds, fwd = [], [], objective_function(model, objective, bf16)
    with _frozen(model), torch.no_grad():
        for i in range(0, len(trs), batch_size):
            part = None if overrides is None else overrides[i:i + batch_size]
            b = build_batch(story, trs[i:i + batch_size], objective.delays, context_words, max_tokens, mode, part)
            args = {k: b[k].to(device) for k in BATCH_KEYS}
            embeds = model.get_input_embeddings()(b["input_ids"].to(device))
            if mode is None:  # one LM forward for the objective and the predictions
                feats = layer_features(model, embeds, args["attention_mask"], args["pool"], objective.layer, bf16)
                values.append(objective(feats, args["present"], args["trs"]).cpu())
                preds.append(objective.head(feats, args["present"]).cpu())
            else:
                values.append(fwd(embeds, *args.values()).cpu())
    return torch.cat(values).numpy(), (torch.cat(preds).numpy() if preds else None)


def story_tr_features(model, story: Story, layer: int = -1, context_words: int = 640, batch_size: int = 16,
                      bf16: bool = True) -> np.ndarray:
    """Per-TR features (n_trs, D) of one hidden state; see `story_layer_features`."""
    return story_layer_features(model, story, [layer], context_words, batch_size, bf16)[0]


def story_layer_features(model, story: Story, layers, context_words: int = 640, batch_size: int = 16,
                         bf16: bool = True) -> np.ndarray:
    """Per-TR features (L, n_trs, D) of each hidden state in ``layers``, for fitting the encoders: the mean state of the
    words of TR k, read from the context ending at TR k's last word (the context `attribute` uses for delay 1 at TR
    k + 1); TRs without words get 0. One forward per batch of TRs serves every layer."""
    _, max_tokens, device, bf16, _ = _setup(model, story, None, bf16)
    ks = np.unique(story.word_tr[(story.word_tr >= 0) & (story.word_tr < story.n_trs)])
    out = np.zeros((len(layers), story.n_trs, model.config.hidden_size), np.float32)
    with _frozen(model), torch.no_grad():
        for i in range(0, len(ks), batch_size):
            b = build_batch(story, ks[i:i + batch_size], (0,), context_words, max_tokens)
            embeds = model.get_input_embeddings()(b["input_ids"].to(device))
            feats = pooled_states(model, embeds, b["attention_mask"].to(device), b["pool"].to(device), list(layers), bf16)
            out[:, ks[i:i + batch_size]] = feats[:, :, 0].transpose(0, 1).float().cpu().numpy()  # (L, b, D)
    return out
