"""``python -m unixevents``: the command line (see ``unixevents --help``)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
