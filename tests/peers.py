"""Programs that tests run in separate (spawned) processes.

Each takes plain arguments and multiprocessing primitives, so that the
'spawn' start method can import and run it.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Dict, Optional

from unixevents import UnixEvents


def echo_server(channel: str, socket_dir: str, ready: Any, stop: Any, opts: Dict[str, Any]) -> None:
    """A server that answers every 'ping' with 'pong' and 'echo' requests with their data."""
    with UnixEvents("server", channel, socket_dir=socket_dir, **opts) as server:
        server.receive("ping", lambda data: server.send("pong", data))
        server.receive("echo", lambda data: data)
        ready.set()
        stop.wait(60)


def sink_server(channel: str, socket_dir: str, ready: Any, queue: Any, expect: int) -> None:
    """Collect ``expect`` 'n' events, then report them through ``queue``."""
    got = []
    done = threading.Event()

    def on_n(data: Any) -> None:
        got.append(data)
        if len(got) >= expect:
            done.set()

    with UnixEvents("server", channel, socket_dir=socket_dir) as server:
        server.receive("n", on_n)
        ready.set()
        done.wait(60)
    queue.send(got)


def counting_client(
    channel: str, socket_dir: str, count: int, connected: Any, opts: Dict[str, Any]
) -> None:
    """Connect, send 'n' 0..count-1, and leave once all are written."""
    written = threading.Event()
    with UnixEvents("client", channel, socket_dir=socket_dir, **opts) as client:
        if not client.wait_connected(30):
            raise SystemExit(3)
        connected.set()
        for i in range(count - 1):
            client.send("n", i)
        client.send("n", count - 1, lambda err, ok: written.set())
        if not written.wait(30):
            raise SystemExit(4)


def client_with_key(channel: str, socket_dir: str, authkey: Optional[bytes], result: Any) -> None:
    """Try init_sync as a client; report 'ok' or the exception's type name."""
    client = UnixEvents(socket_dir=socket_dir, authkey=authkey)
    try:
        ok = client.init_sync("client", channel, timeout=10)
        result.send("ok" if ok else "timeout")
    except Exception as exc:
        result.send(type(exc).__name__)
    finally:
        client.close()


def second_server(channel: str, socket_dir: str, result: Any) -> None:
    try:
        UnixEvents("server", channel, socket_dir=socket_dir).close()
        result.send("started")
    except Exception as exc:
        result.send(f"{type(exc).__name__}: {exc}")


def server_then_die(channel: str, socket_dir: str, ready: Any) -> None:
    """Listen, then die by SIGKILL: its socket and key files are left behind."""
    UnixEvents("server", channel, socket_dir=socket_dir)
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def forwarding_server(channel: str, socket_dir: str, ready: Any, queue: Any, stop: Any) -> None:
    """Put every 'n' event into ``queue`` as it arrives."""
    with UnixEvents("server", channel, socket_dir=socket_dir) as server:
        server.receive("n", queue.send)
        ready.set()
        stop.wait(60)


def blobs_then_exit(channel: str, socket_dir: str, count: int, size: int, go: Any) -> None:
    """Send 'hold', wait for ``go``, send ``count`` blobs and a 'fin', flush, exit at once."""
    client = UnixEvents("client", channel, socket_dir=socket_dir)
    if not client.wait_connected(30):
        raise SystemExit(3)
    client.send("hold", None)
    if not go.wait(30):
        raise SystemExit(5)
    blob = "b" * size
    for _ in range(count):
        client.send("blob", blob)
    client.send("fin", count)
    client.close(timeout=30)
    if client._transport is not None and client._transport.pending:
        raise SystemExit(4)
