"""evaluate.py downstream end to end on a tiny CSV task whose class sets the tone frequency."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf

import evaluate

TINY = ["backbone.arch=wav2vec2", "backbone.finetune=frozen", "backbone.config.hidden_size=16",
        "backbone.config.num_hidden_layers=1", "backbone.config.num_attention_heads=2",
        "backbone.config.intermediate_size=32", "backbone.config.conv_dim=[16,16,16,16,16,16,16]",
        "backbone.config.num_conv_pos_embeddings=16", "backbone.config.num_conv_pos_embedding_groups=2"]


def write_tone_csv(root, n_per_class=16, freqs=(220.0, 880.0), seed=0):
    rng = np.random.default_rng(seed)
    rows = ["path,label,split"]
    t = np.arange(8000) / 16000
    for c, f in enumerate(freqs):
        for i in range(n_per_class):
            wave = 0.5 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) + 0.05 * rng.standard_normal(t.size)
            sf.write(root / f"c{c}_{i}.wav", wave.astype(np.float32), 16000)
            rows.append(f"c{c}_{i}.wav,class{c},{'test' if i % 4 == 0 else 'train'}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def test_evaluate_downstream_csv(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_tone_csv(data)
    out = tmp_path / "out"
    args = ["downstream", "downstream.task=csv", f"downstream.root={data}", f"out_dir={out}", "downstream.n_boot=200",
            f"downstream.cache_dir={tmp_path / 'cache'}", "downstream.compare=[base]", *TINY]
    assert evaluate.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    task = summary["tasks"]["csv"]
    for key in ("accuracy", "f1", "chance", "per_layer", "ci", "models", "comparisons", "skipped"):
        assert key in task
    assert task["chance"] == 0.5
    assert task["accuracy"] >= 0.875  # the tone frequency is linearly readable from the pooled features
    assert set(task["per_layer"]) == {"0", "1"}
    assert len(task["models"]) == 2 and task["comparisons"][0]["difference"] == 0.0  # same weights, same seed
    assert (out / "downstream_csv.png").stat().st_size > 0
    cached = list((tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 32  # the two identical models share one cache entry per item
    assert evaluate.main(args) == 0  # second run reads the cache
    assert json.loads((out / "summary.json").read_text())["tasks"]["csv"]["accuracy"] == task["accuracy"]


def test_unknown_task_is_a_user_error(tmp_path, capsys):
    assert evaluate.main(["downstream", "downstream.task=nope", f"downstream.root={tmp_path}", f"out_dir={tmp_path}"]) == 2
    assert "available:" in capsys.readouterr().err


def test_callback_logs_during_training(tmp_path):
    """A one-epoch demo-sized training run with downstream.callback_tasks logs downstream/csv/* metrics."""
    import csv

    from braintune.commands.train import downstream_callbacks, train
    from braintune.config import load_config

    data = tmp_path / "tones"
    data.mkdir()
    write_tone_csv(data, n_per_class=8)
    out = tmp_path / "run"
    cfg = load_config("configs/demo.yaml", [
        f"out_dir={out}", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.progress_bar=false",
        "alignment.after_training=false", f"data.root={tmp_path / 'stories'}", "data.synthetic.stories=3",
        "data.synthetic.story_seconds=60", "data.synthetic.participants=2", "data.synthetic.targets=[8,8]",
        "data.heldout_participants=[]", "downstream.callback_tasks=[csv]", f"downstream.root={data}",
        "downstream.callback_max_items=16",
    ])
    train(cfg, downstream_callbacks(cfg))
    rows = list(csv.DictReader((out / "logs" / "version_0" / "metrics.csv").open()))
    logged = {k for row in rows for k, v in row.items() if v}
    assert {"downstream/csv/accuracy", "downstream/csv/f1", "downstream/csv/chance"} <= logged
    acc = [float(r["downstream/csv/accuracy"]) for r in rows if r.get("downstream/csv/accuracy")]
    assert 0.0 <= acc[0] <= 1.0
