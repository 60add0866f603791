"""The config sections of ``evaluate.py instructions`` (``analysis.*``, ``backbone.mllm.*``), their choices and ranges,
and ``backbone.instructions`` -> the ``InstructionSet`` to run.

``braintune.config`` includes these dataclasses; the encoding model (delays, alphas, CV, regions, ceiling and its
threshold, layers, feature cache) is ``alignment.*``, shared with ``evaluate.py alignment``; the TR-clip is
``data.clip_s`` / ``data.clip_frames``. Oota et al. 2025 (analysis_methods.md §4) is the recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError
from .instructions import InstructionSet, load_instructions


@dataclass
class MLLMOptions:
    """``backbone.mllm``: which MLLM family and how it runs (``backbone.arch: mllm``)."""

    family: str = "video_llava"  # a key of braintune.backbones.mllm.FAMILIES (video_llava, qwen2_audio, ...)
    dtype: str = "auto"  # auto: bfloat16 when a CUDA GPU is visible, else float32 | float32 | bfloat16 | float16
    batch_size: int = 8  # clips per generate / forward call (prompts left-padded)
    modalities: Optional[list[str]] = None  # None: the family's own (Qwen2.5-Omni: video and audio)
    system_prompt: Optional[str] = None  # None: the family's default system turn; "": none


@dataclass
class BaselineConfig:
    """One model compared with the configured MLLM (``analysis.baselines``), through the same TR-clip path."""

    name: str = ""  # its key in summary.json and file names
    kind: str = "multimodal"  # its model class (e.g. instruction_tuned | multimodal | unimodal | no_instruction)
    # a backbone section (arch av | videomae | ast | wav2vec2 | ... | mllm, and its keys); null: the configured MLLM
    # without an instruction (the paper's no-instruction control). An mllm entry runs its own backbone.instructions
    # (none: no instruction).
    backbone: Optional[dict[str, Any]] = None


@dataclass
class AnalysisConfig:
    """``evaluate.py instructions``: instruction-conditioned features, WTA maps, pair partitioning, model classes."""

    embedding: str = "generated"  # generated: mean state over the greedy answer (the paper) | prompt: last prompt token
    max_new_tokens: int = 16  # length cap of the generated answer
    kind: str = "instruction_tuned"  # model class of the configured MLLM in the class comparison
    baselines: list[BaselineConfig] = field(default_factory=list)
    pairing: str = "participant_x_region"  # pairs of the class test: participant x region (label) | participant
    pairs: list[list[str]] = field(default_factory=list)  # instruction pairs for variance partitioning, e.g. [[a, b]]
    all_pairs: bool = False  # partition every pair (78 for 13 instructions) instead of `pairs`
    partition_layer: Optional[int] = None  # layer of the partitioned features; None: the MLLM's best layer
    solver: str = "himalaya"  # ridge solver: himalaya (solve_ridge_cv_svd, as the paper) | svd (braintune's, same α)
    ceiling_boot: int = 100  # alignment.ceiling=cross_subject: bootstraps of the saturation fit
    ceiling_curve: str = "exponential"  # exponential (Schrimpf et al. 2021) | pooled_noise
    ceiling_max_subsets: Optional[int] = None  # cross-subject subsets drawn per size (None: all; many participants)
    surface_pictures: str = "all"  # WTA maps drawn on the surface: all | main (instruction, layer) | none (data always)
    train_runs: list[str] = field(default_factory=list)  # training runs (names or glob patterns, e.g. [bourne*, wolf*]);
    # empty: the split's training + validation runs
    shard_timeout_s: float = 86400.0  # sharded extraction: how long rank 0 waits for the other ranks' features


CHOICES = {
    "analysis.embedding": ("generated", "prompt"),
    "analysis.pairing": ("participant_x_region", "participant"),
    "analysis.solver": ("himalaya", "svd"),
    "analysis.ceiling_curve": ("exponential", "pooled_noise"),
    "analysis.surface_pictures": ("all", "main", "none"),
    "alignment.ceiling": ("repeats", "cross_subject", "none"),
    "backbone.mllm.dtype": ("auto", "float32", "bfloat16", "float16"),
}
RANGES = [
    (("analysis.max_new_tokens", "analysis.ceiling_boot", "backbone.mllm.batch_size", "analysis.shard_timeout_s"),
     lambda v: v > 0, "above 0"),
    (("data.clip_s",), lambda v: v is None or v > 0, "null or above 0"),
    (("data.clip_frames", "analysis.ceiling_max_subsets"), lambda v: v is None or v >= 1, "null or at least 1"),
]

USAGE = ("give backbone.instructions as a list of {name: prompt} (prompt null: no instruction), e.g. "
         "[{caption: Caption the video in a short sentence.}], or as {file: configs/instructions/video.yaml, "
         "names: [video_captioning, action_recognition]} (names omitted: every instruction of the file)")


def _from_list(items: list) -> InstructionSet:
    prompts: dict[str, str | None] = {}
    for i, item in enumerate(items):
        if isinstance(item, dict) and set(item) == {"name", "prompt"}:
            item = {item["name"]: item["prompt"]}
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"backbone.instructions[{i}] is {item!r}, not one {{name: prompt}}; {USAGE}")
        (name, prompt), = item.items()
        if str(name) in prompts or (prompt is not None and not isinstance(prompt, str)):
            raise ConfigError(f"backbone.instructions[{i}]: '{name}' is repeated or its prompt {prompt!r} is not text")
        prompts[str(name)] = prompt
    keys = tuple(prompts)
    return InstructionSet("", keys, prompts, {k: k for k in keys}, {k: None for k in keys}, {},
                          {k: ("braintune", None) for k in keys})


def _from_file(value: dict) -> InstructionSet:
    unknown = sorted(set(value) - {"file", "names"})
    if unknown or "file" not in value:
        raise ConfigError(f"backbone.instructions has keys {sorted(value)}; {USAGE}")
    try:
        full = load_instructions(Path(value["file"]))
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"backbone.instructions.file: {err}") from err
    names = list(value.get("names") or full.keys)
    missing = [n for n in names if n not in full.keys]
    if missing:
        raise ConfigError(f"backbone.instructions.names {missing} are not in '{value['file']}'; it has {list(full.keys)}")
    used = {full.groups[n] for n in names}
    return InstructionSet(full.modality, tuple(names), {n: full.prompts[n] for n in names},
                          {n: full.names[n] for n in names}, {n: full.groups[n] for n in names},
                          {g: d for g, d in full.group_labels.items() if g in used}, {n: full.sources[n] for n in names})


def resolve_instructions(value: Any) -> InstructionSet:
    """``backbone.instructions`` (a list of named prompts, or an instruction file and names) -> ``InstructionSet``."""
    if value is None or value == [] or value == {}:
        raise ConfigError(f"backbone.instructions is not set; {USAGE}")
    return _from_list(list(value)) if isinstance(value, (list, tuple)) else _from_file(dict(value))


def no_instruction(name: str = "no_instruction") -> InstructionSet:
    """The one-entry set of a model run without an instruction (baselines)."""
    return _from_list([{name: None}])
