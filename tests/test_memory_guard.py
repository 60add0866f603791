"""trainer.max_memory_gib: from a measured first step, the micro-batch halves and accumulation doubles (then gradient
checkpointing turns on) until the step fits the budget, before training; a budget nothing fits is refused by name.
Measured on CPU (saved-for-backward bytes + parameters + gradients) against budgets set between measured peaks."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

from braintune.commands.train import train
from braintune.config import load_config, to_dict
from braintune.data.datamodule import build_datamodule
from braintune.errors import ConfigError
from braintune.training.memory import GIB, _halved, enable_checkpointing, plan_memory, step_peak_bytes
from braintune.training.module import BrainTuner

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.synthetic.participants=2", "data.synthetic.stories=3", "data.synthetic.story_seconds=50",
         "data.synthetic.targets=[12,16]", "data.heldout_participants=[]", "data.segment_trs=5", "data.context_s=1.0",
         "data.batch_size=2", "pooling.n_windows=2", "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.progress_bar=false",
         "alignment.after_training=false", "resume=false"]


def _setup(root: Path, *extra: str):
    cfg = load_config(ROOT / "configs" / "demo.yaml", SMALL + [f"data.root={root}", *extra])
    torch.manual_seed(0)
    dm = build_datamodule(cfg, BrainTuner(to_dict(cfg), {"UTS01": 12, "UTS02": 16}).pooling.span)
    module = BrainTuner(to_dict(cfg), dm.responses.n_targets).train()
    dm.spec = module.backbone.spec
    return cfg, dm, module


def _peak(module, dm, batch_size: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return step_peak_bytes(module, dm.sample_batch(batch_size), torch.device("cpu"), None) / GIB


def test_halving_keeps_the_batch_per_optimizer_step():
    assert [_halved(b) for b in (8, 6, 4, 3, 2)] == [4, 3, 2, 1, 1]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The demo model on small synthetic stories, and its measured step peaks at 2 and 1 segments."""
    root = tmp_path_factory.mktemp("memory") / "data"
    cfg, dm, module = _setup(root)
    return root, dm, module, {b: _peak(module, dm, b) for b in (2, 1)}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_plan_halves_then_checkpoints_then_refuses(measured):
    _, dm, module, peaks = measured
    assert peaks[2] > peaks[1] > 0  # activation memory grows with the micro-batch
    moments = 2 * sum(p.numel() * 4 for p in module.parameters() if p.requires_grad) / GIB
    measure = lambda m, b: step_peak_bytes(m, b, torch.device("cpu"), None)  # noqa: E731
    budget = (peaks[1] + peaks[2]) / 2 + moments
    plan = plan_memory(module, dm.sample_batch, 2, 1, budget, measure, lambda: enable_checkpointing(module.backbone))
    assert (plan.batch_size, plan.accumulate, plan.checkpointing) == (1, 2, False)
    assert [p["batch_size"] for p in plan.probes] == [2, 1] and plan.peak_gib <= budget
    assert plan.gib_per_segment_second == pytest.approx(plan.peak_gib / plan.segment_seconds)
    # below one segment's peak: gradient checkpointing is turned on and measured before the budget is refused
    with pytest.raises(ConfigError, match="trainer.max_memory_gib") as refused:
        plan_memory(module, dm.sample_batch, 1, 1, 1e-6, measure, lambda: enable_checkpointing(module.backbone))
    module.backbone.model.gradient_checkpointing_disable()
    first, checkpointed = [float(x) for x in re.findall(r"'peak_gib': ([0-9.]+)", str(refused.value))]
    assert checkpointed < first  # checkpointing cut the measured peak (the encoder layers' activations)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_training_applies_the_plan_before_the_first_step(measured, tmp_path):
    root, dm, module, peaks = measured
    moments = 2 * sum(p.numel() * 4 for p in module.parameters() if p.requires_grad) / GIB
    budget = (peaks[1] + peaks[2]) / 2 + moments
    summary = train(load_config(ROOT / "configs" / "demo.yaml", SMALL + [
        f"data.root={root}", f"out_dir={tmp_path / 'run'}", f"trainer.max_memory_gib={budget}"]))
    memory = summary["memory"]
    assert (memory["batch_size"], memory["accumulate_grad_batches"]) == (1, 2)
    assert memory["peak_gib"] <= budget and memory["gib_per_segment_second"] > 0
    n_segments = len(dm._dataset(dm.splits.train_runs, full_segments=True))
    assert summary["optimizer_steps"] == -(-n_segments // 2)  # batches of 1, two per optimizer step
