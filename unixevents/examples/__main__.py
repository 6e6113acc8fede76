"""``python -m unixevents.examples [N ...]``: run the numbered demos (all by default)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from typing import List, Optional

from . import DEMOS


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m unixevents.examples",
        description="Run the unixevents demos. "
        + ", ".join(f"{n} {title}" for n, (title, _) in DEMOS.items()),
    )
    parser.add_argument(
        "demos", nargs="*", type=int, metavar="N", help="demo numbers (default: all)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the library's DEBUG log")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s",
    )
    chosen = args.demos or list(DEMOS)
    unknown = [n for n in chosen if n not in DEMOS]
    if unknown:
        parser.error(f"no demo {unknown[0]}; choose from {sorted(DEMOS)}")
    for number in chosen:
        title, module = DEMOS[number]
        print(f"=== demo {number}: {title}", flush=True)
        started = time.monotonic()
        importlib.import_module(f"unixevents.examples.{module}").main()
        print(f"=== demo {number} done in {time.monotonic() - started:.2f} s\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
