"""Bad input: every decoder, fuzzed on bytes alone and through a live socket.

The sans-I/O readers must only ever return well-formed messages or raise
``FramingError``, and hold at most one frame's worth of bytes. Through a
socket, a fuzzing peer that has passed the handshake must never crash, hang
or bloat the server, and a good client beside it must keep being answered.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import struct
import time
import uuid
from multiprocessing.connection import Client
from typing import Any, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stress_support import (
    ProcessProbe,
    env_number,
    mib,
    record,
    sample_when_settled,
    target_server,
)

from unixevents import UnixEvents
from unixevents._node import NodeReader
from unixevents._protocol import (
    FRAME_SLACK,
    DecodeError,
    FramingError,
    JsonCodec,
    MpWire,
    check_message,
)

pytestmark = pytest.mark.stress

EXAMPLES = int(env_number("UNIXEVENTS_FUZZ_EXAMPLES", 1000))
LIVE_EXAMPLES = int(env_number("UNIXEVENTS_FUZZ_LIVE_EXAMPLES", 300))
MAX_MSG = 4096  # small, so that oversized frames are cheap to make
_FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
_LIVE = settings(_FUZZ, max_examples=LIVE_EXAMPLES)

# ----------------------------------------------------------------- strategies

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_json = st.recursive(
    _json_leaf,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


_deep = st.builds(_nested, st.integers(1, 200_000), st.sampled_from(["list", "dict"]))


@st.composite
def _message_text(draw: Any) -> str:
    """A JSON message that is right, slightly wrong or wholly wrong in its types."""
    kind = draw(st.one_of(st.integers(-2, 6), _json))
    event = draw(st.one_of(st.text(max_size=10), _json))
    data = draw(st.one_of(_json, _deep))
    parts = [
        json.dumps(kind),
        json.dumps(event),
        data if isinstance(data, str) else json.dumps(data),
    ]
    if draw(st.booleans()):
        parts.append(json.dumps(draw(st.one_of(st.integers(), _json))))
    return "[" + ",".join(parts[: draw(st.integers(0, len(parts)))]) + "]"


def _spoil_utf8(text: str, cut: int, junk: bytes) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    cut %= len(raw) + 1
    return raw[:cut] + junk + raw[cut:]


@st.composite
def mp_body(draw: Any) -> bytes:
    """One frame body: a batch of messages, random bytes, deep nesting, bad UTF-8."""
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return draw(st.binary(max_size=300))
    if choice == 1:
        return draw(_deep).encode()
    msgs = draw(st.lists(_message_text(), max_size=5))
    text = "[" + ",".join(msgs) + "]"
    if choice == 2:
        return text.encode("utf-8", "surrogatepass")
    if choice == 3:
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
        return _spoil_utf8(text, draw(st.integers(0, 10_000)), junk)
    return draw(_json).__repr__().encode()  # Python repr: almost JSON, not quite


def _header(n: int) -> bytes:
    return struct.pack("!i", n)


@st.composite
def mp_stream(draw: Any) -> Tuple[bytes, bool]:
    """Bytes as they could arrive after the handshake; True if they must break the framing."""
    frames: List[bytes] = []
    breaks = False
    for _ in range(draw(st.integers(1, 4))):
        choice = draw(st.integers(0, 5))
        if choice <= 2:
            body = draw(mp_body())
            frames.append(_header(len(body)) + body)
            if len(body) > MAX_MSG + FRAME_SLACK:  # a frame over the limit breaks it too
                breaks = True
                break
        elif choice == 3:  # truncated: the stream ends inside a frame
            body = draw(mp_body())
            frame = _header(len(body)) + body
            frames.append(frame[: draw(st.integers(0, max(0, len(frame) - 1)))])
            break
        elif choice == 4:  # a huge or negative declared length
            n = draw(
                st.one_of(
                    st.integers(MAX_MSG + FRAME_SLACK + 1, 2**31 - 1), st.integers(-(2**31), -1)
                )
            )
            frames.append(_header(n) + draw(st.binary(max_size=50)))
            breaks = True
            break
        else:
            frames.append(draw(st.binary(max_size=200)))
            breaks = True  # may or may not break it; only the bound is checked
            break
    return b"".join(frames), breaks


def _breaks_framing(data: bytes, max_frame: int) -> bool:
    """The reference answer: does some header in ``data`` declare an impossible length?"""
    pos = 0
    while len(data) - pos >= 4:
        (n,) = struct.unpack_from("!i", data, pos)
        if n < 0 or n > max_frame:
            return True
        pos += 4 + n
    return False


def _chunks(data: bytes, cuts: List[int]) -> Iterator[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    prev = 0
    for p in [*points, len(data)]:
        yield data[prev:p]
        prev = p


_counts = {"mp_reader": 0, "json_split": 0, "node_reader": 0, "node_good_after_bad": 0}


@pytest.fixture(scope="module", autouse=True)
def _record_counts() -> Iterator[None]:
    yield
    record(
        "fuzz_sans_io",
        examples_per_property=EXAMPLES,
        cases=dict(_counts),
        total_cases=sum(_counts.values()),
    )


# ------------------------------------------------------ sans-I/O: the mp wire


@_FUZZ
@given(mp_stream(), st.lists(st.integers(0, 2**20), max_size=6))
def test_mp_reader_yields_only_good_messages_or_a_framing_error(
    stream: Tuple[bytes, bool], cuts: List[int]
) -> None:
    _counts["mp_reader"] += 1
    data, _ = stream
    wire = MpWire(JsonCodec(), MAX_MSG)
    must_break = _breaks_framing(data, wire.max_frame)
    reader = wire.reader()
    try:
        for chunk in _chunks(data, cuts):
            for msg in reader.feed(chunk):
                check_message(msg)
            # Memory: never more than one frame (and its header) is held.
            assert reader._frames.buffered <= wire.max_frame + 4
    except FramingError:
        assert must_break
    else:
        assert not must_break
    for why in reader.bad:
        assert isinstance(why, str)


@_FUZZ
@given(mp_body())
def test_json_split_yields_good_messages_or_a_decode_error(body: bytes) -> None:
    _counts["json_split"] += 1
    bad: List[str] = []
    try:
        msgs = JsonCodec.split(body, bad)
    except DecodeError:
        return
    for msg in msgs:
        check_message(msg)


# ---------------------------------------------------- sans-I/O: the Node wire


@st.composite
def node_piece(draw: Any) -> bytes:
    choice = draw(st.integers(0, 6))
    if choice == 0:  # a good message
        payload = draw(_json)
        return json.dumps({"event": "c-" + draw(st.text(max_size=8)), "payload": payload}).encode()
    if choice == 1:  # wrong types for event / payload
        return json.dumps({"event": draw(_json), "payload": draw(_json)}).encode()
    if choice == 2:
        return draw(st.binary(max_size=100))
    if choice == 3:
        return draw(_deep).encode()
    if choice == 4:
        text = json.dumps({"event": "c-x", "payload": draw(st.text(max_size=30))})
        return _spoil_utf8(text, draw(st.integers(0, 100)), b"\xff\xfe")
    if choice == 5:  # a message the JavaScript sender wrote with ';;' in a string
        return json.dumps({"event": "c-x", "payload": "a;;b" + draw(st.text(max_size=5))}).encode()
    return b"x" * draw(st.integers(MAX_MSG - 10, MAX_MSG * 2))  # too long, no delimiter


@_FUZZ
@given(st.lists(node_piece(), max_size=8), st.lists(st.integers(0, 2**16), max_size=8))
def test_node_reader_yields_only_events_or_a_framing_error(
    pieces: List[bytes], cuts: List[int]
) -> None:
    _counts["node_reader"] += 1
    data = b";;".join(pieces) + b";;"
    reader = NodeReader("c-", MAX_MSG)
    try:
        for chunk in _chunks(data, cuts):
            for msg in reader.feed(chunk):
                assert msg[0] == 0 and type(msg[1]) is str and len(msg) == 3
            assert reader.buffered <= MAX_MSG + 2
    except FramingError:
        assert reader.buffered > MAX_MSG  # only ever for an over-long message


_garbage = st.binary(max_size=60).filter(lambda b: b'"' not in b and b";" not in b)


@_FUZZ
@given(_garbage, _json, st.lists(st.integers(0, 300), max_size=4))
def test_node_garbage_never_costs_the_good_message_after_it(
    garbage: bytes, payload: Any, cuts: List[int]
) -> None:
    _counts["node_good_after_bad"] += 1
    good = json.dumps({"event": "c-good", "payload": json.dumps(payload)}).encode()
    reader = NodeReader("c-", MAX_MSG)
    out: List[Any] = []
    for chunk in _chunks(garbage + b";;" + good + b";;", cuts):
        out.extend(reader.feed(chunk))
    assert [m[1] for m in out if m[1] == "good"] == ["good"]
    assert out[-1][2] == payload


# ----------------------------------------------------------- through a socket


@pytest.fixture
def mp_target(sock_dir: str, channel: str, spawn_ctx: Any) -> Iterator[Tuple[str, Any]]:
    with target_server(spawn_ctx, channel, sock_dir, "mp", {"max_message_size": MAX_MSG}) as proc:
        yield os.path.join(sock_dir, channel + ".sock"), proc


def _raw_client(address: str) -> Any:
    """An authenticated ``multiprocessing.connection`` client, key read from the file."""
    with open(address[: -len(".sock")] + ".key", "rb") as fh:
        key = fh.read()
    return Client(address, family="AF_UNIX", authkey=key)


def _closed_by_peer(conn: Any, timeout: float) -> bool:
    """True if the peer closed ``conn`` within ``timeout`` (we read and discard until EOF)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if conn.poll(0.1):
                conn.recv_bytes()
        except (EOFError, OSError):
            return True
    return False


def test_mp_fuzz_through_a_live_socket(
    mp_target: Tuple[str, Any], sock_dir: str, channel: str
) -> None:
    address, proc = mp_target
    server = ProcessProbe(proc.pid)
    good = UnixEvents("client", channel, socket_dir=sock_dir, max_message_size=MAX_MSG)
    stats = {"cases": 0, "closed_by_server": 0, "good_round_trips": 0}
    latencies: List[float] = []
    try:
        assert good.wait_connected(30)
        assert good.request("echo", 0, timeout=10).result() == 0
        before = server.sample()

        @_LIVE
        @given(mp_stream())
        def run(stream: Tuple[bytes, bool]) -> None:
            data, _ = stream
            conn = _raw_client(address)
            try:
                os.write(conn.fileno(), data)
            finally:
                conn.close()
            stats["cases"] += 1
            t0 = time.monotonic()
            assert good.request("echo", stats["cases"], timeout=10).result() == stats["cases"]
            latencies.append(time.monotonic() - t0)
            stats["good_round_trips"] += 1

        run()

        # A length over the limit closes that one connection, at once.
        for n in (MAX_MSG + 1000, 2**31 - 1, -1, -(2**31)):
            conn = _raw_client(address)
            try:
                os.write(conn.fileno(), _header(n) + b"xx")
                assert _closed_by_peer(conn, 10), f"declared length {n} did not close the link"
                stats["closed_by_server"] += 1
            finally:
                conn.close()
        assert good.request("echo", "still here", timeout=10).result() == "still here"
        assert proc.is_alive()
        # Every fuzz connection is gone again: no descriptor or thread kept for them.
        after = sample_when_settled(server, before["fds"])
    finally:
        good.close()
    latencies.sort()
    record(
        "fuzz_live_mp",
        cases=stats["cases"],
        oversized_frames_closed=stats["closed_by_server"],
        good_client_round_trips=stats["good_round_trips"],
        good_p50_ms=round(1000 * latencies[len(latencies) // 2], 2),
        good_max_ms=round(1000 * latencies[-1], 2),
        server_rss_mib_before=mib(before["rss"]),
        server_rss_mib_after=mib(after["rss"]),
        server_fds_before=before["fds"],
        server_fds_after=after["fds"],
        server_threads_before=before["threads"],
        server_threads_after=after["threads"],
    )
    assert after["fds"] <= before["fds"]
    assert after["threads"] <= before["threads"]
    assert after["rss"] - before["rss"] < 32 * 1024 * 1024


def test_a_json_channel_never_unpickles(
    mp_target: Tuple[str, Any], sock_dir: str, channel: str, tmp_path: Any
) -> None:
    import dill

    canary = str(tmp_path / "unpickled")

    class Evil:
        def __reduce__(self) -> Any:
            return (open, (canary, "w"))

    attempts = [
        pickle.dumps(Evil()),
        pickle.dumps([0, "echo", Evil()]),
        dill.dumps((0, "ping", Evil())),
        dill.dumps((1, "echo", Evil(), 7)) * 3,
        json.dumps([[0, "ping", pickle.dumps(Evil()).decode("latin-1")]]).encode(),
    ]
    address, proc = mp_target
    sent = 0
    with UnixEvents("client", channel, socket_dir=sock_dir) as good:
        assert good.wait_connected(30)
        for body in attempts:
            conn = _raw_client(address)
            try:
                conn.send_bytes(body)
                conn.send(Evil())  # what Connection.send would pickle
                sent += 2
            finally:
                conn.close()
        assert good.request("echo", "after", timeout=10).result() == "after"
    assert proc.is_alive()
    assert not os.path.exists(canary)
    record("no_unpickling", pickled_frames_sent=sent, unpickled=0)


@pytest.fixture
def node_target(spawn_ctx: Any) -> Iterator[Tuple[str, str, Any]]:
    channel = "ue-stress-" + uuid.uuid4().hex[:10]
    with target_server(spawn_ctx, channel, "", "node", {"max_message_size": MAX_MSG}) as proc:
        yield channel, f"/tmp/{channel}.sock", proc


def test_node_fuzz_through_a_live_socket(node_target: Tuple[str, str, Any]) -> None:
    import threading

    channel, address, proc = node_target
    server = ProcessProbe(proc.pid)
    good = UnixEvents("client", channel, protocol="node")
    pongs: List[Any] = []
    arrived = threading.Condition()

    def on_pong(data: Any) -> None:
        with arrived:
            pongs.append(data)
            arrived.notify_all()

    good.receive("pong", on_pong)
    stats = {"cases": 0}
    try:
        assert good.wait_connected(30)
        before = server.sample()

        @_LIVE
        @given(st.lists(node_piece(), max_size=6), st.booleans())
        def run(pieces: List[bytes], close_early: bool) -> None:
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            raw.connect(address)
            try:
                raw.sendall(b";;".join(pieces) + (b"" if close_early else b";;"))
            except OSError:
                pass  # the server dropped us for an over-long message: fine
            finally:
                raw.close()
            stats["cases"] += 1
            n = stats["cases"]
            good.send("ping", {"n": n})
            with arrived:
                ok = arrived.wait_for(lambda: {"n": n} in pongs, timeout=10)
            assert ok, f"the good node client got no pong after fuzz case {n}"

        run()
        assert proc.is_alive()
        after = sample_when_settled(server, before["fds"])
    finally:
        good.close()
    record(
        "fuzz_live_node",
        cases=stats["cases"],
        good_client_pongs=len(pongs),
        server_rss_mib_before=mib(before["rss"]),
        server_rss_mib_after=mib(after["rss"]),
        server_fds_before=before["fds"],
        server_fds_after=after["fds"],
    )
    assert after["fds"] <= before["fds"]
    assert after["rss"] - before["rss"] < 32 * 1024 * 1024
