"""A package that braintune has never seen adds a dataset format, a backbone and a downstream task through entry
points (a ``*.dist-info/entry_points.txt`` on a temporary ``sys.path`` entry), then trains and evaluates with them.
The package is the worked example of docs/extending.md, read from that page, so the page cannot go stale."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from braintune.backbones import BACKBONES
from braintune.config import load_config
from braintune.data.formats import FORMATS
from braintune.downstream.tasks import TASKS
from braintune.errors import ConfigError

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
SR = 16000


def install_toy_package(site: Path) -> None:
    """The module and the entry points of docs/extending.md, as pip would install them."""
    text = DOC.read_text()
    module = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if b.startswith("# toy_braintune.py"))
    toml = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    groups = re.findall(r'\[project\.entry-points\."([^"]+)"\]\n(\w+) = "([^"]+)"', toml)
    (site / "toy_braintune.py").write_text(module)
    info = site / "toy_braintune-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-braintune\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(f"[{g}]\n{name} = {value}\n\n" for g, name, value in groups))


def write_toy_study(root: Path, rng: np.random.Generator) -> None:
    """3 runs of 24 s: bursts of noise; each participant's targets follow the burst energy per 1 s volume."""
    (root / "stimuli").mkdir(parents=True)
    for run in ("r1", "r2", "r3"):
        loud = rng.random(24) < 0.4  # a burst in each of these seconds
        wave = 0.01 * rng.standard_normal(24 * SR)
        for s in np.flatnonzero(loud):
            wave[s * SR : (s + 1) * SR] += 0.5 * rng.standard_normal(SR)
        sf.write(root / "stimuli" / f"{run}.wav", wave.astype(np.float32), SR)
        for p, n in (("p1", 4), ("p2", 5)):
            (root / p).mkdir(exist_ok=True)
            y = loud[:, None] * rng.uniform(0.5, 1.5, n) + 0.3 * rng.standard_normal((24, n))
            np.save(root / p / f"{run}.npy", y.astype(np.float32))


def write_toy_task(root: Path, rng: np.random.Generator) -> None:
    for label, amp in (("quiet", 0.02), ("loud", 0.5)):
        (root / label).mkdir(parents=True)
        for i in range(9):
            sf.write(root / label / f"c{i}.wav", (amp * rng.standard_normal(SR // 2)).astype(np.float32), SR)


def test_toy_format_backbone_and_task_from_entry_points(tmp_path, monkeypatch):
    from braintune.commands.alignment import alignment
    from braintune.commands.downstream import downstream
    from braintune.commands.train import train

    assert "toy" not in FORMATS._entries and "toy" not in BACKBONES._entries and "toy" not in TASKS._entries
    with pytest.raises(ConfigError, match="data.format 'toy' is not known"):
        FORMATS["toy"]
    site = tmp_path / "site"
    site.mkdir()
    install_toy_package(site)
    monkeypatch.syspath_prepend(str(site))
    rng = np.random.default_rng(0)
    write_toy_study(tmp_path / "study", rng)
    write_toy_task(tmp_path / "task", rng)
    common = [f"data.root={tmp_path / 'study'}", "data.format=toy", "data.toy.tr=1.0", "data.segment_trs=6",
              "data.context_s=1.0", "data.heldout_participants=[]", "backbone.arch=toy", "backbone.config={width: 8}",
              "backbone.finetune=full", "backbone.freeze_feature_encoder=false", "pooling.window_s=1.0",
              "pooling.n_windows=2", "trainer.max_epochs=2", "trainer.accelerator=cpu", "trainer.progress_bar=false",
              "alignment.delays=[0,1]", "alignment.cache_dir=null", "logger.kind=csv"]
    cfg = load_config(None, common + [f"out_dir={tmp_path / 'run'}"])
    assert cfg.data.toy.tr == 1.0  # the plugin's own config section, typed
    with pytest.raises(ConfigError, match="data.toy.trr"):
        load_config(None, common + ["data.toy.trr=2"])
    summary = train(cfg)
    assert summary["optimizer_steps"] > 0 and summary["runs"]["test"] == ["r3"]
    assert summary["alignment"]["after"]["mean_r"] > 0.3  # the toy backbone exposes burst energy
    ckpt = summary["checkpoint"]
    evaluated = alignment(load_config(None, common + [f"out_dir={tmp_path / 'eval'}", f"checkpoint={ckpt}"]))
    assert evaluated["mean_r"] == pytest.approx(summary["alignment"]["after"]["mean_r"], abs=1e-6)
    probed = downstream(load_config(None, common + [f"out_dir={tmp_path / 'probe'}", "downstream.task=toy",
                                                    f"downstream.root={tmp_path / 'task'}", "downstream.cache_dir=null",
                                                    "downstream.n_boot=0"]))
    assert probed["tasks"]["toy"]["accuracy"] >= 0.9  # loud vs quiet clips
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["provenance"]["schema_version"] >= 2
