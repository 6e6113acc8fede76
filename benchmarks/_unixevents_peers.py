"""The unixevents side of each measurement: peers built on the public API only.

Every peer uses the default JSON serializer and the defaults of the channel,
except ``max_pending`` where a sender must be able to queue a whole run (see
the README). Listeners are registered before anyone can connect, so no event
ever waits in the unclaimed buffer.
"""

from __future__ import annotations

import queue
import time
from typing import Any, Dict

from _measure import Tally, payloads, time_exchanges, wait_until
from _runner import BenchError, Control, Job

from unixevents import UnixEvents

__all__ = (
    "broadcaster",
    "echo_server",
    "latency_client",
    "receiver",
    "sender",
    "subscriber",
)

EVENT = "tick"
_CONNECT_TIMEOUT = 30.0
_REPLY_TIMEOUT = 10.0


def _channel(job: Job, role: str, **options: Any) -> UnixEvents:
    return UnixEvents(role, job.channel, authkey=job.authkey, socket_dir=job.sock_dir, **options)


def _connected(ev: UnixEvents, job: Job) -> UnixEvents:
    if not ev.wait_connected(_CONNECT_TIMEOUT):
        raise BenchError(f"no connection on {job.channel} within {_CONNECT_TIMEOUT} s")
    return ev


def _send_all(ev: UnixEvents, job: Job) -> Dict[str, Any]:
    send = ev.send
    start = time.perf_counter()
    for data in payloads(job.kind, job.count):
        send(EVENT, data)
    return {"start": start, "end": time.perf_counter()}


def receiver(ctl: Control, job: Job) -> None:
    """Server: count ``job.count`` events from one client."""
    tally = Tally(job.count, job.kind)
    with _channel(job, "server") as ev:
        ev.receive(EVENT, tally.add)
        ctl.ready(address=ev.address)
        tally.wait()
        ctl.result(tally.summary())
        ctl.wait_stop()


def sender(ctl: Control, job: Job) -> None:
    """Client: send ``job.count`` events as fast as ``send`` accepts them."""
    ctl.ready()
    with _channel(job, "client", max_pending=job.max_pending) as ev:
        ctl.result(_send_all(_connected(ev, job), job))
        ctl.wait_stop()


def broadcaster(ctl: Control, job: Job) -> None:
    """Server: once ``job.clients`` clients are in, send ``job.count`` events to all."""
    with _channel(job, "server", max_pending=job.max_pending) as ev:
        ctl.ready(address=ev.address)
        if not wait_until(lambda: len(ev.peers) >= job.clients, _CONNECT_TIMEOUT):
            raise BenchError(f"only {len(ev.peers)} of {job.clients} clients connected")
        ctl.result(_send_all(ev, job))
        ctl.wait_stop()


def subscriber(ctl: Control, job: Job) -> None:
    """Client: count ``job.count`` events from the server."""
    tally = Tally(job.count, job.kind)
    with UnixEvents(authkey=job.authkey, socket_dir=job.sock_dir) as ev:
        ev.receive(EVENT, tally.add)
        ctl.ready()
        if not ev.init_sync("client", job.channel, timeout=_CONNECT_TIMEOUT):
            raise BenchError(f"could not connect to {job.channel}")
        tally.wait()
        ctl.result(tally.summary())
        ctl.wait_stop()


def echo_server(ctl: Control, job: Job) -> None:
    """Server: answer ``echo`` requests, and answer each ``ping`` event with a ``pong``."""
    with _channel(job, "server") as ev:
        ev.receive("echo", _same)
        ev.receive("ping", lambda data: ev.send("pong", data))
        ctl.ready(address=ev.address)
        ctl.result({})
        ctl.wait_stop()


def _same(data: Any) -> Any:
    return data


def latency_client(ctl: Control, job: Job) -> None:
    """Client: time request/reply, then ping-pong built from send and receive."""
    pongs: queue.SimpleQueue[Any] = queue.SimpleQueue()
    ctl.ready()
    with _channel(job, "client") as ev:
        ev.receive("pong", pongs.put)
        _connected(ev, job)

        def request(data: Any) -> Any:
            return ev.request("echo", data, timeout=_REPLY_TIMEOUT).result(_REPLY_TIMEOUT)

        def ping(data: Any) -> Any:
            ev.send("ping", data)
            return pongs.get(timeout=_REPLY_TIMEOUT)

        ctl.result(
            {
                "request": time_exchanges(request, job.count, job.warmup),
                "pingpong": time_exchanges(ping, job.count, job.warmup),
            }
        )
        ctl.wait_stop()
