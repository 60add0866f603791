"""A family name + a hub name, local directory or config dict -> an ``InstructedMLLM`` on a device.

``load_mllm`` reads real checkpoints (users' machines; this one has no hub access and says so clearly).
``build_mllm`` makes random weights from a config dict (tests, benchmarks); ``meta_device=True`` builds the
module without memory first and materialises it on the device, so a 7B model never exists twice.
"""
from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..hub import BackboneError, load_pretrained
from .families import get_family
from .model import InstructedMLLM

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype, device: str) -> torch.dtype:
    """"auto" -> bfloat16 on CUDA, float32 elsewhere; a name -> its torch dtype, or a clear error."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise BackboneError(f"dtype '{dtype}' is not known; use 'auto' or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def hub_reachable() -> bool:
    """Whether the hub's host resolves (fails at once on a machine without network, unlike a download)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        socket.getaddrinfo(urlparse(constants.ENDPOINT).hostname, 443)
        return True
    except OSError:
        return False


def _source_kwargs(name: str) -> dict:
    """``from_pretrained`` kwargs for ``name``: a local directory, a cached hub id (offline: cache only) or a hub
    id to download; a clear error, without retries, when none of these can work."""
    from huggingface_hub import try_to_load_from_cache

    if Path(name).expanduser().is_dir():
        return {}
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise BackboneError(f"MLLM checkpoint directory '{name}' does not exist; pass a hub id "
                            "(e.g. LanguageBind/Video-LLaVA-7B-hf) or the directory holding its files")
    if hub_reachable():
        return {}
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return {"local_files_only": True}
    raise BackboneError(f"cannot load MLLM '{name}': the hub is unreachable from this machine and the checkpoint "
                        "is not in the local cache. Download it where there is network (hf download NAME), then "
                        "pass its local directory, or point HF_HOME at a cache that holds it.")


def _load_model(family: str, name: str, dtype: torch.dtype, source: dict):
    fam = get_family(family)
    if family == "qwen2_5_omni":  # checkpoints hold thinker + talker; only the thinker produces text
        from transformers import Qwen2_5OmniForConditionalGeneration
        full = load_pretrained(Qwen2_5OmniForConditionalGeneration, name, dtype=dtype, trust_remote_code=False,
                               enable_audio_output=False, **source)
        return full.thinker
    return load_pretrained(fam.model_cls, name, dtype=dtype, trust_remote_code=False, **source)


def load_mllm(family: str, name_or_path: str | Path, device: str = "cpu", dtype: str | torch.dtype = "auto",
              **kwargs) -> InstructedMLLM:
    """A pretrained MLLM and its processor from the hub or a local directory.

    Parameters
    ----------
    family : key of ``FAMILIES`` (e.g. "video_llava", "qwen2_audio")
    name_or_path : hub id (e.g. "LanguageBind/Video-LLaVA-7B-hf") or a directory with its files
    device : "cpu", "cuda", "cuda:1", ...
    dtype : "auto" (bfloat16 on CUDA, float32 on CPU), "float32", "bfloat16", "float16" or a torch dtype
    **kwargs : passed to ``InstructedMLLM`` (modalities, num_frames, batch_size, system_prompt, ...)
    """
    fam, torch_dtype = get_family(family), resolve_dtype(dtype, device)
    source = _source_kwargs(str(name_or_path))
    processor = load_pretrained(fam.processor_cls, str(name_or_path), trust_remote_code=False, **source)
    model = _load_model(family, str(name_or_path), torch_dtype, source).to(device)
    return InstructedMLLM(model, processor, family, **kwargs)


def _config(family: str, config: dict):
    """``config_cls(**config)``, refusing keys the class does not define (HF would silently keep them)."""
    fam = get_family(family)
    known = set(fam.config_cls().to_dict()) | set(fam.config_extra)
    unknown = sorted(set(config) - known)
    if unknown:
        raise BackboneError(f"config keys {unknown} are not fields of {fam.config_cls.__name__} (MLLM family "
                            f"'{family}'); valid keys include: {', '.join(sorted(known)[:40])}")
    return fam.config_cls(**config)


def model_from_config(family: str, config: dict, device: str = "cpu", dtype: str | torch.dtype = "float32",
                      seed: int = 0, meta_device: bool = False):
    """Random-weight model of ``family`` from a config dict (nested dicts for the sub-configs).

    ``meta_device``: build on the meta device (no memory), then allocate on ``device`` and initialise there
    (``init_weights`` also recomputes non-persistent buffers such as rotary frequencies).
    """
    fam, torch_dtype = get_family(family), resolve_dtype(dtype, device)
    cfg = _config(family, dict(config))
    torch.manual_seed(seed)
    if meta_device:
        with torch.device("meta"):
            model = fam.model_cls._from_config(cfg, dtype=torch_dtype)
        model.to_empty(device=device)
        model.init_weights()
    else:
        model = fam.model_cls._from_config(cfg, dtype=torch_dtype).to(device)
    _copy_special_ids(model, cfg)
    return model.eval()


def _copy_special_ids(model, cfg) -> None:
    """Generation uses the LM's eos / pad / bos ids; composite configs keep them on the text config only."""
    text, gen = cfg.get_text_config(), model.generation_config
    for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
        if getattr(gen, key, None) is None and getattr(text, key, None) is not None:
            setattr(gen, key, getattr(text, key))


def build_mllm(family: str, config: dict, processor, device: str = "cpu", dtype: str | torch.dtype = "float32",
               seed: int = 0, meta_device: bool = False, **kwargs) -> InstructedMLLM:
    """``InstructedMLLM`` with random weights from a config dict and a ready processor (tests, benchmarks).

    The config's special-token ids (video / audio / image token index, eos, pad) must match ``processor``'s
    tokenizer; ``synthetic.tiny_config`` writes such a config. ``**kwargs`` go to ``InstructedMLLM``.
    """
    model = model_from_config(family, config, device, dtype, seed, meta_device)
    return InstructedMLLM(model, processor, family, **kwargs)
