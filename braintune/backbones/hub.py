"""HF config objects and checkpoints -> models, with clear errors for bad keys and offline machines."""
from __future__ import annotations

from typing import Any

from ..errors import BackboneError


def config_from_overrides(config_cls: type, overrides: dict[str, Any], arch: str):
    """Build ``config_cls(**overrides)``, refusing keys the config class does not define (HF accepts any)."""
    known = config_cls().to_dict()
    unknown = sorted(k for k in overrides if k not in known)
    if unknown:
        raise BackboneError(
            f"backbone.config keys {unknown} are not fields of {config_cls.__name__} (arch '{arch}'); "
            f"valid keys include: {', '.join(sorted(known)[:40])}"
        )
    return config_cls(**overrides)


def load_pretrained(model_cls: type, name: str, **kwargs):
    """``model_cls.from_pretrained(name)`` with a message that says what to do when it cannot be fetched."""
    try:
        return model_cls.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as err:
        raise BackboneError(
            f"cannot load backbone '{name}' ({type(err).__name__}: {str(err).splitlines()[0]}). "
            "If this machine is offline, download the checkpoint elsewhere (huggingface-cli download NAME) and set "
            "backbone.name to its local directory, or set HF_HOME to a cache that holds it."
        ) from err
