"""A fake peer of the JavaScript ``unixevents`` package, written from its wire description.

- socket ``/tmp/<channel>.sock``, no authentication;
- each message is ``JSON.stringify({event, payload})`` followed by ``;;``;
- ``event`` is prefixed ``s-`` by a server and ``c-`` by a client;
- an object payload (dict or list) is sent as a JSON string, a string as it is,
  anything else as its JSON value; no escaping of ``;``.

It uses plain blocking sockets with time-outs and no threads, so a test drives
it step by step. Unlike the JavaScript original it keeps partial tails across
reads (our side escapes ``;``, so splitting on ``;;`` is exact for what we send).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import struct
import sys
import time
from typing import Any, Dict, Iterator, List

# Linux: bytes written but not yet read by the peer (SIOCOUTQ == TIOCOUTQ).
_SIOCOUTQ = 0x5411


def node_path(channel: str) -> str:
    return f"/tmp/{channel}.sock"


def js_stringify(event: str, payload: Any) -> bytes:
    """What the JavaScript ``send`` writes for an already prefixed event."""
    if isinstance(payload, (dict, list)) or payload is None:
        payload = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    text = json.dumps(
        {"event": event, "payload": payload}, separators=(",", ":"), ensure_ascii=False
    )
    return text.encode("utf-8") + b";;"


class FakeConn:
    """One connection, speaking as ``role`` (``'server'`` or ``'client'``)."""

    def __init__(self, sock: socket.socket, role: str) -> None:
        self.sock = sock
        self.prefix = "s-" if role == "server" else "c-"
        self.raw = bytearray()  # every byte received, for exact-bytes checks
        self._buf = bytearray()
        self._inbox: List[Dict[str, Any]] = []

    def send(self, event: str, payload: Any) -> None:
        self.send_raw(js_stringify(self.prefix + event, payload))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_split(self, data: bytes, *cuts: int, timeout: float = 10.0) -> None:
        """Write ``data`` in pieces at ``cuts``, each read by the peer before the next is written.

        On Linux the kernel tells how much of what we wrote is still unread;
        elsewhere the pieces are only written separately.
        """
        bounds = [0, *cuts, len(data)]
        for a, b in zip(bounds, bounds[1:]):
            self.sock.sendall(data[a:b])
            self.wait_read_by_peer(timeout)

    def wait_read_by_peer(self, timeout: float = 10.0) -> None:
        if not sys.platform.startswith("linux"):
            return
        deadline = time.monotonic() + timeout
        while True:
            out = fcntl.ioctl(self.sock.fileno(), _SIOCOUTQ, struct.pack("i", 0))
            if struct.unpack("i", out)[0] == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError("the peer did not read what we wrote")
            time.sleep(0.002)

    def recv(self, timeout: float = 10.0) -> Dict[str, Any]:
        """The next message ``{"event": ..., "payload": ...}`` as it was on the wire."""
        deadline = time.monotonic() + timeout
        while not self._inbox:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no message within {timeout} s; got so far {bytes(self.raw)!r}"
                )
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise EOFError("the peer closed the connection")
            self.raw += data
            self._buf += data
            *whole, rest = bytes(self._buf).split(b";;")
            self._buf = bytearray(rest)
            self._inbox.extend(json.loads(piece) for piece in whole)
        return self._inbox.pop(0)

    def wait_eof(self, timeout: float = 10.0) -> bool:
        """True once the peer has closed the connection (data read meanwhile is kept)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return True
            if not data:
                return True
            self.raw += data
        return False

    def close(self) -> None:
        self.sock.close()


def connect(channel: str, timeout: float = 10.0) -> FakeConn:
    """Connect as a JavaScript client, retrying until the server listens."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(node_path(channel))
            return FakeConn(sock, "client")
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class FakeServer:
    """A JavaScript-style server on ``/tmp/<channel>.sock``."""

    def __init__(self, channel: str) -> None:
        self.path = node_path(channel)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.conns: List[FakeConn] = []

    def accept(self, timeout: float = 10.0) -> FakeConn:
        self.sock.settimeout(timeout)
        sock, _ = self.sock.accept()
        sock.settimeout(None)
        conn = FakeConn(sock, "server")
        self.conns.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@contextlib.contextmanager
def fake_server(channel: str) -> Iterator[FakeServer]:
    server = FakeServer(channel)
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def fake_client(channel: str, timeout: float = 10.0) -> Iterator[FakeConn]:
    conn = connect(channel, timeout)
    try:
        yield conn
    finally:
        conn.close()
