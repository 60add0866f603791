"""``braintune export CHECKPOINT OUT_DIR``: a braintune checkpoint -> a HuggingFace model directory (LoRA merged)
plus the participant heads.

Writes ``config.json`` + ``model.safetensors`` (``AutoModel.from_pretrained(OUT_DIR)``), ``preprocessor_config.json``
(whether waveforms are normalised, the sample rate), ``heads.safetensors`` + ``heads.json`` (participant ->
n_targets, head kind, pooling, layer) and ``braintune_config.yaml`` (the run's config with
``backbone.name: OUT_DIR``, so ``train.py -c OUT_DIR/braintune_config.yaml`` continues from the export, and the
``models`` entry ``OUT_DIR`` measures it).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..backbones.lora import merge_lora
from ..config import save_config
from ..errors import BackboneError, UserError
from ..heads import ParticipantHeads
from ..models import EXPORT_CONFIG, load_model


def export_pretrained(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Write the tuned backbone (``save_pretrained``, LoRA merged) and the heads of ``checkpoint`` to ``out_dir``."""
    from ..config import Config

    model = load_model(str(checkpoint), Config(), device="cpu")
    backbone, out_dir = model.backbone, Path(out_dir)
    if not hasattr(backbone, "normalize"):
        raise BackboneError(f"export supports waveform backbones (wav2vec2, hubert, wavlm); this checkpoint's is "
                            f"{type(backbone).__name__}")
    out_dir.mkdir(parents=True, exist_ok=True)
    merge_lora(backbone.model).save_pretrained(out_dir)  # (B, S) waveform -> hidden states, adapters folded in
    from transformers import Wav2Vec2FeatureExtractor

    # the braintune backbone normalises each waveform itself; HF users get the same through the processor
    Wav2Vec2FeatureExtractor(sampling_rate=backbone.sample_rate, do_normalize=backbone.normalize).save_pretrained(out_dir)
    heads, cfg = model.heads, model.config
    save_file({k: v.contiguous() for k, v in heads.state_dict().items()}, str(out_dir / "heads.safetensors"))
    p = cfg.pooling
    meta = {
        "n_targets": heads.n_targets,
        "head": {"kind": heads.kind, "in_features": heads.in_features, "rank": heads.rank},
        "pooling": {"window_s": p.window_s, "lag_s": p.lag_s, "n_windows": p.n_windows, "combine": p.combine},
        "layer": model.layer, "frame_rate": backbone.frame_rate, "sample_rate": backbone.sample_rate,
        "normalize": backbone.normalize, "source_checkpoint": str(checkpoint),
    }
    (out_dir / "heads.json").write_text(json.dumps(meta, indent=1))
    save_config(replace(cfg, backbone=replace(cfg.backbone, name=str(out_dir), config={})), out_dir / EXPORT_CONFIG)
    return out_dir


def load_heads(out_dir: str | Path) -> ParticipantHeads:
    """The exported participant heads: pooled features (B, K, F) -> {participant: (B, K, n_p)}."""
    meta = json.loads((Path(out_dir) / "heads.json").read_text())
    h = meta["head"]
    heads = ParticipantHeads(h["in_features"], meta["n_targets"], h["kind"], h["rank"])
    heads.load_state_dict(load_file(str(Path(out_dir) / "heads.safetensors")))
    return heads.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="braintune export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a braintune checkpoint, e.g. runs/x/checkpoints/best-epoch=9.ckpt")
    parser.add_argument("out_dir", help="directory to write the HuggingFace model and the heads to")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error")
    args = parser.parse_args(argv)
    try:
        out = export_pretrained(args.checkpoint, args.out_dir)
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} (AutoModel.from_pretrained('{out}'), or backbone.name={out} in a braintune config)")
    return 0
