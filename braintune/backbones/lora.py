"""A backbone's HF model -> the same model with LoRA adapters (peft) injected by ``target_modules``."""
from __future__ import annotations

from peft import LoraConfig, get_peft_model
from torch import nn

from .hub import BackboneError


def add_lora(model: nn.Module, rank: int, alpha: int, dropout: float, target_modules: list[str]) -> nn.Module:
    """Wrap ``model`` so only the LoRA matrices train. Raises ``BackboneError`` if no module matches."""
    names = [n for n, _ in model.named_modules()]
    if not any(n.endswith(t) for n in names for t in target_modules):
        linear = sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise BackboneError(
            f"backbone.lora.target_modules {target_modules} match no module of {type(model).__name__}; "
            f"its linear layers are named: {', '.join(linear)}"
        )
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, bias="none")
    return get_peft_model(model, config)


def merge_lora(model: nn.Module) -> nn.Module:
    """The plain HF model with LoRA weights merged in (a no-op for models without adapters)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
