"""A client's connection attempts (``unixevents._connector``): when to start one."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any, Callable, List

from unixevents import _address
from unixevents._connector import Connector

WAIT = 10.0


def _connector(
    address: _address.Address, adopt: Callable[[Any, Any], None], has_socket: Callable[[], bool]
) -> Connector:
    """A connector with no key (no handshake) and short back-off."""
    return Connector(
        address,
        lambda: None,
        adopt,
        has_socket,
        1,
        backoff_initial=0.01,
        backoff_max=0.05,
        connect_timeout=WAIT,
        handshake_timeout=WAIT,
        log=logging.getLogger("unixevents.test"),
    )


def test_a_connection_lost_right_after_hand_over_starts_a_new_attempt(sock_dir: str) -> None:
    """The attempt that handed a socket over no longer counts as under way.

    It used to count as long as its thread lived, a moment past the hand-over:
    a connection lost in that moment (on a loaded machine, a JavaScript server
    closing at once) asked for a new attempt, was told one was running, and
    the client never reconnected.
    """
    address = _address.resolve("connector", sock_dir)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address.path)
    listener.listen(4)
    listener.settimeout(WAIT)
    handed: List[socket.socket] = []
    trying_at_hand_over: List[bool] = []
    one, two = threading.Event(), threading.Event()
    connector: Any = None

    def adopt(sock: socket.socket, _peer: Any) -> None:
        trying_at_hand_over.append(connector._trying)
        handed.append(sock)
        (one if len(handed) == 1 else two).set()

    connector = _connector(address, adopt, has_socket=lambda: False)  # each lost at once
    accepted: List[socket.socket] = []
    try:
        connector.start(raise_auth=False)
        accepted.append(listener.accept()[0])
        assert one.wait(WAIT)
        # Lost at once, while the first attempt's thread may still be ending.
        connector.start(raise_auth=False)
        accepted.append(listener.accept()[0])
        assert two.wait(WAIT)
        assert trying_at_hand_over == [False, False]
    finally:
        connector.stop()
        connector.join(WAIT)
        for sock in handed + accepted:
            sock.close()
        listener.close()
        os.unlink(address.path)


def test_no_attempt_starts_while_the_link_has_a_socket(sock_dir: str) -> None:
    address = _address.resolve("connector", sock_dir)
    # Connected, or a socket waits to be taken up.
    connector = _connector(address, lambda sock, peer: sock.close(), has_socket=lambda: True)
    connector.start(raise_auth=True)
    assert connector._thread is None
    assert not connector._trying
