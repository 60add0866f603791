"""Brain-tune a model: ``python train.py -c CONFIG [key=value ...]`` (see README for the keys)."""
import sys

from braintune.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
