"""Request / reply (SPEC 1.4): ``request()``, its errors, and its bookkeeping.

The answering side runs in another process (``tests/request_peers.py``)
wherever the behaviour is about processes; pure bookkeeping is checked in
one process. ``len(instance._requests)`` is the internal count of requests
still waiting for an answer: the one private name these tests read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from typing import Any, List

import pytest
import request_peers as rp
from conftest import wait_for

from unixevents import (
    MessageTooLarge,
    NoListener,
    NotConnectedError,
    RemoteError,
    RequestFuture,
    SerializationError,
    UnixEvents,
)
from unixevents._protocol import EVENT, REPLY, REQUEST

WAIT = 10.0  # generous: a noisy 2-core machine; the normal case takes milliseconds


@pytest.fixture
def client_of(sock_dir: str, channel: str) -> Any:
    """Make clients of ``channel`` and close them all when the test ends."""
    made: List[UnixEvents] = []

    def make(**options: Any) -> UnixEvents:
        ev = UnixEvents("client", channel, socket_dir=sock_dir, **options)
        made.append(ev)
        return ev

    yield make
    for ev in made:
        ev.close()


# ------------------------------------------------------------ answering


def test_first_listener_answers(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    with rp.server_process(spawn_ctx, sock_dir, channel):
        client = client_of()
        fut = client.request("add", [1, 2, 3])
        assert isinstance(fut, concurrent.futures.Future)
        assert isinstance(fut, RequestFuture)
        assert fut.result(timeout=WAIT) == 6
        assert client.request("two").result(timeout=WAIT) == "first"
        data = {"a": [1, 2.5, None, True, "é"], "b": {"c": (1, 2)}}
        assert client.request("echo", data).result(timeout=WAIT) == {
            "a": [1, 2.5, None, True, "é"],
            "b": {"c": [1, 2]},
        }
        assert len(client._requests) == 0


def test_request_before_connected_is_queued_and_answered(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    # No server exists yet: the request is certainly made before the connection.
    client = client_of(backoff_max=0.2)
    fut = client.request("add", [1, 2, 3])
    assert not client.connected
    assert client.peers == []
    assert not fut.done()
    with rp.server_process(spawn_ctx, sock_dir, channel):
        assert fut.result(timeout=WAIT) == 6
    assert len(client._requests) == 0


def test_await_request_in_asyncio(spawn_ctx: Any, sock_dir: str, channel: str) -> None:
    async def main() -> None:
        async with UnixEvents("client", channel, socket_dir=sock_dir) as client:
            total = await client.request("add", [4, 5])
            assert total == 9
            assert await client.request("async_add", [1, 2, 3]) == 6
            many = await asyncio.gather(*(client.request("echo", i) for i in range(50)))
            assert many == list(range(50))
            with pytest.raises(RemoteError, match="KeyError"):
                await client.request("async_fail", 7)
            assert len(client._requests) == 0

    with rp.server_process(spawn_ctx, sock_dir, channel):
        asyncio.run(asyncio.wait_for(main(), 30))


def test_coroutine_listener_answers_with_asyncio_run(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    # The child's server was made outside any event loop: asyncio.run path.
    with rp.server_process(spawn_ctx, sock_dir, channel):
        client = client_of()
        assert client.request("async_add", [4, 5]).result(timeout=WAIT) == 9
        error = client.request("async_fail", 3).exception(timeout=WAIT)
        assert isinstance(error, RemoteError)
        assert error.remote_type == "KeyError"
        assert "async boom 3" in str(error)


def test_coroutine_listener_runs_on_the_servers_loop(sock_dir: str, channel: str) -> None:
    ran_on: List[int] = []

    async def main() -> None:
        loop_thread = threading.get_ident()
        server = UnixEvents("server", channel, socket_dir=sock_dir)
        client = UnixEvents("client", channel, socket_dir=sock_dir)
        try:

            async def double(x: int) -> int:
                ran_on.append(threading.get_ident())
                await asyncio.sleep(0.01)
                return 2 * x

            server.receive("double", double)
            assert await client.request("double", 21, timeout=WAIT) == 42
            assert ran_on == [loop_thread]
        finally:
            client.close()
            server.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_receive_once_answers_one_request(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    with rp.server_process(spawn_ctx, sock_dir, channel, {"unclaimed_ttl": 0.3}):
        client = client_of()
        assert client.request("once", 1).result(timeout=WAIT) == "once:1"
        error = client.request("once", 2).exception(timeout=WAIT)
        assert isinstance(error, NoListener)


def test_plain_send_never_produces_a_reply(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    with rp.server_process(spawn_ctx, sock_dir, channel):
        client = client_of()
        kinds: List[int] = []
        deliver = client.on_messages

        def record(link: Any, msgs: List[List[Any]], *more: Any) -> Any:
            kinds.extend(msg[0] for msg in msgs)
            return deliver(link, msgs, *more)

        client.on_messages = record  # type: ignore[method-assign]
        for _ in range(5):
            client.send("add", [1, 2])  # the server's "add" listener returns 3
        # The server handles events in order: any reply to the sends would
        # arrive before the answer to this request.
        assert client.request("add", [2, 2]).result(timeout=WAIT) == 4
        assert kinds == [REPLY]
        assert EVENT not in kinds and REQUEST not in kinds


# --------------------------------------------------------------- errors


def test_remote_error_carries_type_and_traceback(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    with rp.server_process(spawn_ctx, sock_dir, channel):
        client = client_of()
        fut = client.request("fail", 42)
        with pytest.raises(RemoteError) as info:
            fut.result(timeout=WAIT)
        error = info.value
        text = str(error)
        assert "ValueError" in text
        assert "boom 42" in text
        assert "Traceback (most recent call last)" in text
        assert "request_peers.py" in text and "in fail" in text
        assert error.remote_type == "ValueError"
        assert "in fail" in error.remote_traceback
        # The channel keeps working after a failed request.
        assert client.request("add", [1]).result(timeout=WAIT) == 1


def test_reply_that_cannot_be_encoded_is_a_remote_serialization_error(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    with rp.server_process(spawn_ctx, sock_dir, channel):
        client = client_of()
        error = client.request("nonjson").exception(timeout=WAIT)
        assert isinstance(error, RemoteError)
        assert "SerializationError" in str(error)
        assert error.remote_type == "SerializationError"
        assert client.request("ping").result(timeout=WAIT) == "pong"


def test_no_listener_after_the_peers_unclaimed_ttl(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    ttl = 0.3
    with rp.server_process(spawn_ctx, sock_dir, channel, {"unclaimed_ttl": ttl}):
        client = client_of()
        assert client.wait_connected(WAIT)
        start = time.monotonic()
        fut = client.request("nobody-listens", 1, timeout=30)
        error = fut.exception(timeout=WAIT)
        elapsed = time.monotonic() - start
        assert isinstance(error, NoListener)
        assert "nobody-listens" in str(error)
        assert elapsed >= ttl * 0.9, "NoListener came before the peer's unclaimed_ttl"
        assert len(client._requests) == 0


def test_held_request_is_answered_by_a_listener_registered_in_time(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    with rp.server_process(spawn_ctx, sock_dir, channel):  # default unclaimed_ttl: 5 s
        client = client_of()
        fut = client.request("late", 5)
        client.send("install-late")  # the server registers "late" only now
        assert fut.result(timeout=WAIT) == 50


def test_timeout_then_late_reply_is_dropped(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    gate = spawn_ctx.Event()
    with rp.server_process(spawn_ctx, sock_dir, channel, gate=gate):
        client = client_of()
        assert client.wait_connected(WAIT)
        start = time.monotonic()
        fut = client.request("slow", "late", timeout=0.3)
        error = fut.exception(timeout=WAIT)
        elapsed = time.monotonic() - start
        assert type(error) is TimeoutError  # the built-in one, on every Python
        assert "slow" in str(error)
        assert 0.3 <= elapsed < 5.0
        assert len(client._requests) == 0
        gate.set()  # now the server answers, too late
        # Answers come in order: the late reply has arrived before this one.
        assert client.request("ping").result(timeout=WAIT) == "pong"
        assert len(client._requests) == 0
        assert type(fut.exception()) is TimeoutError  # the late reply changed nothing


def test_many_timeouts_leave_nothing_pending(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    gate = spawn_ctx.Event()
    with rp.server_process(spawn_ctx, sock_dir, channel, gate=gate):
        client = client_of()
        assert client.wait_connected(WAIT)
        futs = [client.request("slow", i, timeout=0.2 + i * 0.01) for i in range(50)]
        answered = client.request("add", [1, 1], timeout=30)  # queued behind the slow ones
        _done, not_done = concurrent.futures.wait(futs, timeout=WAIT)
        assert not not_done
        assert all(type(f.exception()) is TimeoutError for f in futs)
        assert len(client._requests) == 1  # only the one with a long timeout
        gate.set()
        assert answered.result(timeout=WAIT) == 2
        assert client.request("ping", timeout=5).result(timeout=WAIT) == "pong"
        assert len(client._requests) == 0


def test_connection_lost_fails_the_request_at_once(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    gate, entered = spawn_ctx.Event(), spawn_ctx.Event()  # gate never set: no answer
    try:
        with rp.server_process(spawn_ctx, sock_dir, channel, gate=gate, entered=entered) as proc:
            client = client_of(backoff_max=0.2)
            fut = client.request("slow", 1, timeout=60)
            assert entered.wait(WAIT), "the request did not reach the server"
            assert not fut.done()
            start = time.monotonic()
            rp.kill(proc)
            error = fut.exception(timeout=WAIT)
            assert time.monotonic() - start < 5.0  # not the 60 s timeout
            assert isinstance(error, NotConnectedError)
            assert len(client._requests) == 0
        # Disconnected now: a new request waits for the next server.
        again = client.request("add", [2, 3], timeout=30)
        assert not again.done()
        with rp.server_process(spawn_ctx, sock_dir, channel):
            assert again.result(timeout=WAIT) == 5
        client.close()
    finally:
        rp.remove_left_files(sock_dir)


def test_close_fails_waiting_requests(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    gate, entered = spawn_ctx.Event(), spawn_ctx.Event()
    with rp.server_process(spawn_ctx, sock_dir, channel, gate=gate, entered=entered):
        try:
            client = client_of()
            fut = client.request("slow", 1)
            assert entered.wait(WAIT), "the request did not reach the server"
            client.close()
            assert isinstance(fut.exception(timeout=WAIT), NotConnectedError)
            assert len(client._requests) == 0
        finally:
            gate.set()


def test_request_after_close_is_not_connected(sock_dir: str, channel: str) -> None:
    server = UnixEvents("server", channel, socket_dir=sock_dir)
    client = UnixEvents("client", channel, socket_dir=sock_dir)
    server.receive("ping", lambda _: "pong")
    assert client.request("ping").result(timeout=WAIT) == "pong"
    assert server.wait_connected(WAIT)
    server.close()
    client.close()
    for ev in (client, server):
        error = ev.request("ping").exception(timeout=WAIT)
        assert isinstance(error, NotConnectedError)
        assert len(ev._requests) == 0


def test_request_before_init_is_not_connected() -> None:
    ev = UnixEvents()
    error = ev.request("ping").exception(timeout=WAIT)
    assert isinstance(error, NotConnectedError)
    assert "init" in str(error)


def test_request_argument_errors(sock_dir: str, channel: str) -> None:
    with (
        UnixEvents("server", channel, socket_dir=sock_dir, max_message_size=900) as server,
        UnixEvents("client", channel, socket_dir=sock_dir, max_message_size=1000) as client,
    ):
        server.receive("echo", lambda data: data)
        with pytest.raises(SerializationError):
            client.request("echo", {1, 2})
        with pytest.raises(TypeError):
            client.request(b"echo", 1)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            client.request("echo", 1, timeout=0)
        with pytest.raises(MessageTooLarge):
            client.request("echo", "x" * 5000)
        assert len(client._requests) == 0
        assert client.request("echo", 1).result(timeout=WAIT) == 1
        # A reply too large for the answering side is that side's error.
        error = client.request("echo", "y" * 900).exception(timeout=WAIT)
        assert isinstance(error, RemoteError)
        assert error.remote_type == "MessageTooLarge"
        assert client.request("echo", 2).result(timeout=WAIT) == 2


# ------------------------------------------------------------ concurrency


def test_1000_concurrent_requests_from_8_threads(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    n_threads, per_thread = 8, 125
    with rp.server_process(spawn_ctx, sock_dir, channel):
        client = client_of()
        assert client.wait_connected(WAIT)
        start = threading.Barrier(n_threads)
        futures: List[List[Any]] = [[] for _ in range(n_threads)]

        def caller(t: int) -> None:
            start.wait(WAIT)
            # All in flight at once: ask everything first, collect afterwards.
            futures[t] = [
                (i, client.request("echo", {"t": t, "i": i}, timeout=30)) for i in range(per_thread)
            ]

        threads = [threading.Thread(target=caller, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(WAIT * 3)
        assert not any(th.is_alive() for th in threads)
        for t in range(n_threads):
            assert len(futures[t]) == per_thread
            for i, fut in futures[t]:
                assert fut.result(timeout=WAIT) == {"t": t, "i": i}
        assert len(client._requests) == 0


def test_request_from_inside_a_listener_does_not_deadlock(
    spawn_ctx: Any, sock_dir: str, channel: str, client_of: Any
) -> None:
    # client -> server "outer"; the server's listener asks the client "inner"
    # and waits for it before answering.
    with rp.server_process(spawn_ctx, sock_dir, channel):
        client = client_of()
        client.receive("inner", lambda x: x * 2)
        assert client.request("outer", 20, timeout=20).result(timeout=WAIT * 2) == 41
        futs = [client.request("outer", i, timeout=20) for i in range(10)]
        assert [f.result(timeout=WAIT * 2) for f in futs] == [2 * i + 1 for i in range(10)]


def test_listener_in_this_process_may_request_and_wait(sock_dir: str, channel: str) -> None:
    # Both ends here: the client's listener (on its dispatcher thread) asks
    # the server and waits, while the server's request to it is pending.
    with (
        UnixEvents("server", channel, socket_dir=sock_dir) as server,
        UnixEvents("client", channel, socket_dir=sock_dir) as client,
    ):
        server.receive("base", lambda x: x + 100)
        client.receive("compute", lambda x: client.request("base", x).result(timeout=WAIT) * 2)
        assert client.wait_connected(WAIT) and server.wait_connected(WAIT)
        assert server.request("compute", 1, timeout=20).result(timeout=WAIT * 2) == 202


@pytest.mark.parametrize("request_after_pause", [False, True])
def test_a_listener_waiting_on_a_request_gets_the_reply_behind_a_backlog(
    sock_dir: str, channel: str, request_after_pause: bool
) -> None:
    """Reads pause once 16 MiB wait for listeners; a reply behind them is still read.

    Otherwise a listener blocked on that reply holds up the backlog that
    keeps the reply unread: it waits until its time-out, or for ever. The
    reply is written after the whole flood, and the request goes out either
    before reading pauses or after.
    """
    from unixevents._dispatch import PAUSE_BYTES

    size = 64 * 1024
    count = PAUSE_BYTES // size + 64  # 20 MiB: past the pause and the socket buffers
    started, flood_queued, done = threading.Event(), threading.Event(), threading.Event()
    answers: List[int] = []
    blobs: List[int] = []

    def ask(n: int) -> int:
        assert flood_queued.wait(WAIT)  # so the reply is queued behind every blob
        return n + 1

    with (
        UnixEvents("server", channel, socket_dir=sock_dir) as server,
        UnixEvents("client", channel, socket_dir=sock_dir) as client,
    ):

        def on_first(_: Any) -> None:
            started.set()
            if request_after_pause:
                transport = client._transport
                assert transport is not None
                wait_for(lambda: transport._paused, timeout=WAIT)
            answers.append(client.request("ask", 1, timeout=WAIT).result(WAIT))

        server.receive("ask", ask)
        client.receive("first", on_first)
        client.receive("blob", lambda data: blobs.append(len(data)))
        client.receive("last", lambda _: done.set())
        assert client.wait_connected(WAIT) and server.wait_connected(WAIT)
        server.send("first")
        assert started.wait(WAIT)  # the client's listeners are held from here on
        blob = "x" * size
        for _ in range(count):
            server.send("blob", blob)
        server.send("last")
        flood_queued.set()
        assert done.wait(WAIT * 3)
    assert answers == [2]
    assert len(blobs) == count


def test_no_listener_answers_while_sending_with_callbacks(spawn_ctx: Any, sock_dir: str) -> None:
    # In a child: a deadlock there cannot hang this process or leak threads here.
    parent_end, child_end = spawn_ctx.Pipe(duplex=False)
    try:
        with rp.running(
            spawn_ctx, rp.no_listener_while_a_sender_holds_the_transport, sock_dir, child_end
        ) as proc:
            child_end.close()
            reported = parent_end.poll(8)
            if not reported:
                proc.kill()  # its threads wait for each other: nothing else ends it
            assert reported, "deadlock: no report from the child within 8 s"
            assert parent_end.recv()[0] == "ok"
    finally:
        parent_end.close()
        for name in os.listdir(sock_dir):
            path = os.path.join(sock_dir, name)
            for leftover in os.listdir(path):
                os.unlink(os.path.join(path, leftover))
            os.rmdir(path)


def test_request_racing_a_disconnect_fails_at_once(sock_dir: str, channel: str) -> None:
    # Make the race certain: the client leaves after request() chose its link
    # and before it queues the message. (Once, the message went onto the dead
    # link's queue: the future never settled and transport.pending leaked.)
    server = UnixEvents("server", channel, socket_dir=sock_dir)
    client = UnixEvents("client", channel, socket_dir=sock_dir)
    gone = threading.Event()
    server.on_disconnect(lambda _peer: gone.set())
    add = server._requests.add

    def add_after_the_client_left(*args: Any) -> Any:
        client.close()
        assert gone.wait(WAIT)
        return add(*args)

    try:
        client.receive("x", lambda data: data)
        assert client.wait_connected(WAIT) and server.wait_connected(WAIT)
        [peer] = server.peers
        server._requests.add = add_after_the_client_left  # type: ignore[method-assign]
        fut = server.request("x", 1, to=peer)
        server._requests.add = add  # type: ignore[method-assign]
        done, _ = concurrent.futures.wait([fut], timeout=3)
        assert done, "the request neither failed nor was answered"
        assert isinstance(fut.exception(), NotConnectedError)
        assert len(server._requests) == 0
        assert server._transport is not None and server._transport.pending == 0
    finally:
        client.close()
        server.close(timeout=0.5)


def test_cancelling_a_request_forgets_it(sock_dir: str, channel: str) -> None:
    with (
        UnixEvents("server", channel, socket_dir=sock_dir) as server,
        UnixEvents("client", channel, socket_dir=sock_dir) as client,
    ):
        release = threading.Event()
        server.receive("slow", lambda data: release.wait(10) and data)
        future = client.request("slow", 1)
        assert future.cancel()
        assert len(client._requests) == 0
        release.set()
        # The late reply finds nobody waiting and is dropped; the channel goes on.
        server.receive("fast", lambda data: data)
        assert client.request("fast", 2).result(10) == 2


def test_asyncio_cancelling_an_awaited_request_forgets_it(sock_dir: str, channel: str) -> None:
    async def main() -> int:
        with (
            UnixEvents("server", channel, socket_dir=sock_dir) as server,
            UnixEvents("client", channel, socket_dir=sock_dir) as client,
        ):
            release = threading.Event()
            server.receive("slow", lambda data: release.wait(10))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.request("slow", 1), 0.2)
            pending = len(client._requests)
            release.set()
            return pending

    assert asyncio.run(main()) == 0
