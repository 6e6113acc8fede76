"""protocol='node': the JavaScript package's ``;;`` wire, sans I/O and over sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import queue
import socket
import threading
from typing import Any, List, Tuple

import pytest
from conftest import wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_peer import fake_client, fake_server, js_stringify, node_path
from recorders import Inbox

from unixevents import (
    ChannelInUseError,
    NotConnectedError,
    SerializationError,
    UnixEvents,
    UnixEventsError,
)
from unixevents._node import NodeReader, NodeWire, decode_payload, node_address
from unixevents._protocol import EVENT, FramingError

SERVER = NodeWire("server", 1 << 20)
CLIENT = NodeWire("client", 1 << 20)


def feed_all(reader: NodeReader, chunks: List[bytes]) -> List[List[Any]]:
    out: List[List[Any]] = []
    for chunk in chunks:
        out.extend(reader.feed(chunk))
    return out


# ------------------------------------------------------------------ encoding


@pytest.mark.parametrize(
    ("wire", "data", "expected"),
    [
        (SERVER, "hi", b'{"event":"s-ev","payload":"hi"};;'),
        (CLIENT, "hi", b'{"event":"c-ev","payload":"hi"};;'),
        (SERVER, {"a": 1}, b'{"event":"s-ev","payload":"{\\"a\\":1}"};;'),
        (SERVER, [1, "x"], b'{"event":"s-ev","payload":"[1,\\"x\\"]"};;'),
        (SERVER, (1, 2), b'{"event":"s-ev","payload":"[1,2]"};;'),
        (SERVER, None, b'{"event":"s-ev","payload":"null"};;'),
        (SERVER, 5, b'{"event":"s-ev","payload":5};;'),
        (SERVER, 1.5, b'{"event":"s-ev","payload":1.5};;'),
        (SERVER, True, b'{"event":"s-ev","payload":true};;'),
        (SERVER, "h\u00e9", b'{"event":"s-ev","payload":"h\xc3\xa9"};;'),
        (SERVER, "a\nb", b'{"event":"s-ev","payload":"a\\nb"};;'),
    ],
)
def test_encode_matches_javascript_sender(wire: NodeWire, data: Any, expected: bytes) -> None:
    assert wire.encode(EVENT, "ev", data) == expected
    if not isinstance(data, tuple):
        # Where no ';' is involved we write what JSON.stringify writes.
        prefix = "s-" if wire is SERVER else "c-"
        assert expected == js_stringify(prefix + "ev", data)


def test_encode_escapes_every_semicolon() -> None:
    raw = SERVER.encode(EVENT, "a;b", {"k;": "x;;y"})
    assert raw.count(b";") == 2 and raw.endswith(b";;")
    assert raw == (b'{"event":"s-a\\u003bb","payload":"{\\"k\\u003b\\":\\"x\\u003b\\u003by\\"}"};;')
    obj = json.loads(raw[:-2])
    assert obj == {"event": "s-a;b", "payload": '{"k;":"x;;y"}'}


def test_encode_escapes_lone_surrogates_like_json_stringify() -> None:
    raw = SERVER.encode(EVENT, "ev", "a\ud800b")
    assert raw == b'{"event":"s-ev","payload":"a\\ud800b"};;'
    raw.decode("utf-8")  # valid UTF-8


@pytest.mark.parametrize(
    "data",
    [math.nan, math.inf, -math.inf, {1: "x"}, {"a": {None: 1}}, [object()], {1, 2}, b"bytes"],
)
def test_encode_refuses_what_json_cannot_carry(data: Any) -> None:
    with pytest.raises(SerializationError) as info:
        SERVER.encode(EVENT, "ev", data)
    assert isinstance(info.value, TypeError)


def test_encode_refuses_requests() -> None:
    with pytest.raises(UnixEventsError, match="request/reply"):
        SERVER.encode(1, "ev", None, 7)


def test_pack_concatenates() -> None:
    parts = [SERVER.encode(EVENT, "a", 1), SERVER.encode(EVENT, "b", 2)]
    assert SERVER.pack(parts) == parts[0] + parts[1]


# ------------------------------------------------------------------ payloads


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("plain", "plain"),
        ("123", 123),
        ('{"a":[1]}', {"a": [1]}),
        ("null", None),
        ("true", True),
        (" 1.5 ", 1.5),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("", ""),
        ("[1,", "[1,"),
        (5, 5),
        (None, None),
        ({"raw": 1}, {"raw": 1}),
    ],
)
def test_decode_payload(payload: Any, expected: Any) -> None:
    assert decode_payload(payload) == expected


# ------------------------------------------------------------------- reading

# A stream as the JavaScript client writes it (';;' inside strings unescaped),
# mixed with what we write, with garbage and unwanted messages in between.
STREAM_PARTS: List[Tuple[bytes, Any]] = [
    (js_stringify("c-a", {"k": "v"}), ("a", {"k": "v"})),
    (b"garbage", None),
    (CLIENT.encode(EVENT, "b;;", "x;;y"), ("b;;", "x;;y")),
    (js_stringify("c-c", 'q";;\\;;'), ("c", 'q";;\\;;')),
    (b"[1,2]", None),
    (js_stringify("s-wrong", "x"), None),
    (b'{"payload":1}', None),
    (js_stringify("c-d", [";;", {"e": ";;"}]), ("d", [";;", {"e": ";;"}])),
    (b'{"event":"c-open","payload":"unterminated', None),
    (js_stringify("c-e", 7), ("e", 7)),
    (b'{"event":"c-f"}', ("f", None)),
]


def _stream() -> Tuple[bytes, List[List[Any]], int]:
    data = b""
    expected = []
    bad = 0
    for raw, msg in STREAM_PARTS:
        data += raw if raw.endswith(b";;") else raw + b";;"
        if msg is None:
            bad += 1
        else:
            expected.append([EVENT, *msg])
    return data, expected, bad


def test_reader_whole_stream() -> None:
    data, expected, bad = _stream()
    reader = SERVER.reader()
    assert reader.feed(data) == expected
    assert len(reader.bad) == bad
    assert reader.buffered == 0


def test_reader_every_split_point() -> None:
    data, expected, bad = _stream()
    for i in range(len(data) + 1):
        reader = SERVER.reader()
        assert feed_all(reader, [data[:i], data[i:]]) == expected, i
        assert len(reader.bad) == bad, (i, reader.bad)
        assert reader.buffered == 0


def test_reader_every_pair_of_split_points() -> None:
    parts = [
        js_stringify("c-a", {"k": "v;;w"}),
        b"junk;;",
        CLIENT.encode(EVENT, "b", "x;;y"),
        js_stringify("c-c", "z"),
    ]
    data = b"".join(parts)
    expected = [[EVENT, "a", {"k": "v;;w"}], [EVENT, "b", "x;;y"], [EVENT, "c", "z"]]
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            reader = SERVER.reader()
            assert feed_all(reader, [data[:i], data[i:j], data[j:]]) == expected, (i, j)
            assert len(reader.bad) == 1


def test_reader_byte_by_byte() -> None:
    data, expected, bad = _stream()
    reader = SERVER.reader()
    assert feed_all(reader, [data[i : i + 1] for i in range(len(data))]) == expected
    assert len(reader.bad) == bad


def test_reader_keeps_the_partial_tail() -> None:
    reader = CLIENT.reader()
    assert reader.feed(b'{"event":"s-a","payload":"1"};;{"event":"s-b","pay') == [[EVENT, "a", 1]]
    assert reader.buffered > 0
    assert reader.feed(b'load":"2"};') == []
    assert reader.feed(b";") == [[EVENT, "b", 2]]
    assert reader.buffered == 0 and reader.bad == []


def test_reader_prefix_depends_on_role() -> None:
    from_server = js_stringify("s-x", "1")
    from_client = js_stringify("c-x", "1")
    server_side, client_side = SERVER.reader(), CLIENT.reader()
    assert server_side.feed(from_server + from_client) == [[EVENT, "x", 1]]
    assert client_side.feed(from_server + from_client) == [[EVENT, "x", 1]]
    assert "lacks the peer's prefix 'c-'" in server_side.bad[0]
    assert "lacks the peer's prefix 's-'" in client_side.bad[0]


@pytest.mark.parametrize(
    "piece",
    [b"", b";", b";;;", b"\n", b"\xff\xfe", b"{", b"}", b'"', b'{"event":5}', b'"s-x"', b"null"],
)
def test_reader_survives_garbage(piece: bytes) -> None:
    good = js_stringify("s-ok", {"n": 1})
    reader = CLIENT.reader()
    out = reader.feed(good + piece + b";;" + good)
    assert out == [[EVENT, "ok", {"n": 1}]] * 2


def test_reader_empty_pieces_and_extra_semicolons_are_skipped_silently() -> None:
    good = js_stringify("s-ok", "x")
    reader = CLIENT.reader()
    assert reader.feed(b";;" + good + b";;;;" + good + b";" + good) == [[EVENT, "ok", "x"]] * 3
    assert reader.bad == []


def test_reader_unterminated_string_does_not_swallow_the_next_message() -> None:
    reader = SERVER.reader()
    out = reader.feed(
        b'{"event":"c-x","payload":"trunc;;'
        + js_stringify("c-y", "a;;b")
        + b'{"event":"c-z","payload":"\\'
        + b";;"
        + js_stringify("c-w", "ok")
    )
    assert out == [[EVENT, "y", "a;;b"], [EVENT, "w", "ok"]]
    assert len(reader.bad) == 2
    assert "trunc" in reader.bad[0] and "c-y" not in reader.bad[0]


def test_reader_bounds_an_incomplete_message() -> None:
    reader = NodeWire("server", 100).reader()
    ok = js_stringify("c-x", "y" * (100 - len(js_stringify("c-x", ""))))
    assert len(ok) == 100
    assert reader.feed(ok) == [[EVENT, "x", "y" * (100 - 30)]]
    assert reader.feed(b"z" * 102) == []
    with pytest.raises(FramingError, match="max_message_size=100"):
        reader.feed(b"z")
    assert issubclass(FramingError, ValueError)


def test_reader_bounds_a_string_waiting_for_its_end() -> None:
    reader = NodeWire("server", 100).reader()
    reader.feed(b'{"event":"c-x","payload":"' + b";;" * 30)
    with pytest.raises(FramingError):
        reader.feed(b";;" * 30)


def test_reader_long_string_with_many_delimiters_is_linear() -> None:
    # A JavaScript peer does not escape: 100k ';;' in one string must not
    # cost one JSON parse each.
    text = "a;;" * 100_000
    data = js_stringify("c-x", text)
    reader = SERVER.reader()
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    assert feed_all(reader, chunks) == [[EVENT, "x", text]]


# ---------------------------------------------------------------- hypothesis

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
events = st.text(min_size=1, max_size=12)


def _expected(data: Any) -> Any:
    return decode_payload(data) if isinstance(data, str) else data


def _chunked(data: bytes, cuts: List[int]) -> List[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    msgs=st.lists(st.tuples(events, json_values), max_size=6), cuts=st.lists(st.integers(0, 10**6))
)
def test_roundtrip_property(msgs: List[Tuple[str, Any]], cuts: List[int]) -> None:
    data = b"".join(SERVER.encode(EVENT, e, d) for e, d in msgs)
    assert data.count(b";;") == len(msgs)  # ';;' only as the delimiter
    reader = CLIENT.reader()
    out = feed_all(reader, _chunked(data, cuts))
    assert out == [[EVENT, e, _expected(d)] for e, d in msgs]
    assert reader.bad == [] and reader.buffered == 0


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_strings_that_are_not_json_arrive_unchanged(text: str) -> None:
    reader = CLIENT.reader()
    (msg,) = reader.feed(SERVER.encode(EVENT, "s", text))
    try:
        json.loads(text)
    except ValueError:
        assert msg[2] == text
    # Python's JSON decoder reads back any lone surrogate we escaped.
    else:
        assert msg[2] == decode_payload(text)


garbage = st.text(max_size=20).filter(
    lambda g: ";;" not in g and not g.lstrip(" \t\n\r;").startswith(("{", "["))
)


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(
        st.one_of(st.tuples(events, json_values), garbage),
        max_size=8,
    ),
    cuts=st.lists(st.integers(0, 10**6)),
)
def test_javascript_stream_with_garbage_property(items: List[Any], cuts: List[int]) -> None:
    """Unescaped ';;' from a JavaScript sender and garbage pieces cost no good message."""
    data = b""
    expected = []
    for item in items:
        if isinstance(item, str):
            data += item.encode("utf-8") + b";;"
        else:
            event, payload = item
            data += js_stringify("c-" + event, payload)
            expected.append([EVENT, event, _expected(payload)])
    reader = SERVER.reader()
    assert feed_all(reader, _chunked(data, cuts)) == expected


# --------------------------------------------------------------- addresses


def test_node_address() -> None:
    address = node_address("my.chan-1")
    assert address.path == "/tmp/my.chan-1.sock"
    assert address.key_path is None
    assert address.channel == "my.chan-1"


@pytest.mark.parametrize("name", ["", "a/b", "/tmp/x.sock", "@abstract", "sp ace", "x" * 101])
def test_node_address_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid name"):
        node_address(name)


def test_node_address_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        node_address(5)  # type: ignore[arg-type]


# ------------------------------------------------------------ over sockets


class Callbacks:
    def __init__(self) -> None:
        self.q: queue.Queue[Tuple[Any, bool]] = queue.Queue()

    def __call__(self, error: Any, ok: bool) -> None:
        self.q.put((error, ok))

    def get(self, timeout: float = 10.0) -> Tuple[Any, bool]:
        return self.q.get(timeout=timeout)


def _node_server(channel: str, **options: Any) -> UnixEvents:
    return UnixEvents("server", channel, protocol="node", **options)


def _node_client(channel: str, **options: Any) -> UnixEvents:
    return UnixEvents("client", channel, protocol="node", **options)


def test_server_binds_in_tmp_and_removes_its_socket(node_channel: str) -> None:
    with _node_server(node_channel) as server:
        assert server.address == node_path(node_channel)
        assert os.path.exists(node_path(node_channel))
        assert not os.path.exists(node_path(node_channel) + ".key")
    assert not os.path.exists(node_path(node_channel))


def test_server_receives_coalesced_messages_from_js_client(node_channel: str) -> None:
    inbox = Inbox()
    with _node_server(node_channel) as server, fake_client(node_channel) as js:
        server.receive("ev", inbox)
        js.send_raw(
            js_stringify("c-ev", {"a": [1, 2]})
            + js_stringify("c-ev", "plain")
            + js_stringify("c-ev", "with;;delimiter")
            + js_stringify("c-ev", 42)
            + js_stringify("c-ev", None)
        )
        got = [inbox.get() for _ in range(5)]
    assert got == [{"a": [1, 2]}, "plain", "with;;delimiter", 42, None]


def test_server_receives_messages_split_across_reads(node_channel: str) -> None:
    inbox = Inbox()
    first = js_stringify("c-ev", {"k": "v;;w"})
    second = js_stringify("c-ev", "two")
    data = first + second
    # Cut inside the first message, inside its ';;' string, between the two
    # ';' of its delimiter, and inside the second message.
    cuts = (5, first.index(b";;"), len(first) - 1, len(first) + 7)
    with _node_server(node_channel) as server, fake_client(node_channel) as js:
        server.receive("ev", inbox)
        assert server.wait_connected(10)
        js.send_split(data, *cuts)
        assert inbox.get() == {"k": "v;;w"}
        assert inbox.get() == "two"


def test_server_sends_exact_javascript_bytes(node_channel: str) -> None:
    done = Callbacks()
    with _node_server(node_channel) as server, fake_client(node_channel) as js:
        assert server.wait_connected(10)
        server.send("ev", {"text": "a;;b"}, done)
        server.send("ev", "plain")
        assert done.get() == (None, True)
        first = js.recv()
        assert first == {"event": "s-ev", "payload": '{"text":"a;;b"}'}
        assert js.recv() == {"event": "s-ev", "payload": "plain"}
        assert bytes(js.raw) == (
            b'{"event":"s-ev","payload":"{\\"text\\":\\"a\\u003b\\u003bb\\"}"};;'
            b'{"event":"s-ev","payload":"plain"};;'
        )
        # Split on ';;' as the JavaScript receiver does: every piece is whole.
        assert [json.loads(p) for p in bytes(js.raw).split(b";;")[:-1]] == [
            first,
            {"event": "s-ev", "payload": "plain"},
        ]


def test_server_broadcasts_to_every_js_client(node_channel: str) -> None:
    done = Callbacks()
    with (
        _node_server(node_channel) as server,
        fake_client(node_channel) as a,
        fake_client(node_channel) as b,
    ):
        wait_for(lambda: len(server.peers) == 2)
        server.send("news", [1, "two"], done)
        assert done.get() == (None, True)
        for js in (a, b):
            assert js.recv() == {"event": "s-news", "payload": '[1,"two"]'}


def test_server_without_clients_reports_not_connected(node_channel: str) -> None:
    done = Callbacks()
    with _node_server(node_channel) as server:
        server.send("x", 1, done)
        error, ok = done.get()
    assert not ok and isinstance(error, NotConnectedError)


def test_garbage_between_delimiters_is_logged_and_skipped(
    node_channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="unixevents")
    inbox = Inbox()
    with _node_server(node_channel) as server, fake_client(node_channel) as js:
        server.receive("ev", inbox)
        js.send_raw(
            b"garbage;;"
            + js_stringify("s-ev", "wrong prefix")
            + b'{"no":"event"};;'
            + js_stringify("c-ev", "good")
        )
        assert inbox.get() == "good"
        reasons = [r.getMessage() for r in caplog.records if "bad message" in r.getMessage()]
        assert len(reasons) == 3
        assert any("garbage" in r for r in reasons)
        assert any("prefix" in r for r in reasons)
        assert any("'event'" in r for r in reasons)
        # The connection survived, both ways.
        js.send("ev", "after")
        assert inbox.get() == "after"
        server.send("back", "x")
        assert js.recv() == {"event": "s-back", "payload": "x"}
    assert inbox.empty()


def test_endless_message_drops_only_that_connection(
    node_channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox()
    with _node_server(node_channel, max_message_size=1024) as server:
        server.receive("ev", inbox)
        with fake_client(node_channel) as bad:
            assert server.wait_connected(10)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                bad.send_raw(b'{"event":"c-ev","payload":"' + b"x" * 4096)
            assert bad.wait_eof()
        assert any("max_message_size=1024" in r.getMessage() for r in caplog.records)
        with fake_client(node_channel) as good:
            good.send("ev", "still serving")
            assert inbox.get() == "still serving"


def test_server_receive_once_and_remove_receiver(node_channel: str) -> None:
    once, always = Inbox(), Inbox()
    with _node_server(node_channel) as server, fake_client(node_channel) as js:
        server.receive_once("ev", once)
        server.receive("ev", always)
        js.send("ev", "1")
        js.send("ev", "2")
        assert [always.get(), always.get()] == [1, 2]
        assert once.get() == 1
        server.remove_receiver("ev", always)
        server.receive("ev", always)  # re-registered: gets the next one only
        js.send("ev", "3")
        assert always.get() == 3
    assert once.empty()


def test_second_server_on_a_live_channel_is_refused(node_channel: str) -> None:
    with _node_server(node_channel):
        with pytest.raises(ChannelInUseError):
            _node_server(node_channel)
        assert os.path.exists(node_path(node_channel))


def test_stale_socket_is_replaced(node_channel: str) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(node_path(node_channel))
    stale.close()  # the file stays, no one listens
    inbox = Inbox()
    with _node_server(node_channel) as server, fake_client(node_channel) as js:
        server.receive("ev", inbox)
        js.send("ev", "hello")
        assert inbox.get() == "hello"


# -------------------------------------------------- our client, their server


def test_client_receives_from_js_server(node_channel: str) -> None:
    inbox = Inbox()
    with fake_server(node_channel) as js_server, _node_client(node_channel) as client:
        client.receive("ev", inbox)
        js = js_server.accept()
        assert client.wait_connected(10)
        data = js_stringify("s-ev", {"n": 1}) + js_stringify("s-ev", "a;;b")
        js.send_raw(data + js_stringify("s-ev", 3))
        js.send_split(data, 3, len(data) // 2, len(data) - 1)
        got = [inbox.get() for _ in range(5)]
    assert got == [{"n": 1}, "a;;b", 3, {"n": 1}, "a;;b"]


def test_client_sends_exact_javascript_bytes(node_channel: str) -> None:
    done = Callbacks()
    with fake_server(node_channel) as js_server, _node_client(node_channel) as client:
        js = js_server.accept()
        assert client.wait_connected(10)
        client.send("ev", ["x;;", 1], done)
        assert done.get() == (None, True)
        assert asyncio.run(client.send_sync("ev2", "sync")) is True
        assert js.recv() == {"event": "c-ev", "payload": '["x;;",1]'}
        assert js.recv() == {"event": "c-ev2", "payload": "sync"}
        assert bytes(js.raw).count(b";;") == 2


def test_client_drops_client_prefixed_events(
    node_channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox()
    with fake_server(node_channel) as js_server, _node_client(node_channel) as client:
        client.receive("ev", inbox)
        js = js_server.accept()
        js.send_raw(js_stringify("c-ev", "echo") + b"{;;" + js_stringify("s-ev", "real"))
        assert inbox.get() == "real"
    assert inbox.empty()
    assert sum("bad message" in r.getMessage() for r in caplog.records) == 2


def test_client_queues_while_the_js_server_restarts(node_channel: str) -> None:
    with fake_server(node_channel) as js_server:
        client = _node_client(node_channel, backoff_initial=0.01, backoff_max=0.05)
        lost = threading.Event()
        client.on_disconnect(lambda peer: lost.set())
        try:
            js = js_server.accept()
            assert client.wait_connected(10)
            js.close()
            assert lost.wait(10)
            # Queued, or already on the next connection (the kernel accepts
            # into the backlog before the fake server calls accept()).
            client.send("queued", "while away")
            again = js_server.accept()
            assert again.recv() == {"event": "c-queued", "payload": "while away"}
        finally:
            client.close()


# ----------------------------------------------------- Python on both ends


def test_python_server_and_client_in_node_mode(node_channel: str) -> None:
    to_server, to_client = Inbox(), Inbox()
    with _node_server(node_channel) as server, _node_client(node_channel) as client:
        server.receive("up", to_server)
        client.receive("down", to_client)
        assert client.wait_connected(10)
        assert server.wait_connected(10)
        for payload in [{"a": ";;"}, [1, 2], "x;;y", "123", 4.5, None, False]:
            client.send("up", payload)
            server.send("down", payload)
        expected = [{"a": ";;"}, [1, 2], "x;;y", 123, 4.5, None, False]
        assert [to_server.get() for _ in expected] == expected
        assert [to_client.get() for _ in expected] == expected


def test_close_then_send_fails(node_channel: str) -> None:
    done = Callbacks()
    server = _node_server(node_channel)
    server.close()
    server.close()  # idempotent
    assert not os.path.exists(node_path(node_channel))
    server.send("x", 1, done)
    error, ok = done.get()
    assert not ok and isinstance(error, NotConnectedError)
    assert asyncio.run(server.send_sync("x", 1)) is False


def test_unencodable_payload_raises_and_sends_nothing(node_channel: str) -> None:
    with _node_server(node_channel) as server, fake_client(node_channel) as js:
        assert server.wait_connected(10)
        with pytest.raises(SerializationError):
            server.send("x", {"bad": math.nan})
        with pytest.raises(SerializationError):
            server.send("x", {1: "int key"})
        server.send("x", "after")
        assert js.recv() == {"event": "s-x", "payload": "after"}
        assert bytes(js.raw) == b'{"event":"s-x","payload":"after"};;'


# ------------------------------------------------------- what does not exist


def test_request_does_not_exist_in_node_mode(node_channel: str) -> None:
    with (
        _node_server(node_channel) as server,
        pytest.raises(UnixEventsError, match="request/reply does not exist"),
    ):
        server.request("x", 1)


def test_authkey_is_refused_in_node_mode() -> None:
    with pytest.raises(ValueError, match="no authentication"):
        UnixEvents(protocol="node", authkey=b"secret")


def test_dill_is_refused_in_node_mode() -> None:
    with pytest.raises(ValueError, match="JSON only"):
        UnixEvents(protocol="node", serializer="dill")


@pytest.mark.parametrize("name", ["/tmp/abs.sock", "@abstract", "bad name"])
def test_node_mode_needs_a_plain_name(name: str) -> None:
    inst = UnixEvents(protocol="node")
    with pytest.raises(ValueError, match=r"/tmp/<channel>\.sock"):
        inst.init_sync("server", name)
    inst.close()


def test_async_init_in_node_mode(node_channel: str) -> None:
    async def main() -> Any:
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        server = UnixEvents(protocol="node")
        client = UnixEvents(protocol="node")
        try:
            assert await server.init("server", node_channel)

            async def on_up(data: Any) -> None:
                await inbox.put(data)

            server.receive("up", on_up)
            assert await client.init("client", node_channel, timeout=10)
            assert await client.send_sync("up", {"x": 1})
            return await asyncio.wait_for(inbox.get(), 10)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, client.close)
            await asyncio.get_running_loop().run_in_executor(None, server.close)

    assert asyncio.run(main()) == {"x": 1}


# ------------------------------------------------ real Node.js JSON, no npm

# A peer in Node.js itself, written from the wire description (not the npm
# package, which needs a download): it checks our bytes against the real
# JSON.parse / JSON.stringify and toString(). It keeps partial tails.
_NODE_PEER = r"""
const net = require('net');
const [path, expected] = [process.argv[1], Number(process.argv[2])];
const sock = net.createConnection({ path }, () => {
  const send = (event, payload) => {
    payload = typeof payload === 'object' ? JSON.stringify(payload) : payload;
    sock.write(JSON.stringify({ event: 'c-' + event, payload }) + ';;');
  };
  send('ev', { t: 'x;;y', n: [1, 2.5, null] });
  send('ev', 'a;;b');
  send('ev', 42);
  send('ev', null);
  send('ev', 'h\u00e9');
});
let tail = '';
let seen = 0;
sock.on('data', (chunk) => {
  const parts = (tail + chunk.toString()).split(';;');
  tail = parts.pop();
  for (const part of parts) {
    const msg = JSON.parse(part);
    process.stdout.write(JSON.stringify([msg.event, msg.payload.toString()]) + '\n');
    if (++seen === expected) sock.end();
  }
});
setTimeout(() => { process.stderr.write('timed out\n'); process.exit(3); }, 20000).unref();
"""


def test_real_node_json_interoperates(node_channel: str) -> None:
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    inbox = Inbox()
    sent = [{"t": "x;;y"}, "a;;b", 7, None, True, "\u00e9\ud800;"]
    with _node_server(node_channel) as server:
        server.receive("ev", inbox)
        server.on_connect(lambda peer: [server.send("out", p) for p in sent])
        proc = subprocess.run(
            [node, "-e", _NODE_PEER, node_path(node_channel), str(len(sent))],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        got = [inbox.get() for _ in range(5)]
    assert got == [{"t": "x;;y", "n": [1, 2.5, None]}, "a;;b", 42, None, "h\u00e9"]
    heard = [json.loads(line) for line in proc.stdout.splitlines()]
    assert heard == [
        ["s-out", '{"t":"x;;y"}'],
        ["s-out", "a;;b"],
        ["s-out", "7"],
        ["s-out", "null"],
        ["s-out", "true"],
        ["s-out", "\u00e9\ud800;"],
    ]
