"""Shared by the worker tests: every start method, and multiprocessing's helpers warmed up.

Not a ``conftest.py``: a second conftest module would shadow ``tests/conftest.py``
for ``from conftest import wait_for`` elsewhere in the suite.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

START_METHODS = multiprocessing.get_all_start_methods()


def warm_up() -> None:
    """Start multiprocessing's long-lived helpers now, at collection.

    The resource tracker and the fork server live for the whole session and
    keep a pipe open in this process; started inside a test, they would look
    like that test's leak to the leak check of ``tests/conftest.py``.
    """
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    if "forkserver" in START_METHODS:
        from multiprocessing import forkserver

        forkserver.ensure_running()


@pytest.fixture(params=START_METHODS)
def start_method(request: Any) -> str:
    """Each start method this platform has: fork, spawn, forkserver."""
    return str(request.param)
