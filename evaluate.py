"""Measure a model: ``python evaluate.py {alignment,compare,downstream,...} -c CONFIG [key=value ...]``."""
import sys

from braintune.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
