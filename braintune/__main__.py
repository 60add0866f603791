"""``python -m braintune <command> ...``: the same as the ``braintune`` console script."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
