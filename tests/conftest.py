"""Fixtures shared by the whole suite.

Every test gets its own socket directory and channel name, and an autouse
fixture fails the test if it leaves threads, child processes, sockets or
files behind.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Iterator, List

import psutil
import pytest

# Short paths: AF_UNIX paths are limited to ~107 bytes and pytest's tmp_path
# can be longer than that for long test names.
_BASE = tempfile.mkdtemp(prefix="ue-tests-", dir="/tmp")


def pytest_sessionstart(session: Any) -> None:
    # Helper processes that multiprocessing keeps for the whole session, with
    # a descriptor in this process: start them now, outside any leak check.
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver.ensure_running()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    shutil.rmtree(_BASE, ignore_errors=True)


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """A fresh, private socket directory; must be empty again when the test ends."""
    path = tempfile.mkdtemp(dir=_BASE)
    yield path
    left = sorted(os.listdir(path))
    shutil.rmtree(path, ignore_errors=True)
    assert not left, f"files left in the socket directory: {left}"


@pytest.fixture
def channel() -> str:
    """A channel name no other test uses."""
    return "ch-" + uuid.uuid4().hex[:10]


@pytest.fixture
def node_channel(channel: str) -> Iterator[str]:
    """A channel for protocol='node'; its socket in /tmp must be gone at the end."""
    from node_peer import node_path

    yield channel
    path = node_path(channel)
    left = os.path.exists(path)
    if left:
        os.unlink(path)
    assert not left, f"{path} was left behind"


def _socket_fds() -> List[str]:
    out = []
    for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(("socket:", "pipe:")):
            out.append(target)
    return out


def _our_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("unixevents-")]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``.

    Used only where no event can be waited on (another process's state).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def no_leaks(request: Any) -> Iterator[None]:
    """Fail a test that leaves threads, processes, sockets or pipes behind."""
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    me = psutil.Process()
    fds_before = len(_socket_fds())
    threads_before = set(_our_threads())
    yield
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        gc.collect()  # finalizers of dropped Process objects close their sentinels
        threads = [t for t in _our_threads() if t not in threads_before and t.is_alive()]
        children = [c for c in me.children(recursive=True) if _running(c)]
        fds = len(_socket_fds())
        if not threads and not children and fds <= fds_before:
            return
        time.sleep(0.02)
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    # multiprocessing keeps a resource tracker / forkserver alive on purpose.
    assert not threads, f"threads left running: {[t.name for t in threads]}"
    assert not children, f"child processes left running: {children}"
    assert fds <= fds_before, f"sockets/pipes leaked: {fds_before} before, {fds} after"


def _running(proc: psutil.Process) -> bool:
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        # The forkserver and resource tracker of multiprocessing live for the
        # whole session by design; they are not a test's leak.
        cmd = " ".join(proc.cmdline())
        return "forkserver" not in cmd and "resource_tracker" not in cmd
    except psutil.Error:
        return False


class Inbox:
    """A one-way pipe from child processes, with a time-out on ``get``.

    Unlike ``multiprocessing.Queue`` it has no feeder thread and its
    descriptors close deterministically.
    """

    def __init__(self, ctx: Any) -> None:
        self._reader, self.sender = ctx.Pipe(duplex=False)

    def get(self, timeout: float = 30.0) -> Any:
        if not self._reader.poll(timeout):
            raise AssertionError(f"nothing arrived within {timeout} s")
        return self._reader.recv()

    def close(self) -> None:
        self._reader.close()
        self.sender.close()


@pytest.fixture
def inbox(spawn_ctx: Any) -> Iterator[Callable[[], Inbox]]:
    """Make Inboxes (``inbox()``); all are closed when the test ends."""
    made: List[Inbox] = []

    def make() -> Inbox:
        box = Inbox(spawn_ctx)
        made.append(box)
        return box

    yield make
    for box in made:
        box.close()


@pytest.fixture
def spawn_ctx() -> Any:
    """A multiprocessing context that does not fork this threaded test process."""
    return multiprocessing.get_context("spawn")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "allow_leaks: skip the leak check (never in committed tests)"
    )
