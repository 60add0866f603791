"""``braintune evaluate NAME -c CONFIG [key=value ...]`` (also ``python evaluate.py NAME ...``).

alignment   ridge encoding models per participant and layer on the test runs (checkpoint=PATH, or the
            configured backbone); writes OUT_DIR/summary.json, alignment.npz and alignment_by_layer.png
            (+ data_efficiency.png with alignment.efficiency=true).
compare     alignment of every alignment.models entry (base, a .ckpt, an exported HF dir), differences against
            the first with paired tests, block-bootstrap CIs and data-efficiency curves; summary.json + PNGs.
features    every run's layer features on the TR clock (OUT/features/<run>.npz: features, layers, row_times_s)
            with the extraction settings and look-ahead bound in summary.json.
instructions  an instruction-tuned MLLM (backbone.arch: mllm) asked each backbone.instructions prompt about every
            TR-clip, and its analysis.baselines: alignment per instruction x layer x participant x region, winner-
            take-all maps, pair partitioning, model classes (docs/instructions.md); summary.json + maps/.
attribute   which words drive brain alignment vs next-word prediction (text backbones): per-TR word attributions
            (Captum Gradient x Input, or IG) at the best early / middle / late layer; summary.json, attributions.npz
            and PNGs (IoU vs threshold, spread by layer, positional profiles).
downstream  linear probes per layer on downstream tasks (downstream.task / downstream.tasks, downstream.root);
            several models side by side with downstream.compare=[base, other.ckpt]; writes summary.json
            and OUT_DIR/downstream_<task>.png.
remove      linguistic properties (removal.properties) removed from word-level features: probes and alignment
            before/after per layer, participant and region, the drop's tests and the probe-drop / alignment-drop
            correlation across layers; summary.json, removal_by_layer.png, removal_correlation.png.
similarity  similarity measures (similarity.measures: ridge, ridge_pca, cka, rbf_cka, rsa, procrustes, gw) per layer,
            participant and region on the test TRs, with block-permutation nulls; summary.json, similarity_by_layer.png.
"""
from __future__ import annotations

import importlib
import sys

from .common import parse_args, run_command

# name -> "module:function" taking a Config and returning the summary
EVALUATIONS = {
    "alignment": "braintune.commands.alignment:alignment",
    "compare": "braintune.commands.alignment:compare",
    "downstream": "braintune.commands.downstream:downstream",
    "features": "braintune.commands.features:features",
    "attribute": "braintune.commands.attribute:attribute",
    "instructions": "braintune.commands.instructions:instructions",
    "remove": "braintune.commands.remove:remove",
    "similarity": "braintune.commands.similarity:similarity",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in EVALUATIONS:
        print(f"usage: evaluate.py {{{','.join(EVALUATIONS)}}} -c CONFIG [key=value ...]\n\n{__doc__}", file=sys.stderr)
        return 2
    name = argv.pop(0)
    cfg, args = parse_args(argv, prog=f"evaluate.py {name}", command=name)
    module, function = EVALUATIONS[name].split(":")
    command = getattr(importlib.import_module(module), function)
    return run_command(lambda: command(cfg), cfg.out_dir, args.debug)
