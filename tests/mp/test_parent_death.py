"""``exit_with_parent``: a worker whose parent dies, even by SIGKILL, ends too."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, Iterator

import psutil
import pytest
from conftest import wait_for
from mp_support import start_method, warm_up

from unixevents.mp import is_alive, spawn

HERE = os.path.dirname(os.path.abspath(__file__))
__all__ = ("start_method",)  # the fixture, imported for pytest
warm_up()


@contextlib.contextmanager
def _middle(method: str, where: str, exit_with_parent: bool) -> Iterator[Dict[str, Any]]:
    """Run middle.py, which spawns a worker that ignores its channel; yield its info."""
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(HERE, "middle.py"),
            method,
            where,
            str(int(exit_with_parent)),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )
    info: Dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "middle.py ended without starting its worker"
        info = json.loads(line)
        info["middle"] = proc
        yield info
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if info:  # never leave an orphan behind, whatever the test said
            with contextlib.suppress(psutil.Error):
                worker = psutil.Process(info["pid"])
                if worker.create_time() == info["create_time"]:
                    worker.kill()


@pytest.mark.parametrize("where", ["main", "thread"])
def test_worker_ends_when_its_parent_is_sigkilled(start_method: str, where: str) -> None:
    # "thread": the middle spawns from a short-lived thread, so PR_SET_PDEATHSIG
    # is not armed and the watchdog alone must notice.
    with _middle(start_method, where, True) as info:
        assert is_alive(info["pid"], info["create_time"])
        assert os.path.isdir(info["directory"])
        info["middle"].send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        wait_for(lambda: not is_alive(info["pid"], info["create_time"]), timeout=5.0)
        assert time.monotonic() - t0 < 5.0
        # The directory its dead parent could not remove: the watchdog removes
        # it, and if PR_SET_PDEATHSIG killed the worker first, the next spawn
        # by any process of ours sweeps it.
        spawn(lambda events: None, start_method=start_method).close()
        assert not os.path.exists(info["directory"])


def test_exit_with_parent_false_outlives_the_parent() -> None:
    with _middle("spawn", "main", False) as info:
        info["middle"].send_signal(signal.SIGKILL)
        info["middle"].wait()
        # Longer than several watchdog periods: a guarded worker would be gone.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert is_alive(info["pid"], info["create_time"])
            time.sleep(0.1)
        os.kill(info["pid"], signal.SIGKILL)
        wait_for(lambda: not is_alive(info["pid"], info["create_time"]), timeout=5.0)
        shutil.rmtree(info["directory"], ignore_errors=True)


def test_guard_in_process_leaves_when_the_watched_process_ends() -> None:
    # The guard itself, in a child that watches a sibling: the child must exit
    # with the orphan status once the sibling is gone.
    sibling = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    code = (
        "import sys, time\n"
        "from unixevents.mp._parent_death import guard\n"
        f"guard({sibling.pid}, None)\n"
        "print('armed', flush=True)\n"
        "time.sleep(30)\n"
        "sys.exit(5)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "armed"
        assert sibling.stdin is not None
        sibling.stdin.close()
        sibling.wait()
        assert child.wait(timeout=5) == 128 + signal.SIGHUP
    finally:
        for p in (child, sibling):
            p.kill()
            p.wait()
        if child.stdout is not None:
            child.stdout.close()
