"""Short family name -> the transformers classes of an instruction-tuned video/audio MLLM and how to prompt it.

Only families that transformers ships are listed (loaded with ``trust_remote_code=False``). Each entry says
which modalities the model reads, how the processor takes them, how many frames a clip is cut to, and the
model card's prompt format, used when a processor carries no chat template (otherwise the processor's
own template renders the conversation). Qwen2.5-Omni reads a clip's frames and its audio as two items of one
turn (its interleaved "audio in video" mode needs the audio track of a video file and is not used).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import transformers as tf

from ..hub import BackboneError

MODALITIES = ("video", "audio")


def _vicuna(media: str, text: str, system: str | None) -> str:
    """Vicuna v1 turn, as the LLaVA / Video-LLaVA model cards write it."""
    return f"{system + ' ' if system else ''}USER: {media}{text} ASSISTANT:"


def _chatml(media: str, text: str, system: str | None) -> str:
    """Qwen ChatML turn (Qwen2-Audio, Qwen2.5-VL, Qwen2.5-Omni, LLaVA-OneVision's Qwen2 LM)."""
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{media}{text}<|im_end|>\n<|im_start|>assistant\n"


def _plain(media: str, text: str, system: str | None) -> str:
    """InstructBLIP: the instruction alone; the processor puts the query tokens in front."""
    return text


@dataclass(frozen=True)
class MLLMFamily:
    """How braintune drives one MLLM family.

    model_cls, config_cls, processor_cls : the transformers classes (generation head included).
    modalities : what the family reads by default; ``accepts`` : every modality it can read.
    media : the marker text standing for each modality in ``chat`` (e.g. "<video>"; the processor expands it to the media
        tokens).
    chat : (media, text, system) -> prompt, the model card's format when the processor has no chat template.
    video_arg : the processor keyword that takes videos ("videos", or "images" for InstructBLIPVideo).
    num_frames : frames a clip is resampled to (uniformly) by default; None keeps the clip's frames.
    fixed_frames : the architecture only accepts ``num_frames`` frames.
    fps_arg : how the processor learns the frame rate ("metadata": ``video_metadata``, "fps": ``fps``, None).
    system_prompt : default system turn (None: the chat template's own default).
    call_kwargs : extra keyword arguments of every processor call.
    config_extra : config keys the model reads that the config class does not declare (hub configs carry them).
    """

    model_cls: type
    config_cls: type
    processor_cls: type
    modalities: tuple[str, ...]
    accepts: tuple[str, ...]
    media: dict[str, str]
    chat: Callable[[str, str, str | None], str]
    video_arg: str = "videos"
    num_frames: int | None = None
    fixed_frames: bool = False
    fps_arg: str | None = None
    system_prompt: str | None = None
    call_kwargs: dict = field(default_factory=dict)
    config_extra: tuple[str, ...] = ()


_OMNI_SYSTEM = ("You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
                "auditory and visual inputs, as well as generating text and speech.")

FAMILIES: dict[str, MLLMFamily] = {
    "video_llava": MLLMFamily(
        tf.VideoLlavaForConditionalGeneration, tf.VideoLlavaConfig, tf.VideoLlavaProcessor,
        ("video",), ("video",), {"video": "<video>\n"}, _vicuna, num_frames=8),
    "llava_next_video": MLLMFamily(
        tf.LlavaNextVideoForConditionalGeneration, tf.LlavaNextVideoConfig, tf.LlavaNextVideoProcessor,
        ("video",), ("video",), {"video": "<video>\n"}, _vicuna, num_frames=8),
    "llava_onevision": MLLMFamily(
        tf.LlavaOnevisionForConditionalGeneration, tf.LlavaOnevisionConfig, tf.LlavaOnevisionProcessor,
        ("video",), ("video",), {"video": "<video>\n"}, _chatml, num_frames=8),
    "qwen2_5_vl": MLLMFamily(
        tf.Qwen2_5_VLForConditionalGeneration, tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLProcessor,
        ("video",), ("video",), {"video": "<|vision_start|><|video_pad|><|vision_end|>"}, _chatml,
        num_frames=16, fps_arg="metadata", system_prompt="You are a helpful assistant.",
        call_kwargs={"cap_pixels_per_frame": True}),  # qwen-vl-utils' per-frame pixel cap
    "instructblipvideo": MLLMFamily(
        tf.InstructBlipVideoForConditionalGeneration, tf.InstructBlipVideoConfig, tf.InstructBlipVideoProcessor,
        ("video",), ("video",), {"video": ""}, _plain, video_arg="images", num_frames=4, fixed_frames=True),
    "qwen2_audio": MLLMFamily(
        tf.Qwen2AudioForConditionalGeneration, tf.Qwen2AudioConfig, tf.Qwen2AudioProcessor,
        ("audio",), ("audio",), {"audio": "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n"}, _chatml,
        system_prompt="You are a helpful assistant."),
    "qwen2_5_omni": MLLMFamily(
        tf.Qwen2_5OmniThinkerForConditionalGeneration, tf.Qwen2_5OmniThinkerConfig, tf.Qwen2_5OmniProcessor,
        ("video", "audio"), ("video", "audio"),
        {"video": "<|vision_bos|><|VIDEO|><|vision_eos|>", "audio": "<|audio_bos|><|AUDIO|><|audio_eos|>"}, _chatml,
        num_frames=16, fps_arg="fps", system_prompt=_OMNI_SYSTEM, call_kwargs={"cap_pixels_per_frame": True},
        config_extra=("vision_start_token_id", "vision_end_token_id")),
}


def get_family(name: str) -> MLLMFamily:
    """The registry entry of ``name``; a bad name lists the valid ones."""
    if name not in FAMILIES:
        raise BackboneError(f"MLLM family '{name}' is not known; available: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def check_modalities(family: str, modalities) -> tuple[str, ...]:
    """``modalities`` (None: the family's default) as a tuple in canonical order, or a clear error."""
    fam = get_family(family)
    if modalities is None:
        return fam.modalities
    wanted = tuple(m for m in MODALITIES if m in set(modalities))
    bad = sorted(set(modalities) - set(fam.accepts))
    if bad or not wanted:
        raise BackboneError(f"MLLM family '{family}' reads {list(fam.accepts)}, not {sorted(set(modalities))}; "
                            f"set modalities to a non-empty subset of {list(fam.accepts)}")
    return wanted


def conversation(instruction: str | None, modalities: tuple[str, ...], system: str | None) -> list[dict]:
    """Chat messages of one clip: media first, then the instruction (none for the no-instruction baseline)."""
    content = [{"type": m} for m in modalities]
    if instruction:
        content.append({"type": "text", "text": instruction})
    turns = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    return turns + [{"role": "user", "content": content}]


def render_prompt(family: str, processor, instruction: str | None, modalities: tuple[str, ...],
                  system: str | None) -> str:
    """The prompt text of one clip: the processor's chat template when it has one, else the family's format."""
    fam = get_family(family)
    if getattr(processor, "chat_template", None):
        return processor.apply_chat_template(conversation(instruction, modalities, system),
                                             add_generation_prompt=True, tokenize=False)
    media = "".join(fam.media[m] for m in modalities)
    return fam.chat(media, instruction or "", system)
