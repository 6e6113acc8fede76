"""A client's connection attempts (``unixevents._connector``): when to start one."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any, List

from unixevents import _address
from unixevents._connector import Connector

WAIT = 10.0


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

    connector = Connector(
        address,
        lambda: None,
        adopt,
        lambda: False,  # every handed socket is lost at once
        1,
        backoff_initial=0.01,
        backoff_max=0.05,
        connect_timeout=WAIT,
        handshake_timeout=WAIT,
        log=logging.getLogger("unixevents.test"),
    )
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
    connector = Connector(
        address,
        lambda: None,
        lambda sock, peer: sock.close(),
        lambda: True,  # connected, or a socket waits to be taken up
        1,
        backoff_initial=0.01,
        backoff_max=0.05,
        connect_timeout=WAIT,
        handshake_timeout=WAIT,
        log=logging.getLogger("unixevents.test"),
    )
    connector.start(raise_auth=True)
    assert connector._thread is None
    assert not connector._trying
