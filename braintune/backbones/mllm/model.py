"""Clips (video frames and/or audio) + one instruction -> instruction-conditioned features (B, L, D) of an MLLM.

Oota et al. 2025 (analysis_methods.md §4.4): the clip and the instruction go in zero-shot, the model answers,
and the feature of each layer is its hidden state averaged over the generated tokens. ``embedding="generated"``
does that with greedy decoding; ``embedding="prompt"`` is the cheaper variant without generation (the last
prompt token's state, i.e. the state from which the first answer token is decoded).

Which state belongs to a generated token: the one ``generate`` reports for it, the decoder state at the step
that emits the token (HF's ``output.hidden_states[k]`` for token k). Steps after a sequence emitted its EOS
are padding and excluded; the EOS-emitting step counts. Layer 0 is the embedding output, layer L-1 the last
decoder layer after the final norm, as ``output_hidden_states`` gives them.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch
from transformers import GenerationConfig

from ..hub import BackboneError
from .families import check_modalities, get_family, render_prompt

EMBEDDINGS = ("generated", "prompt")


def sample_frames(video: np.ndarray, num_frames: int | None) -> np.ndarray:
    """(F, H, W, 3) -> (num_frames, H, W, 3) uniformly over the clip (nearest frames, both ends kept)."""
    if num_frames is None or len(video) == num_frames:
        return video
    return video[np.linspace(0, len(video) - 1, num_frames).round().astype(int)]


class InstructedMLLM:
    """An instruction-tuned MLLM behind one call: ``clip_features(clips, instruction) -> (B, L, D)``.

    Parameters
    ----------
    model : transformers generation model of ``family`` (in eval mode on its device and dtype)
    processor : its processor (tokenizer, video processor and/or feature extractor)
    family : key of ``FAMILIES``
    modalities : subset of the family's ``accepts``; None is the family's default
    num_frames : frames each video clip is resampled to; None is the family's default (fixed for some)
    batch_size : clips per forward / generate call (prompts are left-padded)
    system_prompt : system turn; None is the family's default, "" none at all
    processor_kwargs : extra keyword arguments of every processor call (e.g. ``{"videos_kwargs": {...}}``)

    Attributes
    ----------
    modalities, num_layers (hidden states incl. embeddings), hidden_size, sampling_rate (audio, Hz, or None)
    """

    def __init__(self, model, processor, family: str, modalities=None, num_frames: int | None = None,
                 batch_size: int = 8, system_prompt: str | None = None, processor_kwargs: dict | None = None):
        fam = get_family(family)
        self.family, self.model, self.processor = family, model.eval(), processor
        self.modalities = check_modalities(family, modalities)
        if fam.fixed_frames and num_frames not in (None, fam.num_frames):
            raise BackboneError(f"MLLM family '{family}' takes exactly {fam.num_frames} frames per clip, "
                                f"not num_frames={num_frames}; leave num_frames unset")
        if num_frames is not None and int(num_frames) < 1:
            raise BackboneError(f"num_frames={num_frames}: a video clip needs at least one frame")
        self.num_frames = fam.num_frames if num_frames is None else int(num_frames)
        self.batch_size = max(1, int(batch_size))
        self.system_prompt = fam.system_prompt if system_prompt is None else (system_prompt or None)
        self.processor_kwargs = {**fam.call_kwargs, **(processor_kwargs or {})}
        if getattr(model.config, "use_decoder_only_language_model", True) is False:
            raise BackboneError(f"MLLM family '{family}': encoder-decoder language models (Flan-T5) are not "
                                "supported; use a decoder-only (Vicuna) checkpoint")
        text = model.config.get_text_config()
        self.num_layers, self.hidden_size = text.num_hidden_layers + 1, text.hidden_size
        extractor = getattr(processor, "feature_extractor", None)
        self.sampling_rate = int(extractor.sampling_rate) if "audio" in self.modalities else None
        self._max_samples = getattr(extractor, "n_samples", None)
        processor.tokenizer.padding_side = "left"  # generation continues every row from its last column

    def prompt(self, instruction: str | None) -> str:
        """The prompt text of one clip (before media tokens are expanded)."""
        return render_prompt(self.family, self.processor, instruction, self.modalities, self.system_prompt)

    @torch.no_grad()
    def clip_features(self, clips: list[dict], instruction: str | None, embedding: str = "generated",
                      max_new_tokens: int = 16) -> np.ndarray:
        """Per-layer features of each clip under one instruction.

        Parameters
        ----------
        clips : list of B dicts with "video": (F, H, W, 3) uint8 and/or "audio": (S,) float32 at
            ``sampling_rate``, as ``modalities`` requires; optional "video_fps" (frames per second of "video")
        instruction : the task prompt; None (or "") runs the model without one (the no-instruction baseline)
        embedding : "generated" (mean over the greedily generated tokens) or "prompt" (last prompt token)
        max_new_tokens : length cap of the generated answer

        Returns
        -------
        features : array of shape (B, L, D), float32; L = ``num_layers``, D = ``hidden_size``
        """
        if embedding not in EMBEDDINGS:
            raise BackboneError(f"embedding '{embedding}' is not known; use one of {list(EMBEDDINGS)}")
        if embedding == "generated" and max_new_tokens < 1:
            raise BackboneError(f"max_new_tokens={max_new_tokens}: generate at least one token")
        if not clips:
            raise BackboneError("clip_features got no clips; pass a non-empty list of clip dicts")
        prompt = self.prompt(instruction)
        out = []
        for start in range(0, len(clips), self.batch_size):
            inputs = self.inputs(clips[start:start + self.batch_size], prompt, first=start)
            states = self._generated(inputs, max_new_tokens) if embedding == "generated" else self._prompt(inputs)
            out.append(states.float().cpu().numpy())
        return np.concatenate(out)

    def inputs(self, clips: list[dict], prompt: str, first: int = 0):
        """Processor outputs of a batch of clips sharing one prompt, on the model's device and dtype."""
        media = {m: [self._clip_array(c, m, first + i) for i, c in enumerate(clips)] for m in self.modalities}
        fam, kwargs = get_family(self.family), dict(self.processor_kwargs)
        if "video" in media:
            kwargs[fam.video_arg] = media["video"]
            kwargs.update(self._frame_rate(clips, media["video"]))
        if "audio" in media:
            kwargs.update(audio=media["audio"], sampling_rate=self.sampling_rate)
        batch = self.processor(text=[prompt] * len(clips), padding=True, return_tensors="pt", **kwargs)
        return batch.to(self.model.device, dtype=self.model.dtype)

    def _frame_rate(self, clips: list[dict], videos: list[np.ndarray]) -> dict:
        """Processor kwargs carrying the frame rate after resampling, for families with temporal positions."""
        how = get_family(self.family).fps_arg
        if how is None or any(c.get("video_fps") is None for c in clips):
            return {}
        fps = [float(c["video_fps"]) * len(v) / len(c["video"]) for c, v in zip(clips, videos)]
        if how == "metadata":
            return {"video_metadata": [{"fps": f, "total_num_frames": len(v)} for f, v in zip(fps, videos)]}
        if len(set(fps)) > 1:
            raise BackboneError(f"MLLM family '{self.family}' takes one frame rate per call but the clips have "
                                f"{sorted(set(fps))}; batch clips of one rate together (or batch_size=1)")
        return {"fps": fps[0]}

    def _clip_array(self, clip: dict, modality: str, index: int) -> np.ndarray:
        if not isinstance(clip, dict) or modality not in clip:
            raise BackboneError(f"clip {index} has no '{modality}' entry; MLLM family '{self.family}' with "
                                f"modalities {list(self.modalities)} needs it in every clip dict")
        x = np.asarray(clip[modality])
        if modality == "video":
            if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8 or len(x) == 0:
                raise BackboneError(f"clip {index} 'video' must be (F, H, W, 3) uint8 frames, got {x.shape} {x.dtype}")
            return sample_frames(x, self.num_frames)
        if x.ndim != 1 or len(x) == 0 or not np.isfinite(x).all():
            raise BackboneError(f"clip {index} 'audio' must be a finite (S,) waveform at {self.sampling_rate} Hz, "
                                f"got shape {x.shape}")
        if self._max_samples and len(x) > self._max_samples:
            raise BackboneError(f"clip {index} 'audio' has {len(x)} samples but the processor keeps at most "
                                f"{self._max_samples} ({self._max_samples / self.sampling_rate:g} s); cut shorter clips")
        return x.astype(np.float32)

    def _greedy_config(self, max_new_tokens: int) -> GenerationConfig:
        """Greedy decoding (no sampling, beams or penalties), keeping the checkpoint's special-token ids."""
        ref = self.model.generation_config
        eos = ref.eos_token_id
        pad = ref.pad_token_id if ref.pad_token_id is not None else (eos[0] if isinstance(eos, list) else eos)
        return GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, eos_token_id=eos,
                                pad_token_id=pad, bos_token_id=ref.bos_token_id, output_hidden_states=True,
                                return_dict_in_generate=True)

    def _generated(self, inputs, max_new_tokens: int) -> torch.Tensor:
        """(B, L, D): each layer's state averaged over the decoding steps of the answer tokens."""
        config = self._greedy_config(max_new_tokens)
        out = self.model.generate(**inputs, generation_config=config)
        steps = torch.stack([torch.stack([h[:, -1] for h in step], 1) for step in out.hidden_states], 1)  # (B, S, L, D)
        tokens = out.sequences[:, -steps.shape[1]:]  # (B, S): the token each step emitted
        eos = torch.as_tensor(np.atleast_1d(config.eos_token_id if config.eos_token_id is not None else []),
                              device=tokens.device, dtype=tokens.dtype)
        is_eos = torch.isin(tokens, eos).long()
        keep = ((is_eos.cumsum(1) - is_eos) == 0).to(steps.dtype)  # (B, S): steps up to and incl. the first EOS
        return (steps * keep[..., None, None]).sum(1) / keep.sum(1)[:, None, None]

    def _prompt(self, inputs) -> torch.Tensor:
        """(B, L, D): each layer's state at the last prompt position (no generation)."""
        extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(self.model.forward).parameters else {}
        out = self.model(**inputs, output_hidden_states=True, return_dict=True, **extra)
        if getattr(out, "hidden_states", None) is None:  # InstructBLIP nests the language model's outputs
            out = out.language_model_outputs
        return torch.stack([h[:, -1] for h in out.hidden_states], 1)
