"""``backbone.arch: mllm`` -> an instruction-tuned MLLM in braintune's backbone registry, for ``evaluate.py instructions``.

The MLLM is not a frame-rate backbone: it answers one instruction about one clip and yields one vector per layer
(``InstructedMLLM.clip_features``: (B, L, D)), so it has no hidden states on a frame clock that training segments
could pool, and it is not brain-tuned. It is built frozen (any other ``backbone.finetune`` is refused), and
``forward`` / ``frame_rate`` refuse with a message naming ``evaluate.py instructions``, which extracts one feature per
TR-clip and instruction (``evaluation.clips``).

``backbone.name`` set: the checkpoint (hub id or local directory) through ``load_mllm``. ``backbone.mllm`` (its options:
``analysis.instruction_settings.MLLMOptions``) says which family. ``backbone.name`` null: a
random-weight model of ``backbone.mllm.family`` sized by ``backbone.config`` (``TINY_KEYS``) with the offline byte
tokenizer and processors of ``mllm.synthetic`` (tests and the demo; no download). Its ``initializer_range`` (the
towers' weight spread) matters: at HF's 0.02 a tiny random model is nearly linear and every instruction shifts its
features by an offset only (columns correlate > 0.999 across instructions); at 0.2 instructions change what it reads
(features of one instruction explain ~10 % of another's variance out of sample).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...errors import BackboneError
from .families import get_family
from .loading import build_mllm, load_mllm, resolve_dtype
from .model import InstructedMLLM
from .synthetic import synthetic_processor, tiny_config

TINY_KEYS = ("hidden", "layers", "image_size", "patch_size", "n_mels", "chunk_s", "initializer_range")  # name null
NOT_A_FRAME_BACKBONE = ("backbone.arch 'mllm' gives one feature per TR-clip and instruction, not hidden states on a frame "
                        "clock: it cannot be brain-tuned (train.py) or measured by evaluate.py alignment / features / "
                        "downstream; measure it with `python evaluate.py instructions -c CONFIG`")


class MLLMBackbone(nn.Module):
    """An ``InstructedMLLM`` behind the registry: ``modalities``, ``num_layers``, ``hidden_size`` and
    ``clip_features``; the HF model is a submodule, so ``.to(device)`` / ``.eval()`` / ``parameters()`` reach it."""

    def __init__(self, mllm: InstructedMLLM):
        super().__init__()
        self.model = mllm.model
        self.mllm = mllm
        self.family = mllm.family
        self.modalities = tuple(mllm.modalities)
        self.num_layers, self.hidden_size = mllm.num_layers, mllm.hidden_size
        self.sampling_rate = mllm.sampling_rate  # Hz of the audio the processor takes (None without audio)
        self.lora_targets: tuple[str, ...] = ()

    @property
    def frame_rate(self) -> float:
        raise BackboneError(NOT_A_FRAME_BACKBONE)

    def forward(self, inputs, layers=None):
        raise BackboneError(NOT_A_FRAME_BACKBONE)

    def clip_features(self, clips: list[dict], instruction: str | None, embedding: str = "generated",
                      max_new_tokens: int = 16, num_frames: int | None = None) -> np.ndarray:
        """(B, L, D) float32 features of ``clips`` under ``instruction`` (None: no instruction); video clips are
        resampled to ``num_frames`` frames (None: the family's default). See ``InstructedMLLM.clip_features``."""
        self.mllm.num_frames = self.check_frames(num_frames)
        return self.mllm.clip_features(clips, instruction, embedding, max_new_tokens)

    def check_frames(self, num_frames: int | None) -> int | None:
        """``num_frames`` (``data.clip_frames``) as the family accepts it, or a clear error."""
        fam = get_family(self.family)
        if num_frames is None:
            return fam.num_frames
        if int(num_frames) < 1:
            raise BackboneError(f"data.clip_frames={num_frames}: a video clip needs at least one frame")
        if fam.fixed_frames and int(num_frames) != fam.num_frames:
            raise BackboneError(f"data.clip_frames={num_frames}, but MLLM family '{self.family}' takes exactly "
                                f"{fam.num_frames} frames per clip; set data.clip_frames={fam.num_frames} (or null)")
        return int(num_frames)


def _offline(family: str, sizes: dict, dtype: torch.dtype, kwargs: dict) -> InstructedMLLM:
    """Random weights of ``family`` sized by ``sizes`` (``TINY_KEYS``) with the offline processor."""
    unknown = sorted(set(sizes) - set(TINY_KEYS))
    if unknown:
        raise BackboneError(f"backbone.config keys {unknown} do not size an offline MLLM (backbone.name is null); "
                            f"use {list(TINY_KEYS)}, or set backbone.name to a checkpoint")
    proc = synthetic_processor(family, **{k: sizes[k] for k in TINY_KEYS[2:6] if k in sizes})
    config = tiny_config(family, proc, **{k: v for k, v in sizes.items() if k != "initializer_range"})
    if "initializer_range" in sizes:  # spread of the random weights; HF's 0.02 leaves a tiny model nearly linear
        config = {k: {**v, "initializer_range": sizes["initializer_range"]} if k.endswith("_config") else v
                  for k, v in config.items()}
    seed = torch.initial_seed() % 2 ** 32  # trainer.seed, set by models.load_model before building
    return build_mllm(family, config, proc, "cpu", dtype, seed=seed, **kwargs)


def build_mllm_backbone(cfg) -> MLLMBackbone:
    """``backbone.arch: mllm`` from a ``BackboneConfig`` (``name``, ``config``, ``finetune`` and ``mllm``)."""
    if cfg.finetune != "frozen":
        raise BackboneError(f"backbone.finetune is '{cfg.finetune}', but {NOT_A_FRAME_BACKBONE} and "
                            "backbone.finetune=frozen")
    opts = cfg.mllm
    get_family(opts.family)
    dtype = resolve_dtype(opts.dtype, "cuda" if torch.cuda.is_available() else "cpu")
    kwargs = dict(modalities=opts.modalities, batch_size=opts.batch_size, system_prompt=opts.system_prompt)
    if cfg.name is None:
        return MLLMBackbone(_offline(opts.family, dict(cfg.config), dtype, kwargs))
    if cfg.config:
        raise BackboneError(f"backbone.config {dict(cfg.config)} sizes an offline MLLM, but backbone.name "
                            f"'{cfg.name}' loads a checkpoint; remove backbone.config")
    return MLLMBackbone(load_mllm(opts.family, cfg.name, "cpu", dtype, **kwargs))
