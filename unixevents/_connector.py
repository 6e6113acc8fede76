"""A client's connection attempts: connect, authenticate, hand over; retry with back-off.

Runs in a short-lived thread, so the I/O thread keeps serving time-outs and
queued sends meanwhile. The key file is read again on every attempt: a
restarted server writes a new one.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
from multiprocessing import AuthenticationError
from typing import Callable, Optional

from . import _address, _sockets
from ._liveness import PeerInfo
from .errors import AuthenticationFailed

__all__ = ("Connector",)


class Connector:
    """Background connection attempts for one client.

    Args:
        address: the server's address.
        key: returns the key to present (None: no handshake); may raise OSError
            (no key file yet), which counts as a failed attempt.
        adopt: takes the connected, authenticated socket and the server's PeerInfo.
        has_socket: whether the link has a socket, or one handed over and not yet
            taken up: then there is nothing to connect.
        link_id: the client's link, for the PeerInfo.
    """

    def __init__(
        self,
        address: _address.Address,
        key: Callable[[], Optional[bytes]],
        adopt: Callable[[socket.socket, PeerInfo], None],
        has_socket: Callable[[], bool],
        link_id: int,
        *,
        backoff_initial: float,
        backoff_max: float,
        connect_timeout: float,
        handshake_timeout: float,
        log: logging.Logger,
    ) -> None:
        self._address = address
        self._key = key
        self._adopt = adopt
        self._has_socket = has_socket
        self._link_id = link_id
        self._backoff = (backoff_initial, backoff_max)
        self._timeouts = (connect_timeout, handshake_timeout)
        self._log = log
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._trying = False  # a thread is trying and has not handed a socket over yet
        self._raise_auth = False
        self.auth_error: Optional[AuthenticationFailed] = None
        self.last_error = ""

    def start(self, *, raise_auth: bool) -> None:
        """Start trying, unless already trying.

        ``raise_auth``: stop at a refused key and leave it in ``auth_error``
        (for ``init``); otherwise log it at ERROR and keep trying.
        """
        with self._lock:
            if self._trying:
                self._raise_auth = self._raise_auth or raise_auth
                return
            if self._has_socket():
                return
            self._trying = True
            self._raise_auth = raise_auth
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run,
                name=f"unixevents-connect-{self._address.channel}",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def take_auth_error(self) -> Optional[AuthenticationFailed]:
        error, self.auth_error = self.auth_error, None
        return error

    def _run(self) -> None:
        try:
            self._attempt()
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._trying = False

    def _attempt(self) -> None:
        connect_timeout, handshake_timeout = self._timeouts
        delay, backoff_max = self._backoff
        display = self._address.display
        while not self._stop.is_set():
            sock = None
            try:
                sock = _sockets.connect(self._address, connect_timeout)
                key = self._key()
                if key is not None:
                    _sockets.handshake(sock, key, server=False, timeout=handshake_timeout)
                peer = _sockets.describe_peer(sock, self._link_id)
            except AuthenticationError as exc:
                if sock is not None:
                    sock.close()
                message = (
                    f"the server on {display} refused our key ({exc}); use the same"
                    " authkey= on both sides, or let the client read the server's key file"
                )
                self.last_error = message
                if self._raise_auth:
                    self.auth_error = AuthenticationFailed(message)
                    return
                self._log.error("%s; retrying", message)
            except (OSError, EOFError) as exc:
                if sock is not None:
                    sock.close()
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._log.debug("connect to %s failed: %s", display, self.last_error)
            else:
                # Hand over and stop trying in one step: a connection lost from
                # here on, however soon, must find no attempt under way (one
                # that is about to end would swallow its restart).
                with self._lock:
                    self._trying = False
                    self._adopt(sock, peer)
                return
            self._stop.wait(delay * random.uniform(0.5, 1.0))
            delay = min(backoff_max, delay * 2)
