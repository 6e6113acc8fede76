"""The public face of ``unixevents.mp``: what ``__all__`` promises is what it exports."""

from __future__ import annotations

import unixevents
import unixevents.mp as mp
from unixevents import _liveness


def test_all_is_a_sorted_tuple_of_real_names() -> None:
    assert isinstance(mp.__all__, tuple)
    assert len(set(mp.__all__)) == len(mp.__all__)
    for name in mp.__all__:
        assert hasattr(mp, name), name
    assert set(mp.__all__) == {
        "Worker",
        "WorkerDied",
        "is_alive",
        "parent_channel",
        "popen",
        "spawn",
    }


def test_public_names_are_the_shared_ones() -> None:
    assert mp.WorkerDied is unixevents.WorkerDied
    assert mp.is_alive is _liveness.is_alive
    assert issubclass(mp.WorkerDied, unixevents.UnixEventsError)


def test_worker_says_its_public_module() -> None:
    assert mp.Worker.__module__ == "unixevents.mp"
