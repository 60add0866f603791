"""A model entry + the config -> one ``Model``: the backbone under test, its headline layer, cache key, device and
stimulus spec. Every command that measures a model loads it here.

Entry grammar (``alignment.models``, ``downstream.compare``, ``checkpoint=``):

* ``base`` -- the backbone as configured (``backbone.*``; built from its config with ``trainer.seed``, or a hub
  checkpoint / local directory in ``backbone.name``);
* a braintune checkpoint file (``out_dir/checkpoints/*.ckpt``) -- rebuilt from the config it carries, weights
  loaded without unpickling code (``torch.load(weights_only=True)``);
* an exported model directory (``braintune export``) -- its ``braintune_config.yaml`` says what it is;
* ``<control>:<entry>`` -- a control applied to another entry (``CONTROLS``: e.g. a freshly initialised copy).
"""
from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .backbones import build_backbone, resolve_layer
from .config import Config, from_dict, load_config, to_dict
from .controls import CONTROLS
from .errors import ConfigError
from .heads import ParticipantHeads
from .pooling import TRPooling
from .provenance import CODE_VERSION, digest, file_identity

log = logging.getLogger(__name__)

EXPORT_CONFIG = "braintune_config.yaml"


@dataclass
class Model:
    """The model under test. ``config`` is the config that describes it (a checkpoint's own, for checkpoints)."""

    name: str  # its key in summaries
    entry: str  # as given
    backbone: nn.Module
    layer: int  # the headline hidden state (the one the heads read)
    key: str  # cache key: identity of the weights + code version
    device: str
    config: Config
    heads: ParticipantHeads | None = None  # the participant heads of a checkpoint

    @property
    def spec(self):
        """What the backbone reads (``data.modalities.StimulusSpec``)."""
        return self.backbone.spec


def resolve_device(accelerator: str = "auto") -> str:
    """The one device choice of braintune: ``cuda`` when asked for (or ``auto``) and present, else ``cpu``."""
    if accelerator in ("cpu",):
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if accelerator in ("gpu", "cuda"):
        raise ConfigError(f"trainer.accelerator is '{accelerator}' but this machine has no CUDA GPU; "
                          "use trainer.accelerator=cpu (or auto)")
    return "cpu"


def load_checkpoint(path: str | Path) -> dict:
    """A braintune checkpoint -> {"config": dict, "n_targets": dict, "state_dict": dict, "braintune": dict, "raw": the
    whole checkpoint}, read with ``weights_only=True``: a checkpoint whose pickle would build any object beyond tensors
    and plain containers (e.g. run code) is refused, never executed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint '{path}' is not a file; braintune writes them to OUT_DIR/checkpoints/")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0][:160]
        if "weights only" not in str(err).lower():
            raise ConfigError(f"checkpoint '{path}' is not a torch checkpoint or is corrupt ({first})") from err
        raise ConfigError(f"checkpoint '{path}' holds objects that only an unsafe load could build (code could run); "
                          f"braintune refuses to unpickle it. Use checkpoints written by braintune ({first})") from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ConfigError(f"checkpoint '{path}' cannot be read ({type(err).__name__}: {str(err)[:160]}); it is truncated "
                          "or not a torch checkpoint") from err
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or not isinstance(hp.get("config"), dict) or not isinstance(hp.get("n_targets"), dict) \
            or not isinstance(ckpt.get("state_dict"), dict):
        raise ConfigError(f"'{path}' holds no braintune config, target counts and weights; is it a braintune checkpoint?")
    record = ckpt.get("braintune")
    return {"config": hp["config"], "n_targets": dict(hp["n_targets"]), "state_dict": ckpt["state_dict"],
            "braintune": record if isinstance(record, dict) else {}, "raw": ckpt}


def _flat(prefix: str, value) -> dict:
    if not isinstance(value, dict):
        return {prefix: value}
    return {k: v for key, sub in sorted(value.items()) for k, v in _flat(f"{prefix}.{key}", sub).items()}


def model_identity(config: dict, n_targets: dict[str, int]) -> dict:
    """What a braintune model's weights are, as flat dotted config keys: the backbone's architecture, name and HF
    config (with its encoders and fusion for ``av``, its vocabulary for ``text``), fine-tuning mode and LoRA shape, the
    layer the heads read, pooling, heads and each participant's target count (``n_targets``).

    ``config`` is a resolved config dict (``to_dict``, or a checkpoint's ``hyper_parameters["config"]``).
    """
    b, h = config["backbone"], config["head"]
    ident = {"backbone.arch": b["arch"], "backbone.name": b["name"], "backbone.finetune": b["finetune"],
             "backbone.layer": b["layer"], **_flat("backbone.config", b["config"])}
    if b["arch"] == "av":
        ident.update({k: v for k, v in _flat("backbone", {n: b[n] for n in ("audio", "video", "fusion")}).items()
                      if k != "backbone.fusion.modality_dropout"})  # a training setting, not the weights' shape
    if b["arch"] == "text":
        ident.update({"backbone.text_rate_hz": b["text_rate_hz"], "backbone.text_vocab": b["text_vocab"]})
    if b["finetune"] == "lora":
        ident.update({f"backbone.lora.{k}": b["lora"][k] for k in ("rank", "alpha", "target_modules")})
    ident.update({f"pooling.{k}": config["pooling"][k] for k in ("window_s", "lag_s", "n_windows", "combine")})
    ident.update({"head.kind": h["kind"], **({"head.rank": h["rank"]} if h["kind"] == "low_rank" else {})})
    return {**ident, "n_targets": dict(sorted(n_targets.items()))}


def checkpoint_record(config: dict, n_targets: dict[str, int]) -> dict:
    """What ``BrainTuner.on_save_checkpoint`` stores under ``checkpoint["braintune"]``: the braintune version and the
    model's identity (``model_identity``)."""
    return {"version": __version__, "identity": model_identity(config, n_targets)}


def identity_mismatches(recorded: dict, expected: dict, targets: str = "equal", ignore: tuple[str, ...] = ()) -> list[str]:
    """Each key where a checkpoint's ``recorded`` identity differs from the ``expected`` one of the model being built,
    as ``key: <checkpoint value> in the checkpoint, <value> here``. ``targets``: ``equal`` (same participants and target
    counts), ``shared`` (participants in both have the same counts; others may come or go) or ``ignore``."""
    keys = [k for k in sorted(set(recorded) | set(expected)) if k != "n_targets" and k not in ignore]
    out = [f"{k}: {recorded.get(k)!r} in the checkpoint, {expected.get(k)!r} here" for k in keys if recorded.get(k) != expected.get(k)]
    have, want = recorded.get("n_targets", {}), expected.get("n_targets", {})
    if targets == "equal" and have != want:
        out.append(f"n_targets (participant -> targets): {have} in the checkpoint, {want} here")
    elif targets == "shared":
        out += [f"n_targets[{p}]: {have[p]} in the checkpoint, {want[p]} here" for p in sorted(set(have) & set(want))
                if have[p] != want[p]]
    return out


def recorded_identity(path: str | Path, ckpt: dict) -> dict:
    """The identity a checkpoint records (``on_save_checkpoint``); for one written without it, the identity of the
    config it carries. A record that contradicts that config (an edited checkpoint) is refused."""
    own = model_identity(ckpt["config"], ckpt["n_targets"])
    version = ckpt["braintune"].get("version")
    if version is not None and version != __version__:
        log.warning("checkpoint '%s' was written by braintune %s; this is %s", path, version, __version__)
    recorded = ckpt["braintune"].get("identity")
    if not isinstance(recorded, dict):
        return own
    wrong = identity_mismatches(recorded, own)
    if wrong:
        raise ConfigError(f"checkpoint '{path}' contradicts itself: its weights were recorded as another model than its "
                          f"config describes ({'; '.join(wrong[:4])}); it was edited or damaged, use another checkpoint")
    return recorded


def check_layers(backbone: nn.Module, key: str, layers: list[int] | None, entry: str) -> None:
    """Refuse hidden-state indices ``layers`` (config key ``key``, e.g. ``alignment.layers``) that model ``entry``'s
    backbone does not have; the commands call it right after building the model, before any feature is extracted."""
    n = backbone.num_layers
    bad = [l for l in layers or [] if not -n <= l < n]
    if bad:
        raise ConfigError(f"'{key}' has {bad} outside the {n} hidden states of model '{entry}' (0..{n - 1}, or -1 for the "
                          "last); choose layers inside that range")


def check_pooling(backbone: nn.Module, window_s: float) -> None:
    """Refuse a pooling window shorter than one hidden-state frame of ``backbone``: every TR's windows would hold no
    frame and the heads would train on zeros."""
    if window_s * backbone.frame_rate < 1:
        raise ConfigError(f"'pooling.window_s' is {window_s} s, shorter than one frame of this backbone ({backbone.frame_rate:g} "
                          f"frames per second); every TR would pool nothing. Use at least {1 / backbone.frame_rate:.3g} s")


def _load_weights(module: nn.Module, state: dict, path: str | Path, what: str) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as err:  # missing / unexpected keys, wrong shapes
        first = " ".join(str(err).split())[:240]
        raise ConfigError(f"checkpoint '{path}': its {what} weights do not fit the model its config describes ({first}); "
                          "it was written by another braintune version or edited") from err


def model_name(entry: str) -> str:
    """A readable summary key: ``base``, ``RUN/stem`` for ``RUN/checkpoints/stem.ckpt``, a directory's name."""
    if ":" in entry and entry.split(":", 1)[0] in CONTROLS:
        control, inner = entry.split(":", 1)
        return f"{control}:{model_name(inner)}"
    path = Path(entry)
    if entry == "base" or not path.exists():
        return entry
    if path.is_file():
        resolved = path.resolve()
        return (resolved.parent.parent.name + "/" if resolved.parent.name == "checkpoints" else "") + resolved.stem
    return path.resolve().name


def unique_names(entries: list[str]) -> list[str]:
    """``model_name`` of each entry, with ``#i`` added where two entries would share a key."""
    names = [model_name(e) for e in entries]
    return [f"{n}#{i}" if names[:i].count(n) else n for i, n in enumerate(names)]


def _base(cfg: Config) -> tuple[nn.Module, Config, str, None]:
    torch.manual_seed(cfg.trainer.seed)  # a backbone built from its config alone is randomly initialised: reproducible
    backbone = build_backbone(cfg.backbone, cfg.data)
    ident = {"backbone": to_dict(cfg)["backbone"], "seed": cfg.trainer.seed}
    if cfg.backbone.name and Path(cfg.backbone.name).exists():
        ident["files"] = file_identity(cfg.backbone.name)
    return backbone, cfg, digest(ident), None


def _checkpoint(path: str, cfg: Config) -> tuple[nn.Module, Config, str, ParticipantHeads]:
    ckpt = load_checkpoint(path)
    try:
        own = from_dict(ckpt["config"])
    except ConfigError as err:
        raise ConfigError(f"checkpoint '{path}' carries a config this braintune cannot use: {err}") from err
    recorded_identity(path, ckpt)
    backbone = build_backbone(own.backbone, own.data)
    state = ckpt["state_dict"]
    _load_weights(backbone, {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}, path, "backbone")
    p = own.pooling
    in_features = TRPooling(p.window_s, p.lag_s, p.n_windows, p.combine).out_features(backbone.hidden_size)
    heads = ParticipantHeads(in_features, ckpt["n_targets"], own.head.kind, own.head.rank)
    _load_weights(heads, {k[len("heads."):]: v for k, v in state.items() if k.startswith("heads.")}, path, "head")
    return backbone, own, digest({"checkpoint": file_identity(path)[1:]}), heads.eval()


def _export(directory: str, cfg: Config) -> tuple[nn.Module, Config, str, None]:
    """A ``braintune export`` directory, as its ``braintune_config.yaml`` describes it (else as ``cfg``), with the
    backbone read from the directory itself wherever it lies now: waveform, text and Whisper exports are HF model
    directories (``backbone.name=DIR``); an audio-video export (``arch: av``) holds ``audio/`` and ``video/`` (HF
    directories) and ``fusion.safetensors`` (projections and fusion layers), loaded into the fusion here."""
    from safetensors.torch import load_file
    from transformers.utils import logging as hf_logging

    root = Path(directory)
    own_path = root / EXPORT_CONFIG
    own = load_config(own_path) if own_path.is_file() else cfg
    b = replace(own.backbone, name=str(directory), config={}, finetune="frozen")
    if b.arch == "av":
        b = replace(b, name=None, audio=replace(b.audio, name=str(root / "audio"), config={}),
                    video=replace(b.video, name=str(root / "video"), config={}))
    own = replace(own, backbone=b)
    verbosity = hf_logging.get_verbosity()
    if b.arch == "whisper":  # a Whisper export holds the encoder only: the decoder's "missing weights" are expected
        hf_logging.set_verbosity_error()
    try:
        backbone = build_backbone(own.backbone, own.data)
    finally:
        hf_logging.set_verbosity(verbosity)
    if b.arch == "av":
        fusion = root / "fusion.safetensors"
        if not fusion.is_file():
            raise ConfigError(f"'{root}' is an audio-video export without 'fusion.safetensors'; re-export the checkpoint "
                              "with `braintune export CHECKPOINT DIR`")
        missing, unexpected = backbone.load_state_dict(load_file(str(fusion)), strict=False)
        wrong = unexpected + [k for k in missing if not k.startswith(("audio.", "video."))]
        if wrong:
            raise ConfigError(f"'{fusion}' does not fit the fusion that '{own_path}' describes ({len(wrong)} weights, "
                              f"e.g. {wrong[:3]}); re-export the checkpoint")
    return backbone, own, digest({"export": file_identity(directory)[2:]}), None


def load_model(entry: str, cfg: Config, device: str | None = None) -> Model:
    """The model an entry names (see the module docstring), on ``device`` (default: ``resolve_device``), frozen."""
    device = device or resolve_device(cfg.trainer.accelerator)
    head, _, rest = entry.partition(":")
    if rest and head in CONTROLS:
        getattr(CONTROLS[head], "check", lambda inner: None)(rest)  # a control may refuse an entry before it is loaded
        return CONTROLS[head](load_model(rest, cfg, device), cfg)
    path = Path(entry)
    if entry == "base":
        backbone, own, key, heads = _base(cfg)
    elif path.is_file():
        backbone, own, key, heads = _checkpoint(entry, cfg)
    elif path.is_dir():
        backbone, own, key, heads = _export(entry, cfg)
    else:
        raise ConfigError(f"model '{entry}' is neither 'base', a checkpoint file, an exported model directory nor "
                          f"'<control>:<model>' (controls: {', '.join(sorted(CONTROLS)) or 'none'}); "
                          "for a hub checkpoint set backbone.name and use 'base'")
    backbone = backbone.to(device).eval().requires_grad_(False)
    layer = resolve_layer(backbone, own.backbone.layer)
    return Model(model_name(entry), entry, backbone, layer, f"{key}-c{CODE_VERSION}", device, own, heads)


def checkpoint_entry(cfg: Config) -> str:
    """The entry of the model a single-model command measures: ``checkpoint=`` if given, else ``base``."""
    return cfg.checkpoint or "base"

