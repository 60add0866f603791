"""Commands: the top layer, composing the library (data, backbones, evaluation, downstream, analysis, training).

Library packages never import from here. ``COMMANDS`` maps each ``braintune <command>`` to the module whose
``main(argv)`` runs it; ``evaluate`` dispatches further to ``EVALUATIONS`` (``evaluate.py <name>``).
"""
from __future__ import annotations

COMMANDS = {
    "train": ("braintune.commands.train", "brain-tune a model: -c CONFIG [key=value ...]"),
    "evaluate": ("braintune.commands.evaluate", "measure a model: {alignment,compare,downstream,...} -c CONFIG"),
    "inspect": ("braintune.commands.inspect", "what braintune finds in a dataset: ROOT --format FORMAT"),
    "export": ("braintune.commands.export", "a checkpoint -> a HuggingFace model directory: CHECKPOINT OUT_DIR"),
    "report": ("braintune.report", "a run directory -> RUN_DIR/report.html"),
}
