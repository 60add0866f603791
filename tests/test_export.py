"""Export (LoRA merged, plain transformers parity) and fine-tuning from a checkpoint with new participants."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel

from braintune.backbones import build_backbone
from braintune.commands.export import export_pretrained, load_heads
from braintune.commands.train import train
from braintune.config import load_config, to_dict
from braintune.models import load_model
from braintune.training.module import BrainTuner

TINY = [
    "backbone.name=null", "backbone.arch=wav2vec2", "backbone.config.hidden_size=16", "backbone.config.num_hidden_layers=2",
    "backbone.config.num_attention_heads=2", "backbone.config.intermediate_size=32",
    "backbone.config.conv_dim=[16,16,16,16,16,16,16]", "backbone.config.num_conv_pos_embeddings=8",
    "backbone.config.num_conv_pos_embedding_groups=2", "pooling.window_s=2.0", "pooling.n_windows=2",
]


def _checkpoint(tmp_path, finetune: str):
    """A BrainTuner with non-trivial LoRA / backbone weights, saved as a braintune checkpoint."""
    cfg = load_config(None, TINY + [f"backbone.finetune={finetune}"])
    torch.manual_seed(0)
    module = BrainTuner(to_dict(cfg), {"UTS01": 5, "UTS02": 7})
    with torch.no_grad():  # LoRA B starts at zero: perturb it so that merging has something to merge
        for name, p in module.named_parameters():
            if "lora_B" in name or finetune == "full":
                p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / "tuned.ckpt"
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
