"""Spec 1.3: order, reconnects, bounded queues."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any, List

import peers
import pytest
from conftest import wait_for

from unixevents import QueueFull, UnixEvents


def test_a_client_reconnects_and_delivers_what_was_queued_in_order(
    sock_dir: str, channel: str, spawn_ctx: Any, inbox: Any
) -> None:
    opts = {"backoff_initial": 0.02, "backoff_max": 0.2}
    box = inbox()
    with UnixEvents("client", channel, socket_dir=sock_dir, **opts) as client:
        for round_ in range(3):
            ready, stop = spawn_ctx.Event(), spawn_ctx.Event()
            server = spawn_ctx.Process(
                target=peers.forwarding_server, args=(channel, sock_dir, ready, box.sender, stop)
            )
            # Queue while no server runs: these must arrive once, in order.
            for i in range(100):
                client.send("n", [round_, i])
            server.start()
            assert ready.wait(30)
            got = [box.get(30) for _ in range(100)]
            assert got == [[round_, i] for i in range(100)]
            stop.set()
            server.join(30)
            assert server.exitcode == 0
            wait_for(lambda: not client.connected)


def test_a_killed_server_is_noticed_and_a_new_one_gets_the_queue(
    sock_dir: str, channel: str, spawn_ctx: Any, inbox: Any
) -> None:
    box = inbox()
    ready, stop = spawn_ctx.Event(), spawn_ctx.Event()
    first = spawn_ctx.Process(
        target=peers.forwarding_server, args=(channel, sock_dir, ready, box.sender, stop)
    )
    first.start()
    assert ready.wait(30)
    with UnixEvents("client", channel, socket_dir=sock_dir, backoff_max=0.2) as client:
        assert client.wait_connected(10)
        client.send("n", "before")
        assert box.get(30) == "before"
        os.kill(first.pid, signal.SIGKILL)
        first.join(30)
        wait_for(lambda: not client.connected)
        client.send("n", "while down")
        # A fresh Event: a multiprocessing Condition whose waiter was SIGKILLed
        # would block set() forever, waiting for the dead waiter to wake.
        ready2, stop2 = spawn_ctx.Event(), spawn_ctx.Event()
        second = spawn_ctx.Process(
            target=peers.forwarding_server, args=(channel, sock_dir, ready2, box.sender, stop2)
        )
        second.start()  # replaces the stale socket the killed server left
        assert ready2.wait(30)
        assert box.get(30) == "while down"
        stop2.set()
        second.join(30)


def test_without_reconnect_a_client_closes_when_its_server_goes(
    sock_dir: str, channel: str
) -> None:
    server = UnixEvents("server", channel, socket_dir=sock_dir)
    client = UnixEvents("client", channel, socket_dir=sock_dir, reconnect=False)
    assert client.wait_connected(10)
    assert not client.wait_closed(0.05)
    server.close()
    assert client.wait_closed(10)
    assert client.closed


def test_a_full_queue_reports_queue_full_and_drops_nothing_silently(
    sock_dir: str, channel: str
) -> None:
    # Not connected: everything queues. Three fit, the rest is refused loudly.
    client = UnixEvents("client", channel, socket_dir=sock_dir, max_pending=3)
    results: List[Any] = []
    lock = threading.Lock()

    def callback(err: Any, ok: bool) -> None:
        with lock:
            results.append(type(err).__name__ if err else ok)

    for i in range(5):
        client.send("n", i, callback)
    wait_for(lambda: results.count("QueueFull") == 2)
    got: List[Any] = []
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        server.receive("n", got.append)
        wait_for(lambda: len(got) == 3)
        assert got == [0, 1, 2]
        wait_for(lambda: results.count(True) == 3)
        client.close()


def test_send_sync_waits_for_room_instead_of_failing(sock_dir: str, channel: str) -> None:
    client = UnixEvents("client", channel, socket_dir=sock_dir, max_pending=2)
    got: List[Any] = []

    async def main() -> List[bool]:
        # Two fill the queue; the third waits until a server drains it.
        first = [asyncio.ensure_future(client.send_sync("n", i)) for i in range(2)]
        await asyncio.sleep(0)
        third = asyncio.ensure_future(client.send_sync("n", 2))
        done, _ = await asyncio.wait([third], timeout=0.3)
        assert not done, "send_sync returned while the queue was full"
        server = UnixEvents("server", channel, socket_dir=sock_dir)
        server.receive("n", got.append)
        try:
            return list(await asyncio.wait_for(asyncio.gather(*first, third), 20))
        finally:
            await asyncio.get_running_loop().run_in_executor(None, server.close)

    try:
        assert asyncio.run(main()) == [True, True, True]
    finally:
        client.close()


def test_a_stalled_reader_bounds_the_sender(sock_dir: str, channel: str) -> None:
    """A peer that stops reading: the sender's queue stops at max_pending."""
    with UnixEvents("server", channel, socket_dir=sock_dir, max_pending=50) as server:
        client = UnixEvents("client", channel, socket_dir=sock_dir)
        assert client.wait_connected(10) and server.wait_connected(10)
        # The client's listener blocks, so the client stops reading once its
        # dispatcher queue and the kernel buffers hold what they can.
        release = threading.Event()
        client.receive("blob", lambda data: release.wait(30))
        refused = threading.Event()
        blob = "x" * 65536

        def callback(err: Any, ok: bool) -> None:
            if isinstance(err, QueueFull):
                refused.set()

        try:
            for _ in range(2000):
                server.send("blob", blob, callback)
                if refused.is_set():
                    break
            assert refused.wait(20)
            transport = server._transport
            assert transport is not None and transport.pending <= 50
        finally:
            release.set()
            client.close()


@pytest.mark.parametrize("count", [1, 5000])
def test_close_while_connected_flushes_everything(
    sock_dir: str, channel: str, spawn_ctx: Any, inbox: Any, count: int
) -> None:
    box = inbox()
    ready = spawn_ctx.Event()
    server = spawn_ctx.Process(
        target=peers.sink_server, args=(channel, sock_dir, ready, box.sender, count)
    )
    server.start()
    assert ready.wait(30)
    client = UnixEvents("client", channel, socket_dir=sock_dir)
    for i in range(count):
        client.send("n", i)
    client.close()  # flushes, even though we never waited to be connected
    assert box.get(30) == list(range(count))
    server.join(30)


@pytest.mark.parametrize("noticed_by", ["liveness", "write"])
def test_a_peer_that_exits_right_after_sending_loses_nothing(
    sock_dir: str, channel: str, spawn_ctx: Any, noticed_by: str
) -> None:
    """What a dead peer left in its socket is read before its link is dropped.

    A blocked listener makes the server stop reading (back-pressure), so the
    peer's last bytes and its EOF wait in the kernel while the peer exits.
    The server then notices the dead peer first either by its liveness check
    or by a write to it failing (EPIPE); both must read what is left first.
    """
    from unixevents._dispatch import PAUSE_BYTES

    size = 64 * 1024
    count = PAUSE_BYTES // size + 6  # past the pause: the rest waits in the kernel
    go, release, fin = spawn_ctx.Event(), threading.Event(), threading.Event()
    blobs: List[int] = []

    def on_hold(_: Any) -> None:
        go.set()  # the dispatcher is now stuck here while the blobs arrive
        release.wait(30)

    interval = 0.05 if noticed_by == "liveness" else 3600.0
    with UnixEvents("server", channel, socket_dir=sock_dir, liveness_interval=interval) as server:
        server.receive("hold", on_hold)
        server.receive("blob", lambda data: blobs.append(len(data)))
        server.receive("fin", lambda n: fin.set())
        proc = spawn_ctx.Process(
            target=peers.blobs_then_exit, args=(channel, sock_dir, count, size, go)
        )
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        if noticed_by == "write":
            # Keep writing until a write to the dead peer fails and drops it.
            deadline = time.monotonic() + 20
            while server.peers and time.monotonic() < deadline:
                server.send("poke", "x" * 65536)
                time.sleep(0.01)  # pacing only: the loop ends on the drop itself
        wait_for(lambda: not server.peers)  # the dead peer was noticed
        release.set()
        assert fin.wait(20)
        assert len(blobs) == count


def test_the_read_buffer_starts_small_and_grows_for_a_busy_link(
    sock_dir: str, channel: str
) -> None:
    """Each instance keeps its read buffer for life: small unless its links are busy."""
    from unixevents._transport import _RECV_SIZE, _RECV_START

    blob = "".join(chr(0x61 + i % 26) for i in range(200_000))
    got: List[str] = []
    done = threading.Event()
    with (
        UnixEvents("server", channel, socket_dir=sock_dir) as server,
        UnixEvents("client", channel, socket_dir=sock_dir) as client,
    ):
        transport = server._transport
        assert transport is not None and len(transport._rbuf) == _RECV_START
        server.receive("blob", got.append)
        server.receive("end", lambda _: done.set())
        assert client.wait_connected(10)
        for _ in range(5):
            client.send("blob", blob)
        client.send("end")
        assert done.wait(10)
        assert got == [blob] * 5  # intact across the growth
        assert len(transport._rbuf) == _RECV_SIZE
