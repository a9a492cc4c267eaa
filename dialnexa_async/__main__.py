"""``python -m dialnexa_async``: the command line of ``dialnexa_async.cli``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
