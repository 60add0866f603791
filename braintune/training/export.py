"""A braintune checkpoint -> a HuggingFace model directory (LoRA merged) plus the participant heads.

``python -m braintune.training.export CHECKPOINT OUT_DIR`` writes
``config.json`` + ``model.safetensors`` (``AutoModel.from_pretrained(OUT_DIR)``), ``preprocessor_config.json``
(whether waveforms are normalised, the sample rate), ``heads.safetensors`` + ``heads.json`` (participant ->
n_targets, head kind, pooling, layer) and ``braintune_config.yaml`` (the run's config with
``backbone.name: OUT_DIR``, so ``train.py -c OUT_DIR/braintune_config.yaml`` continues from the export).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..backbones.hub import BackboneError
from ..backbones.lora import merge_lora
from ..config import ConfigError, from_dict, save_config
from ..heads import ParticipantHeads
from .module import BrainTuner


def load_module(checkpoint: str | Path) -> BrainTuner:
    """A ``BrainTuner`` rebuilt from the hyper-parameters stored in a braintune checkpoint, weights loaded."""
    if not Path(checkpoint).is_file():
        raise ConfigError(f"checkpoint '{checkpoint}' is not a file; braintune writes them to out_dir/checkpoints/")
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hp = ckpt.get("hyper_parameters")
    if not hp or "config" not in hp:
        raise ConfigError(f"'{checkpoint}' holds no braintune hyper-parameters; is it a braintune checkpoint?")
    module = BrainTuner(hp["config"], hp["n_targets"])
    module.load_state_dict(ckpt["state_dict"], strict=False)  # metric states are not saved
    return module.eval()


def export_pretrained(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Write the tuned backbone (``save_pretrained``, LoRA merged) and the heads of ``checkpoint`` to ``out_dir``."""
    module = load_module(checkpoint)
    backbone, out_dir = module.backbone, Path(out_dir)
    if not hasattr(backbone, "normalize"):
        raise BackboneError(f"export supports waveform backbones (wav2vec2, hubert, wavlm); this checkpoint's is "
                            f"{type(backbone).__name__}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = merge_lora(backbone.model)  # (B, S) waveform -> hidden states, adapters folded into the weights
    model.save_pretrained(out_dir)
    from transformers import Wav2Vec2FeatureExtractor

    # the braintune backbone normalises each waveform itself; HF users get the same through the processor
    Wav2Vec2FeatureExtractor(sampling_rate=backbone.sample_rate, do_normalize=backbone.normalize).save_pretrained(out_dir)

    heads = module.heads
    save_file({k: v.contiguous() for k, v in heads.state_dict().items()}, str(out_dir / "heads.safetensors"))
    cfg = from_dict(module.hparams["config"])
    meta = {
        "n_targets": dict(module.hparams["n_targets"]),
        "head": {"kind": heads.kind, "in_features": heads.in_features, "rank": heads.rank},
        "pooling": {"window_s": module.pooling.window_s, "lag_s": module.pooling.lag_s,
                    "n_windows": module.pooling.n_windows, "combine": module.pooling.combine},
        "layer": module.layer, "frame_rate": backbone.frame_rate, "sample_rate": backbone.sample_rate,
        "normalize": backbone.normalize, "source_checkpoint": str(checkpoint),
    }
    (out_dir / "heads.json").write_text(json.dumps(meta, indent=1))
    cfg.backbone.name, cfg.backbone.config = str(out_dir), {}
    save_config(cfg, out_dir / "braintune_config.yaml")
    return out_dir


def load_heads(out_dir: str | Path) -> ParticipantHeads:
    """The exported participant heads: pooled features (B, K, F) -> {participant: (B, K, n_p)}."""
    meta = json.loads((Path(out_dir) / "heads.json").read_text())
    h = meta["head"]
    heads = ParticipantHeads(h["in_features"], meta["n_targets"], h["kind"], h["rank"])
    heads.load_state_dict(load_file(str(Path(out_dir) / "heads.safetensors")))
    return heads.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m braintune.training.export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a braintune checkpoint, e.g. runs/x/checkpoints/best-epoch=9.ckpt")
    parser.add_argument("out_dir", help="directory to write the HuggingFace model and the heads to")
    args = parser.parse_args(argv)
    try:
        out = export_pretrained(args.checkpoint, args.out_dir)
    except (ConfigError, BackboneError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} (AutoModel.from_pretrained('{out}'), or backbone.name={out} in a braintune config)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
