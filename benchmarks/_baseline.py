"""The floor: the same work over a bare ``multiprocessing.connection`` pair.

``Listener``/``Client`` over AF_UNIX with an authkey (the same HMAC
handshake unixevents runs). Each message is ``{"event": name, "data": payload}``
(an event system has to carry the name), sent as
``conn.send_bytes(json.dumps(msg).encode())`` and read as
``json.loads(conn.recv_bytes())``, one frame per message. The "64 per frame"
variant sends ``json.dumps([msg, ...])`` of 64 messages per frame instead, to
show what batching alone buys.

The "threaded" ping-pong is the same exchange with one thread hand-off on
each side, through ``queue.SimpleQueue`` (the cheapest one CPython has): a
thread reads, another answers or waits. That is the least any design pays
that reads on a background thread and runs listeners on another, as
unixevents does; it is reported beside the request/reply figures to show
where their time goes, not as a target.

A baseline sender blocks in ``send_bytes`` when the peer is slow: that is its
back-pressure, and why it can close as soon as it has sent (what is written
is in the kernel and will be read before EOF).
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, Dict, Iterator, List

from _measure import Tally, payloads, time_exchanges
from _runner import Control, Job

__all__ = (
    "broadcaster",
    "echo_server",
    "echo_server_threaded",
    "latency_client",
    "latency_client_threaded",
    "receiver",
    "sender",
    "subscriber",
)

EVENT = "tick"
_FAMILY = "AF_UNIX"
_REPLY_TIMEOUT = 10.0
_END = object()


def _listen(job: Job) -> Listener:
    return Listener(f"{job.sock_dir}/{job.channel}.sock", family=_FAMILY, authkey=job.authkey)


def _connect(job: Job) -> Connection:
    return Client(job.address, family=_FAMILY, authkey=job.authkey)


def _frames(job: Job) -> Iterator[bytes]:
    """The encoded frames of a run: one message each, or ``job.per_frame`` in a JSON list."""
    dumps = json.dumps
    if job.per_frame == 1:
        for data in payloads(job.kind, job.count):
            yield dumps({"event": EVENT, "data": data}).encode()
        return
    batch: List[Dict[str, Any]] = []
    for data in payloads(job.kind, job.count):
        batch.append({"event": EVENT, "data": data})
        if len(batch) == job.per_frame:
            yield dumps(batch).encode()
            batch = []
    if batch:
        yield dumps(batch).encode()


def _count(conn: Connection, tally: Tally, per_frame: int) -> None:
    """Read until ``tally`` has everything, or the sender hung up."""
    recv, loads, add = conn.recv_bytes, json.loads, tally.add
    try:
        if per_frame == 1:
            for _ in range(tally.expected):
                add(loads(recv())["data"])
            return
        while tally.count < tally.expected:
            for msg in loads(recv()):
                add(msg["data"])
    except EOFError:
        pass


def receiver(ctl: Control, job: Job) -> None:
    """Server: count ``job.count`` messages from one client."""
    tally = Tally(job.count, job.kind)
    with _listen(job) as listener:
        ctl.ready(address=listener.address)
        with listener.accept() as conn:
            _count(conn, tally, job.per_frame)
    ctl.result(tally.summary())


def sender(ctl: Control, job: Job) -> None:
    """Client: send ``job.count`` messages."""
    ctl.ready()
    with _connect(job) as conn:
        send = conn.send_bytes
        start = time.perf_counter()
        for frame in _frames(job):
            send(frame)
        end = time.perf_counter()
    ctl.result({"start": start, "end": end})


def broadcaster(ctl: Control, job: Job) -> None:
    """Server: accept ``job.clients`` clients, then write each message to each in turn."""
    with _listen(job) as listener:
        ctl.ready(address=listener.address)
        conns = [listener.accept() for _ in range(job.clients)]
        try:
            sends = [conn.send_bytes for conn in conns]
            start = time.perf_counter()
            for frame in _frames(job):
                for send in sends:
                    send(frame)
            end = time.perf_counter()
        finally:
            for conn in conns:
                conn.close()
    ctl.result({"start": start, "end": end})


def subscriber(ctl: Control, job: Job) -> None:
    """Client: count ``job.count`` messages from the server."""
    tally = Tally(job.count, job.kind)
    ctl.ready()
    with _connect(job) as conn:
        _count(conn, tally, job.per_frame)
    ctl.result(tally.summary())


def echo_server(ctl: Control, job: Job) -> None:
    """Server: answer every ``ping`` with a ``pong`` carrying the same data, until EOF."""
    with _listen(job) as listener:
        ctl.ready(address=listener.address)
        ctl.result({})
        with listener.accept() as conn:
            recv, send, loads, dumps = conn.recv_bytes, conn.send_bytes, json.loads, json.dumps
            try:
                while True:
                    send(dumps({"event": "pong", "data": loads(recv())["data"]}).encode())
            except EOFError:
                pass


def latency_client(ctl: Control, job: Job) -> None:
    """Client: time ping-pong exchanges."""
    ctl.ready()
    with _connect(job) as conn:
        recv, send, loads, dumps = conn.recv_bytes, conn.send_bytes, json.loads, json.dumps

        def ping(data: Any) -> Any:
            send(dumps({"event": "ping", "data": data}).encode())
            return loads(recv())["data"]

        ctl.result({"pingpong": time_exchanges(ping, job.count, job.warmup)})


def echo_server_threaded(ctl: Control, job: Job) -> None:
    """Server: as ``echo_server``, but this thread reads and another one answers."""
    with _listen(job) as listener:
        ctl.ready(address=listener.address)
        ctl.result({})
        with listener.accept() as conn:
            inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

            def answer() -> None:
                send, dumps = conn.send_bytes, json.dumps
                while True:
                    data = inbox.get()
                    if data is _END:
                        return
                    send(dumps({"event": "pong", "data": data}).encode())

            answerer = threading.Thread(target=answer)
            answerer.start()
            recv, loads, put = conn.recv_bytes, json.loads, inbox.put
            try:
                while True:
                    put(loads(recv())["data"])
            except EOFError:
                pass
            finally:
                put(_END)
                answerer.join()


def latency_client_threaded(ctl: Control, job: Job) -> None:
    """Client: time ping-pong exchanges whose answers a reader thread hands over."""
    ctl.ready()
    with _connect(job) as conn:
        replies: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def read() -> None:
            recv, loads, put = conn.recv_bytes, json.loads, replies.put
            try:
                while True:
                    put(loads(recv())["data"])
            except (EOFError, OSError):
                pass

        reader = threading.Thread(target=read)
        reader.start()
        send, dumps, get = conn.send_bytes, json.dumps, replies.get

        def ping(data: Any) -> Any:
            send(dumps({"event": "ping", "data": data}).encode())
            return get(timeout=_REPLY_TIMEOUT)

        try:
            ctl.result({"pingpong": time_exchanges(ping, job.count, job.warmup)})
        finally:
            # Ends the reader's recv (closing the descriptor under it would not).
            with socket.socket(fileno=conn.fileno()) as sock:
                sock.shutdown(socket.SHUT_RDWR)
                sock.detach()
            reader.join()
