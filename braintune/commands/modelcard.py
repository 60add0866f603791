"""A tuned model's run (config, summary.json, logged metrics) -> the model card (README.md) of its export.

Written for a reader who has never used braintune: what brain-tuning did to which base model, on whose data, how
to load the files, how well the model predicts brain responses before and after tuning, the timing and look-ahead
settings, downstream results, the licence fields, the command that reproduces it, and what the participant heads
are. Metadata (licence, base model, tags) go in the YAML header through ``huggingface_hub.ModelCardData``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config

DATASETS = {
    "lebel": "LeBel et al. 2023, *A natural language fMRI dataset for voxelwise encoding models* (OpenNeuro ds003020): "
             "people listening to spoken stories",
    "algonauts": "the Courtois NeuroMod *Friends* fMRI data as released for the Algonauts 2025 challenge: people "
                 "watching the TV series, responses averaged in the 1,000 Schaefer parcels",
    "bids": "a BIDS fMRI dataset (volumes through a mask or atlas, or cortical surfaces)",
    "manifest": "fMRI responses listed in a manifest file",
    "synthetic": "braintune's synthetic stories: tone bursts with a planted response (a software demo, not brain data)",
    "synthetic_friends": "braintune's synthetic Friends-layout movies with a planted response (a software demo, not brain "
                         "data)",
}
KIND_TEXT = {
    "waveform": "a speech model that reads 16 kHz waveforms",
    "whisper": "the encoder of a Whisper speech model (log-mel input)",
    "text": "a language model that reads words",
    "av": "an audio-video model: a speech encoder and a video encoder joined by a small learned fusion",
}


@dataclass
class CardFacts:
    """Everything the card says, gathered by the export command."""

    kind: str  # waveform | whisper | text | av
    config: Config  # the run's resolved config
    summary: dict  # the run's summary.json ({} when absent)
    metrics: dict  # logged metric -> (steps, values) (report.read_metrics)
    heads: dict  # heads.json
    include_heads: bool
    license: str
    checkpoint: str
    repo_id: str | None = None
    picture: str | None = None  # path of the brain-map PNG inside the export
    picture_caption: str = ""
    layout: list[str] = field(default_factory=list)  # the export's files, relative


def base_model(cfg: Config) -> str | None:
    """The pretrained model the run started from (a hub name or path), or None when built from a config."""
    b = cfg.backbone
    if b.arch == "av":
        names = [n for n in (b.audio.name, b.video.name) if n]
        return " + ".join(names) or None
    return b.name


def _metadata(f: CardFacts) -> str:
    from huggingface_hub import ModelCardData

    base = base_model(f.config)
    hub_base = base if base and "/" in base and not Path(base).exists() and " + " not in base else None
    data = ModelCardData(license=f.license, library_name="transformers" if f.kind != "av" else None,
                         base_model=hub_base, tags=["braintune", "brain-tuning", "fmri", "neuroscience", f.kind])
    return data.to_yaml()


def _model_section(f: CardFacts) -> str:
    cfg, base = f.config, base_model(f.config)
    b = cfg.backbone
    started = f"`{base}`" if base else f"a randomly initialised `{b.arch}` built from its config (a demo or test model)"
    tuned = {"lora": f"LoRA (rank {b.lora.rank}, alpha {b.lora.alpha}), merged into the weights", "full": "every weight",
             "frozen": "nothing (heads only)"}.get(b.finetune, b.finetune)
    lines = [f"This is {KIND_TEXT[f.kind]}, **brain-tuned**: fine-tuned so that its hidden states, pooled per fMRI "
             "volume, predict the brain responses (BOLD fMRI) that people had to the same stimuli. Brain-tuning aims "
             "at representations closer to the brain's; the alignment table below measures whether that happened.",
             "", f"- Started from: {started}", f"- Fine-tuned: {tuned}",
             f"- Hidden state read by the brain model: {f.heads.get('layer', b.layer)} (0 = embeddings)",
             f"- Files: {', '.join(f'`{p}`' for p in f.layout)}"]
    return "## Model\n\n" + "\n".join(lines)


def _usage_section(f: CardFacts) -> str:
    repo, layer = f.repo_id or "DIR", f.heads.get("layer", -1)
    code = {
        "waveform": f'from transformers import AutoFeatureExtractor, AutoModel\nmodel = AutoModel.from_pretrained("{repo}")\n'
                    f'fe = AutoFeatureExtractor.from_pretrained("{repo}")  # 16 kHz, normalisation as in tuning\n'
                    f'states = model(**fe(wave, sampling_rate=16000, return_tensors="pt"), output_hidden_states=True)'
                    f".hidden_states[{layer}]",
        "whisper": f'from transformers import WhisperFeatureExtractor, WhisperModel\n'
                   f'encoder = WhisperModel.from_pretrained("{repo}").encoder  # the decoder is not part of this export\n'
                   f'mel = WhisperFeatureExtractor.from_pretrained("{repo}")(wave, sampling_rate=16000, return_tensors="pt")\n'
                   f"states = encoder(mel.input_features, output_hidden_states=True).hidden_states[{layer}]",
        "text": f'from transformers import AutoModel, AutoTokenizer\nmodel = AutoModel.from_pretrained("{repo}")\n'
                f'tokens = AutoTokenizer.from_pretrained("{repo}")("the words of a story", return_tensors="pt")\n'
                f"states = model(**tokens, output_hidden_states=True).hidden_states[{layer}]",
        "av": f"# audio/ and video/ are transformers models (AutoModel); fusion.safetensors joins them (see below).\n"
              f"# braintune loads the whole model: alignment.models=[{repo}] or checkpoint-free evaluation of DIR\n"
              f"from braintune.config import load_config\nfrom braintune.models import load_model\n"
              f'model = load_model("{repo}", load_config("{repo}/braintune_config.yaml"))',
    }[f.kind]
    text = ["## How to use", "", "```python", code, "```"]
    if f.kind == "whisper":
        text += ["", "Only the encoder was tuned and exported: `WhisperModel.from_pretrained` initialises the decoder "
                 "randomly (transformers lists its weights as missing). Use the encoder's hidden states."]
    if f.kind == "av":
        text += ["", FUSION_TEXT.format(**f.config.backbone.fusion.__dict__, **_av_layers(f.config))]
    if f.repo_id and f.kind != "av":
        text += ["", f"In braintune: `backbone.name={f.repo_id}` (or a local download of it)."]
    elif f.repo_id:
        text += ["", f"In braintune: `huggingface-cli download {f.repo_id} --local-dir DIR`, then the model entry `DIR`."]
    return "\n".join(text)


FUSION_TEXT = ("Layout: `audio/` (speech encoder, hidden state {audio_layer} used), `video/` (VideoMAE, hidden state "
               "{video_layer}; frames RGB, ImageNet-normalised, in clips of its `num_frames`, patch tokens averaged per "
               "tubelet step), `fusion.safetensors`: `proj_audio` and `proj_video` (linear, to width {width}), video steps "
               "held over the audio frames they cover, summed (hidden state 0), then {layers} `torch.nn."
               "TransformerEncoderLayer`(width {width}, {heads} heads, feed-forward 4 x width, pre-norm, batch first) "
               "(hidden states 1..{layers}).")


def _av_layers(cfg: Config) -> dict:
    return {"audio_layer": cfg.backbone.audio.layer, "video_layer": cfg.backbone.video.layer}


def _data_section(f: CardFacts) -> str:
    cfg, s = f.config, f.summary
    d = cfg.data
    tuned = s.get("participants") or d.participants or sorted(f.heads.get("n_targets", {}))
    held = s.get("heldout_participants") or d.heldout_participants
    runs = s.get("runs") or {}
    lines = [f"- Dataset: {DATASETS.get(d.format, d.format)} (`data.format={d.format}`, root `{Path(d.root).name}`)",
             f"- Tuned on participants: {', '.join(tuned) or 'not recorded'}",
             f"- Held out (never tuned on; their alignment measures generalisation to new brains): {', '.join(held) or 'none'}"]
    for split in ("train", "val", "test"):
        if runs.get(split):
            lines.append(f"- {split} runs: {', '.join(runs[split])}")
    return "## Training data\n\n" + "\n".join(lines)


def _recipe_section(f: CardFacts) -> str:
    c = f.config
    rows = [("loss", c.loss.name), ("heads", f"{c.head.kind} (linear maps from pooled features to each participant's "
                                             "targets)"),
            ("optimizer", f"AdamW, backbone lr {c.optim.backbone_lr:g}, head lr {c.optim.head_lr:g}, warm-up "
                          f"{c.optim.warmup_fraction:g} of the steps, {c.optim.schedule} schedule"),
            ("epochs", f"{f.summary.get('epochs', c.trainer.max_epochs)} (max {c.trainer.max_epochs}), "
                       f"{f.summary.get('optimizer_steps', '?')} optimizer steps"),
            ("segments", f"{c.data.segment_trs} TRs per example, {c.data.context_s:g} s of context before"),
            ("precision", c.trainer.precision), ("seed", c.trainer.seed)]
    return "## Recipe\n\n| setting | value |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _timing_section(f: CardFacts) -> str:
    p, s = f.config.pooling, f.summary
    lines = [f"- The features of the fMRI volume at time t (seconds, the middle of the volume) pool the frames in "
             f"[t - {p.lag_s:g} - (k+1)·{p.window_s:g}, t - {p.lag_s:g} - k·{p.window_s:g}] s, k < {p.n_windows} "
             f"({p.combine}): stimulus up to {p.lag_s:g} s before t, plus whatever look-ahead the attention allows (below)."]
    band = getattr(f.config, "band", None)
    if band is not None:
        lines.append(f"- Block-causal attention: look-ahead {band.lookahead_s:g} s past each TR's window, past "
                     f"{band.past_s:g} s" + ("" if band.training else " (evaluation only; training saw whole segments)"))
    lookahead = s.get("lookahead") or (s.get("settings") or {}).get("lookahead")
    if lookahead is not None:
        lines.append(f"- Look-ahead bound recorded by the run: `{json.dumps(lookahead)}`")
    settings = s.get("settings") or ((s.get("alignment") or {}).get("after") or {}).get("settings")
    if settings:
        lines.append(f"- Alignment settings recorded by the run: `{json.dumps(settings, default=str)}`")
    else:
        lines.append("- The run's summary records no further timing settings.")
    return "## Timing and look-ahead\n\n" + "\n".join(lines)


def _r(entry: dict | None, key: str = "mean_r") -> str:
    value = (entry or {}).get(key)
    if not isinstance(value, (int, float)):
        return "–"
    ci = (entry or {}).get("ci")
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 else "")


def _alignment_section(f: CardFacts) -> str:
    a = f.summary.get("alignment") or {}
    head = ("## Brain alignment before and after tuning\n\nPearson r between the measured fMRI response and the "
            "prediction of a ridge encoding model (per target: voxel, vertex or parcel) fitted on this model's hidden "
            "states, on held-out test runs; the mean over targets per participant (95% CI where measured).\n\n")
    if "before" not in a or "after" not in a:
        return head + "Not measured in this run (`alignment.after_training` was false)."
    rows = ["| participant | group | before | after |", "| --- | --- | --- | --- |"]
    groups = [("tuned", a)] + ([("held out", a["heldout_participant"])] if "heldout_participant" in a else [])
    for label, g in groups:
        after = (g.get("after") or {}).get("participants") or {}
        for p, before in ((g.get("before") or {}).get("participants") or {}).items():
            rows.append(f"| {p} | {label} | {_r(before)} | {_r(after.get(p))} |")
        rows.append(f"| mean | {label} | {_r(g.get('before'))} | {_r(g.get('after'))} |")
    layer = (a.get("after") or {}).get("layer")
    return head + "\n".join(rows) + f"\n\nHidden state {layer}."


def _downstream_section(f: CardFacts) -> str:
    rows = []
    for task, result in (f.summary.get("tasks") or {}).items():
        rows += [f"| {task} | {k} | {_r(result, k)} |" for k in ("accuracy", "f1", "r", "chance") if k in result]
    for key, (steps, values) in sorted(f.metrics.items()):
        if key.startswith("downstream/"):
            task, _, metric = key[len("downstream/"):].rpartition("/")
            rows.append(f"| {task} | {metric} (logged at step {steps[-1]:g}) | {values[-1]:.3f} |")
    if not rows:
        return "## Downstream results\n\nNone measured in this run."
    return "## Downstream results\n\n| task | metric | value |\n| --- | --- | --- |\n" + "\n".join(rows)


def _picture_section(f: CardFacts) -> str:
    if f.picture is None:
        return f"## Brain map\n\nNo brain-map picture: {f.picture_caption}"
    return f"## Brain map\n\n![{f.picture_caption}]({f.picture})\n\n{f.picture_caption}"


def _heads_section(f: CardFacts) -> str:
    n, width = f.heads.get("n_targets", {}), f.heads.get("head", {}).get("in_features")
    what = (f"The participant heads (`heads.safetensors`, `heads.json`) map the pooled features ({width} "
            f"values per fMRI volume) to each participant's brain targets ({', '.join(f'{p}: {k}' for p, k in n.items())}). "
            "They were fitted to those participants' fMRI recordings, so they are derived from personal data.")
    status = ("They are included in this repository." if f.include_heads else
              "They are **not** included: the exporter kept them locally (publishing them is opt-in, `--include-heads`).")
    return f"## Participant heads\n\n{what} {status}"


def _reproduce_section(f: CardFacts) -> str:
    command = f.summary.get("command")
    command = " ".join(map(str, command)) if isinstance(command, (list, tuple)) else command
    lines = ["```bash", command or "python train.py -c training_config.yaml  # the run's resolved config, in this repository",
             f"braintune export {f.checkpoint} OUT_DIR" + (f" --push-to-hub {f.repo_id}" if f.repo_id else ""), "```"]
    return "## Reproduce\n\n" + "\n".join(lines)


def _licence_section(f: CardFacts) -> str:
    return (f"## Licence\n\n`{f.license}` (set with `braintune export --license`). The weights derive from the base "
            "model, whose licence applies, and from fMRI recordings, whose data-use terms apply (e.g. ds003020 is CC0; "
            "CNeuroMod data require its data-use agreement).")


def render_card(f: CardFacts) -> str:
    """The model card, markdown with a YAML metadata header."""
    title = f"# {f.repo_id or 'A brain-tuned model'} ({f.config.backbone.arch}, brain-tuned with braintune)"
    parts = [title, _model_section(f), _usage_section(f), _data_section(f), _recipe_section(f), _timing_section(f),
             _alignment_section(f), _downstream_section(f), _picture_section(f), _heads_section(f),
             _reproduce_section(f), _licence_section(f)]
    return f"---\n{_metadata(f)}\n---\n\n" + "\n\n".join(parts) + "\n"
