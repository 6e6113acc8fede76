"""Runnable demos: ``python -m unixevents.examples [N]``.

1 basic, 2 async init, 3 advanced features, 4 sync vs async sending,
5 workers. Each starts its own peer process and ends by itself.
"""

from __future__ import annotations

__all__ = ("DEMOS",)

DEMOS = {
    1: ("basic", "demo_basic"),
    2: ("async init", "demo_async"),
    3: ("advanced features", "demo_advanced"),
    4: ("sync vs async sending", "demo_sending"),
    5: ("workers", "demo_workers"),
}
