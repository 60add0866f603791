"""Helper of test_ddp.py: ``python tests/ddp_train.py DATA_ROOT OUT_DIR DEVICES BATCH`` -> a short recipe run.

With DEVICES=2 Lightning's DDP launcher re-runs this script once per extra process (gloo on CPU).
"""
from __future__ import annotations

import sys
from pathlib import Path

from braintune.commands.train import train
from braintune.config import load_config

ROOT = Path(__file__).resolve().parents[1]
NO_DROPOUT = ["backbone.config.hidden_dropout=0.0", "backbone.config.attention_dropout=0.0", "backbone.config.activation_dropout=0.0",
              "backbone.config.feat_proj_dropout=0.0", "backbone.config.final_dropout=0.0", "backbone.config.mask_time_prob=0.0"]


def main(data_root: str, out_dir: str, devices: int, batch_size: int) -> None:
    cfg = load_config(ROOT / "configs" / "demo.yaml", NO_DROPOUT + [
        "data.synthetic.participants=2", "data.synthetic.stories=3", "data.synthetic.story_seconds=50",
        "data.synthetic.targets=[12,16]", "data.heldout_participants=[]", f"data.root={data_root}", f"out_dir={out_dir}",
        "data.segment_trs=5", "data.context_s=1.0", "data.shuffle=false", f"data.batch_size={batch_size}",
        "trainer.max_epochs=1", "trainer.limit_train_batches=3", f"trainer.devices={devices}", "trainer.accelerator=cpu",
        f"trainer.strategy={'ddp' if devices > 1 else 'auto'}", "trainer.progress_bar=false",
        "alignment.after_training=false", "optim.warmup_fraction=0.0", "optim.schedule=constant", "resume=false",
    ])
    train(cfg)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
