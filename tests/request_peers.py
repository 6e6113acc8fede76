"""Peer processes for the request/reply and peer tests.

Every function here is the ``target`` of a ``spawn`` child, so it lives at
module level where the child can import it. The parent coordinates with
multiprocessing events, queues and pipes; a child never outlives ``stop``
(or, at the latest, its own ``lifetime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

from unixevents import NoListener, UnixEvents

LIFETIME = 60.0  # a child ends by itself after this long, whatever the parent does


def serve(
    sock_dir: str,
    channel: str,
    ready: Any,
    stop: Any,
    options: Optional[Dict[str, Any]] = None,
    gate: Any = None,
    entered: Any = None,
) -> None:
    """A server answering a fixed set of requests until ``stop`` is set.

    ``slow`` sets ``entered`` and waits for ``gate`` before answering (the
    one dispatcher thread answers nothing else meanwhile); ``outer`` asks the client's
    ``inner`` listener from inside a listener; ``install-late`` (an event)
    registers a listener for ``late`` only when it arrives.
    """
    ev = UnixEvents("server", channel, socket_dir=sock_dir, **(options or {}))

    def fail(data: Any) -> Any:
        raise ValueError(f"boom {data}")

    async def async_add(xs: List[int]) -> int:
        await asyncio.sleep(0.01)
        return sum(xs)

    async def async_fail(data: Any) -> Any:
        await asyncio.sleep(0)
        raise KeyError(f"async boom {data}")

    def slow(data: Any) -> Any:
        if entered is not None:
            entered.set()
        gate.wait(LIFETIME)
        return data

    def outer(data: int) -> int:
        inner = ev.request("inner", data, timeout=20).result(timeout=30)
        return inner + 1

    ev.receive("add", lambda xs: sum(xs))
    ev.receive("echo", lambda data: data)
    ev.receive("ping", lambda _: "pong")
    ev.receive("fail", fail)
    ev.receive("nonjson", lambda _: {1, 2, 3})
    ev.receive("async_add", async_add)
    ev.receive("async_fail", async_fail)
    ev.receive("whoami", lambda _: os.getpid())
    ev.receive("slow", slow)
    ev.receive("outer", outer)
    ev.receive_once("once", lambda data: f"once:{data}")
    # Two listeners: the first registered answers the request.
    ev.receive("two", lambda _: "first")
    ev.receive("two", lambda _: "second")
    ev.receive("install-late", lambda _: ev.receive("late", lambda x: x * 10))
    ready.set()
    stop.wait(LIFETIME)
    ev.close()


def client(
    sock_dir: str,
    channel: str,
    ready: Any,
    stop: Any,
    inbox: Any = None,
) -> None:
    """A client that answers ``whoami`` with its pid and reports ``note`` events.

    Each ``note`` goes to ``inbox`` as ``(pid, data)``; ``hang`` never answers
    (until ``stop``), for tests that kill a client in the middle of a request.
    """
    ev = UnixEvents("client", channel, socket_dir=sock_dir)
    me = os.getpid()
    ev.receive("whoami", lambda _: me)
    ev.receive("hang", lambda _: stop.wait(LIFETIME))
    if inbox is not None:
        ev.receive("note", lambda data: inbox.put((me, data)))
    if ev.wait_connected(30):
        ready.set()
    stop.wait(LIFETIME)
    ev.close()


def no_listener_while_a_sender_holds_the_transport(base_dir: str, report: Any) -> None:
    """The interleaving of a NoListener answer with a send callback, made certain.

    A thread holding the transport lock may hand work to the dispatcher (a
    sender reporting written callbacks did, once), so the dispatcher must
    never hold its own lock while it waits for the transport's to answer.
    This thread holds the transport lock until the dispatcher has expired a
    held request (and so wants to answer NoListener), then hands it a
    callback. Reports
    ``("ok", 0)`` through the pipe ``report`` when both went on; when they
    wait for each other this child never reports, and the parent kills it.
    """
    sock_dir = tempfile.mkdtemp(dir=base_dir)
    server = UnixEvents("server", "load", socket_dir=sock_dir, unclaimed_ttl=0.2)
    peer = UnixEvents("client", "load", socket_dir=sock_dir)
    dispatcher, transport = server._dispatcher, server._transport
    assert dispatcher is not None and transport is not None
    fut = peer.request("nobody", 1, timeout=20)
    deadline = time.monotonic() + 20
    while dispatcher.unclaimed_count == 0 and time.monotonic() < deadline:
        time.sleep(0.005)  # until the server holds the request
    with transport.lock:
        while dispatcher.unclaimed_count > 0 and time.monotonic() < deadline:
            time.sleep(0.005)  # until its unclaimed_ttl expires it
        called = threading.Event()
        dispatcher.call(called.set)  # what on_tokens does for a send callback
    ok = called.wait(10) and isinstance(fut.exception(timeout=10), NoListener)
    peer.close()
    server.close()
    shutil.rmtree(sock_dir, ignore_errors=True)
    report.send(("ok" if ok else "failed", 0))
    report.close()


# ------------------------------------------------------------- parent side


@contextlib.contextmanager
def running(ctx: Any, target: Any, *args: Any, stop: Any = None) -> Iterator[Any]:
    """Run ``target(*args)`` in a child; on exit set ``stop`` and reap the child.

    A child that does not end within 15 s is terminated, then killed, so no
    test leaves a process behind, whatever happened inside the block.
    """
    proc = ctx.Process(target=target, args=args, daemon=True)
    proc.start()
    try:
        yield proc
    finally:
        # Never signal a multiprocessing Event a killed child was waiting on:
        # its condition still counts the dead sleeper, and set() would block.
        if stop is not None and proc.is_alive():
            stop.set()
        proc.join(15)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        proc.close()


@contextlib.contextmanager
def server_process(
    ctx: Any,
    sock_dir: str,
    channel: str,
    options: Optional[Dict[str, Any]] = None,
    gate: Any = None,
    entered: Any = None,
) -> Iterator[Any]:
    """A :func:`serve` child, listening when the block starts."""
    ready, stop = ctx.Event(), ctx.Event()
    args = (sock_dir, channel, ready, stop, options, gate, entered)
    with running(ctx, serve, *args, stop=stop) as proc:
        assert ready.wait(20), "the server process did not start"
        yield proc


@contextlib.contextmanager
def client_process(ctx: Any, sock_dir: str, channel: str, inbox: Any = None) -> Iterator[Any]:
    """A :func:`client` child, connected when the block starts."""
    ready, stop = ctx.Event(), ctx.Event()
    with running(ctx, client, sock_dir, channel, ready, stop, inbox, stop=stop) as proc:
        assert ready.wait(20), "the client process did not connect"
        yield proc


def kill(proc: Any) -> None:
    """SIGKILL ``proc`` and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert not proc.is_alive()


def remove_left_files(sock_dir: str) -> None:
    """Remove what a SIGKILLed server could not (its socket and key file)."""
    for name in os.listdir(sock_dir):
        os.unlink(os.path.join(sock_dir, name))
