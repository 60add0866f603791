"""``python -m braintune.lm train -c CONFIG [key=value ...]``: train a small causal LM on a named corpus (the
``trained_on`` control); see ``braintune.commands.lm``."""
from __future__ import annotations

import sys

from .commands.lm import main

if __name__ == "__main__":
    sys.exit(main())
