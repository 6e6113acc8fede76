"""A script whose worker target lives in ``__main__``: run as a real file by the tests.

Usage: python main_script.py START_METHOD. Prints one JSON line with the results.
"""

import json
import sys

from unixevents.mp import spawn

OFFSET = 100


def add_offset(x):
    return x + OFFSET


class Point:
    def __init__(self, x):
        self.x = x


def main_target(events, n):
    events.receive("ping", lambda data: events.send("pong", data))
    return {"value": add_offset(n), "point": Point(n).x, "module": __name__}


def make_closure(factor):
    def inner(events, n):
        return add_offset(n) * factor

    return inner


if __name__ == "__main__":
    method = sys.argv[1]
    out = {
        "function": spawn(main_target, 1, start_method=method).result(30)["value"],
        "closure": spawn(make_closure(2), 1, start_method=method).result(30),
        "lambda": spawn(lambda events, n: add_offset(n) + 1, 1, start_method=method).result(30),
        "class": spawn(lambda events: Point(7), start_method=method).result(30).x,
    }
    print(json.dumps(out), flush=True)
