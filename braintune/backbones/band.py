"""Block-causal attention inside HF encoders: ``data.timing.Blocks`` -> per-frame key intervals -> masked attention.

``install(model)`` switches a transformers model's attention to ``"braintune_blocks"``, an implementation registered
with transformers' ``AttentionInterface``: it reads the current ``FrameBand`` from the attention module (set on
every attention module by ``set_band`` before each forward, so gradient checkpointing's recomputation sees the
same mask) and otherwise behaves as SDPA. On CPU the band is a dense boolean mask; on CUDA it is a block-sparse
``flex_attention`` mask, built once per shape and interval layout, so masked-out blocks are skipped rather than
computed (measured in benchmarks/gpu_suite.sh). Without a padding mask, on CPU, queries are grouped by block (all of
a block's queries share one key interval) and each group attends only to its interval: the same result as the
dense mask, at a fraction of the cost. WavLM, whose attention adds a gated relative-position bias
outside that interface, gets the band added to that bias.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

IMPLEMENTATION = "braintune_blocks"
_FLEX_CACHE: dict = {}


@dataclass
class FrameBand:
    """Key interval ``[lo, hi)`` of every query frame: (B, T) int64 tensors on the model's device."""

    lo: torch.Tensor
    hi: torch.Tensor

    @classmethod
    def from_blocks(cls, blocks, frame_rate: float, n_frames: int, device) -> FrameBand:
        lo, hi = blocks.intervals(frame_rate, n_frames)
        return cls(torch.as_tensor(lo, device=device), torch.as_tensor(hi, device=device))

    def dense(self) -> torch.Tensor:
        """(B, 1, T, T) bool, True where attention is allowed."""
        j = torch.arange(self.lo.shape[1], device=self.lo.device)
        return ((j >= self.lo[..., None]) & (j < self.hi[..., None]))[:, None]

    def flex_mask(self, n_heads: int):
        """A cached flex_attention BlockMask of these intervals (CUDA only)."""
        from torch.nn.attention.flex_attention import create_block_mask

        key = (tuple(self.lo.shape), n_heads, self.lo.device, _fingerprint(self.lo), _fingerprint(self.hi))
        if key not in _FLEX_CACHE:
            lo, hi = self.lo, self.hi

            def mask_mod(b, h, q, k):
                return (k >= lo[b, q]) & (k < hi[b, q])

            b, t = lo.shape
            _FLEX_CACHE.clear() if len(_FLEX_CACHE) > 64 else None
            _FLEX_CACHE[key] = create_block_mask(mask_mod, b, None, t, t, device=lo.device)
        return _FLEX_CACHE[key]


def _fingerprint(t: torch.Tensor) -> int:
    return hash(t.cpu().numpy().tobytes())


def _flex(query, key, value, band: FrameBand, scaling):
    return _compiled_flex()(query, key, value, block_mask=band.flex_mask(query.shape[1]), scale=scaling)


_COMPILED = []


def _compiled_flex():
    if not _COMPILED:  # flex_attention is only block-sparse (and fast) when compiled
        from torch.nn.attention.flex_attention import flex_attention

        _COMPILED.append(torch.compile(flex_attention, dynamic=False))
    return _COMPILED[0]


def blocks_attention(module: nn.Module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                     **kwargs):
    """The ``braintune_blocks`` attention: SDPA under the module's ``FrameBand`` (query/key/value (B, H, T, d))."""
    band: FrameBand | None = getattr(module, "_braintune_band", None)
    if band is None or band.lo.shape[1] != query.shape[2]:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    p = dropout if module.training else 0.0
    if query.is_cuda and attention_mask is None and p == 0:
        out = _flex(query, key, value, band, scaling)
    elif attention_mask is None:
        out = _grouped(query, key, value, band, scaling, p)
    else:
        mask = band.dense()
        if attention_mask is not None:  # padding: bool (keep) or additive float
            mask = mask & attention_mask.bool() if attention_mask.dtype == torch.bool else \
                torch.where(mask, attention_mask, torch.finfo(query.dtype).min)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling,
                                             dropout_p=dropout if module.training else 0.0)
    return out.transpose(1, 2).contiguous(), None


def _grouped(query, key, value, band: FrameBand, scaling, dropout: float) -> torch.Tensor:
    """SDPA per run of queries sharing a key interval: (B, H, T, d) -> (B, H, T, d), exact, without a dense mask."""
    lo, hi = band.lo.cpu(), band.hi.cpu()
    same = bool((lo == lo[:1]).all() and (hi == hi[:1]).all())
    items = [slice(None)] if same else [slice(b, b + 1) for b in range(len(lo))]
    outs = []
    for rows in items:
        l, h = lo[rows][0], hi[rows][0]  # (T,)
        cuts = (torch.nonzero((l[1:] != l[:-1]) | (h[1:] != h[:-1])).flatten() + 1).tolist()
        parts = [F.scaled_dot_product_attention(query[rows, :, s:e], key[rows, :, int(l[s]):int(h[s])],
                                                value[rows, :, int(l[s]):int(h[s])], scale=scaling, dropout_p=dropout)
                 for s, e in zip([0, *cuts], [*cuts, len(l)])]
        outs.append(torch.cat(parts, dim=2))
    return torch.cat(outs, dim=0)


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, blocks_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(IMPLEMENTATION, sdpa_mask)  # padding masks are built as for SDPA


def _wavlm_attention(module, original, hidden_states, attention_mask, gated_position_bias):
    """WavLM adds its gated relative-position bias (B·H, T, T) as an additive mask: add the band to it."""
    band: FrameBand | None = getattr(module, "_braintune_band", None)
    if band is not None and band.lo.shape[1] == hidden_states.shape[1]:
        blocked = ~band.dense()[:, 0].repeat_interleave(module.num_heads, dim=0)  # (B·H, T, T)
        gated_position_bias = gated_position_bias.masked_fill(blocked, torch.finfo(gated_position_bias.dtype).min)
    return original(hidden_states, attention_mask, gated_position_bias)


def install(model: nn.Module) -> list[nn.Module]:
    """Route ``model``'s self-attention through the band; returns the attention modules ``set_band`` updates."""
    from transformers import PretrainedConfig

    _register()
    modules = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    for module in modules:
        if type(module).__name__ == "WavLMAttention":
            module.torch_multi_head_self_attention = partial(_wavlm_attention, module, module.torch_multi_head_self_attention)
    for module in model.modules():
        config = getattr(module, "config", None)
        if isinstance(config, PretrainedConfig):
            config._attn_implementation = IMPLEMENTATION
    return modules


def set_band(modules: list[nn.Module], band: FrameBand | None) -> None:
    """Make ``band`` (None: full attention) the mask of every attention module of an installed model."""
    for module in modules:
        module._braintune_band = band


def torch_layer_mask(band: FrameBand, n_heads: int) -> torch.Tensor:
    """(B·H, T, T) bool mask for ``nn.TransformerEncoderLayer`` (True = masked out, torch's convention)."""
    return ~band.dense()[:, 0].repeat_interleave(n_heads, dim=0)
