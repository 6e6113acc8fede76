"""Worker targets and helpers at module level: importable in every child process."""

from __future__ import annotations

import os
import time
from typing import Any

SCALE = 10


def scale(x: int) -> int:
    return x * SCALE


class Box:
    """A user-defined type that travels through dill both ways."""

    def __init__(self, value: Any) -> None:
        self.value = value


def square_worker(events: Any, factor: int) -> str:
    events.receive("job", lambda n: events.send("result", n * n * factor))
    events.send("hello", os.getpid())
    events.wait_closed()
    return "done"


def blocking_worker(events: Any) -> None:
    events.wait_closed()


def stubborn_worker(events: Any) -> None:
    """Ignores its channel: only a signal (or the parent-death guard) ends it."""
    while True:
        time.sleep(0.05)


class ExitsOnLoad:
    """Unpickling this calls os._exit(3): a child that dies before it is ready."""

    def __reduce__(self) -> Any:
        return (os._exit, (3,))


class RaisesOnLoad:
    """Unpickling this raises: a target that cannot be rebuilt in the child."""

    def __reduce__(self) -> Any:
        return (_refuse, ("cannot be rebuilt here",))


def _refuse(message: str) -> None:
    raise RuntimeError(message)
