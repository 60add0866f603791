"""Measure a model: ``python evaluate.py {alignment,downstream} -c CONFIG [key=value ...]``.

alignment   ridge encoding models per participant and layer on the test runs (checkpoint=PATH, or the
            untuned backbone when no checkpoint is given); writes OUT_DIR/summary.json, alignment.npz and
            alignment_by_layer.png (+ data_efficiency.png with alignment.efficiency=true).
compare     alignment of every alignment.models entry (base, a .ckpt, an exported HF dir), differences against
            the first with paired tests, block-bootstrap CIs and data-efficiency curves; summary.json + PNGs.
downstream  linear probes per layer on downstream tasks (downstream.task / downstream.tasks, downstream.root);
            several models side by side with downstream.compare=[base, other.ckpt]; writes summary.json
            and OUT_DIR/downstream_<task>.png.
"""
from __future__ import annotations

import sys

from braintune.cli import parse_args, run_command

COMMANDS = {
    "alignment": lambda cfg: __import__("braintune.evaluation.command", fromlist=["alignment"]).alignment(cfg),
    "compare": lambda cfg: __import__("braintune.evaluation.command", fromlist=["compare"]).compare(cfg),
    "downstream": lambda cfg: __import__("braintune.downstream.command", fromlist=["downstream"]).downstream(cfg),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: evaluate.py {{{','.join(COMMANDS)}}} -c CONFIG [key=value ...]", file=sys.stderr)
        return 2
    name = argv.pop(0)
    cfg = parse_args(argv, prog=f"evaluate.py {name}")
    return run_command(lambda: COMMANDS[name](cfg), cfg)


if __name__ == "__main__":
    sys.exit(main())
