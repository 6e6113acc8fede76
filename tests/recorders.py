"""Listeners for tests that record what they are given."""

from __future__ import annotations

import queue
from typing import Any


class Inbox:
    """A listener that puts each payload on a queue; ``get`` waits for the next one."""

    def __init__(self) -> None:
        self.q: queue.Queue[Any] = queue.Queue()

    def __call__(self, data: Any) -> None:
        self.q.put(data)

    def get(self, timeout: float = 15.0) -> Any:
        return self.q.get(timeout=timeout)

    def empty(self) -> bool:
        return self.q.empty()
