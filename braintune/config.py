"""Typed experiment config: YAML file + dotted ``key=value`` overrides -> validated ``Config``.

Only builders, the LightningModule and the entry points read this; components take flat arguments.
Unknown keys and badly typed values are all reported at once, before any model is built. Each dataset format
owns its section under ``data`` (``data.lebel``, ``data.bids``, ...: the format's options dataclass); formats
registered by other packages get their section too (``schema()``).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .analysis.attribution_settings import CHOICES as ATTRIBUTION_CHOICES
from .analysis.attribution_settings import AttributionConfig
from .analysis.instruction_settings import CHOICES as INSTRUCTION_CHOICES
from .analysis.instruction_settings import RANGES as INSTRUCTION_RANGES
from .analysis.instruction_settings import AnalysisConfig, MLLMOptions
from .analysis.settings import CHOICES as ANALYSIS_CHOICES
from .analysis.settings import LMConfig, RemovalConfig, SimilarityConfig
from .data.formats.bids import BidsOptions
from .data.formats.lebel import LebelOptions
from .data.formats.synthetic import SyntheticSpec
from .data.formats.synthetic_friends import FriendsSpec
from .errors import ConfigError

# keys that moved into a format's own section: old dotted key -> new one
MOVED = {"data.response_dir": "data.lebel.response_dir", "data.task": "data.bids.task", "data.mask": "data.bids.mask",
         "data.atlas": "data.bids.atlas"}


@dataclass
class DataConfig:
    format: str = "synthetic"  # a key of braintune.data.formats.FORMATS (python -m braintune inspect --help lists them)
    root: str = "data/demo_stories"
    participants: Optional[list[str]] = None  # None: every participant found under root
    heldout_participants: list[str] = field(default_factory=list)
    test_runs: Optional[list[str]] = None  # None: the format's conventional test run(s)
    val_runs: Optional[list[str]] = None  # None: the format's default, else one training run
    sample_rate: int = 16000  # Hz the backbone expects; audio is resampled to it
    segment_trs: int = 16  # K consecutive TRs per training example
    context_s: float = 8.0  # audio before a segment's first pooling window, for the backbone's context
    zscore: bool = True  # z-score every target within each run
    batch_size: int = 4  # segments per optimizer step and device
    num_workers: int = 0
    shuffle: bool = True  # shuffle training segments each epoch (off: a fixed order, e.g. to compare DDP with one process)
    trim_trs: Optional[int] = None  # TRs dropped at each run edge before anything uses them; None: the format's default
    # Target selection (see braintune/data/targets.py)
    labels: Optional[str] = None  # TSV/text of "id<TAB>name" per parcel/target; None: the layout's own (algonauts atlas/*.tsv)
    regions: Optional[list[Any]] = None  # keep only targets whose label name contains one of these, or whose id is listed (e.g. [STS])
    ceiling_threshold: Optional[float] = None  # keep only targets whose repeat-based noise ceiling exceeds this (needs repeats)
    cache_dir: Optional[str] = None  # memory-mapped cache of decoded audio and responses; None: decode every epoch
    allow_outside_root: bool = False  # read files that a manifest / events.tsv names outside data.root (braintune.data.paths)
    # Inputs of video and text backbones (arch av / text); see docs/backbones.md
    video_fps: float = 8.0  # frames per second sampled inside each segment's span (decord; frames cached)
    frame_size: int = 224  # frames are resized to frame_size x frame_size (the video encoder's image_size)
    context_words: int = 64  # words before a segment's span given to a text backbone as context
    # evaluate.py instructions: one clip per TR, the clip_s seconds ending at the TR's time
    clip_s: Optional[float] = None  # None: the run's TR
    clip_frames: Optional[int] = 16  # video frames per clip (decoded at clip_frames / clip_s fps); None: the MLLM family's
    # Each format's own section (braintune/data/formats/<format>.py)
    lebel: LebelOptions = field(default_factory=LebelOptions)
    bids: BidsOptions = field(default_factory=BidsOptions)
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    synthetic_friends: FriendsSpec = field(default_factory=FriendsSpec)


@dataclass
class PoolingConfig:
    """Frames -> one vector per TR. TR at time t pools windows ``[t - lag - (k+1)·window, t - lag - k·window]``."""

    window_s: float = 2.0
    lag_s: float = 0.0
    n_windows: int = 5  # k = 0..n_windows-1; 5 × 2 s covers the 10 s the reference recipe uses
    combine: str = "concat"  # concat (FIR-like, keeps the delay) | mean


@dataclass
class LoraConfig:
    rank: int = 8
    alpha: int = 32
    dropout: float = 0.1
    target_modules: Optional[list[str]] = None  # None: the backbone's own attention projections (its lora_targets)


@dataclass
class EncoderConfig:
    """One encoder of the audio-video backbone (``backbone.arch: av``)."""

    arch: str = ""  # audio: wav2vec2 | hubert | wavlm; video: videomae
    name: Optional[str] = None  # hub name or local directory; None: build from `config`
    config: dict[str, Any] = field(default_factory=dict)  # HF config fields when `name` is None
    layer: int = -1  # hidden state of this encoder that enters the fusion
    lora_target_modules: list[str] = field(default_factory=list)  # finetune=lora: adapters here; empty: encoder frozen


@dataclass
class FusionConfig:
    """Audio-video fusion: both streams projected to ``width``, video held at the audio frame rate, summed."""

    width: int = 256
    layers: int = 1  # transformer layers after the sum (hidden states 1..layers; 0 is the sum itself)
    heads: int = 4
    modality_dropout: float = 0.0  # training: probability that one modality is zeroed for a batch


@dataclass
class BackboneConfig:
    arch: str = "wav2vec2"  # registry key, see braintune.backbones.BACKBONES
    name: Optional[str] = None  # hub name or local directory; None: build from `config` (tests, demo)
    config: dict[str, Any] = field(default_factory=dict)  # HF config fields when `name` is None
    layer: int = -1  # hidden state fed to the heads (0 = embeddings, -1 = last)
    finetune: str = "lora"  # full | lora | frozen
    freeze_feature_encoder: bool = True
    gradient_checkpointing: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    # arch av: the two encoders and their fusion
    audio: EncoderConfig = field(default_factory=lambda: EncoderConfig(
        arch="wav2vec2", lora_target_modules=["attention.q_proj", "attention.v_proj"]))
    video: EncoderConfig = field(default_factory=lambda: EncoderConfig(
        arch="videomae", lora_target_modules=["attention.attention.query", "attention.attention.value"]))
    fusion: FusionConfig = field(default_factory=FusionConfig)
    # arch text
    text_rate_hz: float = 10.0  # word vectors are placed at their onsets on a grid of this rate
    text_vocab: list[str] = field(default_factory=list)  # name None: offline word-level tokenizer over these words
    # arch mllm (evaluate.py instructions): the family, and the instructions, as [{name: prompt}] or
    # {file: configs/instructions/video.yaml, names: [...]} (braintune/analysis/instruction_settings.py)
    mllm: MLLMOptions = field(default_factory=MLLMOptions)
    instructions: Any = None


@dataclass
class HeadConfig:
    kind: str = "per_participant"  # per_participant | shared | low_rank
    rank: int = 256  # width of the shared trunk for low_rank
    dropout: float = 0.0


@dataclass
class LossConfig:
    name: str = "mse"  # mse | pearson | mix
    pearson_weight: float = 0.5  # weight of (1 - r) in `mix`; MSE gets 1 - pearson_weight


@dataclass
class OptimConfig:
    backbone_lr: float = 1e-4
    head_lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1  # of the real number of optimizer steps
    schedule: str = "linear"  # linear | cosine | constant (after warm-up)
    grad_clip: float = 1.0
    # all: backbone + every head; heads: heads only (backbone frozen); new_heads: only the heads of
    # participants that the `init_from` checkpoint lacks (add a new participant to a tuned model)
    train_only: str = "all"


@dataclass
class TrainerConfig:
    max_epochs: int = 30
    accelerator: str = "auto"
    devices: Any = 1  # int or "auto"; >1 launches DDP
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | fsdp
    precision: str = "32-true"  # bf16-mixed on GPUs
    accumulate_grad_batches: int = 1
    seed: int = 122
    log_every_n_steps: int = 10
    limit_train_batches: Optional[float] = None
    progress_bar: bool = True
    # memory guard (training/memory.py): from a measured first step, halve data.batch_size and double
    # accumulate_grad_batches (then turn on gradient checkpointing) until the peak fits; None: no guard
    max_memory_gib: Optional[float] = None


@dataclass
class SpeedConfig:
    """Training-throughput levers (issue 14, braintune/training/speed.py); each is exact or equal to float tolerance
    (tests/test_speed.py), measured in benchmarks/RESULTS.md."""

    cnn_cache: bool = True  # a frozen waveform CNN's frames from a per-run cache (spans start on its stride)
    cnn_cache_gib: float = 16.0  # device memory the frame cache may hold; runs beyond it run the CNN per span
    pos_conv: str = "auto"  # auto (fft when frozen, else conv) | fft | unfold | conv: wav2vec2's positional convolution
    frozen_lowp: bool = True  # frozen Linear/Conv1d weights cast to the autocast dtype once, not every step
    fused_adamw: bool = True  # torch's fused AdamW kernel where the parameters' device has one
    batched_heads: bool = False  # per-participant heads as one matmul (measured: no faster, see RESULTS.md)


@dataclass
class LoggerConfig:
    kind: str = "csv"  # csv | wandb | tensorboard
    project: str = "braintune"
    run_name: Optional[str] = None


@dataclass
class BandConfig:
    """Block-causal attention: frames are grouped in blocks ending at each TR's pooling-window end + ``lookahead_s``;
    a frame attends to frames from its block's start − ``past_s`` to its block's end. The look-ahead bound holds at
    any depth (a per-frame band would grow with every layer). ``data.context_s`` stays the audio read before a
    segment; ``past_s`` is how far back attention reaches inside it."""

    past_s: float = 8.0  # the reference recipe's 8 s of preceding context (its 10 s window = 8 s + the 2 s TR)
    lookahead_s: float = 0.0  # seconds past each TR's pooling-window end that its block may see
    training: bool = True  # block-causal attention in training segments (false: full attention over each segment)


@dataclass
class AlignmentConfig:
    """Ridge encoding model measuring brain alignment of backbone features (evaluate.py alignment)."""

    after_training: bool = True  # train.py measures alignment before and after tuning on the test runs
    layers: Optional[list[int]] = None  # None: every hidden state
    delays: list[int] = field(default_factory=lambda: [1, 2, 3, 4])  # FIR delays in TRs
    alphas: Optional[list[float]] = None  # None: logspace(1, 4, 15) in Huth units (penalty alpha^2)
    cv: str = "leave_runs_out"  # leave_runs_out | bootstrap (Huth-lab chunked bootstrap)
    chunk_s: float = 60.0  # audio encoded per forward pass when extracting features
    window_s: Optional[float] = None  # feature window per TR; None: the run's TR
    regions: list[str] = field(default_factory=list)  # also report mean r of targets whose label contains each (+ "other")
    # bounded: chunks with block-causal attention (each TR sees at most band.lookahead_s + the backbone's declared
    # reach past its window); unbounded: chunks with full attention (features see up to ~chunk_s ahead);
    # sliding: the reference's causal snippets, Lanczos to TRs
    extraction: str = "bounded"
    recipe: str = "braintune"  # braintune | reference (the multi-participant paper's evaluation, docs/reference_recipe.md)
    sliding_context_s: float = 16.0  # sliding: stimulus seconds each snippet ends with (the reference recipe's 16 s)
    sliding_stride_s: float = 0.1  # sliding: seconds between snippet ends
    sliding_batch: int = 32  # sliding: snippets per forward pass
    cache_dir: Optional[str] = ".cache/features"  # per model/run/settings .npy features; None: no cache
    min_ceiling: float = 0.05  # mean_r_normalized keeps targets whose repeat-based ceiling is >= this
    # evaluate.py instructions: repeats (showings of the test stimulus) | cross_subject (Schrimpf et al. 2021; >= 4
    # participants, 3 give a lower bound) | none
    ceiling: str = "repeats"
    models: list[str] = field(default_factory=list)  # evaluate.py compare: "base", .ckpt files, exported HF dirs
    efficiency: bool = False  # also fit on nested subsets of training runs (held-out participants); on in compare
    efficiency_runs: list[int] = field(default_factory=lambda: [1, 2, 3, 5, 10, 15, 20, 25])  # capped at what exists
    n_boot: int = 1000  # block-bootstrap resamples for CIs of the mean r difference (compare)
    block_trs: int = 20  # TRs per block of the block bootstrap and the block sign-flip test (>> the response autocorrelation)


@dataclass
class DownstreamConfig:
    """Linear probes on pooled backbone features (evaluate.py downstream, and the training callback)."""

    task: Optional[str] = None  # one task name (see braintune.downstream.tasks.TASKS)
    tasks: list[str] = field(default_factory=list)  # several tasks in one run (added to `task`)
    root: Optional[str] = None  # dataset root of `task` (or of every task without an entry in `roots`)
    roots: dict[str, str] = field(default_factory=dict)  # task name -> dataset root
    compare: list[str] = field(default_factory=list)  # more models: .ckpt files, exported HF dirs, or "base"
    layers: Optional[list[int]] = None  # hidden states to probe; None: all
    pooling: str = "mean"  # mean over time of each hidden state
    probe: str = "logistic"  # logistic | ridge (regression and multi-label targets always use ridge)
    cv_folds: int = 5  # inner CV folds for the logistic probe's C
    seed: int = 0
    max_items: Optional[int] = None  # seeded subsample of each task (None: all items)
    n_boot: int = 1000  # bootstrap resamples of the test items
    cache_dir: Optional[str] = ".cache/downstream"  # pooled features per model/task/item; None: no cache
    callback_tasks: list[str] = field(default_factory=list)  # train.py: probe these every `every_n_epochs`
    every_n_epochs: int = 1
    callback_max_items: int = 200  # items per task the callback encodes (seeded subsample)
    synthetic: bool = False  # write a planted MUStARD-layout dataset at a mustard* task's root when the root does not exist
    allow_outside_root: bool = False  # read item files that a task's CSV / JSON / lists name outside its root
    # MUStARD's Friends test clips from episodes a model was tuned on (braintune/downstream/contamination.py): null =
    # on when a measured model's training runs are Friends episodes; true / false: always / never
    exclude_seen_episodes: Optional[bool] = None
    episode_table: Optional[str] = None  # "clip_id<TAB>episode" lines (s01e02); else clips are matched in the transcripts


@dataclass
class Config:
    out_dir: str = "runs/demo"
    checkpoint: Optional[str] = None  # evaluate.py: a braintune checkpoint to measure
    init_from: Optional[str] = None  # train.py: start from this braintune checkpoint's weights
    resume: bool = True  # train.py: continue from out_dir/checkpoints/last.ckpt when it exists
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    pooling: PoolingConfig = field(default_factory=PoolingConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    band: BandConfig = field(default_factory=BandConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    downstream: DownstreamConfig = field(default_factory=DownstreamConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)  # evaluate.py attribute
    removal: RemovalConfig = field(default_factory=RemovalConfig)  # evaluate.py remove
    similarity: SimilarityConfig = field(default_factory=SimilarityConfig)  # evaluate.py similarity
    lm: LMConfig = field(default_factory=LMConfig)  # python -m braintune.lm train
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)  # evaluate.py instructions


CHOICES = {
    "pooling.combine": ("concat", "mean"),
    "backbone.finetune": ("full", "lora", "frozen"),
    "head.kind": ("per_participant", "shared", "low_rank"),
    "loss.name": ("mse", "pearson", "mix"),
    "optim.schedule": ("linear", "cosine", "constant"),
    "optim.train_only": ("all", "heads", "new_heads"),
    "trainer.strategy": ("auto", "ddp", "fsdp"),
    "speed.pos_conv": ("auto", "fft", "unfold", "conv"),
    "logger.kind": ("csv", "wandb", "tensorboard"),
    "alignment.cv": ("leave_runs_out", "bootstrap"),
    "alignment.extraction": ("bounded", "unbounded", "sliding"),
    "alignment.recipe": ("braintune", "reference"),
    "downstream.pooling": ("mean",),
    "downstream.probe": ("logistic", "ridge"),
}
CHOICES.update(ATTRIBUTION_CHOICES)  # attribution.* (braintune/analysis/attribution_settings.py)
CHOICES.update(ANALYSIS_CHOICES)  # removal.*, similarity.*, lm.* (braintune/analysis/settings.py)
CHOICES.update(INSTRUCTION_CHOICES)  # analysis.*, backbone.mllm.*, alignment.ceiling (analysis/instruction_settings.py)


def schema() -> type[Config]:
    """``Config``, extended with a ``data.<name>`` section for every format registered by another package."""
    from .data.formats import FORMATS

    builtin = {f.name for f in dataclasses.fields(DataConfig)}
    extra = [(name, fmt.options) for name, fmt in FORMATS.items() if fmt.options is not None and name not in builtin]
    if not extra:
        return Config
    data = make_dataclass("DataConfig", [(n, t, field(default_factory=t)) for n, t in extra], bases=(DataConfig,))
    return make_dataclass("Config", [("data", data, field(default_factory=data))], bases=(Config,))


def _unknown_keys(schema_cls: type, given: Any, prefix: str = "") -> list[str]:
    """Dotted names in `given` that the dataclass `schema_cls` does not define (moved keys name their new place)."""
    if not isinstance(given, dict):
        return []
    fields = {f.name: f for f in dataclasses.fields(schema_cls)}
    problems = []
    for key, value in given.items():
        name = f"{prefix}{key}"
        if name in MOVED:
            problems.append(f"'{name}' moved to '{MOVED[name]}' (each dataset format owns its options); rename the key")
        elif key not in fields:
            allowed = ", ".join(sorted(fields))
            problems.append(f"unknown key '{name}' (allowed under '{prefix.rstrip('.') or 'top level'}': {allowed})")
        elif dataclasses.is_dataclass(sub := typing.get_type_hints(schema_cls)[key]):
            problems += _unknown_keys(sub, value, prefix=f"{name}.")
    return problems


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{where} is not valid YAML{at}: {getattr(err, 'problem', None) or err}; "
                          "check brackets and quotes, e.g. data.participants=[UTS01,UTS02]") from err


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form key=value (e.g. trainer.max_epochs=3)")
    key, raw = item.split("=", 1)
    return key.strip(), _yaml(raw, f"override '{item}'") if raw != "" else None


def _nest(dotted: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _check_choices(cfg: Config) -> list[str]:
    from .backbones import BACKBONES
    from .data.formats import FORMATS

    problems = []
    choices = {**CHOICES, "data.format": tuple(FORMATS), "backbone.arch": tuple(BACKBONES)}
    for dotted, allowed in choices.items():
        value = _get(cfg, dotted)  # plain attributes: a structured copy per key cost seconds per load
        if value not in allowed:
            problems.append(f"'{dotted}' is '{value}'; allowed: {', '.join(allowed)}")
    heldout = set(cfg.data.heldout_participants)
    if cfg.data.participants is not None and heldout & set(cfg.data.participants):
        problems.append(
            f"participants {sorted(heldout & set(cfg.data.participants))} are both in 'data.participants' "
            "and 'data.heldout_participants'; a held-out participant must not be tuned on"
        )
    return problems


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


# Ranges of numeric keys: (keys, test, what the value must be). A NaN fails every test.
RANGES: list[tuple[tuple[str, ...], typing.Callable[[Any], bool], str]] = [
    (("data.sample_rate", "data.batch_size", "data.segment_trs", "data.video_fps", "data.frame_size", "pooling.window_s",
      "pooling.n_windows", "backbone.text_rate_hz", "backbone.lora.rank", "backbone.fusion.width", "backbone.fusion.heads",
      "head.rank", "trainer.max_epochs", "trainer.num_nodes", "trainer.accumulate_grad_batches", "trainer.log_every_n_steps",
      "alignment.chunk_s", "alignment.sliding_context_s", "alignment.sliding_stride_s", "alignment.sliding_batch",
      "alignment.block_trs", "downstream.every_n_epochs", "downstream.callback_max_items"), lambda v: v > 0, "above 0"),
    (("band.past_s", "band.lookahead_s",
      "data.context_s", "data.num_workers", "data.context_words", "backbone.fusion.layers", "optim.backbone_lr",
      "optim.head_lr", "optim.weight_decay", "optim.grad_clip", "alignment.n_boot", "downstream.n_boot"),
     lambda v: v >= 0, "0 or more"),
    (("speed.cnn_cache_gib",), lambda v: v >= 0, "0 or more"),
    (("alignment.window_s", "downstream.max_items", "trainer.limit_train_batches", "trainer.max_memory_gib"),
     lambda v: v is None or v > 0,
     "null or above 0"),
    (("data.trim_trs",), lambda v: v is None or v >= 0, "null or 0 or more"),
    (("optim.warmup_fraction", "loss.pearson_weight", "backbone.fusion.modality_dropout"), lambda v: 0 <= v <= 1,
     "between 0 and 1"),
    (("head.dropout", "backbone.lora.dropout"), lambda v: 0 <= v < 1, "at least 0 and below 1"),
    (("downstream.cv_folds",), lambda v: v >= 2, "at least 2"),
    (("alignment.min_ceiling", "pooling.lag_s"), math.isfinite, "a finite number"),
]
RANGES.extend(INSTRUCTION_RANGES)  # data.clip_*, analysis.*, backbone.mllm.* (analysis/instruction_settings.py)
# Lists: (key, may it be null, test of each element, what the elements must be). An empty list is refused.
LISTS = [("alignment.delays", False, lambda d: isinstance(d, int) and d >= 0, "whole TRs, 0 or more"),
         ("alignment.alphas", True, lambda a: isinstance(a, (int, float)) and a > 0, "above 0"),
         ("alignment.efficiency_runs", False, lambda n: isinstance(n, int) and n >= 1, "at least 1"),
         ("data.participants", True, lambda p: bool(str(p)), "names"), ("data.test_runs", True, lambda r: bool(str(r)), "names"),
         ("data.val_runs", True, lambda r: bool(str(r)), "names")]
PRECISIONS = ("32-true", "32", "16-mixed", "16-true", "16", "bf16-mixed", "bf16-true", "bf16", "64-true", "64",
              "transformer-engine", "transformer-engine-float16")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def _in_range(value: Any, test: typing.Callable[[Any], bool]) -> bool:
    try:
        return isinstance(value, (int, float, type(None))) and not isinstance(value, bool) and bool(test(value))
    except TypeError:  # None compared with a number: the key may not be null
        return False


def _check_ranges(cfg: Config) -> list[str]:
    """Every numeric key out of its range, every list that must not be empty, and the trainer's own choices."""
    problems = [f"'{key}' is {_get(cfg, key)!r}; it must be {what}"
                for keys, test, what in RANGES for key in keys if not _in_range(_get(cfg, key), test)]
    for key, nullable, test, what in LISTS:
        value = _get(cfg, key)
        if value is None and nullable:
            continue
        if not value:
            problems.append(f"'{key}' is {value!r}; give at least one value ({what})")
        elif not all(test(v) for v in value):
            problems.append(f"'{key}' is {value}; every value must be {what}")
    t = cfg.trainer
    if str(t.precision) not in PRECISIONS:
        problems.append(f"'trainer.precision' is '{t.precision}'; allowed: {', '.join(PRECISIONS)}")
    if t.accelerator not in ACCELERATORS:
        problems.append(f"'trainer.accelerator' is '{t.accelerator}'; allowed: {', '.join(ACCELERATORS)}")
    devices_ok = t.devices in ("auto", -1) or (isinstance(t.devices, int) and not isinstance(t.devices, bool) and t.devices >= 1) \
        or (isinstance(t.devices, list) and t.devices and all(isinstance(d, int) and d >= 0 for d in t.devices))
    if not devices_ok:
        problems.append(f"'trainer.devices' is {t.devices!r}; give a count (1, 4), a list of GPU ids ([0, 1]) or 'auto'")
    return problems + _check_consistency(cfg)


def _check_consistency(cfg: Config) -> list[str]:
    """Settings that are valid alone but not together."""
    problems = []
    if cfg.optim.train_only == "new_heads" and not cfg.init_from:
        problems.append("'optim.train_only' is 'new_heads' but 'init_from' is not set; new heads are those of participants "
                        "the init_from checkpoint lacks (or use optim.train_only=heads)")
    a = cfg.alignment
    if _in_range(a.sliding_stride_s, lambda v: v > 0) and _in_range(a.sliding_context_s, lambda v: v > 0) \
            and a.sliding_stride_s > a.sliding_context_s:
        problems.append(f"'alignment.sliding_stride_s' ({a.sliding_stride_s}) exceeds 'alignment.sliding_context_s' "
                        f"({a.sliding_context_s}): stimulus between snippets would never be encoded")
    if isinstance(cfg.backbone.fusion.width, int) and isinstance(cfg.backbone.fusion.heads, int) \
            and cfg.backbone.fusion.heads > 0 and cfg.backbone.fusion.width % cfg.backbone.fusion.heads:
        problems.append(f"'backbone.fusion.width' ({cfg.backbone.fusion.width}) is not a multiple of 'backbone.fusion.heads' "
                        f"({cfg.backbone.fusion.heads})")
    return problems


def _where_unwritable(key: str, value: str | None) -> str | None:
    """Why directory ``value`` (config key ``key``) cannot be created or written, or None when it can."""
    if value is None:
        return None
    path = Path(value).expanduser().absolute()
    if path.exists() and not path.is_dir():
        return f"'{key}' is '{value}', which is a file, not a directory; choose another path"
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"'{key}' is '{value}', but '{probe}' is a file, so no directory can be made under it; choose another path"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"'{key}' is '{value}', but '{probe}' is not writable by this user; choose another path or fix its permissions"
    return None


LOGGER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


def check_environment(cfg: Config, command: str) -> list[str]:
    """What this machine must provide for ``command`` (train, alignment, compare, downstream): writable output and
    cache directories, the accelerator, the logger's package (train) and the ``init_from`` file (train)."""
    import importlib.util

    import torch

    dirs = {"out_dir": cfg.out_dir, "data.cache_dir": cfg.data.cache_dir, "alignment.cache_dir": cfg.alignment.cache_dir,
            "downstream.cache_dir": cfg.downstream.cache_dir}
    problems = [p for key, value in dirs.items() if (p := _where_unwritable(key, value))]
    accelerator = cfg.trainer.accelerator
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        problems.append(f"'trainer.accelerator' is '{accelerator}' but this machine has no CUDA GPU; use trainer.accelerator=cpu "
                        "(or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        problems.append("'trainer.accelerator' is 'mps' but this machine has no Apple GPU; use trainer.accelerator=cpu (or auto)")
    if command == "train":
        packages = LOGGER_PACKAGES.get(cfg.logger.kind, ())
        if packages and not any(importlib.util.find_spec(name) for name in packages):
            problems.append(f"'logger.kind' is '{cfg.logger.kind}' but its package is not installed; pip install {packages[0]}, "
                            "or use logger.kind=csv")
        if cfg.init_from is not None and not Path(cfg.init_from).is_file():
            problems.append(f"'init_from' is '{cfg.init_from}', which is not a file; give a braintune checkpoint "
                            "(OUT_DIR/checkpoints/*.ckpt)")
    return problems


@functools.lru_cache(maxsize=8)
def _template(cls: type) -> Any:
    """The structured config of ``cls`` with its defaults, built once (OmegaConf takes ~0.3 s per build)."""
    return OmegaConf.structured(cls)


def _problems(problems: list[str]) -> ConfigError:
    """One line per problem: the problem itself when there is one, else a count and one indented line each."""
    if len(problems) == 1:
        return ConfigError(problems[0])
    return ConfigError(f"{len(problems)} config problems:\n  - " + "\n  - ".join(problems))


def _merge(given: dict, dotted: dict, source: str, command: str | None = None) -> Config:
    """Validated ``Config`` from a YAML mapping and dotted overrides; every problem listed at once."""
    cls = schema()
    problems = _unknown_keys(cls, given) + _unknown_keys(cls, _nest(dotted))
    if problems:
        raise _problems(problems)
    base = _template(cls)  # merge copies it: the cached template is never modified
    for source_name, layer in [(source, given)] + [(f"override {k}", _nest({k: v})) for k, v in dotted.items()]:
        try:
            base = OmegaConf.merge(base, layer)
        except OmegaConfBaseException as err:
            problems.append(f"{source_name}: {str(err).splitlines()[0]}")
    if problems:
        raise _problems(problems)
    cfg: Config = OmegaConf.to_object(base)  # type: ignore[assignment]
    problems = _check_choices(cfg) + _check_ranges(cfg) + (check_environment(cfg, command) if command else [])
    if problems:
        raise _problems(problems)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, command: str | None = None) -> Config:
    """Read `path` (YAML), apply dotted `overrides`, validate, and return a typed ``Config``.

    Raises ``ConfigError`` listing every unknown key, bad value, bad choice, out-of-range value and inconsistent pair
    at once; with ``command`` (train, alignment, compare, downstream) also what this machine lacks for it
    (``check_environment``).
    """
    given: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise ConfigError(f"config file '{path}' {what}; the shipped configs are in configs/")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file '{path}' cannot be read ({err}); it must be a UTF-8 YAML file") from err
        given = _yaml(text, f"config file '{path}'") or {}
        if not isinstance(given, dict):
            raise ConfigError(f"config file '{path}' must hold a mapping of keys, not {type(given).__name__}")
    dotted = dict(_parse_override(o) for o in overrides or [])
    return _merge(given, dotted, str(path), command)


def to_dict(cfg: Config) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML; `load_config(path)` rebuilds the same run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def from_dict(values: dict[str, Any]) -> Config:
    """A ``Config`` from a plain dict (e.g. one saved in a checkpoint), validated like a YAML file."""
    return _merge(values, {}, "saved config")
