"""Instruction-tuned video / audio MLLMs (transformers classes) -> instruction-conditioned features (B, L, D).

``FAMILIES`` maps a short family name to its classes and prompt format; ``load_mllm`` reads a checkpoint,
``build_mllm`` makes random weights from a config dict; ``InstructedMLLM.clip_features`` runs clips under one
instruction. ``synthetic`` builds offline processors and tiny configs for tests and benchmarks.
"""
from .families import FAMILIES, MLLMFamily, get_family, render_prompt
from .loading import build_mllm, load_mllm, model_from_config, resolve_dtype
from .model import EMBEDDINGS, InstructedMLLM, sample_frames

__all__ = ["FAMILIES", "EMBEDDINGS", "InstructedMLLM", "MLLMFamily", "build_mllm", "get_family", "load_mllm",
           "model_from_config", "render_prompt", "resolve_dtype", "sample_frames"]
