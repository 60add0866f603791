"""``braintune export CHECKPOINT OUT_DIR [--push-to-hub ORG/NAME] [--private] [--include-heads] [--overwrite]``: a
braintune checkpoint -> a model directory that transformers (or braintune) loads, its model card, and optionally
the Hugging Face Hub.

Layout by backbone kind (LoRA merged into the weights in every case):

* waveform (wav2vec2, HuBERT, WavLM): ``config.json`` + ``model.safetensors`` (``AutoModel``) and
  ``preprocessor_config.json`` (sample rate, waveform normalisation);
* text: the same plus the tokenizer files (``AutoTokenizer``);
* whisper: the tuned encoder as ``WhisperModel`` weights (``encoder.*`` only; the decoder is not exported) and
  ``preprocessor_config.json`` (``WhisperFeatureExtractor``);
* av (no AutoModel class): ``audio/`` and ``video/`` (each an HF model directory) and ``fusion.safetensors`` +
  ``fusion.json`` (projections and fusion layers), which ``models.load_model(OUT_DIR)`` joins back.

Always: ``heads.safetensors`` + ``heads.json`` (participant -> n_targets, head kind, pooling, layer),
``braintune_config.yaml`` (the run's config, ``backbone.name`` at OUT_DIR), ``training_config.yaml`` (the run's
config as trained), ``README.md`` (the model card, from the run's
summary.json and logs) and ``images/`` (its brain-map picture). The directory is written under a temporary name next
to OUT_DIR and renamed at the end, so an interrupted export leaves no half directory; a non-empty OUT_DIR is
refused unless ``--overwrite``. The push uploads the directory (heads only with ``--include-heads``); without a token
or network it fails with one message (exit 2) and the local export stays complete.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..backbones.lora import merge_lora
from ..config import save_config
from ..errors import BackboneError, OutputError, UserError
from ..heads import ParticipantHeads
from ..models import EXPORT_CONFIG, Model, load_model
from ..report import read_metrics, read_summary
from .modelcard import CardFacts, render_card

KINDS = {"wav2vec2": "waveform", "hubert": "waveform", "wavlm": "waveform", "whisper": "whisper", "text": "text",
         "av": "av"}
HEAD_FILES = ["heads.safetensors", "heads.json"]
TRAINING_CONFIG = "training_config.yaml"
PICTURES = ("brain_maps/after/*_surface.png", "brain_maps/after/*_flatmap.png", "brain_maps/after/*_glass.png",
            "brain_maps/*_surface.png", "brain_maps/*_flatmap.png", "brain_maps/**/*.png", "alignment_by_layer.png")


class HubError(UserError):
    """The push to the Hugging Face Hub failed (no token, no network, no permission); the local export is complete."""


def _write_waveform(backbone, out: Path) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    merge_lora(backbone.model).save_pretrained(out)  # (B, S) waveform -> hidden states, adapters folded in
    # the braintune backbone normalises each waveform itself; HF users get the same through the processor
    Wav2Vec2FeatureExtractor(sampling_rate=backbone.sample_rate, do_normalize=backbone.normalize).save_pretrained(out)


def _write_whisper(backbone, out: Path) -> None:
    from transformers import WhisperFeatureExtractor

    encoder = merge_lora(backbone.model)  # WhisperEncoder: braintune never held the decoder
    config = encoder.config.__class__.from_dict(encoder.config.to_dict())
    config.architectures = ["WhisperModel"]
    config.save_pretrained(out)
    state = {f"encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})  # WhisperModel's key names
    WhisperFeatureExtractor(feature_size=config.num_mel_bins, sampling_rate=backbone.sample_rate).save_pretrained(out)


def _write_text(backbone, out: Path) -> None:
    merge_lora(backbone.model).save_pretrained(out)
    backbone.tokenizer.save_pretrained(out)


def _write_av(backbone, out: Path) -> None:
    _write_waveform(backbone.audio, out / "audio")
    merge_lora(backbone.video).save_pretrained(out / "video")
    fusion = {k: v.contiguous() for k, v in backbone.state_dict().items() if k.split(".")[0] in FUSION_PARTS}
    save_file(fusion, str(out / "fusion.safetensors"), metadata={"format": "pt"})
    meta = {"audio_layer": backbone.audio_layer, "video_layer": backbone.video_layer, "width": backbone.hidden_size,
            "layers": backbone.num_layers - 1, "frame_rate": backbone.frame_rate, "parts": list(FUSION_PARTS)}
    (out / "fusion.json").write_text(json.dumps(meta, indent=1))


FUSION_PARTS = ("proj_audio", "proj_video", "fusion")
WRITERS = {"waveform": _write_waveform, "whisper": _write_whisper, "text": _write_text, "av": _write_av}


def _write_heads(model: Model, out: Path, checkpoint: str) -> dict:
    heads, p, backbone = model.heads, model.config.pooling, model.backbone
    save_file({k: v.contiguous() for k, v in heads.state_dict().items()}, str(out / "heads.safetensors"))
    meta = {
        "n_targets": heads.n_targets,
        "head": {"kind": heads.kind, "in_features": heads.in_features, "rank": heads.rank},
        "pooling": {"window_s": p.window_s, "lag_s": p.lag_s, "n_windows": p.n_windows, "combine": p.combine},
        "layer": model.layer, "frame_rate": backbone.frame_rate, "sample_rate": getattr(backbone, "sample_rate", None),
        "normalize": getattr(backbone, "normalize", None), "source_checkpoint": checkpoint,
    }
    (out / "heads.json").write_text(json.dumps(meta, indent=1))
    return meta


def _exported_config(model: Model, kind: str, out_dir: Path):
    """The run's config with the backbone pointing at the export (av: its two encoder directories)."""
    b = replace(model.config.backbone, name=str(out_dir), config={})
    if kind == "av":
        b = replace(b, name=None, audio=replace(b.audio, name=str(out_dir / "audio"), config={}),
                    video=replace(b.video, name=str(out_dir / "video"), config={}))
    return replace(model.config, backbone=b)


def _picture(run_dir: Path, out: Path, summary: dict) -> tuple[str | None, str]:
    """Copy the run's brain map (else its alignment-by-layer plot) to ``out/images``; (path in the export, caption)."""
    for pattern in PICTURES:
        found = sorted(run_dir.glob(pattern))
        if found:
            (out / "images").mkdir(exist_ok=True)
            shutil.copy2(found[0], out / "images" / found[0].name)
            what = "test r per target, after tuning" if "brain_maps" in str(found[0]) else "mean test r per layer"
            return f"images/{found[0].name}", f"{found[0].name}: {what}"
    maps = summary.get("brain_maps")
    maps = (maps.get("after") or maps.get("before")) if isinstance(maps, dict) else maps
    return None, maps if isinstance(maps, str) else f"the run in '{run_dir}' wrote no brain map or alignment plot"


def _run_dir(checkpoint: Path) -> Path:
    """The run a checkpoint belongs to: ``RUN/checkpoints/x.ckpt`` -> RUN; else the checkpoint's folder."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


def _write_export(checkpoint: Path, out: Path, final: Path, card: dict) -> None:
    """Every file of the export of ``checkpoint`` into ``out`` (named ``final`` in the files that point at it)."""
    from ..config import Config

    model = load_model(str(checkpoint), Config(), device="cpu")
    kind = KINDS.get(model.config.backbone.arch)
    if kind is None:
        raise BackboneError(f"export supports backbone.arch {sorted(KINDS)}; checkpoint '{checkpoint}' holds "
                            f"'{model.config.backbone.arch}'")
    WRITERS[kind](model.backbone, out)
    heads = _write_heads(model, out, str(checkpoint))
    save_config(_exported_config(model, kind, final), out / EXPORT_CONFIG)
    save_config(model.config, out / TRAINING_CONFIG)  # as trained: the base model in backbone.name, to retrain
    run_dir = _run_dir(checkpoint)
    summary = read_summary(run_dir)
    picture, caption = _picture(run_dir, out, summary)
    layout = sorted(str(p.relative_to(out)) for p in out.iterdir()) + ["README.md"]
    facts = CardFacts(kind, model.config, summary, read_metrics(run_dir), heads, card["include_heads"], card["license"],
                      str(checkpoint), card["repo_id"], picture, caption, layout)
    (out / "README.md").write_text(render_card(facts), encoding="utf-8")


def export_pretrained(checkpoint: str | Path, out_dir: str | Path, overwrite: bool = False, include_heads: bool = False,
                      license: str = "other", repo_id: str | None = None) -> Path:
    """Write the export of ``checkpoint`` (see the module docstring) to ``out_dir`` through a temporary directory
    renamed at the end; a non-empty ``out_dir`` is refused unless ``overwrite``. ``include_heads``, ``license`` and
    ``repo_id`` go into the model card."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if out_dir.exists() and not overwrite and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputError(f"export directory '{out_dir}' exists and is not empty; choose another OUT_DIR or pass "
                          "--overwrite to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _write_export(checkpoint, tmp, out_dir.resolve(), {"include_heads": include_heads, "license": license,
                                                           "repo_id": repo_id})
        old = out_dir.parent / f".{out_dir.name}.old-{tmp.name.rsplit('-', 1)[-1]}"
        if out_dir.exists():
            out_dir.rename(old)  # replaced only once the new export is complete
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def push_to_hub(out_dir: str | Path, repo_id: str, private: bool = False, include_heads: bool = False) -> str:
    """Upload ``out_dir`` to the Hub model repository ``repo_id`` (created if absent); the heads only with
    ``include_heads``. Returns the repository's URL; raises ``HubError`` with what to do when it cannot."""
    import huggingface_hub

    where = f"the local export '{out_dir}' is complete; push it later with `hf upload {repo_id} {out_dir}`"
    token = huggingface_hub.get_token()
    if not token:
        raise HubError(f"cannot push to the Hugging Face Hub: no token (run `hf auth login` or set HF_TOKEN); {where}")
    api = huggingface_hub.HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=str(out_dir), repo_type="model",
                          ignore_patterns=None if include_heads else HEAD_FILES,
                          commit_message="braintune export" + (" (with participant heads)" if include_heads else ""))
    except Exception as err:  # any failure of the network, the token or the server ends here: the push did not happen
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise HubError(f"cannot push to https://huggingface.co/{repo_id} ({type(err).__name__}: {first}); {where}") from err
    return f"https://huggingface.co/{repo_id}"


def load_heads(out_dir: str | Path) -> ParticipantHeads:
    """The exported participant heads: pooled features (B, K, F) -> {participant: (B, K, n_p)}."""
    meta = json.loads((Path(out_dir) / "heads.json").read_text())
    h = meta["head"]
    heads = ParticipantHeads(h["in_features"], meta["n_targets"], h["kind"], h["rank"])
    heads.load_state_dict(load_file(str(Path(out_dir) / "heads.safetensors")))
    return heads.eval()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="braintune export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a braintune checkpoint, e.g. runs/x/checkpoints/best-epoch=9.ckpt")
    parser.add_argument("out_dir", help="directory to write the model, heads and model card to (must be empty or new)")
    parser.add_argument("--push-to-hub", metavar="ORG/NAME", help="also upload the export to this Hub model repository")
    parser.add_argument("--private", action="store_true", help="create the Hub repository private")
    parser.add_argument("--include-heads", action="store_true",
                        help="also upload the participant heads (fitted to participants' fMRI: opt-in)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    parser.add_argument("--license", default="other", help="licence id for the model card (default: other)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        out = export_pretrained(args.checkpoint, args.out_dir, args.overwrite, args.include_heads, args.license,
                                args.push_to_hub)
        print(f"wrote {out} (model card: {out / 'README.md'}; models entry or backbone.name={out} in braintune)")
        if args.push_to_hub:
            print(f"pushed to {push_to_hub(out, args.push_to_hub, args.private, args.include_heads)}"
                  + ("" if args.include_heads else " (without the participant heads)"))
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
