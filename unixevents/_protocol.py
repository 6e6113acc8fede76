"""The message layer, sans I/O: messages to bytes and bytes to messages.

Nothing here touches a socket, a thread or a clock, so every decoder can be
tested and fuzzed on plain bytes.

A *message* is a list ``[kind, event, data]`` or ``[kind, event, data, rid]``:

=============  ====================================================
kind           meaning
=============  ====================================================
``EVENT``      a plain event; never answered
``REQUEST``    ``rid`` names the request; the peer answers once
``REPLY``      ``data`` is the first listener's return value
``FAILURE``    ``event`` is the remote type name, ``data`` ``[message, traceback]``
``NO_LISTENER`` the peer had no listener for ``event``
=============  ====================================================

On the ``mp`` wire each frame is ``multiprocessing.connection``'s: a 4-byte
big-endian signed length, then the body. The sender encodes each message once
(so a bad payload fails in ``send``), then coalesces whatever is queued into
one frame: a JSON body is ``[m1,m2,...]``, decoded with one ``json.loads``; a
dill body is the pickles back to back. One frame per batch, not per message,
is where the throughput comes from.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any, Callable, Dict, List, Optional, Union

from .errors import SerializationError

__all__ = (
    "EVENT",
    "FAILURE",
    "NO_LISTENER",
    "REPLY",
    "REQUEST",
    "Codec",
    "DecodeError",
    "DillCodec",
    "FrameReader",
    "FramingError",
    "JsonCodec",
    "MpWire",
    "make_codec",
)

EVENT, REQUEST, REPLY, FAILURE, NO_LISTENER = range(5)
_ANSWERS = (REPLY, FAILURE, NO_LISTENER)

Message = List[Any]

_HEADER = struct.Struct("!i")
# Room around the largest message for the batch brackets and the header.
FRAME_SLACK = 64


class DecodeError(ValueError):
    """A frame arrived whole but its body is not a valid batch of messages."""


class FramingError(ValueError):
    """The byte stream cannot be split into frames any more: drop the connection."""


def _reject(obj: object) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _make_json_encoder() -> Callable[[Any], str]:
    """The fastest JSON encoder this interpreter offers: compact, no NaN."""
    try:
        from json.encoder import (  # type: ignore[attr-defined]
            c_make_encoder,
            encode_basestring,
        )

        if c_make_encoder is not None:  # pragma: no branch
            # No markers: a circular structure ends in RecursionError, which
            # the caller reports like any other unencodable payload.
            enc = c_make_encoder(
                None, _reject, encode_basestring, None, ":", ",", False, False, False
            )
            if "".join(enc({"a": [1, "b"]}, 0)) == '{"a":[1,"b"]}':  # pragma: no branch
                return lambda obj: "".join(enc(obj, 0))
    except Exception:  # pragma: no cover - other interpreters
        pass
    fallback = json.JSONEncoder(
        allow_nan=False, separators=(",", ":"), ensure_ascii=False, default=_reject
    )
    return fallback.encode  # pragma: no cover


# Strings at least this long try the escape-free fast path of JsonCodec.encode.
_BIG_STR = 4096
# Bytes that JSON must escape inside a string: control characters, '"', '\\'.
_JSON_ESCAPED = bytes(range(0x20)) + b'"\\'


# Types that need no look inside: checking this first keeps the walk cheap.
_LEAVES = frozenset((str, int, float, bool, type(None)))


def _check_keys(obj: Any, depth: int = 0) -> None:
    """JSON would turn int/float/bool/None keys into strings silently: refuse them."""
    if depth > 900:
        raise RecursionError("payload nested too deeply")
    if isinstance(obj, dict):
        for key, value in obj.items():
            if type(key) is not str and not isinstance(key, str):
                raise TypeError(f"dict key {key!r} is not a str; JSON keys must be str")
            if type(value) not in _LEAVES:
                _check_keys(value, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            if type(value) not in _LEAVES:
                _check_keys(value, depth + 1)


class JsonCodec:
    """The default codec: compact UTF-8 JSON; a batch is a JSON array."""

    name = "json"

    def __init__(self) -> None:
        self._dumps = _make_json_encoder()
        self._events: Dict[str, str] = {}

    def encode(self, kind: int, event: str, data: Any, rid: Optional[int] = None) -> bytes:
        """One message as bytes.

        Raises:
            SerializationError: ``data`` is not plain JSON data (see the spec 1.1).
        """
        if type(data) is str and len(data) >= _BIG_STR:
            fast = self._encode_big_str(kind, event, data, rid)
            if fast is not None:
                return fast
        try:
            if type(data) not in _LEAVES:
                _check_keys(data)
            body = self._dumps(data)
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(
                f"cannot send {type(data).__name__} payload for event {event!r} as JSON: {exc};"
                " send str, int, float, bool, None, list or dict with str keys,"
                " or use serializer='dill' between trusted Python peers"
            ) from None
        head = self._events.get(event)
        if head is None:
            head = self._event_head(event)
        if rid is None:
            text = f"[{kind},{head},{body}]"
        else:
            text = f"[{kind},{head},{body},{rid}]"
        # surrogatepass: every Python str survives, even lone surrogates.
        return text.encode("utf-8", "surrogatepass")

    def _encode_big_str(
        self, kind: int, event: str, data: str, rid: Optional[int]
    ) -> Optional[bytes]:
        """A long str that needs no JSON escapes, without the escaper's per-char loop.

        CPython's JSON string encoder runs at ~0.5 GB/s; most large payloads
        need no escaping at all, which ``bytes.translate`` checks at memory
        speed. UTF-8 never puts a byte below 0x80 inside a multi-byte
        character, so the check on the encoded bytes is exact. None: escape.
        """
        raw = data.encode("utf-8", "surrogatepass")
        if len(raw.translate(None, _JSON_ESCAPED)) != len(raw):
            return None
        head = self._events.get(event)
        if head is None:
            head = self._event_head(event)
        tail = b'"]' if rid is None else b'",%d]' % rid
        return b"".join((f'[{kind},{head},"'.encode("utf-8", "surrogatepass"), raw, tail))

    def _event_head(self, event: str) -> str:
        head = json.dumps(event, ensure_ascii=False)
        if len(self._events) > 4096:
            self._events.clear()
        self._events[event] = head
        return head

    @staticmethod
    def join(parts: List[bytes]) -> bytes:
        return b"[" + b",".join(parts) + b"]"

    @staticmethod
    def split(body: bytes, bad: List[str]) -> List[Message]:
        """Decode one frame body into messages; malformed ones go to ``bad``.

        Raises:
            DecodeError: the body is not a JSON array at all.
        """
        try:
            batch = json.loads(body.decode("utf-8", "surrogatepass"))
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"frame is not valid JSON: {_short(exc)}") from None
        if type(batch) is not list:
            raise DecodeError(f"frame holds a {type(batch).__name__}, not a list of messages")
        for msg in batch:
            if not (type(msg) is list and len(msg) == 3 and msg[0] == 0 and type(msg[1]) is str):
                return _keep_valid(batch, bad)
        return batch


class DillCodec:
    """Any object dill can pickle, between trusted Python peers."""

    name = "dill"

    def __init__(self) -> None:
        import dill

        self._dill = dill

    def encode(self, kind: int, event: str, data: Any, rid: Optional[int] = None) -> bytes:
        msg = (kind, event, data) if rid is None else (kind, event, data, rid)
        try:
            return bytes(self._dill.dumps(msg, protocol=self._dill.HIGHEST_PROTOCOL))
        except Exception as exc:
            raise SerializationError(
                f"cannot send {type(data).__name__} payload for event {event!r} with dill: {exc}"
            ) from None

    @staticmethod
    def join(parts: List[bytes]) -> bytes:
        return b"".join(parts)

    def split(self, body: bytes, bad: List[str]) -> List[Message]:
        stream = io.BytesIO(body)
        out: List[Any] = []
        try:
            while stream.tell() < len(body):
                out.append(self._dill.load(stream))
        except Exception as exc:
            raise DecodeError(f"frame is not a valid dill batch: {_short(exc)}") from None
        return _keep_valid(out, bad)


Codec = Union[JsonCodec, DillCodec]


def make_codec(serializer: str) -> Codec:
    if serializer == "json":
        return JsonCodec()
    if serializer == "dill":
        return DillCodec()
    raise ValueError(f"serializer must be 'json' or 'dill', not {serializer!r}")


def check_message(msg: Any) -> None:
    """Raise DecodeError unless ``msg`` is a well-formed message."""
    if not isinstance(msg, (list, tuple)) or len(msg) not in (3, 4):
        raise DecodeError(f"message is not a list of 3 or 4 items: {_short(msg)}")
    kind, event = msg[0], msg[1]
    if type(kind) is not int or not EVENT <= kind <= NO_LISTENER:
        raise DecodeError(f"unknown message kind {_short(kind)}")
    if type(event) is not str:
        raise DecodeError(f"event name is not a str: {_short(event)}")
    if (kind == EVENT) != (len(msg) == 3):
        raise DecodeError(f"message of kind {kind} has {len(msg)} items")
    if kind != EVENT and type(msg[3]) is not int:
        raise DecodeError(f"request id is not an int: {_short(msg[3])}")
    if kind == FAILURE and not (
        isinstance(msg[2], (list, tuple))
        and len(msg[2]) == 2
        and all(isinstance(x, str) for x in msg[2])
    ):
        raise DecodeError("failure reply does not carry [message, traceback]")


def _keep_valid(batch: List[Any], bad: List[str]) -> List[Message]:
    good: List[Message] = []
    for msg in batch:
        try:
            check_message(msg)
        except DecodeError as exc:
            bad.append(str(exc))
        else:
            good.append(list(msg))
    return good


def is_answer(msg: Message) -> bool:
    return msg[0] in _ANSWERS


def _short(obj: object) -> str:
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."


class FrameReader:
    """Split a byte stream into ``multiprocessing.connection`` frames.

    ``feed`` keeps partial frames across calls. A negative length (the
    64-bit form that ``Connection`` uses past 2 GiB) or a declared length
    above ``max_frame`` cannot be honoured without trusting the peer with our
    memory, so it raises :class:`FramingError` before reading the body.
    """

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need = -1  # body length of the frame in progress, -1 while reading its header

    def feed(self, data: bytes) -> List[bytes]:
        buf = self._buf
        buf += data
        frames: List[bytes] = []
        pos = 0
        end = len(buf)
        need = self._need
        while True:
            if need < 0:
                if end - pos < 4:
                    break
                (need,) = _HEADER.unpack_from(buf, pos)
                if need < 0 or need > self.max_frame:
                    raise FramingError(
                        f"peer announced a frame of {need} bytes; the limit is {self.max_frame}"
                    )
                pos += 4
            if end - pos < need:
                break
            frames.append(bytes(buf[pos : pos + need]))
            pos += need
            need = -1
        self._need = need
        if pos:
            del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buf)


class MpWire:
    """The ``mp`` wire: length-prefixed frames, each a batch of codec messages."""

    def __init__(self, codec: Codec, max_message_size: int) -> None:
        self.codec = codec
        self.max_message_size = max_message_size
        self.max_frame = max_message_size + FRAME_SLACK
        # The codec's own method: one call less on every send.
        self.encode: Callable[..., bytes] = codec.encode

    def pack(self, parts: List[bytes]) -> bytes:
        body = self.codec.join(parts)
        return _HEADER.pack(len(body)) + body

    def reader(self) -> MpReader:
        return MpReader(self)


class MpReader:
    """Per-connection decoder: ``feed`` bytes, get messages; bad frames in ``bad``."""

    def __init__(self, wire: MpWire) -> None:
        self._frames = FrameReader(wire.max_frame)
        self._split = wire.codec.split
        self.bad: List[str] = []

    def feed(self, data: bytes) -> List[Message]:
        frames = self._frames.feed(data)
        if len(frames) == 1:
            try:
                return self._split(frames[0], self.bad)
            except DecodeError as exc:
                self.bad.append(str(exc))
                return []
        out: List[Message] = []
        for body in frames:
            try:
                out.extend(self._split(body, self.bad))
            except DecodeError as exc:
                self.bad.append(str(exc))
        return out
