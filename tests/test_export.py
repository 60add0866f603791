"""Export (LoRA merged, plain transformers parity; round trip of every backbone kind through ``load_model(DIR)``), the
model card rendered from a run, never-clobbering writes, the Hub push (``HfApi`` monkeypatched: no network) and its
offline failure, and fine-tuning from a checkpoint with new participants."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from braintune.backbones import build_backbone
from braintune.commands.export import export_pretrained, load_heads
from braintune.commands.train import train
from braintune.config import load_config, to_dict
from braintune.models import load_model
from braintune.training.module import BrainTuner

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "backbone.name=null", "backbone.arch=wav2vec2", "backbone.config.hidden_size=16", "backbone.config.num_hidden_layers=2",
    "backbone.config.num_attention_heads=2", "backbone.config.intermediate_size=32",
    "backbone.config.conv_dim=[16,16,16,16,16,16,16]", "backbone.config.num_conv_pos_embeddings=8",
    "backbone.config.num_conv_pos_embedding_groups=2", "pooling.window_s=2.0", "pooling.n_windows=2",
]


def _checkpoint(tmp_path, finetune: str, overrides=TINY, config=None, filename="tuned.ckpt"):
    """A BrainTuner with non-trivial LoRA / backbone weights, saved as a braintune checkpoint."""
    cfg = load_config(config, list(overrides) + [f"backbone.finetune={finetune}"])
    torch.manual_seed(0)
    module = BrainTuner(to_dict(cfg), {"UTS01": 5, "UTS02": 7})
    with torch.no_grad():  # LoRA B starts at zero: perturb it so that merging has something to merge
        for name, p in module.named_parameters():
            if "lora_B" in name or finetune == "full":
                p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return module.eval(), path


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_export_matches_plain_transformers(tmp_path, finetune):
    module, ckpt = _checkpoint(tmp_path, finetune)
    out = export_pretrained(ckpt, tmp_path / "export")
    audio = torch.randn(2, 16000)
    with torch.no_grad():
        ours = module.backbone(audio, [-1])[:, 0]  # (B, T, D)
        normed = (audio - audio.mean(-1, keepdim=True)) / torch.sqrt(audio.var(-1, keepdim=True) + 1e-7)
        hf = AutoModel.from_pretrained(out).eval()(input_values=normed).last_hidden_state
        base = build_backbone(load_config(None, TINY + ["backbone.finetune=frozen"]).backbone).eval()
        untuned = base(audio, [-1])[:, 0]
    torch.testing.assert_close(hf, ours, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(untuned, ours, atol=1e-3)  # the parity is not that of an untuned model
    # usable as backbone.name=OUT_DIR in a braintune config
    cfg = load_config(out / "braintune_config.yaml", ["backbone.finetune=frozen"])
    with torch.no_grad():
        again = build_backbone(cfg.backbone).eval()(audio, [-1])[:, 0]
    torch.testing.assert_close(again, ours, atol=1e-5, rtol=1e-4)
    meta = json.loads((out / "heads.json").read_text())
    assert meta["n_targets"] == {"UTS01": 5, "UTS02": 7} and meta["pooling"]["n_windows"] == 2
    heads = load_heads(out)
    x = torch.randn(1, 3, heads.in_features)
    with torch.no_grad():
        torch.testing.assert_close(heads(x)["UTS02"], module.heads(x)["UTS02"])
    assert load_model(str(ckpt), load_config(None, TINY)).heads.participants == ["UTS01", "UTS02"]


def _train_cfg(tmp_path, name, extra):
    data = ["data.format=synthetic", f"data.root={tmp_path / 'data'}", "data.synthetic.stories=3",
            "data.synthetic.story_seconds=40", "data.synthetic.targets=[6,6,6,6]", "data.segment_trs=8",
            "data.context_s=1.0", "data.batch_size=4", "backbone.finetune=full", "backbone.freeze_feature_encoder=false",
            "alignment.after_training=false", "trainer.max_epochs=1", "trainer.accelerator=cpu",
            "trainer.progress_bar=false", "logger.kind=csv", "optim.head_lr=0.05", f"out_dir={tmp_path / name}"]
    return load_config(None, TINY + data + extra)


def test_init_from_adds_a_new_participant_head_only(tmp_path):
    first = train(_train_cfg(tmp_path, "first", ["data.participants=[UTS01,UTS02,UTS03]", "data.heldout_participants=[UTS04]"]))
    ckpt = first["checkpoint"]
    second = train(_train_cfg(tmp_path, "second", [
        "data.participants=[UTS01,UTS02,UTS03,UTS04]", f"init_from={ckpt}", "optim.train_only=new_heads"]))
    assert second["new_participants"] == ["UTS04"]
    before = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    after = torch.load(second["checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
    for key, value in before.items():  # backbone and known heads: exactly the checkpoint's
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)
    assert after["heads.maps.UTS04.weight"].shape == (6, before["heads.maps.UTS01.weight"].shape[1])
    assert "heads.maps.UTS04.weight" not in before
    assert second["optimizer_steps"] > 0


def test_export_command_line(tmp_path, capsys):
    from braintune.commands.export import main

    _, ckpt = _checkpoint(tmp_path, "lora")
    assert main([str(ckpt), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "config.json").is_file() and (tmp_path / "out" / "preprocessor_config.json").is_file()
    assert main([str(tmp_path / "missing.ckpt"), str(tmp_path / "x")]) == 2
    assert "missing.ckpt" in capsys.readouterr().err


# --- every backbone kind round-trips through its export (models.load_model(DIR), i.e. the models entry DIR) ---

TEXT = ["backbone.arch=text", "backbone.name=null", "backbone.config={model_type: gpt2, n_embd: 16, n_layer: 1, n_head: 2, "
        "n_positions: 64}", "backbone.text_vocab=[low,deep,high,bright]", "pooling.window_s=2.0", "pooling.n_windows=1"]
WHISPER = ["backbone.arch=whisper", "backbone.name=null", "backbone.config={d_model: 16, encoder_layers: 1, decoder_layers: 1, "
           "encoder_attention_heads: 2, decoder_attention_heads: 2, encoder_ffn_dim: 32, decoder_ffn_dim: 32, vocab_size: 64, "
           "max_target_positions: 16, pad_token_id: 0, bos_token_id: 1, eos_token_id: 2, decoder_start_token_id: 1}",
           "backbone.freeze_feature_encoder=false", "pooling.window_s=2.0", "pooling.n_windows=1"]
AV_CONFIG = ROOT / "configs" / "demo_friends_av.yaml"


def _inputs(kind: str) -> dict:
    from braintune.data.modalities import AUDIO, VIDEO, WORDS

    torch.manual_seed(1)
    if kind == "text":
        return {WORDS: [[(0.1, "low"), (0.9, "bright"), (1.5, "deep")]], "span_s": torch.tensor([2.0]), "start_s": torch.zeros(1)}
    inputs = {AUDIO: torch.randn(1, 16000), "start_s": torch.zeros(1), "span_s": torch.tensor([1.0])}
    if kind == "av":
        inputs.update({VIDEO: torch.randint(0, 255, (1, 8, 32, 32, 3), dtype=torch.uint8), "video_fps": 8.0})
    return inputs


@pytest.mark.parametrize(("kind", "overrides", "config"), [("text", TEXT, None), ("whisper", WHISPER, None),
                                                           ("av", [], AV_CONFIG)])
def test_every_backbone_kind_round_trips(tmp_path, kind, overrides, config):
    finetune = "full" if kind == "av" else "lora"
    module, ckpt = _checkpoint(tmp_path, finetune, overrides + (["backbone.lora.target_modules=[c_attn]"] if kind == "text"
                                                                else []), config)
    out = export_pretrained(ckpt, tmp_path / "export")
    inputs = _inputs(kind)
    loaded = load_model(str(out), load_config(None, []))  # config from the export's braintune_config.yaml
    with torch.no_grad():
        ours, again = module.backbone(inputs), loaded.backbone(inputs)  # (B, L, T, D)
    torch.testing.assert_close(again, ours, atol=1e-5, rtol=1e-4)
    assert loaded.config.backbone.arch == module.hparams["config"]["backbone"]["arch"]
    if kind == "av":  # the documented layout: two HF directories and the fusion weights
        assert {"audio", "video", "fusion.safetensors", "fusion.json"} <= {p.name for p in out.iterdir()}
        assert AutoModel.from_pretrained(out / "video").config.model_type == "videomae"
        moved = out.rename(tmp_path / "moved")  # the directory, not the path written in its config, is what loads
        with torch.no_grad():
            torch.testing.assert_close(load_model(str(moved), load_config(None, [])).backbone(inputs), ours, atol=1e-5, rtol=1e-4)
    if kind == "whisper":  # plain transformers: WhisperModel's encoder is the tuned one, on its exported features
        from transformers import WhisperFeatureExtractor, WhisperModel

        mel = WhisperFeatureExtractor.from_pretrained(out)(inputs["audio"][0].numpy(), sampling_rate=16000,
                                                           return_tensors="pt").input_features
        with torch.no_grad():
            torch.testing.assert_close(WhisperModel.from_pretrained(out).encoder.eval()(mel).last_hidden_state,
                                       module.backbone.model(mel).last_hidden_state, atol=1e-5, rtol=1e-4)


# --- model card, never-clobbering writes, the Hub push (monkeypatched HfApi) and its offline failure ---

SUMMARY = {
    "participants": ["UTS01", "UTS02"], "heldout_participants": ["UTS04"], "epochs": 3, "optimizer_steps": 42,
    "runs": {"train": ["story_a"], "val": ["story_b"], "test": ["wheretheressmoke"]},
    "lookahead": {"bound_s": 0.25},
    "alignment": {"before": {"mean_r": 0.1111, "layer": 2, "participants": {"UTS01": {"mean_r": 0.1212}}},
                  "after": {"mean_r": 0.2222, "ci": [0.2001, 0.2403], "layer": 2, "settings": {"delays": [1, 2]},
                            "participants": {"UTS01": {"mean_r": 0.2323}}},
                  "heldout_participant": {"before": {"mean_r": 0.05, "participants": {"UTS04": {"mean_r": 0.0505}}},
                                          "after": {"mean_r": 0.0909, "participants": {"UTS04": {"mean_r": 0.0909}}}}},
}


@pytest.fixture
def run(tmp_path):
    """A run directory as train.py leaves it: checkpoint, summary.json, a brain map after tuning, logged metrics."""
    from braintune.evaluation.plots import pyplot

    plt = pyplot()
    _, ckpt = _checkpoint(tmp_path, "lora", filename="run/checkpoints/best-epoch=2.ckpt")
    (tmp_path / "run/summary.json").write_text(json.dumps(SUMMARY))
    (tmp_path / "run/brain_maps/after").mkdir(parents=True)
    plt.imsave(tmp_path / "run/brain_maps/after/r_map_UTS01_surface.png", torch.rand(20, 40).numpy())
    (tmp_path / "run/logs/version_0").mkdir(parents=True)
    (tmp_path / "run/logs/version_0/metrics.csv").write_text("epoch,step,downstream/mustard/f1\n1,30,0.6543\n")
    return ckpt


def test_model_card_tells_what_the_model_is(tmp_path, run):
    from huggingface_hub import ModelCard

    out = export_pretrained(run, tmp_path / "export", license="apache-2.0", repo_id="lab/tuned-w2v")
    text = (out / "README.md").read_text()
    card = ModelCard(text)
    assert card.data.license == "apache-2.0" and "brain-tuning" in card.data.tags
    for expected in ("## Brain alignment before and after tuning", "| UTS01 | tuned | 0.121 | 0.232 |",
                     "| mean | tuned | 0.111 | 0.222 [0.200, 0.240] |", "| UTS04 | held out | 0.051 | 0.091 |",
                     "| mustard | f1 (logged at step 30) | 0.654 |", '"bound_s": 0.25', '"delays": [1, 2]',
                     "AutoModel.from_pretrained(\"lab/tuned-w2v\")", "**not** included", "UTS01: 5, UTS02: 7",
                     "randomly initialised `wav2vec2`", "Held out (never tuned on", "braintune export ",
                     "![r_map_UTS01_surface.png"):
        assert expected in text, expected
    assert (out / "images/r_map_UTS01_surface.png").is_file()  # the picture travels with the card
    bare = export_pretrained(run, tmp_path / "bare", include_heads=True)  # a run without summary keys still renders
    assert "They are included" in (bare / "README.md").read_text()


def test_export_never_clobbers(tmp_path, run, monkeypatch):
    from braintune.commands import export

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    assert export.main([str(run), str(occupied)]) == 2 and (occupied / "notes.txt").read_text() == "mine"
    monkeypatch.setattr(export, "render_card", lambda facts: 1 / 0)  # an export interrupted at its last file
    with pytest.raises(ZeroDivisionError):
        export_pretrained(run, occupied, overwrite=True)
    assert (occupied / "notes.txt").read_text() == "mine"  # the old directory stands until the new one is complete
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no partial directory left
    monkeypatch.undo()
    assert export.main([str(run), str(occupied), "--overwrite"]) == 0
    assert not (occupied / "notes.txt").exists() and (occupied / "config.json").is_file()


def test_push_uploads_the_export_with_heads_opt_in(tmp_path, run, monkeypatch, capsys):
    import huggingface_hub

    from braintune.commands import export

    calls = []
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)))
    assert export.main([str(run), str(tmp_path / "a"), "--push-to-hub", "lab/tuned", "--private"]) == 0
    (_, repo, created), (_, upload) = calls
    assert repo == "lab/tuned" and created["private"] is True and upload["repo_id"] == "lab/tuned"
    assert upload["folder_path"] == str(tmp_path / "a") and upload["ignore_patterns"] == ["heads.safetensors", "heads.json"]
    assert "https://huggingface.co/lab/tuned" in capsys.readouterr().out
    calls.clear()
    assert export.main([str(run), str(tmp_path / "b"), "--push-to-hub", "lab/tuned", "--include-heads"]) == 0
    assert calls[1][1]["ignore_patterns"] is None


def test_push_offline_fails_clearly_and_keeps_the_export(tmp_path, run, monkeypatch, capsys):
    import huggingface_hub

    from braintune.commands import export

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # no stored token either
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert export.main([str(run), str(tmp_path / "a"), "--push-to-hub", "lab/tuned"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no token" in errors[0] and "local export" in errors[0] and "hf upload lab/tuned" in errors[0]
    assert {"config.json", "model.safetensors", "heads.safetensors", "README.md"} <= {p.name for p in (tmp_path / "a").iterdir()}

    def unreachable(self, repo_id, **kw):
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_not_a_real_token")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", unreachable)
    assert export.main([str(run), str(tmp_path / "b"), "--push-to-hub", "lab/tuned"]) == 2
    err = capsys.readouterr().err
    assert "ConnectionError: Failed to resolve 'huggingface.co'" in err and (tmp_path / "b" / "README.md").is_file()
