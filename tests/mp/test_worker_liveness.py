"""Liveness: (pid, create_time) identity, zombies, reused PIDs, and dead peers on a channel."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any, List

import psutil
import pytest
import worker_targets
from conftest import wait_for
from mp_support import start_method, warm_up

from unixevents import PeerInfo, UnixEvents
from unixevents.mp import is_alive, spawn

HERE = os.path.dirname(os.path.abspath(__file__))
__all__ = ("start_method",)  # the fixture, imported for pytest
warm_up()


def test_this_process_is_alive() -> None:
    me = psutil.Process()
    assert is_alive(os.getpid())
    assert is_alive(os.getpid(), me.create_time())


def test_a_wrong_create_time_means_a_reused_pid() -> None:
    me = psutil.Process()
    assert not is_alive(os.getpid(), me.create_time() - 1000.0)
    assert not is_alive(os.getpid(), me.create_time() + 3.0)


def test_an_ended_process_is_not_alive_even_if_its_pid_is_reused() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    create_time = psutil.Process(proc.pid).create_time()
    assert is_alive(proc.pid, create_time)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait()  # reaped: the PID is free for anyone
    assert not is_alive(proc.pid, create_time)
    assert not is_alive(0)
    assert not is_alive(-1)


def test_a_zombie_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE)
        assert psutil.Process(proc.pid).is_running()  # the trap: psutil says running
        assert not is_alive(proc.pid)
    finally:
        proc.wait()


def test_worker_alive_is_false_for_a_faked_create_time() -> None:
    with spawn(worker_targets.blocking_worker) as w:
        assert w.alive
        real = w._create_time
        assert real is not None
        w._create_time = real + 100.0  # as if the PID now named another process
        assert not w.alive
        w._create_time = real
        assert w.alive


def test_worker_alive_when_create_time_is_unknown() -> None:
    with spawn(worker_targets.blocking_worker) as w:
        w._create_time = None  # unreadable start time: do not call the PID reused
        assert w.alive
    assert not w.alive


def test_peer_alive_on_any_channel(sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        client = UnixEvents("client", channel, socket_dir=sock_dir)
        try:
            assert server.wait_connected(10)
            (peer,) = server.peers
            assert peer.pid == os.getpid()
            assert server.peer_alive(peer)
            fake = PeerInfo(peer.pid, peer.uid, peer.gid, (peer.create_time or 0) + 50.0)
            assert not server.peer_alive(fake)
        finally:
            client.close()


def test_a_peer_whose_process_is_gone_is_disconnected_though_its_socket_stays_open(
    sock_dir: str, channel: str
) -> None:
    key = os.urandom(32)
    connected: List[PeerInfo] = []
    gone: List[PeerInfo] = []
    went = threading.Event()
    with UnixEvents(
        "server", channel, socket_dir=sock_dir, authkey=key, liveness_interval=0.2
    ) as server:
        server.on_connect(connected.append)
        server.on_disconnect(lambda peer: (gone.append(peer), went.set()))
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "orphan_socket.py")],
            input=json.dumps({"address": server.address, "authkey": key.hex()}),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        grandchild = psutil.Process(int(proc.stdout.strip()))
        try:
            assert grandchild.name() == "sleep"  # it holds the socket open
            assert went.wait(10), "the dead peer was not disconnected"
            assert [p.pid for p in gone] == [p.pid for p in connected]
            assert not server.peer_alive(gone[0])
            assert not server.connected
        finally:
            _kill(grandchild)


def _kill(proc: psutil.Process) -> None:
    with contextlib.suppress(psutil.Error):
        proc.send_signal(signal.SIGKILL)  # psutil checks the PID was not reused


@pytest.mark.parametrize("field", ["pid", "uid", "gid"])
def test_worker_peer_credentials(field: str) -> None:
    with spawn(worker_targets.blocking_worker) as w:
        (peer,) = w.events.peers
        expected: Any = {"pid": w.pid, "uid": os.getuid(), "gid": os.getgid()}[field]
        assert getattr(peer, field) == expected
