"""Controls of a model under test: ``<control>:<entry>`` in any model list (``alignment.models``, ``downstream.compare``,
``checkpoint=``) -> the same model transformed (``CONTROLS``: control name -> ``(model, cfg) -> model``).

``models.load_model`` resolves the inner entry and applies the control; controls from other packages register
through the ``braintune.controls`` entry point group. The built-in ones (Parra 2025's controls):

* ``untrained:<m>`` -- the same architecture, every weight freshly initialised with the architecture's own scheme
  (a new instance of each transformers model class, built with seed ``trainer.seed + 1``, so that it differs from a
  ``base`` that is itself built from its config with ``trainer.seed``); other modules get their
  ``reset_parameters()``; LoRA ``B`` matrices are zeroed (no adapter delta).
* ``shuffled:<m>`` -- every parameter tensor's values permuted (its own seeded permutation): the distribution of
  each tensor is kept, its structure destroyed. Buffers are kept.
* ``no_positions:<m>`` -- positional information removed at inference, per architecture:
  absolute position embeddings zeroed (GPT-2 ``wpe``; BERT / RoBERTa ``position_embeddings``; Whisper
  ``embed_positions``; VideoMAE's sinusoidal table), rotary rotation disabled (every ``*RotaryEmbedding`` module
  returns cos = 1, sin = 0: Llama, Mistral, Qwen, GPT-NeoX, Phi, ...), wav2vec2 / HuBERT / WavLM's convolutional
  positional embedding bypassed (``pos_conv_embed`` adds 0), relative position biases zeroed (WavLM
  ``rel_attn_embed``, T5 ``relative_attention_bias``). A model with none of these is refused (e.g. ALiBi models).
* ``trained_on:<dir>`` -- a small LM trained by ``python -m braintune.lm train`` on a named corpus (``lm.corpus``),
  read from its output directory; the control checks it is one and names the model after the corpus.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from .errors import ConfigError
from .provenance import CODE_VERSION, digest
from .registry import Registry

ABSOLUTE_POSITIONS = ("wpe", "position_embeddings", "embed_positions")  # tables added to the inputs: zeroed
RELATIVE_POSITIONS = ("rel_attn_embed", "relative_attention_bias")  # position biases of attention scores: zeroed
CONV_POSITIONS = ("pos_conv_embed",)  # wav2vec2-family convolution over the sequence: output replaced by 0
SEED_OFFSET = 1  # untrained / shuffled use trainer.seed + 1 (a base built from config uses trainer.seed)


def _controlled(model, control: str, cfg, detail: dict | None = None):
    """The model renamed ``control:name``, with a cache key of its own."""
    key = digest({"control": control, "inner": model.key, "seed": cfg.trainer.seed, **(detail or {})})
    return replace(model, name=f"{control}:{model.name}", entry=f"{control}:{model.entry}", key=f"{key}-c{CODE_VERSION}")


def _hf_models(backbone: nn.Module) -> list[nn.Module]:
    """The outermost transformers models inside ``backbone``."""
    from transformers import PreTrainedModel

    found = [m for m in backbone.modules() if isinstance(m, PreTrainedModel)]
    inner = {id(sub) for m in found for sub in m.modules() if sub is not m}
    return [m for m in found if id(m) not in inner]


@torch.no_grad()
def reinitialize(backbone: nn.Module, seed: int) -> list[str]:
    """Fresh weights in place: each transformers model from a new instance of its class (its own init scheme),
    other modules by ``reset_parameters()``; LoRA ``B`` zeroed. Returns the parameters left as they were."""
    torch.manual_seed(seed)
    done = set()
    for hf in _hf_models(backbone):
        fresh = type(hf)(hf.config).to(next(hf.parameters()).dtype).state_dict()
        plain = {k: k.replace(".base_layer", "") for k in hf.state_dict()}  # peft wraps a layer as NAME.base_layer
        hf.load_state_dict({k: fresh[v] for k, v in plain.items() if v in fresh}, strict=False)
        done |= {id(p) for n, p in hf.named_parameters() if plain.get(n) in fresh}
    covered = {id(sub) for hf in _hf_models(backbone) for sub in hf.modules()}
    for module in backbone.modules():
        if id(module) not in covered and hasattr(module, "reset_parameters"):
            module.reset_parameters()
            done |= {id(p) for p in module.parameters(recurse=False)}
    for name, p in backbone.named_parameters():
        if "lora_B" in name:
            p.zero_()
            done.add(id(p))
    return [n for n, p in backbone.named_parameters() if id(p) not in done]


def untrained(model, cfg):
    """``untrained:<m>``: the same architecture with freshly initialised, seeded weights."""
    seed = cfg.trainer.seed + SEED_OFFSET
    kept = reinitialize(model.backbone, seed)
    if kept:
        raise ConfigError(f"untrained:{model.entry}: no initialiser for parameters {kept[:5]} of "
                          f"{type(model.backbone).__name__}; give their modules a reset_parameters()")
    return _controlled(model, "untrained", cfg, {"init_seed": seed})


@torch.no_grad()
def shuffle_weights(backbone: nn.Module, seed: int) -> None:
    """Permute the values of every parameter tensor in place, each with its own seeded permutation."""
    for i, (_, p) in enumerate(backbone.named_parameters()):
        g = torch.Generator().manual_seed(seed * 100003 + i)
        order = torch.randperm(p.numel(), generator=g).to(p.device)
        p.copy_(p.flatten()[order].view_as(p))


def shuffled(model, cfg):
    """``shuffled:<m>``: each weight tensor's values permuted."""
    shuffle_weights(model.backbone, cfg.trainer.seed + SEED_OFFSET)
    return _controlled(model, "shuffled", cfg)


def _identity_rotation(module, args, output):
    cos, sin = output  # (..., T, head_dim)
    return torch.ones_like(cos), torch.zeros_like(sin)


def _no_output(module, args, output):
    return torch.zeros_like(output)


@torch.no_grad()
def remove_positions(backbone: nn.Module) -> list[str]:
    """Remove positional information in place (see the module docstring); returns what was changed, by name."""
    changed = []
    for name, module in backbone.named_modules():
        last = name.rsplit(".", 1)[-1]
        if last in ABSOLUTE_POSITIONS + RELATIVE_POSITIONS and isinstance(module, nn.Embedding):
            module.weight.zero_()
            changed.append(f"{name} (zeroed)")
        elif type(module).__name__.endswith("RotaryEmbedding"):
            module.register_forward_hook(_identity_rotation)
            changed.append(f"{name} (rotation disabled)")
        elif last in CONV_POSITIONS:
            module.register_forward_hook(_no_output)
            changed.append(f"{name} (bypassed)")
        elif isinstance(getattr(module, "position_embeddings", None), torch.Tensor):  # fixed tables (VideoMAE)
            module.position_embeddings.zero_()
            changed.append(f"{name}.position_embeddings (zeroed)")
    return changed


def no_positions(model, cfg):
    """``no_positions:<m>``: positional information removed at inference."""
    changed = remove_positions(model.backbone)
    if not changed:
        raise ConfigError(f"no_positions:{model.entry}: found no positional encoding in {type(model.backbone).__name__} "
                          f"(looked for embeddings named {ABSOLUTE_POSITIONS + RELATIVE_POSITIONS}, *RotaryEmbedding "
                          f"modules and {CONV_POSITIONS}); this architecture is not supported")
    return _controlled(model, "no_positions", cfg, {"changed": changed})


def _lm_record(entry: str) -> Path:
    record = Path(entry) / "lm.json"
    if not record.is_file():
        raise ConfigError(f"trained_on:{entry}: '{record}' is missing; the entry must be the out_dir of "
                          f"`python -m braintune.lm train -c CONFIG lm.corpus=NAME out_dir=DIR`")
    return record


def trained_on(model, cfg):
    """``trained_on:<dir>``: the LM that ``python -m braintune.lm train`` wrote to ``dir``."""
    corpus = json.loads(_lm_record(model.entry).read_text())["corpus"]
    out = _controlled(model, "trained_on", cfg, {"corpus": corpus})
    return replace(out, name=f"trained_on:{corpus}:{model.name}")


trained_on.check = _lm_record  # models.load_model calls it with the inner entry before loading it

CONTROLS: Registry[Callable] = Registry("braintune.controls", "model control", {
    "untrained": untrained, "shuffled": shuffled, "no_positions": no_positions, "trained_on": trained_on})
