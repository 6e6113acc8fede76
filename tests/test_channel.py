"""Spec 1 and 1.1: the channel's API, payloads and errors."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, List

import peers
import pytest

import unixevents
from unixevents import (
    Linker,
    MessageTooLarge,
    NotConnectedError,
    SerializationError,
    UnixEvents,
    UnixEventsError,
)


class Collector:
    """A listener that records what it gets and lets a test wait for a count."""

    def __init__(self) -> None:
        self.items: List[Any] = []
        self._cond = threading.Condition()

    def __call__(self, data: Any) -> None:
        with self._cond:
            self.items.append(data)
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> List[Any]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= count, timeout), (
                f"got {len(self.items)} of {count}: {self.items[:5]}"
            )
            return list(self.items)


@pytest.fixture
def pair(sock_dir: str, channel: str) -> Any:
    server = UnixEvents("server", channel, socket_dir=sock_dir)
    client = UnixEvents("client", channel, socket_dir=sock_dir)
    assert client.wait_connected(10) and server.wait_connected(10)
    yield server, client
    client.close()
    server.close()


def test_linker_is_the_same_class() -> None:
    assert Linker is UnixEvents
    assert UnixEvents.__module__ == "unixevents"


def test_events_flow_both_ways(pair: Any) -> None:
    server, client = pair
    at_server, at_client = Collector(), Collector()
    server.receive("up", at_server)
    client.receive("down", at_client)
    client.send("up", {"n": 1})
    server.send("down", [1, "two", None])
    assert at_server.wait(1) == [{"n": 1}]
    assert at_client.wait(1) == [[1, "two", None]]


@pytest.mark.parametrize("server_first", [True, False], ids=["server-first", "client-first"])
def test_two_processes_in_either_start_order(
    sock_dir: str, channel: str, spawn_ctx: Any, inbox: Any, server_first: bool
) -> None:
    connected, ready = spawn_ctx.Event(), spawn_ctx.Event()
    box = inbox()
    client = spawn_ctx.Process(
        target=peers.counting_client, args=(channel, sock_dir, 50, connected, {})
    )
    server = spawn_ctx.Process(
        target=peers.sink_server, args=(channel, sock_dir, ready, box.sender, 50)
    )
    first, second = (server, client) if server_first else (client, server)
    first.start()
    second.start()
    assert box.get(30) == list(range(50))
    for proc in (first, second):
        proc.join(30)
        assert proc.exitcode == 0


def test_async_init_and_coroutine_listeners(sock_dir: str, channel: str) -> None:
    async def main() -> List[Any]:
        server = UnixEvents(socket_dir=sock_dir)
        client = UnixEvents(socket_dir=sock_dir)
        got: asyncio.Queue[Any] = asyncio.Queue()

        async def on_hi(data: Any) -> None:
            # Runs on this loop: asyncio objects are safe to touch here.
            await got.put((data, asyncio.get_running_loop()))

        server.receive("hi", on_hi)
        assert await server.init("server", channel)
        assert await client.init("client", channel, timeout=10)
        assert client.connected
        assert await client.send_sync("hi", 1)
        data, loop = await asyncio.wait_for(got.get(), 10)
        assert loop is asyncio.get_running_loop()
        async with client, server:
            pass
        return [data, client.closed, server.closed]

    assert asyncio.run(main()) == [1, True, True]


def test_a_coroutine_listener_without_a_loop_runs_with_asyncio_run(pair: Any) -> None:
    server, client = pair
    got = Collector()

    async def on_x(data: Any) -> None:
        await asyncio.sleep(0)
        got(data)

    server.receive("x", on_x)
    client.send("x", "y")
    assert got.wait(1) == ["y"]


def test_init_sync_times_out_with_a_warning(
    sock_dir: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = UnixEvents(socket_dir=sock_dir)
    try:
        assert client.init_sync("client", channel, timeout=0.3) is False
        assert not client.connected
    finally:
        client.close()
    assert any(
        r.levelno == logging.WARNING and "could not connect" in r.getMessage()
        for r in caplog.records
    )


def test_receive_once_and_remove_receiver(pair: Any) -> None:
    server, client = pair
    once, every, gone = Collector(), Collector(), Collector()
    server.receive_once("e", once)
    server.receive("e", every)
    server.receive("e", gone)
    server.remove_receiver("e", gone)
    for i in range(3):
        client.send("e", i)
    assert every.wait(3) == [0, 1, 2]
    assert once.items == [0] and gone.items == []
    server.remove_receiver("e")
    client.send("e", 3)
    client.send("f", 4)
    server.receive("f", every)
    assert every.wait(4)[-1] == 4
    assert 3 not in every.items


def test_listeners_registered_before_init_are_kept(sock_dir: str, channel: str) -> None:
    server = UnixEvents(socket_dir=sock_dir)
    got = Collector()
    server.receive("e", got)
    server.init_sync("server", channel)
    with server, UnixEvents("client", channel, socket_dir=sock_dir) as client:
        client.send("e", 1)
        assert got.wait(1) == [1]


def test_a_listener_that_raises_is_logged_and_delivery_goes_on(
    pair: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server, client = pair
    got = Collector()

    def boom(data: Any) -> None:
        raise RuntimeError(f"boom {data}")

    server.receive("e", boom)
    server.receive("e", got)
    client.send("e", 1)
    client.send("e", 2)
    assert got.wait(2) == [1, 2]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(errors) == 2 and "boom 1" in str(errors[0].exc_info[1])


def test_events_sent_before_the_listener_exists_are_held_then_delivered_in_order(
    sock_dir: str, channel: str
) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir, unclaimed_ttl=30) as server:
        flushed = threading.Event()
        with UnixEvents("client", channel, socket_dir=sock_dir) as client:
            for i in range(5):
                client.send("early", i)
            client.send("marker", None, lambda err, ok: flushed.set())
            assert flushed.wait(10)
            server.receive("marker", lambda data: None)  # marker arrives after 0..4
            got = Collector()
            server.receive("early", got)
            client.send("early", 5)
            assert got.wait(6) == [0, 1, 2, 3, 4, 5]


def test_held_events_expire_after_the_ttl(pair: Any, sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel + "x", socket_dir=sock_dir, unclaimed_ttl=0.2) as server:
        with UnixEvents("client", channel + "x", socket_dir=sock_dir) as client:
            seen = Collector()
            server.receive("probe", seen)
            client.send("late", 1)
            client.send("probe", 1)
            seen.wait(1)
            dispatcher = server._dispatcher
            assert dispatcher is not None
            # The dispatcher drops it on its own once the TTL has passed.
            _wait(lambda: dispatcher.unclaimed_count == 0)
            got = Collector()
            server.receive("late", got)
            client.send("late", 2)
            assert got.wait(1) == [2]


def test_at_most_max_unclaimed_events_are_held(sock_dir: str, channel: str) -> None:
    with (
        UnixEvents(
            "server", channel, socket_dir=sock_dir, max_unclaimed=3, unclaimed_ttl=30
        ) as server,
        UnixEvents("client", channel, socket_dir=sock_dir) as client,
    ):
        seen = Collector()
        server.receive("probe", seen)
        for i in range(10):
            client.send("held", i)
        client.send("probe", 1)
        seen.wait(1)
        got = Collector()
        server.receive("held", got)
        assert got.wait(3) == [0, 1, 2]
        client.send("probe", 2)
        seen.wait(2)
        assert got.items == [0, 1, 2]


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    from conftest import wait_for

    wait_for(predicate, timeout)


def test_send_callbacks_report_success_once(pair: Any) -> None:
    _, client = pair
    results: List[Any] = []
    done = threading.Event()

    def callback(err: Any, ok: bool) -> None:
        results.append((err, ok))
        done.set()

    client.send("e", 1, callback)
    assert done.wait(10)
    assert results == [(None, True)]


def test_a_server_with_no_client_reports_not_connected(sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        got: List[Any] = []
        done = threading.Event()
        server.send("e", 1, lambda err, ok: (got.append((err, ok)), done.set()))
        assert done.wait(10)
        [(err, ok)] = got
        assert ok is False and isinstance(err, NotConnectedError)
        assert "wait_connected" in str(err)


def test_a_server_broadcasts_to_every_client(sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        clients = [UnixEvents("client", channel, socket_dir=sock_dir) for _ in range(3)]
        try:
            got = [Collector() for _ in clients]
            for client, collector in zip(clients, got):
                client.receive("all", collector)
                assert client.wait_connected(10)
            _wait(lambda: len(server.peers) == 3)
            done = threading.Event()
            server.send("all", "hi", lambda err, ok: ok and done.set())
            assert done.wait(10)
            for collector in got:
                assert collector.wait(1) == ["hi"]
        finally:
            for client in clients:
                client.close()


def test_bad_payloads_raise_at_the_sender_and_send_nothing(pair: Any) -> None:
    server, client = pair
    got = Collector()
    server.receive("e", got)
    for bad in (float("nan"), {1: 2}, {"x": {3, 4}}, b"bytes"):
        with pytest.raises(SerializationError):
            client.send("e", bad)
        with pytest.raises(TypeError):
            client.send("e", bad)
    client.send("e", "fine")
    assert got.wait(1) == ["fine"]


def test_send_sync_raises_serialization_errors_too(pair: Any) -> None:
    _, client = pair
    with pytest.raises(SerializationError):
        asyncio.run(client.send_sync("e", object()))


def test_messages_over_max_message_size(sock_dir: str, channel: str) -> None:
    with (
        UnixEvents("server", channel, socket_dir=sock_dir, max_message_size=10_000) as server,
        UnixEvents("client", channel, socket_dir=sock_dir, max_message_size=1_000_000) as client,
    ):
        with pytest.raises(MessageTooLarge, match="max_message_size"):
            server.send("e", "x" * 20_000)
        lost = threading.Event()
        server.on_disconnect(lambda peer: lost.set())
        assert client.wait_connected(10)
        # The client may send it, but the server does not obey a frame that large.
        client.send("e", "x" * 20_000)
        assert lost.wait(10)


def test_large_payloads_arrive_whole(pair: Any) -> None:
    server, client = pair
    got = Collector()
    server.receive("big", got)
    blob = "é" * (3 * 1024 * 1024)
    client.send("big", blob)
    client.send("big", {"k": blob[:1000]})
    assert got.wait(2) == [blob, {"k": blob[:1000]}]


def test_dill_carries_python_objects(sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir, serializer="dill") as server:
        with UnixEvents("client", channel, socket_dir=sock_dir, serializer="dill") as client:
            got = Collector()
            server.receive("obj", got)
            client.send("obj", {1: {2, 3}, "f": lambda x: x * 2})
            [value] = got.wait(1)
            assert value[1] == {2, 3} and value["f"](4) == 8


def test_per_sender_order_with_many_threads(pair: Any) -> None:
    server, client = pair
    got = Collector()
    server.receive("n", got)

    def sender(tag: int) -> None:
        for i in range(2000):
            client.send("n", [tag, i])

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    items = got.wait(8000, timeout=30)
    for tag in range(4):
        assert [i for t, i in items if t == tag] == list(range(2000))


def test_argument_mistakes(sock_dir: str) -> None:
    with pytest.raises(ValueError, match="role"):
        UnixEvents("master", "x", socket_dir=sock_dir)
    with pytest.raises(ValueError, match="both"):
        UnixEvents("server")
    with pytest.raises(TypeError, match="unknown option"):
        UnixEvents(max_pendingg=3)
    with pytest.raises(ValueError, match="protocol"):
        UnixEvents(protocol="zmq")
    with pytest.raises(ValueError, match="serializer"):
        UnixEvents(serializer="pickle")
    with pytest.raises(ValueError, match="max_pending"):
        UnixEvents(max_pending=0)
    ev = UnixEvents()
    with pytest.raises(TypeError):
        ev.send(5, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ev.receive("e", "not callable")  # type: ignore[arg-type]
    ev.close()


def test_introspection(pair: Any, sock_dir: str, channel: str) -> None:
    server, client = pair
    assert (server.role, client.role) == ("server", "client")
    assert server.channel == client.channel == channel
    assert server.address == client.address == f"{sock_dir}/{channel}.sock"
    assert server.connected and client.connected
    assert repr(client).startswith("<UnixEvents client")
    uninitialised = UnixEvents()
    assert (uninitialised.role, uninitialised.channel, uninitialised.address) == (None, None, None)
    assert not uninitialised.connected and uninitialised.peers == []
    uninitialised.close()


def test_close_is_idempotent_and_flushes(sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        got = Collector()
        server.receive("n", got)
        client = UnixEvents("client", channel, socket_dir=sock_dir)
        assert client.wait_connected(10)
        for i in range(10_000):
            client.send("n", i)
        client.close()
        client.close()
        assert client.wait_closed(0)
        assert got.wait(10_000, timeout=30) == list(range(10_000))


def test_after_close_sends_fail(pair: Any) -> None:
    _, client = pair
    client.close()
    got: List[Any] = []
    done = threading.Event()
    client.send("e", 1, lambda err, ok: (got.append((err, ok)), done.set()))
    assert done.wait(10)
    assert got[0][1] is False and isinstance(got[0][0], NotConnectedError)
    assert asyncio.run(client.send_sync("e", 1)) is False
    with pytest.raises(UnixEventsError):
        client.init_sync("client", "other")


def test_close_while_sending_reports_every_message(sock_dir: str, channel: str) -> None:
    """Messages that close() could not flush get an error callback, none is silent."""
    with UnixEvents("server", channel, socket_dir=sock_dir):
        client = UnixEvents("client", channel + "-nobody", socket_dir=sock_dir)
        outcomes: List[bool] = []
        lock = threading.Lock()

        def callback(err: Any, ok: bool) -> None:
            with lock:
                outcomes.append(ok)

        for i in range(100):
            client.send("e", i, callback)
        client.close(timeout=0.2)
        assert client.wait_closed(10)
        _wait(lambda: len(outcomes) == 100)
        assert outcomes == [False] * 100


def test_debug_logs_the_lifecycle_and_each_event(
    sock_dir: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir, debug=True) as server:
        got = Collector()
        server.receive("e", got)
        with UnixEvents("client", channel, socket_dir=sock_dir) as client:
            client.enable_debug()
            client.send("e", 1)
            got.wait(1)
            client.disable_debug()
            client.send("e", 2)
            got.wait(2)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("listening on" in m for m in messages)
    assert any("connected to" in m for m in messages)
    assert any(m.startswith("received 'e'") for m in messages)
    assert sum(m.startswith("sent 'e'") for m in messages) == 1
    assert all(r.name.startswith("unixevents") for r in caplog.records)


def test_nothing_prints(sock_dir: str, channel: str, capfd: pytest.CaptureFixture[str]) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir, debug=True) as server:
        server.send("e", 1)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_public_names_are_exported_once() -> None:
    assert sorted(unixevents.__all__) == sorted(set(unixevents.__all__))
    for name in unixevents.__all__:
        assert getattr(unixevents, name) is not None
    import unixevents.errors as errors

    for name in errors.__all__:
        assert getattr(unixevents, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.UnixEventsError)


def test_enable_debug_before_init_touches_only_this_instance(sock_dir: str, channel: str) -> None:
    import logging as logging_

    shared = logging_.getLogger("unixevents")
    level = shared.level
    ev = UnixEvents(socket_dir=sock_dir)
    ev.enable_debug()
    assert shared.level == level
    ev.init_sync("server", channel)
    try:
        assert logging_.getLogger(f"unixevents.server.{channel}").level == logging_.DEBUG
    finally:
        ev.close()
    assert shared.level == level


def test_on_connect_registered_after_connecting_still_hears_of_it_once(pair: Any) -> None:
    server, client = pair
    seen = Collector()
    client.on_connect(seen)
    server.on_connect(seen)
    peers = seen.wait(2)
    assert sorted(p.pid for p in peers) == sorted([client.peers[0].pid, server.peers[0].pid])
    # Only once: a marker through the dispatchers proves nothing else was queued.
    done = threading.Event()
    client.send("marker", None, lambda err, ok: done.set())
    assert done.wait(10)
    assert len(seen.items) == 2
