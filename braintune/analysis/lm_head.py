"""A text backbone in (tuned or not: any entry that ``models.load_model`` resolves); the same network with its
language-model head out, for the analyses that score words (attribution's next-word objective). Training never
builds it: the head exists only while such an analysis runs.

The class follows what the backbone is: ``AutoModelForCausalLM`` when its states ignore later tokens
(``TextBackbone.causal``, measured at build: GPT-2, Llama, Mamba), ``AutoModelForMaskedLM`` otherwise (BERT,
RoBERTa). The body is the backbone's own HF model, shared and not copied (LoRA adapters and tuned weights included).
The head comes from ``name`` (``backbone.name`` of the model's own config: a hub checkpoint, an exported or a
``trained_on`` directory) when given; without one (a model built from ``backbone.config``) it is built from the
config with ``seed``. A head tied to the input embeddings (GPT-2, BERT's decoder, most LMs) follows the body's
embeddings, tuned or not; head weights that no checkpoint holds are freshly initialised, and the record says which.
"""
from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from braintune.backbones.hub import load_pretrained
from braintune.errors import BackboneError

log = logging.getLogger(__name__)
KINDS = {"causal": (AutoModelForCausalLM, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES),
         "masked": (AutoModelForMaskedLM, MODEL_FOR_MASKED_LM_MAPPING_NAMES)}


def hf_body(backbone: nn.Module) -> nn.Module:
    """The transformers model inside a text backbone (inside its peft wrapper when LoRA adapters are attached)."""
    model = getattr(backbone, "model", None)
    if model is None or not hasattr(backbone, "tokenizer"):
        raise BackboneError(f"{type(backbone).__name__} is not a text backbone: scoring words needs backbone.arch=text "
                            f"(a causal or masked language model)")
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def language_model(backbone: nn.Module, name: str | None = None, seed: int = 0) -> tuple[nn.Module, dict]:
    """``backbone``'s network with its LM head -> (model in eval mode without gradients, record for summaries).

    Parameters
    ----------
    backbone : a ``backbones.text.TextBackbone``
    name : where the head's weights are read (hub name or directory); None builds the head from the config
    seed : seed of the weights a head built from the config does not tie to the embeddings
    """
    body = hf_body(backbone)
    kind = "causal" if getattr(backbone, "causal", True) else "masked"
    auto, supported = KINDS[kind]
    model_type = body.config.model_type
    if model_type not in supported:
        raise BackboneError(f"transformers has no {kind} language-model class for model type '{model_type}' "
                            f"({'states ignore later tokens' if kind == 'causal' else 'bidirectional'}); the next-word "
                            f"objective needs one, e.g. {', '.join(sorted(supported)[:6])}")
    if name:
        lm, info = load_pretrained(auto, name, output_loading_info=True)
        missing = set(info["missing_keys"])
    else:
        torch.manual_seed(seed)
        lm = auto.from_config(body.config)
        missing = {n for n, _ in lm.named_parameters()}
    prefix = lm.base_model_prefix
    setattr(lm, prefix, body)  # the backbone's (tuned) network; the freshly loaded body is dropped
    lm.tie_weights()
    param = next(body.parameters())
    lm = lm.to(device=param.device, dtype=param.dtype).eval().requires_grad_(False)
    tied = lm.get_output_embeddings() is not None and lm.get_output_embeddings().weight is lm.get_input_embeddings().weight
    head = [n for n, _ in lm.named_parameters() if not n.startswith(f"{prefix}.")]
    fresh = sorted(n for n in head if n in missing)
    if fresh:
        log.warning("the LM head of %s has freshly initialised weights %s (no checkpoint holds them): next-word scores "
                    "come from an untrained head", type(lm).__name__, fresh[:4])
    return lm, {"class": type(lm).__name__, "objective": kind, "head_from": name or f"backbone.config (seed {seed})",
                "tied_to_input_embeddings": bool(tied), "fresh_head_weights": fresh}
