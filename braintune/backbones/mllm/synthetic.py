"""Offline processors and configs for every MLLM family: no download, any size (tests and benchmarks).

A byte-level BPE tokenizer without merges encodes any text (one token per UTF-8 byte) and carries the family's
special tokens (``<video>``, ``<|AUDIO|>``, ``<|im_end|>``, ...); the family's own image / video processor and
feature extractor classes are built at the requested size, and a minimal Jinja chat template in the family's
format is attached (InstructBLIPVideo has none, as on the hub). ``tiny_config`` writes a config dict whose
special-token ids match the processor; ``token_config`` gives only those ids, for real-size configs.
"""
from __future__ import annotations

import transformers as tf
from tokenizers import Tokenizer, decoders, models, processors
from tokenizers.pre_tokenizers import ByteLevel

from .families import get_family

_LLAVA = {"image_token": "<image>", "video_token": "<video>"}
_QWEN_AUDIO = {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"}
SPECIAL_TOKENS: dict[str, dict[str, str]] = {  # tokenizer attribute -> token text, per family
    "video_llava": _LLAVA, "llava_next_video": _LLAVA, "llava_onevision": _LLAVA, "instructblipvideo": {},
    "qwen2_5_vl": {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                   "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"},
    "qwen2_audio": _QWEN_AUDIO,
    "qwen2_5_omni": {**_QWEN_AUDIO, "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
                     "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>"},
}
_CHATML = ("llava_onevision", "qwen2_5_vl", "qwen2_audio", "qwen2_5_omni")


def byte_tokenizer(special: dict[str, str], chatml: bool, add_bos: bool) -> tf.PreTrainedTokenizerFast:
    """Byte-level tokenizer (256 byte tokens) + bos/eos/pad + ``special`` (exposed as ``tok.<name>`` and
    ``tok.<name>_id``); ChatML families also get ``<|im_start|>`` and end turns with ``<|im_end|>`` (= eos)."""
    alphabet = sorted(ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = tf.PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", pad_token="<pad>",
                                     eos_token="<|im_end|>" if chatml else "</s>", extra_special_tokens=special,
                                     padding_side="left")
    if chatml:
        tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    if add_bos:  # Llama / BERT tokenizers start every text with a BOS / CLS token
        tok._tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    return tok


def chat_template(family: str) -> str:
    """A minimal Jinja chat template in the family's format (system, user turns with media, generation cue)."""
    media = get_family(family).media
    items = "".join(f"{{% {'if' if i == 0 else 'elif'} c['type'] == '{m}' %}}{text}"
                    for i, (m, text) in enumerate(media.items()))
    user = (f"{{% for c in m['content'] %}}{items}{{% elif c['type'] == 'text' %}}{{{{ c['text'] }}}}"
            "{% endif %}{% endfor %}")
    if family in _CHATML:
        return ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}"
                "{{ m['content'] }}{% else %}" + user + "{% endif %}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return ("{% for m in messages %}{% if m['role'] == 'system' %}{% for c in m['content'] %}{{ c['text'] }}"
            "{% endfor %} {% else %}USER: "
            + user + " {% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def synthetic_processor(family: str, image_size: int = 28, patch_size: int = 14, n_mels: int = 16,
                        chunk_s: int = 2, sampling_rate: int = 16000):
    """The family's processor with a byte tokenizer; images are ``image_size`` px, audio ``chunk_s`` s of
    ``n_mels`` mel bins (Whisper front end)."""
    fam = get_family(family)
    tok = byte_tokenizer(SPECIAL_TOKENS[family], family in _CHATML, family in ("video_llava", "llava_next_video",
                                                                               "instructblipvideo"))
    s, square, qwen = image_size, {"height": image_size, "width": image_size}, {
        "size": {"shortest_edge": image_size ** 2, "longest_edge": image_size ** 2},
        "patch_size": patch_size, "temporal_patch_size": 2, "merge_size": 2}
    audio = lambda: tf.WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=sampling_rate,  # noqa: E731
                                               chunk_length=chunk_s, n_fft=400, hop_length=160)
    template = None if family == "instructblipvideo" else chat_template(family)
    if family == "video_llava":
        parts = dict(image_processor=tf.VideoLlavaImageProcessor(size={"shortest_edge": s}, crop_size=square),
                     video_processor=tf.VideoLlavaVideoProcessor(size={"shortest_edge": s}, crop_size=square),
                     patch_size=patch_size)
    elif family == "llava_next_video":
        parts = dict(image_processor=tf.LlavaNextImageProcessor(size={"shortest_edge": s}, crop_size=square,
                                                                image_grid_pinpoints=[[s, s]]),
                     video_processor=tf.LlavaNextVideoVideoProcessor(size={"shortest_edge": s}, crop_size=square),
                     patch_size=patch_size, vision_feature_select_strategy="default")
    elif family == "llava_onevision":
        parts = dict(image_processor=tf.LlavaOnevisionImageProcessor(size=square, image_grid_pinpoints=[[s, s]]),
                     video_processor=tf.LlavaOnevisionVideoProcessor(size=square),
                     num_image_tokens=(s // patch_size) ** 2, vision_feature_select_strategy="full")
    elif family == "instructblipvideo":
        parts = dict(video_processor=tf.InstructBlipVideoVideoProcessor(size=square),
                     qformer_tokenizer=byte_tokenizer({}, False, True), num_query_tokens=2)
    elif family == "qwen2_audio":
        parts = dict(feature_extractor=audio())
    else:  # qwen2_5_vl, qwen2_5_omni
        parts = dict(image_processor=tf.Qwen2VLImageProcessor(**qwen), video_processor=tf.Qwen2VLVideoProcessor(**qwen))
        if family == "qwen2_5_omni":
            parts["feature_extractor"] = audio()
    proc = fam.processor_cls(tokenizer=tok, **parts, **({"chat_template": template} if template else {}))
    if family == "instructblipvideo":  # its processor adds the <video> token itself
        tok.video_token_id = tok.convert_tokens_to_ids("<video>")
    if family == "qwen2_5_omni":  # the class-level default frame size (>= 100k px) would override image_size
        proc.videos_kwargs = {}
    return proc


def token_config(family: str, processor) -> dict:
    """Top-level config entries holding the processor tokenizer's special-token ids."""
    tok = processor.tokenizer
    ids = {name: tok.convert_tokens_to_ids(text) for name, text in SPECIAL_TOKENS[family].items()}
    if family in ("video_llava", "llava_next_video", "llava_onevision"):
        return {"image_token_index": ids["image_token"], "video_token_index": ids["video_token"]}
    if family == "instructblipvideo":
        return {"video_token_index": tok.video_token_id}
    if family == "qwen2_audio":
        return {"audio_token_index": ids["audio_token"]}
    vision = {"vision_start_token_id": ids["vision_bos_token"], "vision_end_token_id": ids["vision_eos_token"]}
    if family == "qwen2_5_vl":
        return {"image_token_id": ids["image_token"], "video_token_id": ids["video_token"], **vision}
    return {"image_token_index": ids["image_token"], "video_token_index": ids["video_token"], **vision,
            "audio_token_index": ids["audio_token"], "audio_start_token_id": ids["audio_bos_token"],
            "audio_end_token_id": ids["audio_eos_token"], "user_token_id": tok.convert_tokens_to_ids("<|im_start|>")}


def tiny_config(family: str, processor, hidden: int = 16, layers: int = 2, image_size: int = 28,
                patch_size: int = 14, n_mels: int = 16, chunk_s: int = 2) -> dict:
    """Config dict of a tiny ``family`` model (width ``hidden``, ``layers`` layers per tower) matching
    ``synthetic_processor(family, image_size, patch_size, n_mels, chunk_s)``."""
    tok, h = processor.tokenizer, hidden
    text = dict(vocab_size=len(tok), hidden_size=h, intermediate_size=2 * h, num_hidden_layers=layers,
                num_attention_heads=2, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    quarter = h // 4  # multimodal RoPE: sections over half the head dimension (head_dim = h / 2)
    mrope = dict(text, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                        "mrope_section": [quarter - 2 * (quarter // 3), quarter // 3, quarter // 3]})
    tower = dict(hidden_size=h, intermediate_size=2 * h, num_hidden_layers=layers, num_attention_heads=2,
                 image_size=image_size, patch_size=patch_size)
    qwen_vision = dict(depth=layers, hidden_size=h, intermediate_size=2 * h, num_heads=2, patch_size=patch_size,
                       out_hidden_size=h, spatial_merge_size=2, temporal_patch_size=2,
                       fullatt_block_indexes=[layers - 1], window_size=4 * patch_size)
    whisper = dict(d_model=h, encoder_layers=layers, encoder_attention_heads=2, encoder_ffn_dim=2 * h,
                   num_mel_bins=n_mels, max_source_positions=chunk_s * 50)
    grid, llama = [[image_size, image_size]], dict(text, model_type="llama")
    if family == "instructblipvideo":
        qtok = processor.qformer_tokenizer
        qformer = dict(vocab_size=len(qtok), hidden_size=h, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=2 * h, encoder_hidden_size=h, pad_token_id=qtok.pad_token_id)
        cfg = dict(vision_config=dict(tower, initializer_range=0.02),  # class default 1e-10: frames would not matter
                   qformer_config=qformer, text_config=llama, num_query_tokens=2)
    elif family in ("video_llava", "llava_next_video"):
        cfg = dict(vision_config=tower, text_config=llama, **({"image_grid_pinpoints": grid}
                                                               if family == "llava_next_video" else {}))
    elif family == "llava_onevision":
        cfg = dict(vision_config=dict(tower, model_type="siglip_vision_model"),
                   text_config=dict(text, model_type="qwen2"), image_grid_pinpoints=grid)
    elif family == "qwen2_audio":
        cfg = dict(audio_config=whisper, text_config=dict(text, model_type="qwen2"))
    elif family == "qwen2_5_vl":
        cfg = dict(vision_config=qwen_vision, text_config=mrope)
    else:
        get_family(family)
        cfg = dict(audio_config=dict(whisper, output_dim=h), vision_config=qwen_vision, text_config=mrope)
    return {**cfg, **token_config(family, processor)}
