"""The sans-I/O message layer: codecs and framing, on plain bytes."""

from __future__ import annotations

import json
import math
import struct
from typing import Any, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unixevents import SerializationError
from unixevents._protocol import (
    EVENT,
    FAILURE,
    NO_LISTENER,
    REPLY,
    REQUEST,
    DecodeError,
    DillCodec,
    FrameReader,
    FramingError,
    JsonCodec,
    MpWire,
    check_message,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)


def roundtrip(wire: MpWire, msgs: List[bytes]) -> List[Any]:
    reader = wire.reader()
    out = reader.feed(wire.pack(msgs))
    assert reader.bad == []
    return out


@given(json_values, st.text(min_size=1))
@settings(max_examples=300, deadline=None)
def test_json_roundtrip_any_json_value(value: Any, event: str) -> None:
    wire = MpWire(JsonCodec(), 1 << 20)
    assert roundtrip(wire, [wire.encode(EVENT, event, value)]) == [[EVENT, event, value]]


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_a_str_payload_always_arrives_as_the_same_str(text: str) -> None:
    # Includes lone surrogates, NULs and text that looks like JSON.
    wire = MpWire(JsonCodec(), 1 << 20)
    [[_, _, got]] = roundtrip(wire, [wire.encode(EVENT, "e", text)])
    assert got == text and type(got) is str


def test_tuples_arrive_as_lists() -> None:
    wire = MpWire(JsonCodec(), 1 << 20)
    [[_, _, got]] = roundtrip(wire, [wire.encode(EVENT, "e", (1, (2, 3)))])
    assert got == [1, [2, 3]]


@pytest.mark.parametrize(
    "bad",
    [
        math.nan,
        math.inf,
        -math.inf,
        {1: "int key"},
        {"nested": [{None: 1}]},
        {(1, 2): "tuple key"},
        {"s": {1, 2}},
        b"bytes",
        object(),
        [1, 2, complex(1, 2)],
    ],
    ids=repr,
)
def test_json_rejects_what_json_cannot_carry_faithfully(bad: Any) -> None:
    with pytest.raises(SerializationError) as info:
        JsonCodec().encode(EVENT, "e", bad)
    assert isinstance(info.value, TypeError)
    assert "serializer='dill'" in str(info.value)


def test_json_rejects_circular_and_very_deep_payloads() -> None:
    loop: List[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError):
        JsonCodec().encode(EVENT, "e", loop)
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(SerializationError):
        JsonCodec().encode(EVENT, "e", deep)


def test_messages_of_every_kind_roundtrip() -> None:
    wire = MpWire(JsonCodec(), 1 << 20)
    parts = [
        wire.encode(EVENT, "a", 1),
        wire.encode(REQUEST, "b", [2], 7),
        wire.encode(REPLY, "b", {"r": 3}, 7),
        wire.encode(FAILURE, "ValueError", ["boom", "Traceback..."], 8),
        wire.encode(NO_LISTENER, "c", None, 9),
    ]
    assert roundtrip(wire, parts) == [
        [EVENT, "a", 1],
        [REQUEST, "b", [2], 7],
        [REPLY, "b", {"r": 3}, 7],
        [FAILURE, "ValueError", ["boom", "Traceback..."], 8],
        [NO_LISTENER, "c", None, 9],
    ]


@given(st.lists(json_values, min_size=1, max_size=20), st.data())
@settings(max_examples=100, deadline=None)
def test_frames_survive_any_split_of_the_stream(values: List[Any], data: Any) -> None:
    wire = MpWire(JsonCodec(), 1 << 20)
    # Several frames back to back, fed in arbitrary pieces.
    stream = b"".join(wire.pack([wire.encode(EVENT, "e", v)]) for v in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    reader = wire.reader()
    got: List[Any] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        got.extend(reader.feed(stream[last:cut]))
        last = cut
    assert [m[2] for m in got] == values


def test_every_split_point_of_a_two_frame_stream() -> None:
    wire = MpWire(JsonCodec(), 1 << 20)
    stream = wire.pack([wire.encode(EVENT, "a", "x;y")]) + wire.pack(
        [wire.encode(EVENT, "b", {"k": [1, 2]}), wire.encode(EVENT, "c", None)]
    )
    for cut in range(len(stream) + 1):
        reader = wire.reader()
        got = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
        assert [m[1] for m in got] == ["a", "b", "c"], cut


def test_an_oversized_declared_length_breaks_the_framing_before_any_body_is_read() -> None:
    reader = FrameReader(max_frame=1000)
    with pytest.raises(FramingError):
        reader.feed(struct.pack("!i", 1001))
    with pytest.raises(FramingError):
        FrameReader(max_frame=1000).feed(struct.pack("!i", -1) + b"\0" * 8)


def test_a_frame_of_exactly_the_limit_is_accepted() -> None:
    reader = FrameReader(max_frame=10)
    assert reader.feed(struct.pack("!i", 10) + b"x" * 10) == [b"x" * 10]
    assert reader.buffered == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b'{"a": 1}',
        b"[" * 100_000,
        b"",
    ],
    ids=["text", "invalid-utf8", "object", "deep", "empty"],
)
def test_an_undecodable_frame_is_dropped_and_reported(body: bytes) -> None:
    wire = MpWire(JsonCodec(), 1 << 20)
    reader = wire.reader()
    good = wire.pack([wire.encode(EVENT, "ok", 1)])
    assert reader.feed(struct.pack("!i", len(body)) + body + good) == [[EVENT, "ok", 1]]
    assert len(reader.bad) == 1


@pytest.mark.parametrize(
    "msg",
    [
        "[]",
        "[0]",
        '[0, "e"]',
        '[9, "e", 1]',
        '["0", "e", 1]',
        "[0, 5, 1]",
        '[1, "e", 1]',
        '[1, "e", 1, "rid"]',
        '[0, "e", 1, 2]',
        '[3, "T", "not a pair", 1]',
        '[3, "T", [1, 2], 1]',
        '[0, "e", 1, 2, 3]',
        "5",
    ],
)
def test_malformed_messages_are_dropped_but_their_neighbours_are_kept(msg: str) -> None:
    wire = MpWire(JsonCodec(), 1 << 20)
    body = ('[[0,"before",1],' + msg + ',[0,"after",2]]').encode()
    reader = wire.reader()
    got = reader.feed(struct.pack("!i", len(body)) + body)
    assert got == [[EVENT, "before", 1], [EVENT, "after", 2]]
    assert len(reader.bad) == 1


def test_check_message_accepts_the_valid_shapes() -> None:
    for msg in ([0, "e", None], [1, "e", 1, 5], [2, "e", 1, 5], [3, "T", ["m", "tb"], 5]):
        check_message(msg)
    with pytest.raises(DecodeError):
        check_message({"event": "e"})


def test_dill_roundtrips_python_objects_and_lambdas() -> None:
    wire = MpWire(DillCodec(), 1 << 20)
    value = {1: {2, 3}, (4,): b"bytes", "f": lambda x: x + 1}
    [[kind, event, got]] = roundtrip(wire, [wire.encode(EVENT, "e", value)])
    assert (kind, event) == (EVENT, "e")
    assert got[1] == {2, 3} and got[(4,)] == b"bytes" and got["f"](1) == 2


def test_dill_reports_unpicklable_payloads() -> None:
    with pytest.raises(SerializationError):
        DillCodec().encode(EVENT, "e", (x for x in range(3)))


def test_dill_junk_is_a_decode_error() -> None:
    wire = MpWire(DillCodec(), 1 << 20)
    reader = wire.reader()
    assert reader.feed(struct.pack("!i", 4) + b"junk") == []
    assert len(reader.bad) == 1


def test_a_json_reader_never_unpickles(tmp_path: Any) -> None:
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> Any:
            return (open, (str(marker), "w"))

    body = pickle.dumps(Evil())
    reader = MpWire(JsonCodec(), 1 << 20).reader()
    assert reader.feed(struct.pack("!i", len(body)) + body) == []
    assert not marker.exists()
    assert len(reader.bad) == 1


def test_batches_are_one_json_array() -> None:
    wire = MpWire(JsonCodec(), 1 << 20)
    frame = wire.pack([wire.encode(EVENT, "a", 1), wire.encode(EVENT, "b", 2)])
    (length,) = struct.unpack("!i", frame[:4])
    assert json.loads(frame[4:]) == [[0, "a", 1], [0, "b", 2]]
    assert length == len(frame) - 4


@given(st.text(min_size=1, max_size=50))
@settings(max_examples=200, deadline=None)
def test_long_strings_take_the_fast_path_and_still_roundtrip(piece: str) -> None:
    # Long enough for the escape-free fast path; escapes send it the slow way.
    text = piece * (5000 // len(piece) + 1)
    wire = MpWire(JsonCodec(), 1 << 22)
    for rid in (None, 7):
        kind = EVENT if rid is None else REQUEST
        [msg] = roundtrip(wire, [wire.encode(kind, "e", text, rid)])
        assert msg[2] == text and msg[-1] == (text if rid is None else rid)
