"""Every speech backbone builds from a tiny config, returns (B, L, T, D) on its frame clock, and takes LoRA."""
import pytest
import torch

from braintune.backbones import build_backbone
from braintune.backbones.hub import BackboneError
from braintune.config import load_config

CONV = ["backbone.config.conv_dim=[16,16,16,16,16,16,16]"]
TINY = {
    "wav2vec2": CONV + ["backbone.config.hidden_size=16", "backbone.config.num_hidden_layers=2",
                        "backbone.config.num_attention_heads=2", "backbone.config.intermediate_size=32",
                        "backbone.config.num_conv_pos_embeddings=16", "backbone.config.num_conv_pos_embedding_groups=2"],
    "whisper": ["backbone.config.d_model=16", "backbone.config.encoder_layers=2", "backbone.config.decoder_layers=1",
                "backbone.config.encoder_attention_heads=2", "backbone.config.decoder_attention_heads=2",
                "backbone.config.encoder_ffn_dim=32", "backbone.config.decoder_ffn_dim=32"],
}
TINY["hubert"] = TINY["wavlm"] = TINY["wav2vec2"]
LORA = {"wav2vec2": "attention.q_proj", "hubert": "attention.q_proj", "wavlm": "attention.q_proj", "whisper": "self_attn.q_proj"}


def _build(arch, *extra):
    return build_backbone(load_config(None, [f"backbone.arch={arch}", *TINY[arch], *extra]).backbone)


@pytest.mark.parametrize("arch", ["wav2vec2", "hubert", "wavlm", "whisper"])
def test_hidden_states_cover_the_audio_on_the_frame_clock(arch):
    torch.manual_seed(0)
    model = _build(arch, "backbone.finetune=full")
    seconds = 3.0
    out = model(torch.randn(2, int(seconds * 16000)), [0, -1])
    assert out.shape[:2] == (2, 2) and out.shape[-1] == model.hidden_size
    assert model.frame_rate == 50.0
    assert abs(out.shape[2] - seconds * model.frame_rate) <= 1  # one frame per 20 ms of audio
    assert model.num_layers == 3


@pytest.mark.parametrize("arch", ["wav2vec2", "hubert", "wavlm", "whisper"])
@pytest.mark.parametrize("targets", ["default", "explicit"])
def test_lora_trains_only_adapters(arch, targets):
    extra = [] if targets == "default" else [f"backbone.lora.target_modules=[{LORA[arch]}]"]
    model = _build(arch, "backbone.finetune=lora", *extra)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_proj.lora_A" in n for n in trainable)


def test_lora_targets_that_match_nothing_name_the_real_modules():
    with pytest.raises(BackboneError, match="q_proj"):
        _build("whisper", "backbone.finetune=lora", "backbone.lora.target_modules=[attention.query]")


def test_whisper_refuses_more_than_its_window():
    model = _build("whisper", "backbone.finetune=frozen")
    with pytest.raises(ValueError, match="segment_trs"):
        model(torch.zeros(1, 31 * 16000))
