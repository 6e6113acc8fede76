"""Resource hygiene: many open/close cycles leave no thread, descriptor, process or file."""

from __future__ import annotations

import glob
import os
import tempfile
import threading
from typing import Any, List

import psutil
import pytest
from conftest import wait_for
from stress_support import ProcessProbe, env_number, record

from unixevents import UnixEvents
from unixevents.mp import spawn

pytestmark = pytest.mark.stress

CYCLES = int(env_number("UNIXEVENTS_HYGIENE_CYCLES", 1000))


def _our_threads() -> List[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("unixevents-")]


def _worker_homes() -> List[str]:
    pid = os.getpid()
    return glob.glob(os.path.join(tempfile.gettempdir(), f"unixevents-w{pid}-*")) + glob.glob(
        f"/tmp/uew{pid}-*"
    )


def _square(events: Any, n: int) -> int:
    return n * n


@pytest.mark.timeout(600)
def test_servers_clients_and_workers_open_and_close_cleanly(sock_dir: str, channel: str) -> None:
    me = ProcessProbe()
    fds0, threads0 = me.fds(), len(_our_threads())
    homes0 = set(_worker_homes())

    for i in range(CYCLES):
        with UnixEvents("server", channel, socket_dir=sock_dir) as server:
            server.receive("echo", lambda data: data)
            with UnixEvents("client", channel, socket_dir=sock_dir) as client:
                assert client.request("echo", i, timeout=10).result() == i
    wait_for(lambda: not _our_threads(), timeout=10)
    after_channels = {
        "fds": me.fds(),
        "threads": len(_our_threads()),
        "files": os.listdir(sock_dir),
    }

    for i in range(CYCLES):
        with spawn(_square, i) as w:
            assert w.result(timeout=30) == i * i
        assert w.join(30)
    wait_for(lambda: not _our_threads(), timeout=10)
    children = [c for c in psutil.Process().children(recursive=True) if _counts_as_ours(c)]
    after_workers = {
        "fds": me.fds(),
        "threads": len(_our_threads()),
        "children": len(children),
        "homes": sorted(set(_worker_homes()) - homes0),
    }
    record(
        "hygiene",
        channel_cycles=CYCLES,
        worker_cycles=CYCLES,
        worker_start_method="platform default",
        fds_before=fds0,
        fds_after_channels=after_channels["fds"],
        fds_after_workers=after_workers["fds"],
        unixevents_threads_after=after_workers["threads"],
        child_processes_after=after_workers["children"],
        files_left=len(after_channels["files"]) + len(after_workers["homes"]),
    )
    assert after_channels["fds"] <= fds0
    assert after_channels["threads"] <= threads0 and not after_channels["files"]
    assert after_workers["fds"] <= fds0
    assert after_workers["threads"] <= threads0
    assert not children and not after_workers["homes"]


def _counts_as_ours(proc: psutil.Process) -> bool:
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True  # a worker nobody reaped is a leak too
        cmd = " ".join(proc.cmdline())
        return "forkserver" not in cmd and "resource_tracker" not in cmd
    except psutil.Error:
        return False
