"""Memory of a unixevents server whose client stopped reading.

The stalled client is a raw ``multiprocessing.connection.Client``: it
completes the handshake and then never reads. The kernel socket buffers of
the connection absorb the first megabyte or more (the transport asks for
1 MiB SO_SNDBUF, which Linux doubles), so the server first fills them with
1 KiB events until writes stop making progress. Only then is the measured
traffic sent, which therefore stays queued in the server's own memory.

Two measurements:

``held``
    RSS before, and peak RSS while, 1,000 events of 1 KiB are queued (default
    ``max_pending``). Target: growth under 1.5x the bytes queued.
``bounded``
    With ``max_pending=1000``, two rounds of 10x that many sends. Every send
    past the limit must report ``QueueFull`` to its callback, and the second
    round must not grow the RSS (under 10% of the bytes it attempted).
"""

from __future__ import annotations

import gc
import time
from multiprocessing.connection import Client
from typing import Any, Dict, Optional

from _measure import KIB, payloads, peak_rss, reset_peak_rss, rss, trim_heap, wait_quiet
from _runner import BenchError, Control, Job

from unixevents import QueueFull, UnixEvents

__all__ = ("BOUNDED_PENDING", "HELD", "bounded_server", "held_server", "stalled_client")

HELD = 1000  # messages queued in the "held" measurement
BOUNDED_PENDING = 1000  # max_pending of the "bounded" measurement
_ROUNDS = 10  # sends per round, in multiples of BOUNDED_PENDING
_FILL_CHUNK = 256
_FILL_LIMIT = 64 * 1024  # messages (64 MiB): a socket that takes more is not stalled
_QUIET = 0.3  # no progress for this long means the socket is full


class _Outcomes:
    """Send callbacks, counted by result."""

    def __init__(self) -> None:
        self.written = 0
        self.queue_full = 0
        self.other = 0

    def __call__(self, error: Optional[BaseException], ok: bool) -> None:
        if ok:
            self.written += 1
        elif isinstance(error, QueueFull):
            self.queue_full += 1
        else:
            self.other += 1

    @property
    def total(self) -> int:
        return self.written + self.queue_full + self.other


def _channel(job: Job) -> UnixEvents:
    return UnixEvents(
        "server",
        job.channel,
        authkey=job.authkey,
        socket_dir=job.sock_dir,
        max_pending=job.max_pending,
    )


def _fill(ev: UnixEvents) -> int:
    """Send 1 KiB events until the kernel takes no more; how many it took."""
    outcomes = _Outcomes()
    sent = 0
    while sent < _FILL_LIMIT:
        for data in payloads("kib", _FILL_CHUNK):
            ev.send("fill", data, outcomes)
        sent += _FILL_CHUNK
        written = wait_quiet(lambda: outcomes.written, _QUIET, goal=sent)
        if written < sent:
            return written
    raise BenchError(f"the stalled client's socket took {sent} KiB and was still not full")


def _settled_rss() -> int:
    gc.collect()
    time.sleep(0.1)
    trim_heap()
    return rss()


def _serve_stalled(ctl: Control, job: Job, measure: Any) -> None:
    with _channel(job) as ev:
        ctl.ready(address=ev.address)
        if not ev.wait_connected(30.0):
            raise BenchError("the stalled client did not connect")
        kernel = _fill(ev)
        ctl.result({"kernel_messages": kernel, **measure(ev)})
        ctl.wait_stop()


def _held(ev: UnixEvents) -> Dict[str, Any]:
    before = _settled_rss()
    peak_before = peak_rss()
    fresh_peak = reset_peak_rss()
    for data in payloads("kib", HELD):
        ev.send("held", data)
    time.sleep(_QUIET)  # let the I/O thread try, and fail, to write them
    after = rss()
    peak = peak_rss()
    if not fresh_peak and peak <= peak_before:
        peak = after  # the old peak predates this; the best we know is now
    return {"queued_bytes": HELD * KIB, "rss_before": before, "rss_after": after, "peak": peak}


def _bounded(ev: UnixEvents) -> Dict[str, Any]:
    outcomes = _Outcomes()
    marks = [_settled_rss()]
    for _ in range(2):
        for _ in range(_ROUNDS):
            for data in payloads("kib", BOUNDED_PENDING):
                ev.send("more", data, outcomes)
            wait_quiet(lambda: outcomes.total, 0.05, goal=outcomes.total + BOUNDED_PENDING)
        marks.append(_settled_rss())
    return {
        "attempted": 2 * _ROUNDS * BOUNDED_PENDING,
        "round_bytes": _ROUNDS * BOUNDED_PENDING * KIB,
        "queue_full": outcomes.queue_full,
        "other_errors": outcomes.other,
        "rss": marks,
    }


def held_server(ctl: Control, job: Job) -> None:
    _serve_stalled(ctl, job, _held)


def bounded_server(ctl: Control, job: Job) -> None:
    _serve_stalled(ctl, job, _bounded)


def stalled_client(ctl: Control, job: Job) -> None:
    """Connect, authenticate, and never read."""
    with Client(job.address, family="AF_UNIX", authkey=job.authkey):
        ctl.ready()
        ctl.result({})
        ctl.wait_stop()
