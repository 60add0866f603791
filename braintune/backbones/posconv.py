"""wav2vec2's grouped positional convolution (B, T, D) -> (B, T, D), computed without cuDNN's grouped-conv kernels.

wav2vec2-base's positional convolution (768 channels, kernel 128, 16 groups, weight-normalised, "same" padding)
runs at about 1 % of an H200's bf16 peak in cuDNN (issue 14: 28.6 ms forward for 8 × 4,050 frames), for a small
fraction of the model's FLOPs. Two exact rewrites of the same cross-correlation:

* ``fft``: ``irfft(rfft(x) · rfft(w))`` over time, the channel mixing of each group a batched complex matmul per
  frequency; float32 throughout (more precise than the bf16 convolution it replaces). The weight's transform is
  cached while the weight is unchanged (frozen in the LoRA recipe).
* ``unfold``: im2col in chunks of frames, then one batched matmul per chunk over (group, Cg·K) in the autocast
  dtype: the tensor-core GEMM formulation.

``install(module, method)`` swaps the forward of a transformers ``*PositionalConvEmbedding`` (same parameters and
state-dict keys); ``method`` "conv" keeps the original; "auto" takes ``fft`` while the weight needs no gradient (the
LoRA recipe; 3x faster than oneDNN's forward on CPU) and the original convolution while it trains (there FFT's
backward through the weight transform was 1.6x slower on CPU); benchmarks/kernels.py times every method, on GPU
too, and benchmarks/RESULTS.md records them. Every method equals the original convolution to float tolerance
(tests/test_speed.py; bf16 tolerance under autocast). A frequency-domain output depends numerically (at float
rounding, ~1e-7 relative) on every input frame, not only those within the kernel's reach.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

METHODS = ("auto", "conv", "fft", "unfold")


def supports(module: nn.Module) -> bool:
    """Whether ``module`` is a plain positional conv embedding (conv -> same-pad -> activation, no batch norm)."""
    conv = getattr(module, "conv", None)
    return (isinstance(conv, nn.Conv1d) and hasattr(module, "padding") and hasattr(module, "activation")
            and getattr(module, "batch_norm", None) is None and conv.stride == (1,) and conv.dilation == (1,))


def install(module: nn.Module, method: str) -> bool:
    """Make ``module`` compute its convolution with ``method``; returns False (unchanged) when it is not supported."""
    if method not in METHODS:
        raise ValueError(f"positional convolution method '{method}' is not one of {METHODS}")
    if "forward" in vars(module):
        del module.forward  # back to the class's forward before installing another method
    if method == "conv" or not supports(module):
        return method == "conv"
    module._braintune_wcache = None
    module.forward = partial(_forward, module, method)
    return True


def _forward(module: nn.Module, method: str, hidden_states: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> (B, T, D): the module's conv + same-pad + activation, with the conv computed by ``method``."""
    conv = module.conv
    x = hidden_states.transpose(1, 2)  # (B, D, T)
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    store = _weight_store(module, dtype)
    if method == "auto" and store is None:  # the weight trains: the original convolution
        return type(module).forward(module, hidden_states)
    conv_fn = unfold_conv if method == "unfold" else fft_conv
    y = conv_fn(x.to(dtype), lambda: conv.weight.to(dtype), conv.padding[0], conv.groups, store)
    if conv.bias is not None:
        y = y + conv.bias.to(y.dtype)[:, None]
    return module.activation(y.to(dtype)).transpose(1, 2)


def _weight_store(module: nn.Module, dtype: torch.dtype):
    """A memo of transformed weights for ``module``, valid while its parameters are unchanged and need no gradient
    (the frozen LoRA recipe: no per-step weight-norm, cast or transform); None when the weight trains, in training
    and in validation alike (an optimizer's in-place step need not bump a parameter's version counter, so a memo of
    a trained weight could outlive it)."""
    params = list(module.conv.parameters())
    if any(p.requires_grad for p in params):
        return None
    stamp = (dtype, *[(p._version, p.data_ptr(), p.device) for p in params])
    if module._braintune_wcache is None or module._braintune_wcache[0] != stamp:
        module._braintune_wcache = (stamp, {})
    return module._braintune_wcache[1]


def _memo(store: dict | None, key, make):
    if store is None:
        return make()
    if key not in store:
        store[key] = make()
    return store[key]


def fft_conv(x: torch.Tensor, weight, padding: int, groups: int, store: dict | None = None) -> torch.Tensor:
    """Grouped cross-correlation of x (B, C, T) with ``weight`` (C_out, C/groups, K; or a function returning it), zero
    padding ``padding`` each side, cropped to T outputs (the "same" output of an even or odd kernel) -> (B, C_out, T)
    float32. ``store`` memoises the weight's transform (a frozen weight)."""
    weight = _memo(store, "weight", weight) if callable(weight) else weight
    b, c, t = x.shape
    c_out, cg, k = weight.shape
    n = _fast_length(t + k - 1)
    xf = torch.fft.rfft(x.float().reshape(b, groups, cg, t), n=n)  # (B, G, Cg, F)
    wf = _memo(store, ("fft", n), lambda: torch.fft.rfft(
        weight.float().flip(-1).reshape(groups, c_out // groups, cg, k), n=n).permute(0, 3, 1, 2).contiguous())  # (G, F, Co, Cg)
    yf = wf @ xf.permute(1, 3, 2, 0)  # (G, F, Co, Cg) @ (G, F, Cg, B) -> (G, F, Co, B)
    y = torch.fft.irfft(yf.permute(3, 0, 2, 1), n=n)  # (B, G, Co, N)
    first = k - 1 - padding  # output t is the linear convolution at t + K - 1 - padding
    return y[..., first : first + t].reshape(b, c_out, t)


def unfold_conv(x: torch.Tensor, weight, padding: int, groups: int, store: dict | None = None,
                chunk: int = 512) -> torch.Tensor:
    """The same cross-correlation as ``fft_conv`` as im2col + batched matmul, ``chunk`` output frames at a time
    (bounds the im2col copy: B·C·K·chunk elements) -> (B, C_out, T) in x's dtype."""
    weight = _memo(store, "weight", weight) if callable(weight) else weight
    b, c, t = x.shape
    c_out, cg, k = weight.shape
    w = _memo(store, "unfold", lambda: weight.reshape(groups, c_out // groups, cg * k).transpose(1, 2).contiguous())  # (G, Cg·K, Co)
    padded = nn.functional.pad(x, (padding, padding)).reshape(b, groups, cg, -1)
    outs = []
    for s in range(0, t, chunk):
        e = min(s + chunk, t)
        cols = padded[..., s : e + k - 1].unfold(-1, k, 1)  # (B, G, Cg, e - s, K) view
        cols = cols.permute(0, 1, 3, 2, 4).reshape(b, groups, e - s, cg * k)  # (B, G, e - s, Cg·K) copy
        outs.append(cols @ w.to(cols.dtype))  # (B, G, e - s, Co)
    return torch.cat(outs, dim=2).permute(0, 1, 3, 2).reshape(b, c_out, t)


def _fast_length(n: int) -> int:
    """The smallest 2^a·3^b·5^c ≥ n (lengths cuFFT and pocketfft transform fastest)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best
