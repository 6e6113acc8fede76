"""``unixevents.mp.popen`` and ``parent_channel``: a channel handed to any program."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any, List

import psutil
import pytest
from mp_support import warm_up

from unixevents import UnixEventsError, WorkerDied
from unixevents.mp import parent_channel, popen
from unixevents.mp._bootstrap import ENV_FD

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM = os.path.join(HERE, "popen_program.py")
warm_up()


class _Inbox:
    def __init__(self, events: Any, event: str) -> None:
        self.items: List[Any] = []
        self._cond = threading.Condition()
        events.receive(event, self._put)

    def _put(self, data: Any) -> None:
        with self._cond:
            self.items.append(data)
            self._cond.notify_all()

    def get(self, n: int = 1, timeout: float = 20.0) -> Any:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= n, timeout), self.items
            return self.items[n - 1]


def test_program_gets_a_connected_channel() -> None:
    with popen([sys.executable, PROGRAM, "a", "b"]) as w:
        hello = _Inbox(w.events, "hello")
        pong = _Inbox(w.events, "pong")
        assert w.events.wait_connected(20)
        assert hello.get() == {"pid": w.pid, "argv": ["a", "b"]}
        w.events.send("ping", [1, "two"])
        assert pong.get() == [1, "two"]
        assert [p.pid for p in w.events.peers] == [w.pid]
        assert isinstance(w.process, subprocess.Popen)
    assert w.exitcode == 0  # closing the channel ended its wait_closed()
    assert w.result(0) is None


def test_the_key_is_not_in_argv_environ_or_on_disk() -> None:
    with popen([sys.executable, PROGRAM]) as w:
        env = _Inbox(w.events, "env")
        assert w.events.wait_connected(20)
        key_hex = w.events._authkey.hex()
        proc = psutil.Process(w.pid)
        assert key_hex not in " ".join(proc.cmdline())
        assert all(key_hex not in v for v in proc.environ().values())
        # parent_channel() consumed the handover: the variable is gone, so the
        # program's own children do not try to reuse it.
        w.events.send("env", ENV_FD)
        assert env.get() is None
        assert sorted(os.listdir(w._directory)) == ["connected", "w.sock"]


def test_user_env_and_pass_fds_are_kept() -> None:
    r, wfd = os.pipe()
    try:
        with popen(
            [sys.executable, PROGRAM], env={**os.environ, "MY_VAR": "yes"}, pass_fds=(r,)
        ) as w:
            env = _Inbox(w.events, "env")
            assert w.events.wait_connected(20)
            w.events.send("env", "MY_VAR")
            assert env.get() == "yes"
            if os.path.isdir("/proc"):
                assert str(r) in os.listdir(f"/proc/{w.pid}/fd")
    finally:
        os.close(r)
        os.close(wfd)


def test_a_failing_program_is_reported_with_its_exit_code() -> None:
    w = popen([sys.executable, PROGRAM, "exit:3"])
    with pytest.raises(WorkerDied, match="exit code 3") as info:
        w.result(20)
    assert info.value.exitcode == 3 == w.exitcode
    assert not os.path.exists(w._directory)
    w.close()


def test_a_program_that_never_connects_is_closed_cleanly() -> None:
    w = popen(["sleep", "30"])
    directory = w._directory
    w.close(timeout=0.2)
    assert w.exitcode is not None and w.exitcode < 0
    assert not os.path.exists(directory)


def test_parent_channel_outside_a_popen_program_raises(monkeypatch: Any) -> None:
    monkeypatch.delenv(ENV_FD, raising=False)
    with pytest.raises(UnixEventsError, match=r"not started by unixevents\.mp\.popen"):
        parent_channel()


def test_parent_channel_with_a_stale_descriptor_raises(monkeypatch: Any) -> None:
    r, wfd = os.pipe()
    os.close(wfd)
    os.close(r)
    monkeypatch.setenv(ENV_FD, str(r))
    with pytest.raises(UnixEventsError, match="cannot read the parent channel"):
        parent_channel()
    assert ENV_FD not in os.environ


def test_popen_of_a_missing_program_raises_and_leaves_nothing() -> None:
    with pytest.raises(FileNotFoundError):
        popen(["/nonexistent/program"])
