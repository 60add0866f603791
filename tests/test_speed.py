"""Issue 14's throughput levers change no result: the cached and uncached CNN give the same loss and gradients, spans
start on the CNN's stride with one length while pooling keeps the TRs' true times, the FFT / im2col positional
convolutions equal the original (float32 tolerance; bf16 tolerance under autocast), frozen weights cast once give
bit-identical outputs, fused AdamW and batched heads match the defaults, and a frozen CNN builds no graph."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import Wav2Vec2Config
from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2PositionalConvEmbedding

from braintune.backbones import posconv
from braintune.config import load_config, to_dict
from braintune.data.dataset import SegmentDataset, collate_segments
from braintune.data.study import Run
from braintune.data.timing import RunTiming, tr_windows, window_to_slice
from braintune.heads import ParticipantHeads
from braintune.training.module import BrainTuner
from braintune.training.speed import build_optimizer, install_lowp

SR, TR, N_TRS = 16000, 1.49, 22  # Friends' TR: 74.5 CNN strides, so segment starts fall between strides
FROZEN_CNN = ["backbone.finetune=lora", "backbone.freeze_feature_encoder=true", "backbone.lora.dropout=0.0",
              "data.context_s=3.0", "data.segment_trs=8"]


def _tuner(*extra: str) -> BrainTuner:
    torch.manual_seed(0)
    return BrainTuner(to_dict(load_config("configs/demo.yaml", [*FROZEN_CNN, *extra])), {"p": 3, "q": 5})


def _dataset(tmp_path, module: BrainTuner) -> SegmentDataset:
    """Two runs of the 1.49 s clock; run b's audio ends before its last TR's window (zero padding after it), and every
    first segment's context reaches before the audio's start (zero padding before it)."""
    rng = np.random.default_rng(0)
    runs, responses = {}, {}
    for name, seconds in (("a", 40.0), ("b", 30.0)):
        path = tmp_path / f"{name}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR, subtype="FLOAT")
        runs[name] = Run(name, path, RunTiming(TR, N_TRS, 0.745), seconds)
        responses.update({(p, name): rng.standard_normal((N_TRS, n)).astype(np.float32) for p, n in (("p", 3), ("q", 5))})
    p = module.pooling
    return SegmentDataset(runs, responses, ["p", "q"], 8, p.span, 3.0, spec=module.backbone.spec, full_segments=True)


def _loss_and_grads(module: BrainTuner, batch: dict) -> tuple[float, list[torch.Tensor]]:
    module.zero_grad()
    loss = module.training_step(batch, 0)
    loss.backward()
    return float(loss.detach()), [q.grad.clone() for q in module.parameters() if q.requires_grad]


@pytest.mark.filterwarnings("ignore:You are trying to `self.log()`")
def test_cached_cnn_gives_the_same_loss_and_gradients(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINTUNE_CACHE_DIR", str(tmp_path / "cache"))  # frames are written there too
    module = _tuner().train()
    ds = _dataset(tmp_path, module)
    batch = collate_segments([ds[i] for i in range(len(ds))], ["p", "q"], {"p": 3, "q": 5})
    module.backbone.use_frame_cache(False)
    loss, grads = _loss_and_grads(module, batch)
    module.backbone.use_frame_cache(True)
    cached, cached_grads = _loss_and_grads(module, batch)
    again, _ = _loss_and_grads(module, batch)
    stats = module.backbone.frame_cache.stats
    assert stats["runs_encoded"] == 2 and stats["hits"] == 2 * len(ds) and stats["spans_uncached"] == 0
    assert cached == pytest.approx(loss, rel=1e-6) and again == cached
    for g, h in zip(grads, cached_grads):
        torch.testing.assert_close(h, g, rtol=1e-5, atol=1e-7)
    # the cache serves exactly the frames the CNN gives for each span, padding at both ends included
    starts = np.array([window_to_slice(s, s, SR)[0] for s in batch["start_s"]])
    assert (starts < 0).any() and (starts + batch["audio"].shape[1] > 30 * SR).any()
    # another model with the same CNN weights reads the runs' frames from the cache dir instead of encoding them
    other = _tuner().train()
    assert _loss_and_grads(other, batch)[0] == cached
    assert other.backbone.frame_cache.stats["runs_read"] == 2 and other.backbone.frame_cache.stats["runs_encoded"] == 0


def test_cache_is_unused_off_the_stride_and_for_a_trained_cnn(tmp_path):
    module = _tuner().train()
    ds = _dataset(tmp_path, module)
    batch = collate_segments([ds[0]], ["p", "q"], {"p": 3, "q": 5})
    batch["start_s"] = batch["start_s"] + 1.0 / SR  # one sample off the stride: the CNN runs on the span
    module.training_step(batch, 0)
    assert module.backbone.frame_cache.stats["hits"] == 0
    trained = _tuner("backbone.freeze_feature_encoder=false", "backbone.finetune=full").train()
    trained.training_step(collate_segments([ds[0]], ["p", "q"], {"p": 3, "q": 5}), 0)
    assert trained.backbone.frame_cache.stats["hits"] == 0


def test_spans_start_on_the_stride_with_one_length_and_pool_at_true_times(tmp_path):
    module = _tuner()
    ds = _dataset(tmp_path, module)
    stride = module.backbone.sample_stride
    assert stride == 320 and module.backbone.spec.start_stride == stride
    lengths = set()
    for i, seg in enumerate(ds.segments):
        item = ds[i]
        times, need_start, need_end = ds._bounds(seg)
        i0 = window_to_slice(item["start_s"], item["start_s"], SR)[0]
        assert i0 % stride == 0
        assert item["start_s"] <= need_start + 1e-9 and item["start_s"] + item["span_s"] >= need_end - 1e-9
        assert need_start - item["start_s"] < stride / SR + 1e-9  # at most one stride of extra context
        np.testing.assert_allclose(item["tr_times"], times)  # the TRs keep their true times
        lengths.add(len(item["audio"]))
    assert lengths == {ds.span_samples}  # one shape: nothing padded
    # pooling: each TR averages the frames overlapping its true window, counted from the placed start
    item = ds[1]
    w = module.pooling.weights(item["tr_times"][None], np.array([item["start_s"]]), module.backbone.frame_rate, 2000)[0]
    for k, t in enumerate(item["tr_times"]):
        pool = module.pooling
        for j, (lo, hi) in enumerate(tr_windows(np.array([t]), pool.window_s, pool.lag_s, pool.n_windows)[0]):
            frames = np.flatnonzero(w[k, j].numpy())
            first, last = item["start_s"] + frames[0] / 50, item["start_s"] + (frames[-1] + 1) / 50
            assert first <= lo < first + 0.02 and last - 0.02 < hi <= last


@pytest.mark.parametrize("method", ["fft", "unfold"])
def test_positional_convolution_methods_equal_the_convolution(method):
    torch.manual_seed(0)
    for kernel, groups in ((16, 4), (15, 2)):  # even kernels drop the last output ("same" padding), odd ones don't
        module = Wav2Vec2PositionalConvEmbedding(Wav2Vec2Config(hidden_size=32, num_conv_pos_embeddings=kernel,
                                                                num_conv_pos_embedding_groups=groups))
        x = torch.randn(2, 70, 32, requires_grad=True)
        posconv.install(module, "conv")
        ref = module(x)
        ref_grads = torch.autograd.grad(ref.square().sum(), [x, *module.parameters()])
        assert posconv.install(module, method)
        out = module(x)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        for g, r in zip(torch.autograd.grad(out.square().sum(), [x, *module.parameters()]), ref_grads):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)
        module.requires_grad_(False)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            posconv.install(module, "conv")
            ref = module(x)
            posconv.install(module, method)
            out, again = module(x), module(x)  # the second call uses the memoised weight transform
        assert out.dtype == ref.dtype == torch.bfloat16 and torch.equal(out, again)
        torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)  # bf16: 8 bits of mantissa


def test_auto_takes_fft_when_frozen_and_the_convolution_when_training():
    torch.manual_seed(0)
    module = Wav2Vec2PositionalConvEmbedding(Wav2Vec2Config(hidden_size=32, num_conv_pos_embeddings=16,
                                                            num_conv_pos_embedding_groups=4))
    x = torch.randn(2, 70, 32)
    outs = {}
    for method in ("conv", "fft", "auto"):
        posconv.install(module, method)
        outs[method] = (module(x), module.requires_grad_(False)(x))
        module.requires_grad_(True)
    assert torch.equal(outs["auto"][0], outs["conv"][0])  # weights that train: the convolution itself
    assert torch.equal(outs["auto"][1], outs["fft"][1]) and not torch.equal(outs["auto"][1], outs["conv"][1])


def test_a_trained_weight_is_never_served_from_the_memo_after_a_fused_step():
    """Validation runs under no_grad while the weight trains; fused AdamW updates it in place without bumping its
    version counter, so a memo keyed on versions would keep serving the old weight's transform."""
    torch.manual_seed(0)
    module = Wav2Vec2PositionalConvEmbedding(Wav2Vec2Config(hidden_size=32, num_conv_pos_embeddings=16,
                                                            num_conv_pos_embedding_groups=4))
    x = torch.randn(2, 70, 32)
    posconv.install(module, "fft")
    with torch.no_grad():
        before = module(x)
    optimizer = torch.optim.AdamW(module.parameters(), lr=0.1, fused=True)
    module(x).square().sum().backward()
    optimizer.step()
    with torch.no_grad():
        after = module(x)
        posconv.install(module, "conv")
        fresh = module(x)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, fresh, rtol=1e-5, atol=1e-5)


def test_frozen_weights_cast_once_are_bit_identical_under_autocast():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Conv1d(8, 8, 3), torch.nn.Linear(30, 4))
    model[0].requires_grad_(False)
    model[2].requires_grad_(False)  # the last Linear trains: it keeps autocast's own cast
    x = torch.randn(3, 8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = model(x)
    assert install_lowp(model) == 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert torch.equal(out, ref)
    assert model[0]._braintune_lowp[1].dtype == torch.bfloat16 and model[3]._braintune_lowp is None
    torch.testing.assert_close(model(x), torch.nn.Sequential(*model)(x))  # no autocast: the float32 weights
    with torch.no_grad():
        model[0].weight.add_(1.0)  # an in-place change (a loaded checkpoint) refreshes the copy
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not torch.equal(model(x), ref)
    assert torch.equal(model[0]._braintune_lowp[1], model[0].weight.to(torch.bfloat16))


def test_fused_adamw_and_batched_heads_match_the_defaults():
    torch.manual_seed(0)
    heads = ParticipantHeads(12, {"a": 5, "b": 7, "c": 3})
    twin = ParticipantHeads(12, {"a": 5, "b": 7, "c": 3})
    twin.load_state_dict(heads.state_dict())
    twin.batched = True
    x = torch.randn(2, 4, 12)
    for p, y in heads(x, ["c", "a"]).items():
        torch.testing.assert_close(twin(x, ["c", "a"])[p], y, rtol=1e-6, atol=1e-6)
    plain = build_optimizer([{"params": list(heads.parameters()), "lr": 1e-2}], 0.01, fused=False)
    fused = build_optimizer([{"params": list(twin.parameters()), "lr": 1e-2}], 0.01, fused=True)
    assert fused.defaults["fused"] and not plain.defaults.get("fused")
    for _ in range(3):
        for model, opt in ((heads, plain), (twin, fused)):
            opt.zero_grad()
            sum(y.square().mean() for y in model(x).values()).backward()
            opt.step()
    for (name, a), b in zip(heads.named_parameters(), twin.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)


def test_a_frozen_cnn_builds_no_graph():
    module = _tuner().train()
    seen = []
    module.backbone.encoder.register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
    module.backbone({"audio": torch.randn(1, SR)}, [1])
    assert seen == [False]  # HF would mark the frozen CNN's input as needing a gradient and run its backward
