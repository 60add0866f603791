"""Instruction-conditioned MLLM features from tiny offline models of every family (no download)."""
import numpy as np
import pytest
import torch

pytest.importorskip("torchvision", reason="transformers' video processors need torchvision")

from braintune.backbones.hub import BackboneError  # noqa: E402
from braintune.backbones.mllm import FAMILIES, InstructedMLLM, build_mllm, load_mllm, loading, model_from_config  # noqa: E402
from braintune.backbones.mllm.synthetic import synthetic_processor, tiny_config  # noqa: E402

CAPTION = "Caption the video in a short sentence."


def tiny(family, **kwargs):
    proc = synthetic_processor(family)
    return build_mllm(family, tiny_config(family, proc, hidden=32), proc, **kwargs)


def clips(n, seed=0, frames=4, audio_s=(1.0,)):
    rng = np.random.default_rng(seed)
    return [{"video": rng.integers(0, 256, (frames, 32, 32, 3), dtype=np.uint8),
             "audio": (0.1 * rng.standard_normal(int(16000 * audio_s[i % len(audio_s)]))).astype(np.float32),
             "video_fps": 2.0} for i in range(n)]


@pytest.fixture(scope="module")
def video_llava():
    return tiny("video_llava", batch_size=4)


@pytest.fixture(scope="module")
def qwen2_audio():
    return tiny("qwen2_audio", batch_size=3)


@pytest.mark.parametrize("name", ["video_llava", "qwen2_audio"])
def test_end_to_end_features_follow_the_clip_and_are_deterministic(name, request):
    mllm = request.getfixturevalue(name)
    modality = mllm.modalities[0]
    batch = clips(3, audio_s=(1.0, 0.7, 0.4))
    feats = mllm.clip_features(batch, CAPTION, max_new_tokens=3)
    assert feats.shape == (3, mllm.num_layers, mllm.hidden_size) == (3, 3, 32) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert np.array_equal(feats, mllm.clip_features(batch, CAPTION, max_new_tokens=3))  # bit-identical rerun
    changed = [dict(c) for c in batch]
    changed[0][modality] = clips(1, seed=7, audio_s=(1.0,))[0][modality]
    moved = mllm.clip_features(changed, CAPTION, max_new_tokens=3)
    assert np.abs(moved[0] - feats[0]).max() > 1e-3  # the clip's own media drive its features
    np.testing.assert_allclose(moved[1:], feats[1:], atol=1e-5)  # and nothing else's
    prompt = mllm.clip_features(batch, CAPTION, embedding="prompt")
    assert np.abs(prompt - feats).max() > 1e-3
    assert np.abs(mllm.clip_features(batch, None, max_new_tokens=3) - feats).max() > 1e-3  # no-instruction baseline
    # Left padding: one clip at a time gives the batched numbers (prompts differ in length for audio).
    single = np.concatenate([mllm.clip_features([c], CAPTION, max_new_tokens=3) for c in batch])
    np.testing.assert_allclose(single, feats, atol=1e-5)


def test_generated_is_the_mean_of_the_states_that_emit_the_answer_up_to_eos(video_llava):
    """Oracle: one teacher-forced forward pass (no KV cache) over prompt + answer."""
    clip = clips(1)
    inputs = video_llava.inputs(clip, video_llava.prompt(CAPTION))
    with torch.no_grad():
        answer = video_llava.model.generate(**inputs, generation_config=video_llava._greedy_config(3)).sequences
        full = dict(inputs, input_ids=answer[:, :-1], attention_mask=torch.ones_like(answer[:, :-1]))
        states = torch.stack(video_llava.model(**full, output_hidden_states=True).hidden_states, 1)[0]  # (L, T, D)
    n_prompt = inputs["input_ids"].shape[1]
    emitting = states[:, n_prompt - 1:].numpy()  # (L, 3, D): the states that emitted answer tokens 1..3
    np.testing.assert_allclose(video_llava.clip_features(clip, CAPTION, max_new_tokens=3)[0],
                               emitting.mean(1), atol=1e-5)
    gen = video_llava.model.generation_config
    eos, gen.eos_token_id = gen.eos_token_id, int(answer[0, n_prompt + 1])  # plant an EOS as the 2nd token
    try:
        stopped = video_llava.clip_features(clip, CAPTION, max_new_tokens=3)[0]
    finally:
        gen.eos_token_id = eos
    np.testing.assert_allclose(stopped, emitting[:, :2].mean(1), atol=1e-5)


@pytest.mark.parametrize("family", ["llava_next_video", "llava_onevision", "qwen2_5_vl", "instructblipvideo",
                                    "qwen2_5_omni"])
def test_other_families_build_offline_and_encode_a_clip(family):
    mllm = tiny(family)
    assert mllm.modalities == FAMILIES[family].modalities
    feats = mllm.clip_features(clips(1), CAPTION, max_new_tokens=2)
    assert feats.shape == (1, 3, 32) and np.isfinite(feats).all()
    assert np.abs(mllm.clip_features(clips(1), CAPTION, embedding="prompt") - feats).max() > 1e-4


def test_prompt_comes_from_the_chat_template_or_the_family_format():
    proc = synthetic_processor("qwen2_5_vl")
    mllm = build_mllm("qwen2_5_vl", tiny_config("qwen2_5_vl", proc), proc)
    with_template = mllm.prompt(CAPTION)
    assert "<|vision_start|><|video_pad|><|vision_end|>" + CAPTION in with_template
    assert with_template.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    proc.chat_template = None  # a processor without a template falls back to the model card's format
    assert mllm.prompt(CAPTION) == with_template
    assert CAPTION not in mllm.prompt(None)
    vl = synthetic_processor("video_llava")
    mllm = build_mllm("video_llava", tiny_config("video_llava", vl), vl, system_prompt="Be brief.")
    with_template = mllm.prompt(CAPTION)
    vl.chat_template = None
    assert mllm.prompt(CAPTION) == with_template == f"Be brief. USER: <video>\n{CAPTION} ASSISTANT:"


def test_meta_device_build_is_materialised_and_initialised():
    proc = synthetic_processor("video_llava")
    cfg = tiny_config("video_llava", proc)
    meta = model_from_config("video_llava", cfg, meta_device=True)
    regular = model_from_config("video_llava", cfg)
    for (name, a), (_, b) in zip(meta.named_buffers(), regular.named_buffers()):
        assert torch.equal(a, b), name  # rotary frequencies and position ids recomputed after to_empty
    assert all(torch.isfinite(p).all() and p.device.type == "cpu" for p in meta.parameters())
    feats = InstructedMLLM(meta, proc, "video_llava").clip_features(clips(1), CAPTION, max_new_tokens=2)
    assert np.isfinite(feats).all()


def test_bad_input_gets_a_clear_error(video_llava, monkeypatch):
    with pytest.raises(BackboneError, match="available: .*qwen2_audio"):
        tiny("videollava")
    with pytest.raises(BackboneError, match="clip 1 has no 'video' entry"):
        video_llava.clip_features([clips(1)[0], {"audio": np.zeros(10, np.float32)}], CAPTION)
    with pytest.raises(BackboneError, match=r"\(F, H, W, 3\) uint8"):
        video_llava.clip_features([{"video": np.zeros((4, 32, 32, 3), np.float32)}], CAPTION)
    with pytest.raises(BackboneError, match="embedding 'mean'"):
        video_llava.clip_features(clips(1), CAPTION, embedding="mean")
    with pytest.raises(BackboneError, match=r"reads \['video'\]"):
        tiny("video_llava", modalities=("audio",))
    with pytest.raises(BackboneError, match="exactly 4 frames"):
        tiny("instructblipvideo", num_frames=8)
    with pytest.raises(BackboneError, match="at most 32000"):  # the tiny Whisper front end keeps 2 s
        tiny("qwen2_audio").clip_features(clips(1, audio_s=(3.0,)), CAPTION)
    with pytest.raises(BackboneError, match="not fields of VideoLlavaConfig"):
        model_from_config("video_llava", {"hidden_sise": 8})
    with pytest.raises(BackboneError, match="does not exist"):
        load_mllm("video_llava", "/no/such/checkpoint")
    monkeypatch.setattr(loading, "hub_reachable", lambda: False)  # as on a machine without network
    with pytest.raises(BackboneError, match="hub is unreachable"):
        load_mllm("qwen2_audio", "braintune-tests/not-a-real-model")
