"""The command line, driven through subprocesses: ``python -m unixevents ...``."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any, Iterator, List, Optional

import pytest
from conftest import wait_for
from node_peer import fake_client, js_stringify, node_path
from recorders import Inbox

from unixevents import RemoteError, UnixEvents
from unixevents._cli import parse_data

CLI = [sys.executable, "-m", "unixevents"]


class Proc:
    """A CLI subprocess whose stdout is read line by line with time-outs."""

    def __init__(self, args: List[str], stdin: Optional[bytes] = None) -> None:
        self.popen = subprocess.Popen(
            CLI + args,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if stdin is not None:
            assert self.popen.stdin is not None
            self.popen.stdin.write(stdin)
            self.popen.stdin.close()
        self._buf = b""

    def line(self, timeout: float = 15.0) -> Any:
        """The next stdout line, decoded as JSON."""
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"no output line within {timeout} s; have {self._buf!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"stdout closed; stderr: {self.stderr()!r}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        return self.popen.wait(timeout)

    def stderr(self) -> str:
        assert self.popen.stderr is not None
        if self.popen.poll() is None:
            return ""
        return self.popen.stderr.read().decode()

    def rest(self) -> bytes:
        assert self.popen.stdout is not None
        return self._buf + self.popen.stdout.read()

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(20)
        for stream in (self.popen.stdout, self.popen.stderr, self.popen.stdin):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def cli(args: List[str], stdin: Optional[bytes] = None) -> Iterator[Proc]:
    proc = Proc(args, stdin)
    try:
        yield proc
    finally:
        proc.close()


def run(args: List[str], stdin: Optional[str] = None, timeout: float = 30.0) -> Any:
    return subprocess.run(
        CLI + args,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def assert_one_line_error(result: Any) -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "error:" in lines[0]


# ------------------------------------------------------------------- basics


@pytest.mark.parametrize("command", [[], ["serve"], ["listen"], ["send"], ["request"]])
def test_help(command: List[str]) -> None:
    result = run([*command, "--help"])
    assert result.returncode == 0
    assert result.stdout.startswith("usage: unixevents")
    if command:
        for flag in ("--node", "--socket-dir", "--authkey-file", "--timeout", "-v"):
            assert flag in result.stdout


def test_usage_errors_exit_2() -> None:
    assert run([]).returncode == 2
    assert run(["send"]).returncode == 2
    assert run(["send", "ch", "ev", "--timeout", "-1"]).returncode == 2
    assert run(["bogus"]).returncode == 2


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (None, None),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("42", 42),
        ("true", True),
        ("null", None),
        ('"quoted"', "quoted"),
        ("plain words", "plain words"),
        ("NaN", "NaN"),
        ("{broken", "{broken"),
    ],
)
def test_parse_data(text: Optional[str], value: Any) -> None:
    assert parse_data(text) == value


# --------------------------------------------------------------------- send


def test_send_variants(sock_dir: str, channel: str) -> None:
    inbox = Inbox()
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        server.receive("ev", inbox)
        base = ["send", channel, "ev", "--socket-dir", sock_dir]
        assert run([*base, '{"k": [1, "x"]}']).returncode == 0
        assert run([*base, "just text"]).returncode == 0
        assert run(base).returncode == 0
        assert run([*base, "-"], stdin='{"from": "stdin"}\n').returncode == 0
        assert run([*base, "-"], stdin="line one\nline two\n").returncode == 0
        got = [inbox.get() for _ in range(5)]
    assert got == [{"k": [1, "x"]}, "just text", None, {"from": "stdin"}, "line one\nline two"]


def test_send_without_server_fails_in_one_line(sock_dir: str, channel: str) -> None:
    start = time.monotonic()
    result = run(["send", channel, "ev", "1", "--socket-dir", sock_dir, "--timeout", "0.5"])
    assert time.monotonic() - start < 20
    assert_one_line_error(result)
    assert "could not connect" in result.stderr


def test_bad_channel_name_fails_in_one_line(sock_dir: str) -> None:
    result = run(["send", "bad name", "ev", "--socket-dir", sock_dir])
    assert_one_line_error(result)
    assert "not a valid name" in result.stderr


def test_authkey_file(sock_dir: str, channel: str, tmp_path: Any) -> None:
    good, bad = tmp_path / "good.key", tmp_path / "bad.key"
    good.write_bytes(b"s3cret")
    bad.write_bytes(b"wrong")
    inbox = Inbox()
    with UnixEvents("server", channel, socket_dir=sock_dir, authkey=b"s3cret") as server:
        server.receive("ev", inbox)
        base = ["send", channel, "ev", "1", "--socket-dir", sock_dir]
        assert run([*base, "--authkey-file", str(good)]).returncode == 0
        assert inbox.get() == 1
        result = run([*base, "--authkey-file", str(bad)])
        assert_one_line_error(result)
        assert "refused our key" in result.stderr
        result = run([*base, "--authkey-file", str(tmp_path / "missing")])
        assert_one_line_error(result)
        assert "--authkey-file" in result.stderr


# ------------------------------------------------------------------ request


def test_request_prints_the_reply(sock_dir: str, channel: str) -> None:
    def add(data: Any) -> Any:
        return {"sum": data["a"] + data["b"], "text": "é"}

    def boom(data: Any) -> Any:
        raise RuntimeError("it broke\nsecond line")

    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        server.receive("add", add)
        server.receive("boom", boom)
        base = ["request", channel, "--socket-dir", sock_dir]
        result = run([*base, "add", '{"a": 1, "b": 2}'])
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"sum": 3, "text": "é"}
        assert "é" in result.stdout  # ensure_ascii=False
        result = run([*base, "boom"])
        assert_one_line_error(result)
        assert "it broke" in result.stderr and RemoteError.__name__ in result.stderr


def test_request_times_out(sock_dir: str, channel: str) -> None:
    import threading

    release = threading.Event()
    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        server.receive("slow", lambda data: release.wait(20))
        result = run(["request", channel, "slow", "--socket-dir", sock_dir, "--timeout", "0.5"])
        release.set()
    assert_one_line_error(result)
    assert "in time" in result.stderr


def test_request_with_node_is_refused() -> None:
    result = run(["request", "anything", "ev", "--node"])
    assert_one_line_error(result)
    assert "--node" in result.stderr


# ------------------------------------------------------------------- listen


def test_listen_prints_server_events_until_the_server_goes_away(
    sock_dir: str, channel: str
) -> None:
    server = UnixEvents("server", channel, socket_dir=sock_dir)
    try:
        with cli(["listen", channel, "--socket-dir", sock_dir]) as proc:
            assert server.wait_connected(15)
            server.send("one", {"n": 1})
            server.send("two", "deux")
            assert proc.line() == {"event": "one", "data": {"n": 1}}
            assert proc.line() == {"event": "two", "data": "deux"}
            server.close()
            assert proc.wait() == 0
            assert "Traceback" not in proc.stderr()
    finally:
        server.close()


def test_listen_only_named_events(sock_dir: str, channel: str) -> None:
    with (
        UnixEvents("server", channel, socket_dir=sock_dir) as server,
        cli(["listen", channel, "b", "c", "--socket-dir", sock_dir]) as proc,
    ):
        assert server.wait_connected(15)
        for name in "abcab":
            server.send(name, name)
        assert [proc.line() for _ in range(3)] == [
            {"event": "b", "data": "b"},
            {"event": "c", "data": "c"},
            {"event": "b", "data": "b"},
        ]
        proc.signal(signal.SIGINT)
        assert proc.wait() == 0
        assert "Traceback" not in proc.stderr()
        assert proc.rest() == b""


def test_listen_without_server_fails(sock_dir: str, channel: str) -> None:
    result = run(["listen", channel, "--socket-dir", sock_dir, "--timeout", "0.3"])
    assert_one_line_error(result)


# -------------------------------------------------------------------- serve


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_client_events_and_stops_cleanly(
    sock_dir: str, channel: str, signum: int
) -> None:
    with cli(["serve", channel, "--socket-dir", sock_dir]) as proc:
        client = UnixEvents(socket_dir=sock_dir)
        try:
            assert client.init_sync("client", channel, timeout=15)
            client.send("hello", {"x": [1, None]})
            client.send("bye", "ciao")
            assert proc.line() == {"event": "hello", "data": {"x": [1, None]}}
            assert proc.line() == {"event": "bye", "data": "ciao"}
        finally:
            client.close()
        proc.signal(signum)
        assert proc.wait() == 0
        assert "Traceback" not in proc.stderr()
    assert os.listdir(sock_dir) == []  # socket and key file removed


def test_serve_relay_is_a_hub(sock_dir: str, channel: str) -> None:
    inbox_a, inbox_b = Inbox(), Inbox()
    with cli(["serve", channel, "--relay", "--socket-dir", sock_dir]) as proc:
        a, b = UnixEvents(socket_dir=sock_dir), UnixEvents(socket_dir=sock_dir)
        try:
            a.receive("chat", inbox_a)
            b.receive("chat", inbox_b)
            assert a.init_sync("client", channel, timeout=15)
            assert b.init_sync("client", channel, timeout=15)
            # Both are connected once the server has seen an event from each.
            a.send("hi", "a")
            b.send("hi", "b")
            assert sorted(proc.line()["data"] for _ in range(2)) == ["a", "b"]
            a.send("chat", {"from": "a"})
            assert proc.line() == {"event": "chat", "data": {"from": "a"}}
            assert inbox_a.get() == {"from": "a"}
            assert inbox_b.get() == {"from": "a"}
        finally:
            a.close()
            b.close()
        proc.signal(signal.SIGINT)
        assert proc.wait() == 0


def test_serve_on_a_live_channel_fails(sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir):
        result = run(["serve", channel, "--socket-dir", sock_dir])
    assert_one_line_error(result)
    assert "in use" in result.stderr


# --------------------------------------------------------------------- node


def test_node_serve_hears_a_javascript_client(node_channel: str) -> None:
    with cli(["serve", node_channel, "--node", "--relay"]) as proc:
        wait_for(lambda: os.path.exists(node_path(node_channel)), timeout=15)
        with fake_client(node_channel, timeout=15) as js:
            js.send_raw(js_stringify("c-ev", {"a": ";;"}) + b"junk;;" + js_stringify("c-ev", "s"))
            assert proc.line() == {"event": "ev", "data": {"a": ";;"}}
            assert proc.line() == {"event": "ev", "data": "s"}
            assert js.recv() == {"event": "s-ev", "payload": '{"a":";;"}'}
            assert js.recv() == {"event": "s-ev", "payload": "s"}
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
        assert "bad message" in proc.stderr()  # the junk was logged, the connection kept


def test_node_send_and_listen(node_channel: str) -> None:
    inbox = Inbox()
    with UnixEvents("server", node_channel, protocol="node") as server:
        server.receive("ev", inbox)
        assert run(["send", node_channel, "ev", "[1, 2]", "--node"]).returncode == 0
        assert inbox.get() == [1, 2]
        with cli(["listen", node_channel, "--node"]) as proc:
            assert server.wait_connected(15)
            server.send("news", "a;;b")
            assert proc.line() == {"event": "news", "data": "a;;b"}
            proc.signal(signal.SIGINT)
            assert proc.wait() == 0


def test_node_with_authkey_file_is_refused(tmp_path: Any) -> None:
    key = tmp_path / "k"
    key.write_bytes(b"k")
    result = run(["send", "x", "ev", "--node", "--authkey-file", str(key)])
    assert_one_line_error(result)
    assert "no authentication" in result.stderr


def test_ctrl_c_while_connecting_exits_130_without_traceback(sock_dir: str, channel: str) -> None:
    with cli(["send", channel, "ev", "--socket-dir", sock_dir, "--timeout", "60", "-v"]) as proc:
        err = proc.popen.stderr
        assert err is not None
        # -v logs each failed attempt: once one is logged, we are in the connect loop.
        deadline = time.monotonic() + 30
        seen = b""
        while b"connect to" not in seen:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([err.fileno()], [], [], left)[0], seen
            chunk = os.read(err.fileno(), 65536)
            assert chunk, seen
            seen += chunk
        proc.signal(signal.SIGINT)
        assert proc.wait() == 130
        assert b"Traceback" not in seen + err.read()
