"""Dashboards (CSV columns; the wandb offline run directory, with the dashboard's pictures, tables and text) and the
multi-process strategy the trainer gets."""
from __future__ import annotations

import csv
import json

from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

from braintune.commands.train import train
from braintune.config import load_config
from braintune.training.setup import build_strategy

TINY = [
    "data.format=synthetic", "data.synthetic.stories=3", "data.synthetic.story_seconds=40",
    "data.synthetic.targets=[6,6,6,6]", "data.heldout_participants=[UTS04]", "data.segment_trs=8", "data.context_s=1.0",
    "backbone.name=null", "backbone.config.hidden_size=16", "backbone.config.num_hidden_layers=1",
    "backbone.config.num_attention_heads=2", "backbone.config.intermediate_size=32",
    "backbone.config.conv_dim=[16,16,16,16,16,16,16]", "backbone.config.num_conv_pos_embeddings=8",
    "backbone.config.num_conv_pos_embedding_groups=2", "backbone.finetune=full", "alignment.after_training=false",
    "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.log_every_n_steps=1", "trainer.progress_bar=false",
]


def test_csv_logger_writes_namespaced_columns(tmp_path):
    train(load_config(None, TINY + [f"data.root={tmp_path / 'data'}", f"out_dir={tmp_path / 'run'}", "logger.kind=csv"]))
    with open(tmp_path / "run" / "logs" / "version_0" / "metrics.csv") as f:
        columns = next(csv.reader(f))
    for key in ("train/loss", "val/pearson", "val/pearson/UTS01", "val/pearson/UTS03", "val/loss"):
        assert key in columns
    assert "val/pearson/UTS04" not in columns  # held out: never seen by training or validation


def test_wandb_without_key_logs_offline_under_out_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    out = tmp_path / "run"
    summary = train(load_config(None, TINY + [f"data.root={tmp_path / 'data'}", f"out_dir={out}", "logger.kind=wandb",
                                              "alignment.after_training=true", "alignment.layers=[1]",
                                              "alignment.delays=[1,2]", "alignment.cache_dir=null"]))
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
    # the dashboard's pictures, tables and text, stored by W&B under their keys (alignment/by_layer/after_<step>_<hash>.png)
    media = runs[0] / "files" / "media"
    images = sorted(p.name for p in (media / "images" / "alignment" / "by_layer").glob("*.png"))
    assert [n.split("_")[0] for n in images] == ["after", "before"], images
    tables = {p.name.split("_")[0]: json.loads(p.read_text()) for p in (media / "table/alignment/table").glob("*.table.json")}
    assert (media / "table/dataset").is_dir() and set(tables) == {"before", "after"}
    rows = {(r[1], r[2]): r for r in tables["after"]["data"]}
    assert tables["after"]["columns"][:5] == ["when", "group", "participant", "layer", "mean r"]
    after = summary["alignment"]["after"]
    assert float(rows["tuned", "UTS01"][4]) == round(after["participants"]["UTS01"]["mean_r"], 4)
    held = summary["alignment"]["heldout_participant"]["after"]["participants"]["UTS04"]["mean_r"]
    assert float(rows["heldout", "UTS04"][4]) == round(held, 4)
    html = [p.read_text() for p in (media / "html").rglob("*.html")]
    assert any("format: synthetic" in h for h in html) and any("&quot;participants&quot;" in h for h in html)
    assert summary["brain_maps"]["after"].startswith("no brain maps")  # LeBel layout without derivative/pycortex-db


def test_strategy_for_several_devices():
    one = load_config(None, ["trainer.devices=1"]).trainer
    assert build_strategy(one, find_unused=False) == "auto"
    many = load_config(None, ["trainer.devices=4"]).trainer
    ddp = build_strategy(many, find_unused=False)
    assert isinstance(ddp, DDPStrategy) and ddp._ddp_kwargs.get("find_unused_parameters") is False
    uneven = build_strategy(load_config(None, ["trainer.devices=1", "trainer.num_nodes=2"]).trainer, find_unused=True)
    assert isinstance(uneven, DDPStrategy) and uneven._ddp_kwargs.get("find_unused_parameters") is True
    assert isinstance(build_strategy(load_config(None, ["trainer.strategy=fsdp"]).trainer, False), FSDPStrategy)
