"""Peers (SPEC 1 and 1.4): ``PeerInfo`` from the kernel, ``peers``, targeted
``send``/``request`` with ``to=``, ``on_connect``/``on_disconnect`` and
``peer_alive``, with every peer in a process of its own.
"""

from __future__ import annotations

import contextlib
import os
import queue
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import request_peers as rp
from conftest import wait_for

from unixevents import NotConnectedError, PeerInfo, UnixEvents

WAIT = 10.0


def _pid(peer: PeerInfo) -> int:
    return peer.pid


def _by_pid(server: UnixEvents) -> Dict[int, PeerInfo]:
    return {p.pid: p for p in server.peers}


class _Callbacks:
    """Collects ``send`` callbacks; ``get()`` waits for the next one."""

    def __init__(self) -> None:
        self._q: queue.Queue[Tuple[Optional[BaseException], bool]] = queue.Queue()

    def __call__(self, error: Optional[BaseException], ok: bool) -> None:
        self._q.put((error, ok))

    def get(self) -> Tuple[Optional[BaseException], bool]:
        return self._q.get(timeout=WAIT)


@contextlib.contextmanager
def _two_clients(spawn_ctx: Any, sock_dir: str, channel: str) -> Iterator[Tuple[Any, ...]]:
    """A server here, two client processes; yields (server, proc_a, proc_b, inbox)."""
    inbox = spawn_ctx.Queue()
    try:
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(UnixEvents("server", channel, socket_dir=sock_dir))
            a = stack.enter_context(rp.client_process(spawn_ctx, sock_dir, channel, inbox))
            b = stack.enter_context(rp.client_process(spawn_ctx, sock_dir, channel, inbox))
            wait_for(lambda: len(server.peers) == 2, WAIT)
            yield server, a, b, inbox
    finally:
        inbox.close()
        inbox.join_thread()


def _notes_until_markers(inbox: Any, pids: List[int], marker: str) -> Dict[int, List[Any]]:
    """What each pid received, up to and including ``marker`` (sent to all, last)."""
    got: Dict[int, List[Any]] = {pid: [] for pid in pids}
    waiting = set(pids)
    while waiting:
        pid, data = inbox.get(timeout=WAIT)
        got[pid].append(data)
        if data == marker:
            waiting.discard(pid)
    return got


# ----------------------------------------------------- peer credentials


def test_server_sees_the_client_process(spawn_ctx: Any, sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        assert server.peers == []
        with rp.client_process(spawn_ctx, sock_dir, channel) as proc:
            wait_for(lambda: server.peers, WAIT)
            [peer] = server.peers
            assert isinstance(peer, PeerInfo)
            assert peer.pid == proc.pid != os.getpid()
            assert peer.uid == os.geteuid()
            assert peer.gid == os.getegid()
            assert server.request("whoami", to=peer).result(timeout=WAIT) == proc.pid
        wait_for(lambda: server.peers == [], WAIT)


def test_client_sees_the_server_process(spawn_ctx: Any, sock_dir: str, channel: str) -> None:
    with (
        rp.server_process(spawn_ctx, sock_dir, channel) as proc,
        UnixEvents("client", channel, socket_dir=sock_dir) as client,
    ):
        assert client.wait_connected(WAIT)
        [peer] = client.peers
        assert (peer.pid, peer.uid, peer.gid) == (proc.pid, os.geteuid(), os.getegid())
        assert client.request("whoami", to=peer).result(timeout=WAIT) == proc.pid


def test_peers_is_empty_after_the_peer_leaves(spawn_ctx: Any, sock_dir: str, channel: str) -> None:
    with (
        UnixEvents("server", channel, socket_dir=sock_dir) as server,
        rp.client_process(spawn_ctx, sock_dir, channel) as proc,
    ):
        wait_for(lambda: server.peers, WAIT)
        [peer] = server.peers
        rp.kill(proc)
        wait_for(lambda: server.peers == [], WAIT)
        assert not server.connected
        error = server.request("whoami", to=peer).exception(timeout=WAIT)
        assert isinstance(error, NotConnectedError)


def test_peers_is_empty_after_close(sock_dir: str, channel: str) -> None:
    server = UnixEvents("server", channel, socket_dir=sock_dir)
    client = UnixEvents("client", channel, socket_dir=sock_dir)
    try:
        assert client.wait_connected(WAIT)
        wait_for(lambda: server.peers, WAIT)
    finally:
        server.close()
        client.close()
    assert not server.connected and not client.connected
    assert server.peers == []
    assert client.peers == []


# ---------------------------------------------- several clients and to=


def test_request_without_to_is_ambiguous_with_several_clients(
    spawn_ctx: Any, sock_dir: str, channel: str
) -> None:
    with _two_clients(spawn_ctx, sock_dir, channel) as (server, _a, _b, _inbox):
        # Raised at once or through the future: either way, never a guess.
        with pytest.raises(ValueError, match="to="):
            server.request("whoami").result(timeout=WAIT)
        assert len(server._requests) == 0


def test_server_requests_a_specific_client(spawn_ctx: Any, sock_dir: str, channel: str) -> None:
    with _two_clients(spawn_ctx, sock_dir, channel) as (server, a, b, _inbox):
        known = _by_pid(server)
        assert set(known) == {a.pid, b.pid}
        futs = {
            pid: [server.request("whoami", to=p) for _ in range(20)] for pid, p in known.items()
        }
        for pid, fs in futs.items():
            assert [f.result(timeout=WAIT) for f in fs] == [pid] * 20
        assert len(server._requests) == 0


def test_send_to_reaches_one_client_only(spawn_ctx: Any, sock_dir: str, channel: str) -> None:
    with _two_clients(spawn_ctx, sock_dir, channel) as (server, a, b, inbox):
        known = _by_pid(server)
        written = _Callbacks()
        server.send("note", "for a", written, to=known[a.pid])
        assert written.get() == (None, True)
        server.send("note", "for b", to=known[b.pid])
        server.send("note", "end")  # to everyone, after the targeted ones
        got = _notes_until_markers(inbox, [a.pid, b.pid], "end")
        assert got == {a.pid: ["for a", "end"], b.pid: ["for b", "end"]}


def test_send_to_a_departed_client_reports_not_connected(
    spawn_ctx: Any, sock_dir: str, channel: str
) -> None:
    with _two_clients(spawn_ctx, sock_dir, channel) as (server, a, b, inbox):
        gone = _by_pid(server)[a.pid]
        rp.kill(a)
        wait_for(lambda: gone not in server.peers, WAIT)
        written = _Callbacks()
        server.send("note", "lost", written, to=gone)
        error, ok = written.get()
        assert not ok and isinstance(error, NotConnectedError)
        # With one client left, request needs no to= any more.
        assert server.request("whoami").result(timeout=WAIT) == b.pid
        server.send("note", "end")
        assert _notes_until_markers(inbox, [b.pid], "end") == {b.pid: ["end"]}


def test_server_request_fails_at_once_when_its_client_is_killed(
    spawn_ctx: Any, sock_dir: str, channel: str
) -> None:
    with _two_clients(spawn_ctx, sock_dir, channel) as (server, a, b, _inbox):
        known = _by_pid(server)
        hanging = server.request("hang", None, timeout=60, to=known[a.pid])
        other = server.request("whoami", timeout=60, to=known[b.pid])
        assert other.result(timeout=WAIT) == b.pid
        assert not hanging.done()
        rp.kill(a)
        assert isinstance(hanging.exception(timeout=WAIT), NotConnectedError)
        assert len(server._requests) == 0


# ----------------------------------------------------------- lifecycle hooks


class _Hooks:
    """Records on_connect / on_disconnect calls, with what ``peers`` said then."""

    def __init__(self, ev: UnixEvents) -> None:
        self.events: queue.Queue[Tuple[str, PeerInfo, bool]] = queue.Queue()
        ev.on_connect(lambda peer: self.events.put(("connect", peer, peer in ev.peers)))
        ev.on_disconnect(lambda peer: self.events.put(("disconnect", peer, peer in ev.peers)))

    def next(self) -> Tuple[str, PeerInfo, bool]:
        return self.events.get(timeout=WAIT)


def test_server_hooks_see_clients_come_and_go(spawn_ctx: Any, sock_dir: str, channel: str) -> None:
    server = UnixEvents(socket_dir=sock_dir)
    hooks = _Hooks(server)  # registered before init
    try:
        assert server.init_sync("server", channel)
        with rp.client_process(spawn_ctx, sock_dir, channel) as proc:
            kind, peer, listed = hooks.next()
            assert kind == "connect" and listed
            assert isinstance(peer, PeerInfo) and peer.pid == proc.pid
            assert server.peers == [peer]
            rp.kill(proc)
            kind, gone, listed = hooks.next()
            assert kind == "disconnect" and not listed
            assert gone == peer
            assert server.peers == []
    finally:
        server.close()
    assert hooks.events.empty()


def test_client_hooks_see_the_server_come_and_go(
    spawn_ctx: Any, sock_dir: str, channel: str
) -> None:
    try:
        with rp.server_process(spawn_ctx, sock_dir, channel) as proc:
            client = UnixEvents("client", channel, socket_dir=sock_dir, backoff_max=0.2)
            hooks = _Hooks(client)  # registered after the constructor started connecting
            try:
                kind, peer, listed = hooks.next()
                assert kind == "connect" and listed
                assert peer.pid == proc.pid
                assert client.peers == [peer]
                rp.kill(proc)
                kind, gone, listed = hooks.next()
                assert kind == "disconnect" and gone == peer and not listed
            finally:
                client.close()
    finally:
        rp.remove_left_files(sock_dir)


def test_every_hook_is_called_for_every_client(spawn_ctx: Any, sock_dir: str, channel: str) -> None:
    first: queue.Queue[PeerInfo] = queue.Queue()
    second: queue.Queue[PeerInfo] = queue.Queue()
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        server.on_connect(first.put)
        server.on_connect(second.put)
        with (
            rp.client_process(spawn_ctx, sock_dir, channel) as a,
            rp.client_process(spawn_ctx, sock_dir, channel) as b,
        ):
            for hook in (first, second):
                got = sorted([hook.get(timeout=WAIT), hook.get(timeout=WAIT)], key=_pid)
                assert [p.pid for p in got] == sorted([a.pid, b.pid])
                assert got == sorted(server.peers, key=_pid)


# ---------------------------------------------------------------- liveness


def test_peer_alive_until_killed_and_reaped(spawn_ctx: Any, sock_dir: str, channel: str) -> None:
    with (
        UnixEvents("server", channel, socket_dir=sock_dir) as server,
        rp.client_process(spawn_ctx, sock_dir, channel) as proc,
    ):
        wait_for(lambda: server.peers, WAIT)
        [peer] = server.peers
        assert server.peer_alive(peer)
        rp.kill(proc)  # killed and reaped
        assert not server.peer_alive(peer)
        # Still False once the server has noticed and forgotten the link.
        wait_for(lambda: server.peers == [], WAIT)
        assert not server.peer_alive(peer)


def test_client_sees_its_server_alive(spawn_ctx: Any, sock_dir: str, channel: str) -> None:
    with (
        rp.server_process(spawn_ctx, sock_dir, channel),
        UnixEvents("client", channel, socket_dir=sock_dir) as client,
    ):
        assert client.wait_connected(WAIT)
        [server] = client.peers
        assert client.peer_alive(server)
