"""Unix sockets as this library uses them: bind, connect, the handshake, who is there.

Stateless helpers for the transport and the client's connector. The handshake
is ``multiprocessing.connection``'s HMAC challenge (``deliver_challenge`` and
``answer_challenge``, both ways), run on a socket with kernel time-outs
(``SO_RCVTIMEO``/``SO_SNDTIMEO``) so a peer that stalls it gives up in time;
``Connection`` reads with ``os.read``, which ignores Python-level time-outs.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import struct
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from typing import Optional, Tuple

from . import _address
from ._liveness import PeerInfo, peer_credentials, process_create_time
from .errors import ChannelInUseError, UnixEventsError

__all__ = ("bind", "connect", "describe_peer", "handshake")


def _set_timeouts(sock: socket.socket, seconds: float) -> None:
    sec = int(seconds)
    usec = int((seconds - sec) * 1_000_000)
    tv = struct.pack("@ll", sec, usec)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def handshake(sock: socket.socket, key: bytes, *, server: bool, timeout: float) -> None:
    """Run the ``multiprocessing.connection`` HMAC challenge both ways on ``sock``.

    Raises:
        AuthenticationError: the keys differ.
        OSError / EOFError: the peer went away or stalled past ``timeout``.
    """
    sock.setblocking(True)
    _set_timeouts(sock, timeout)
    conn = Connection(os.dup(sock.fileno()))
    try:
        if server:
            deliver_challenge(conn, key)
            answer_challenge(conn, key)
        else:
            answer_challenge(conn, key)
            deliver_challenge(conn, key)
    finally:
        conn.close()
    _set_timeouts(sock, 0)


def bind(
    address: _address.Address, backlog: int = 128
) -> Tuple[socket.socket, Optional[Tuple[int, int]]]:
    """Bind and listen on ``address``, replacing a stale socket file, never a live one.

    Returns the listening socket and the socket file's identity (None for
    abstract addresses).

    Raises:
        ChannelInUseError: a server is listening there.
        UnixEventsError: the path is taken by something that is not a socket, or cannot be bound.
    """
    path = address.path
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(path)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise UnixEventsError(
                    f"cannot create socket {address.display!r}: {exc.strerror or exc};"
                    " check that its directory is writable"
                ) from None
            if _is_listening(path):
                raise ChannelInUseError(
                    f"channel {address.channel!r} is in use: a server is listening on"
                    f" {address.display!r}; close it first or choose another channel name"
                ) from None
            if address.abstract:  # pragma: no cover - the kernel frees these itself
                raise
            _remove_stale(address)
            sock.bind(path)
        sock.listen(backlog)
        sock.setblocking(False)
        identity = None
        if not address.abstract:
            os.chmod(path, 0o600)
            st = os.lstat(path)
            identity = (st.st_dev, st.st_ino)
        return sock, identity
    except BaseException:
        sock.close()
        raise


def _is_listening(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        return exc.errno == errno.EAGAIN  # backlog full: someone is there
    else:
        return True
    finally:
        probe.close()


def _remove_stale(address: _address.Address) -> None:
    try:
        st = os.lstat(address.path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise UnixEventsError(
            f"{address.path!r} exists and is not a socket; remove it or choose another channel"
        )
    logging.getLogger("unixevents").debug("replacing stale socket %s", address.path)
    os.unlink(address.path)


def connect(address: _address.Address, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address.path)
    except BaseException:
        sock.close()
        raise
    return sock


def describe_peer(sock: socket.socket, link_id: int) -> PeerInfo:
    try:
        pid, uid, gid = peer_credentials(sock)
    except OSError:
        pid = uid = gid = -1
    return PeerInfo(pid, uid, gid, process_create_time(pid) if pid > 0 else None, link_id)
