"""A model + runs + instructions -> one feature per TR-clip, instruction and layer: (n_trs, D) per run, cached.

The clip of TR ``j`` is the ``clip_s`` seconds of stimulus ending at the TR's time ``t_j`` (the middle of its volume,
every row time in braintune): ``[t_j - clip_s, t_j)``, its video decoded at ``frames / clip_s`` frames per second so
that the clip holds ``frames`` evenly spaced frames, and/or its audio. (The paper's code cuts movie chunks
``[1.49 j, 1.49 (j + 1))``, i.e. the volume's own acquisition, which ends half a TR later; the FIR delays of the
encoding model absorb such shifts.) Frames before the stimulus starts are black, audio there is silent.

* An instruction-tuned MLLM (``backbone.arch: mllm``: a ``clip_features`` method) answers each instruction about each
  clip; its feature per layer is the mean state over the generated answer, or the last prompt token's
  (``ClipSettings.embedding``).
* Any frame-rate backbone (``av``, ``videomae``, ``ast``, speech encoders) encodes each clip alone; its hidden states
  are averaged over the clip's frames, per layer (Oota et al. 2025's baselines mean-pool tokens per layer). Its
  "instruction" is None.

Features are stored per model × instruction × run × layer (``ClipStore``: entries of the ``FeatureCache`` of the model,
whose key covers the weights and code; the entry's settings cover the prompt text, the layer, the clip settings and
what is read), so adding an instruction or a layer computes only what is new. Runs showing one stimulus file on the
same clock are encoded once. Extraction is batched (``backbone.mllm.batch_size`` for MLLMs, ``ClipSettings.batch``
clips per forward pass otherwise), in bfloat16 on CUDA (MLLMs load in it; other backbones run under autocast), and
shardable over processes: under torchrun or SLURM (``RANK``/``WORLD_SIZE``, ``SLURM_PROCID``/``SLURM_NTASKS``) each
process encodes every ``world``-th stimulus and rank 0 waits for the others' entries in the shared cache
(``wait_for_entries``). Progress is logged in clips per second.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.modalities import VIDEO, StimulusSpec, backbone_inputs, collate_stimulus, read_span
from ..data.study import Run
from ..errors import ConfigError, DataError
from ..provenance import file_identity
from .cache import FeatureCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipSettings:
    """What a TR-clip is and how it is encoded (see the module docstring)."""

    clip_s: float | None = None  # clip length; None: the run's TR
    frames: int | None = 16  # video frames per clip; None: the MLLM family's default (else data.video_fps)
    embedding: str = "generated"  # MLLMs: generated | prompt
    max_new_tokens: int = 16  # MLLMs: length cap of the answer
    batch: int = 8  # frame-rate backbones: clips per forward pass
    layers: tuple[int, ...] | None = None  # layers stored; None: every hidden state

    def length(self, run: Run) -> float:
        return float(self.clip_s or run.timing.tr)

    def spans(self, run: Run) -> np.ndarray:
        """(n_trs, 2) [start, end) seconds of every TR-clip of ``run``."""
        ends = run.timing.times()
        return np.stack([ends - self.length(run), ends], 1)

    def record(self, instructed: bool) -> dict:
        """The settings that change the features (cache keys, summaries)."""
        keys = ("clip_s", "frames", "embedding", "max_new_tokens") if instructed else ("clip_s", "frames")
        return {k: v for k, v in asdict(self).items() if k in keys}


def instructed(backbone) -> bool:
    """Whether ``backbone`` answers instructions (an MLLM) rather than encoding frames."""
    return hasattr(backbone, "clip_features")


def clip_spec(backbone, settings: ClipSettings, run: Run) -> StimulusSpec:
    """What ``backbone`` reads of one clip of ``run``: its spec, video at ``frames / clip_s`` fps, audio at the rate
    its processor takes."""
    spec = backbone.spec
    frames = backbone.check_frames(settings.frames) if instructed(backbone) else settings.frames
    if VIDEO in spec.modalities and frames:
        spec = replace(spec, video_fps=frames / settings.length(run))
    rate = getattr(backbone, "sampling_rate", None) if instructed(backbone) else None
    return replace(spec, sample_rate=int(rate)) if rate else spec


def layers_of(backbone, settings: ClipSettings) -> list[int]:
    """The stored hidden states, as non-negative indices (every one when ``settings.layers`` is None)."""
    n = backbone.num_layers
    layers = list(range(n)) if settings.layers is None else [int(l) for l in settings.layers]
    bad = [l for l in layers if not -n <= l < n]
    if bad:
        raise ConfigError(f"alignment.layers has {bad} outside the {n} hidden states of this model (0..{n - 1}); "
                          "choose layers inside that range")
    return sorted({l % n for l in layers})


def _equal_lengths(clips: list[dict]) -> list[dict]:
    """Clips cut to the shortest one's frames and samples (spans of one length can differ by one by rounding)."""
    out = [dict(c) for c in clips]
    for key in ("video", "audio"):
        if key in out[0]:
            n = min(len(c[key]) for c in out)
            for c in out:
                c[key] = c[key][:n]
    return out


@torch.no_grad()
def encode_clips(backbone, clips: list[dict], instruction: str | None, settings: ClipSettings, device) -> np.ndarray:
    """(B, L, D) float32 features of ``clips`` (``read_span`` items): an MLLM's answer under ``instruction``, or a
    frame-rate backbone's hidden states averaged over each clip's frames (``instruction`` must be None)."""
    if instructed(backbone):
        return backbone.clip_features(clips, instruction, settings.embedding, settings.max_new_tokens, settings.frames)
    if instruction is not None:
        raise ConfigError("a frame-rate backbone cannot follow an instruction; give its baseline no instructions")
    batch = collate_stimulus(_equal_lengths(clips))
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(device).startswith("cuda")):
        states = backbone(backbone_inputs(batch, backbone.modalities))  # (B, L, T, D)
    return states.float().mean(2).cpu().numpy()


class ClipStore:
    """Features per (instruction prompt, run, layer) of one model: entries of its ``FeatureCache``, or memory without
    one. ``settings_of(run, prompt, layer)`` is each entry's key beyond the model's."""

    def __init__(self, backbone, settings: ClipSettings, cache: FeatureCache | None):
        self.backbone, self.settings, self.cache = backbone, settings, cache
        self.memory: dict[tuple, np.ndarray] = {}

    def settings_of(self, run: Run, prompt: str | None, layer: int) -> dict:
        spec = clip_spec(self.backbone, self.settings, run)
        return {"kind": "tr_clip", **self.settings.record(instructed(self.backbone)), "read": spec.tag(),
                "instruction": prompt, "layer": int(layer)}

    def present(self, run: Run, prompt: str | None, layer: int) -> bool:
        if self.cache is None:
            return (run.name, prompt, layer) in self.memory
        return self.cache.path(run, self.settings_of(run, prompt, layer)).is_file()

    def save(self, run: Run, prompt: str | None, layer: int, features: np.ndarray) -> None:
        if self.cache is None:
            self.memory[(run.name, prompt, layer)] = features
        else:
            self.cache.save(run, self.settings_of(run, prompt, layer), features)

    def load(self, run: Run, prompt: str | None, layer: int) -> np.ndarray:
        """(n_trs, D) float32; a missing or damaged entry is an error saying how to recompute it."""
        if self.cache is None:
            return self.memory[(run.name, prompt, layer)]
        settings = self.settings_of(run, prompt, layer)
        features = self.cache.load(run, settings)
        if features is None:
            path = self.cache.path(run, settings)
            path.unlink(missing_ok=True)  # a damaged entry is recomputed by the next run
            raise DataError(f"feature entry '{path}' (run '{run.name}', layer {layer}) is missing or damaged and was "
                            "removed; run the command again to recompute it")
        return features


@dataclass
class ExtractionRecord:
    """What one extraction did: clips encoded, seconds spent, entries found / written."""

    clips: int = 0
    seconds: float = 0.0
    found: int = 0
    written: int = 0
    runs: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        rate = self.clips / self.seconds if self.seconds > 0 else None
        return {"clips_encoded": self.clips, "seconds": round(self.seconds, 3), "clips_per_s": rate,
                "entries_found": self.found, "entries_written": self.written, "runs_encoded": self.runs}


def process_shard() -> tuple[int, int, int]:
    """(rank, world size, local rank) of this process under torchrun or SLURM; (0, 1, 0) when launched alone."""
    env = os.environ
    for rank_key, world_key, local_key in (("RANK", "WORLD_SIZE", "LOCAL_RANK"),
                                           ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")):
        if env.get(rank_key, "").isdigit() and env.get(world_key, "").isdigit():
            return int(env[rank_key]), max(int(env[world_key]), 1), int(env.get(local_key, "0") or 0)
    return 0, 1, 0


def stimulus_groups(runs: dict[str, Run]) -> list[list[str]]:
    """Run names grouped by what they show (stimulus file identity and TR clock): each group is encoded once."""
    groups: dict[tuple, list[str]] = {}
    for name, run in sorted(runs.items()):
        t = run.timing
        groups.setdefault((tuple(file_identity(run.stimulus)), t.tr, t.n_trs, t.first_tr_s), []).append(name)
    return list(groups.values())


def _encode_run(backbone, run: Run, prompt: str | None, settings: ClipSettings, device, bar) -> np.ndarray:
    """(n_trs, L, D) features of every TR-clip of ``run`` under ``prompt``."""
    spec, out = clip_spec(backbone, settings, run), []
    step = getattr(getattr(backbone, "mllm", None), "batch_size", settings.batch)
    spans = settings.spans(run)
    for i in range(0, len(spans), step):
        clips = [read_span(run, float(s), float(e), spec) for s, e in spans[i: i + step]]
        out.append(encode_clips(backbone, clips, prompt, settings, device))
        bar.update(len(clips))
    return np.concatenate(out)


def extract_clip_features(backbone, runs: dict[str, Run], prompts: dict[str, str | None], store: ClipStore,
                          device="cpu", shard: tuple[int, int] = (0, 1)) -> ExtractionRecord:
    """Encode every TR-clip of this shard's ``runs`` under every instruction (name -> prompt, None: no instruction)
    whose entries are not yet in ``store``; returns what was done. Runs showing one stimulus are encoded once."""
    record, layers = ExtractionRecord(), layers_of(backbone, store.settings)
    rank, world = shard
    groups = stimulus_groups(runs)[rank::world]
    todo = [(g, p) for g in groups for p in prompts.values()
            if not all(store.present(runs[r], p, l) for r in g for l in layers)]
    record.found = (sum(map(len, groups)) * len(prompts) - sum(len(g) for g, _ in todo)) * len(layers)  # entries
    total = sum(runs[g[0]].timing.n_trs for g, _ in todo)
    with tqdm(total=total, unit="clip", desc="TR-clips", disable=total == 0, mininterval=5) as bar:
        for group, prompt in todo:
            started, first = time.perf_counter(), runs[group[0]]
            feats = _encode_run(backbone, first, prompt, store.settings, device, bar)  # (n_trs, L, D)
            spent = time.perf_counter() - started
            record.clips, record.seconds = record.clips + len(feats), record.seconds + spent
            log.info("run %s, instruction %r: %d clips in %.1f s (%.2f clips/s)", first.name, prompt, len(feats),
                     spent, len(feats) / max(spent, 1e-9))
            for name in group:
                for layer in layers:
                    store.save(runs[name], prompt, layer, np.ascontiguousarray(feats[:, layer], dtype=np.float32))
                record.written += len(layers)
            record.runs = sorted(set(record.runs) | set(group))
    return record


def wait_for_entries(store: ClipStore, runs: dict[str, Run], prompts: dict[str, str | None], timeout_s: float,
                     poll_s: float = 10.0) -> None:
    """Rank 0 of a sharded extraction: wait until every entry of every run and instruction is in the shared cache."""
    layers, started = layers_of(store.backbone, store.settings), time.monotonic()
    while True:
        missing = [(r, p) for r in runs for p in prompts.values()
                   if not all(store.present(runs[r], p, l) for l in layers)]
        if not missing:
            return
        waited = time.monotonic() - started
        if waited > timeout_s:
            raise DataError(f"waited {waited:.0f} s for the features of {len(missing)} (run, instruction) pairs, e.g. "
                            f"{missing[0]}, from the other processes (shared cache '{store.cache.dir}'); check their "
                            "logs, then rerun (finished entries are kept), or raise analysis.shard_timeout_s")
        log.info("waiting for %d (run, instruction) feature sets from the other processes", len(missing))
        time.sleep(poll_s)
