"""Spec 1.2: authentication, hostile peers, live and stale sockets."""

from __future__ import annotations

import logging
import os
import pickle
import socket
import struct
import threading
import time
from multiprocessing.connection import Client
from typing import Any

import peers
import pytest

from unixevents import AuthenticationFailed, ChannelInUseError, UnixEvents, UnixEventsError


def key_of(sock_dir: str, channel: str) -> bytes:
    with open(os.path.join(sock_dir, channel + ".key"), "rb") as fh:
        return fh.read()


def test_a_client_with_the_wrong_key_is_refused_and_others_are_served(
    sock_dir: str, channel: str, spawn_ctx: Any, inbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    result = inbox()
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        bad = spawn_ctx.Process(
            target=peers.client_with_key, args=(channel, sock_dir, b"wrong key", result.sender)
        )
        bad.start()
        assert result.get(30) == "AuthenticationFailed"
        bad.join(30)
        assert server.peers == []
        good = spawn_ctx.Process(
            target=peers.client_with_key, args=(channel, sock_dir, None, result.sender)
        )
        good.start()
        assert result.get(30) == "ok"
        good.join(30)
    assert any("wrong key" in r.getMessage() for r in caplog.records)


def test_init_raises_authentication_failed_with_advice(sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir, authkey="right"):
        client = UnixEvents(socket_dir=sock_dir, authkey="wrong")
        try:
            with pytest.raises(AuthenticationFailed, match="same authkey"):
                client.init_sync("client", channel, timeout=10)
        finally:
            client.close()


def test_a_background_connect_with_the_wrong_key_logs_an_error_and_keeps_trying(
    sock_dir: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir, authkey="right"):
        seen = threading.Event()

        class Spy(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno == logging.ERROR and "refused our key" in record.getMessage():
                    seen.set()

        spy = Spy()
        logging.getLogger("unixevents").addHandler(spy)
        try:
            client = UnixEvents("client", channel, socket_dir=sock_dir, authkey="wrong")
            assert seen.wait(10)
            assert not client.connected
            client.close()
        finally:
            logging.getLogger("unixevents").removeHandler(spy)


def test_a_client_that_stalls_the_handshake_blocks_nobody(sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir, handshake_timeout=30) as server:
        stallers = []
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            s.connect(server.address)  # connects, then never answers the challenge
            stallers.append(s)
        try:
            started = time.monotonic()
            with UnixEvents("client", channel, socket_dir=sock_dir) as client:
                assert client.wait_connected(10)
                assert time.monotonic() - started < 5
        finally:
            for s in stallers:
                s.close()


def test_a_stalled_handshake_times_out(sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir, handshake_timeout=0.3) as server:
        s = socket.socket(socket.AF_UNIX)
        s.connect(server.address)
        s.settimeout(10)
        try:
            # The server gives up and closes: we read its challenge, then EOF.
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert b"#CHALLENGE#" in data
        finally:
            s.close()


def test_a_second_server_on_a_live_channel_is_refused(
    sock_dir: str, channel: str, spawn_ctx: Any, inbox: Any
) -> None:
    result = inbox()
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        key = key_of(sock_dir, channel)
        proc = spawn_ctx.Process(
            target=peers.second_server, args=(channel, sock_dir, result.sender)
        )
        proc.start()
        message = result.get(30)
        proc.join(30)
        assert message.startswith("ChannelInUseError") and "close it first" in message
        # The live server's socket and key were left alone.
        assert key_of(sock_dir, channel) == key
        with UnixEvents("client", channel, socket_dir=sock_dir) as client:
            assert client.wait_connected(10)
            assert server.wait_connected(10)
    with pytest.raises(ChannelInUseError), UnixEvents("server", channel, socket_dir=sock_dir):
        UnixEvents("server", channel, socket_dir=sock_dir)


def test_a_stale_socket_from_a_killed_server_is_replaced(
    sock_dir: str, channel: str, spawn_ctx: Any
) -> None:
    ready = spawn_ctx.Event()
    proc = spawn_ctx.Process(target=peers.server_then_die, args=(channel, sock_dir, ready))
    proc.start()
    proc.join(30)
    assert ready.is_set() and proc.exitcode == -9
    assert sorted(os.listdir(sock_dir)) == [channel + ".key", channel + ".sock"]
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        with UnixEvents("client", channel, socket_dir=sock_dir) as client:
            assert client.wait_connected(10)
            assert server.wait_connected(10)


def test_a_path_that_is_not_a_socket_is_never_removed(sock_dir: str, channel: str) -> None:
    path = os.path.join(sock_dir, channel + ".sock")
    with open(path, "w") as fh:
        fh.write("precious")
    try:
        with pytest.raises(UnixEventsError, match="not a socket"):
            UnixEvents("server", channel, socket_dir=sock_dir)
        with open(path) as fh:
            assert fh.read() == "precious"
    finally:
        os.unlink(path)


def test_close_removes_only_files_that_are_still_its_own(sock_dir: str, channel: str) -> None:
    server = UnixEvents("server", channel, socket_dir=sock_dir)
    key_path = os.path.join(sock_dir, channel + ".key")
    os.unlink(key_path)
    with open(key_path, "wb") as fh:
        fh.write(b"someone else's")
    server.close()
    assert os.listdir(sock_dir) == [channel + ".key"]
    os.unlink(key_path)


def raw_client(sock_dir: str, channel: str) -> Any:
    """A multiprocessing.connection client past the handshake, to speak raw frames."""
    return Client(
        os.path.join(sock_dir, channel + ".sock"),
        family="AF_UNIX",
        authkey=key_of(sock_dir, channel),
    )


def test_garbage_after_the_handshake_closes_only_that_connection(
    sock_dir: str, channel: str
) -> None:
    got = threading.Event()
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        server.receive("hello", lambda data: got.set())
        with UnixEvents("client", channel, socket_dir=sock_dir) as good:
            assert good.wait_connected(10)
            lost = threading.Event()
            server.on_disconnect(lambda peer: lost.set())
            conn = raw_client(sock_dir, channel)
            try:
                # A header announcing 1 GiB: the framing cannot be trusted any more.
                conn._send(struct.pack("!i", 1 << 30))
                assert lost.wait(10)
                assert conn.poll(10) and _eof(conn)
            finally:
                conn.close()
            good.send("hello", 1)
            assert got.wait(10)


def _eof(conn: Any) -> bool:
    try:
        conn.recv_bytes()
    except (EOFError, OSError):
        return True
    return False


def test_an_undecodable_frame_is_dropped_and_the_connection_survives(
    sock_dir: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[Any] = []
    done = threading.Event()
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        server.receive("e", lambda data: (got.append(data), done.set()))
        conn = raw_client(sock_dir, channel)
        try:
            conn.send_bytes(b"\xff not json")
            conn.send_bytes(b'[[0, "e"]]')
            conn.send_bytes(b'[[0, "e", "kept"]]')
            assert done.wait(10)
        finally:
            conn.close()
    assert got == ["kept"]
    assert sum("bad message" in r.getMessage() for r in caplog.records) == 2


def test_a_json_channel_never_unpickles_what_a_peer_sends(sock_dir: str, channel: str) -> None:
    marker = os.path.join(sock_dir, "pwned")

    class Evil:
        def __reduce__(self) -> Any:
            return (open, (marker, "w"))

    done = threading.Event()
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        server.receive("after", lambda data: done.set())
        conn = raw_client(sock_dir, channel)
        try:
            conn.send(Evil())  # a pickle frame, as Connection.send makes it
            conn.send_bytes(pickle.dumps([[0, "e", 1]]))
            conn.send_bytes(b'[[0, "after", 1]]')
            assert done.wait(10)
        finally:
            conn.close()
    assert not os.path.exists(marker)


def test_a_deleted_socket_file_is_recreated(
    sock_dir: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir, liveness_interval=0.05) as server:
        os.unlink(server.address)
        os.unlink(os.path.join(sock_dir, channel + ".key"))
        with UnixEvents("client", channel, socket_dir=sock_dir) as client:
            assert client.wait_connected(10)
    assert sum("re-created it" in r.getMessage() for r in caplog.records) == 1
    assert sum("re-wrote it" in r.getMessage() for r in caplog.records) == 1


def test_a_socket_file_replaced_by_another_server_is_left_to_it(
    sock_dir: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen = threading.Event()

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "replaced the socket file" in record.getMessage():
                seen.set()

    spy = Spy()
    logging.getLogger("unixevents").addHandler(spy)
    try:
        with UnixEvents("server", channel, socket_dir=sock_dir, liveness_interval=0.05) as first:
            os.unlink(first.address)
            # Before the first notices, a second server takes the free path.
            with UnixEvents("server", channel, socket_dir=sock_dir) as second:
                assert seen.wait(10)
                with UnixEvents("client", channel, socket_dir=sock_dir) as client:
                    assert client.wait_connected(10)
                    assert second.wait_connected(10)
                    assert not first.connected
    finally:
        logging.getLogger("unixevents").removeHandler(spy)


def test_a_full_disk_for_the_key_file_is_a_clear_error(
    sock_dir: str, channel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno as errno_

    from unixevents import _address

    def no_space(path: str, key: Any = None) -> Any:
        raise OSError(errno_.ENOSPC, "No space left on device")

    monkeypatch.setattr(_address, "write_key_file", no_space)
    with pytest.raises(UnixEventsError, match="free some space"):
        UnixEvents("server", channel, socket_dir=sock_dir)
    assert os.listdir(sock_dir) == []
