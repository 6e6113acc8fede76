"""The JavaScript ``unixevents`` wire, sans I/O: ``JSON.stringify({event, payload}) + ";;"``.

The Node package frames messages by splitting each read on ``;;`` and
parsing every piece but the last, which it throws away. We keep what it
throws away (a message split across reads is joined with its tail) and we
never put ``;;`` on the wire inside a message: every ``;`` is written as
``\\u003b``, which any JSON parser reads back as ``;``. A ``;`` can only occur
inside JSON strings, so a text replace on the encoded JSON is exact.

The JavaScript sender does not escape, so a message from it may contain
``;;`` inside a string. The reader therefore takes as a message the shortest
text up to a ``;;`` that parses as JSON: a ``;;`` inside a string makes the
text end in an unterminated string, which is the one parse error that more
text can cure; the reader then skips to the end of that string and tries the
next ``;;``. Any other parse error means the first piece is garbage: it is
reported in ``bad`` and reading resumes right after it, so one bad piece
never costs a good message that follows it. No message starts with ``;``, so
in ``;;;`` the first two are taken as the delimiter and empty pieces are
skipped silently.
"""

from __future__ import annotations

import json
import re
from typing import Any, List, Optional

from . import _address
from ._protocol import EVENT, FramingError, _check_keys, _make_json_encoder, _short
from .errors import SerializationError, UnixEventsError

__all__ = ("NODE_DIR", "NodeReader", "NodeWire", "node_address")

NODE_DIR = "/tmp"
DELIMITER = b";;"
_SENT_PREFIX = {"server": "s-", "client": "c-"}
_HEARD_PREFIX = {"server": "c-", "client": "s-"}
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTAINERS = (dict, list, tuple)


def node_address(channel: str) -> _address.Address:
    """``/tmp/<channel>.sock``, where the JavaScript package puts every channel.

    Raises:
        TypeError: ``channel`` is not a str.
        ValueError: ``channel`` is not a plain name, or the path is too long.
    """
    if not isinstance(channel, str):
        raise TypeError(f"channel must be a str, not {type(channel).__name__}")
    if not _address._NAME.match(channel):
        raise ValueError(
            f"channel {channel!r} is not a valid name for protocol='node': use 1 to 100"
            " letters, digits, '.', '_' or '-' (the socket is always /tmp/<channel>.sock)"
        )
    path = f"{NODE_DIR}/{channel}.sock"
    _address._check_length(channel, path)
    return _address.Address(channel, path, None)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_payload(payload: Any) -> Any:
    """A received payload: JSON text becomes its value, other strings stay strings."""
    if type(payload) is not str:
        return payload
    try:
        return json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return payload


class NodeWire:
    """Encoder and reader factory for one end (``'server'`` or ``'client'``) of a node channel."""

    def __init__(self, role: str, max_message_size: int) -> None:
        if role not in _SENT_PREFIX:
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        self.role = role
        self.max_message_size = max_message_size
        self._prefix = _SENT_PREFIX[role]
        self._heard = _HEARD_PREFIX[role]
        self._dumps = _make_json_encoder()

    def encode(self, kind: int, event: str, data: Any, rid: Optional[int] = None) -> bytes:
        """One message, delimiter included, as the JavaScript sender would write it.

        ``dict``/``list``/``tuple`` (and ``None``, which JavaScript's ``typeof``
        calls an object) travel as a JSON string; ``str`` as it is; numbers
        and booleans as JSON values.

        Raises:
            SerializationError: ``data`` is not plain JSON data (spec 1.1).
            UnixEventsError: ``kind`` is not a plain event (no replies on this wire).
        """
        if kind != EVENT or rid is not None:
            raise UnixEventsError(
                "request/reply does not exist on protocol='node'; send an event and"
                " receive() the answer instead"
            )
        try:
            if isinstance(data, _CONTAINERS):
                _check_keys(data)
                payload: Any = self._dumps(data)
            elif data is None:
                payload = "null"
            else:
                payload = data
            text = (
                '{"event":'
                + self._dumps(self._prefix + event)
                + ',"payload":'
                + self._dumps(payload)
                + "}"
            )
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(
                f"cannot send {type(data).__name__} payload for event {event!r} as JSON: {exc};"
                " send str, int, float, bool, None, list or dict with str keys"
            ) from None
        text = text.replace(";", "\\u003b")
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates: escape them as JSON.stringify does, so the bytes stay UTF-8.
            raw = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")
        return raw + DELIMITER

    @staticmethod
    def pack(parts: List[bytes]) -> bytes:
        return b"".join(parts)

    def reader(self) -> NodeReader:
        return NodeReader(self._heard, self.max_message_size)


class NodeReader:
    """Per-connection decoder: ``feed`` bytes, get ``[EVENT, event, data]`` messages.

    Args:
        prefix: the prefix the peer puts on its events (``'c-'`` heard by a
            server, ``'s-'`` by a client); events without it are dropped.
        max_message_size: a message still incomplete past this many bytes
            raises :class:`FramingError` (the transport then drops the
            connection) instead of buffering without bound.
    """

    def __init__(self, prefix: str, max_message_size: int) -> None:
        self.prefix = prefix
        self.max_message_size = max_message_size
        self.bad: List[str] = []
        self._buf = bytearray()
        self._pos = 0  # where to look for the next ';;'
        self._first_cut = -1  # the first ';;' of the message in progress, once passed
        self._quote = -1  # >= 0: inside a string that holds a ';;'; look for '"' from here

    @property
    def buffered(self) -> int:
        """Bytes held for a message not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> List[List[Any]]:
        buf = self._buf
        buf += data
        out: List[List[Any]] = []
        start = 0  # where the message in progress begins
        pos = self._pos
        while True:
            if self._quote >= 0:
                end = _closing_quote(buf, self._quote)
                if end < 0:
                    self._quote = len(buf)
                    break
                self._quote = -1
                pos = end + 1
            cut = buf.find(DELIMITER, pos)
            if cut < 0:
                pos = max(pos, len(buf) - 1)
                break
            if self._first_cut < 0:
                # No message starts with ';': in ';;;' the first two are the delimiter.
                while start < cut and buf[start] == 0x3B:
                    start += 1
                if start == cut:  # an empty piece
                    start = pos = cut + 2
                    continue
            open_string = self._take(buf, start, cut, out)
            if open_string >= 0:
                # The ';;' is inside a string: the message goes on past it.
                if self._first_cut < 0:
                    self._first_cut = cut
                self._quote = open_string + 1
                continue
            if open_string == _GARBAGE and self._first_cut >= 0:
                # Joining pieces did not help: only the first piece is garbage.
                cut = self._first_cut
            self._first_cut = -1
            start = pos = cut + 2
        if start:
            del buf[:start]
            pos -= start
            if self._quote >= 0:
                self._quote -= start
            if self._first_cut >= 0:
                self._first_cut -= start
        self._pos = pos
        if len(buf) > self.max_message_size + len(DELIMITER):
            raise FramingError(
                f"peer sent {len(buf)} bytes without a complete message (';;' after valid"
                f" JSON); the limit is max_message_size={self.max_message_size}"
            )
        return out

    def _take(self, buf: bytearray, start: int, cut: int, out: List[List[Any]]) -> int:
        """Parse ``buf[start:cut]``; a message goes to ``out``, a bad one to ``bad``.

        Returns ``_DONE`` when the piece was consumed (as a message or as a
        well-formed but unwanted one), ``_GARBAGE`` when it is not JSON, or the
        offset in ``buf`` of the opening quote of a string left unterminated.
        """
        try:
            text = buf[start:cut].decode("utf-8")
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg.startswith("Unterminated string"):
                head = text[: exc.pos]
                return start + (exc.pos if head.isascii() else len(head.encode("utf-8")))
            return self._garbage(buf, start, cut, exc.msg)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            return self._garbage(buf, start, cut, str(exc) or type(exc).__name__)
        event = obj.get("event") if type(obj) is dict else None
        if type(event) is not str:
            self.bad.append(f"not an object with a string 'event': {_short(obj)}")
        elif not event.startswith(self.prefix):
            self.bad.append(f"event {event!r} lacks the peer's prefix {self.prefix!r}")
        else:
            out.append([EVENT, event[len(self.prefix) :], decode_payload(obj.get("payload"))])
        return _DONE

    def _garbage(self, buf: bytearray, start: int, cut: int, why: str) -> int:
        end = cut if self._first_cut < 0 else self._first_cut
        self.bad.append(f"not a JSON message ({_short(why)}): {_short(bytes(buf[start:end]))}")
        return _GARBAGE


_DONE = -1
_GARBAGE = -2


def _closing_quote(buf: bytearray, pos: int) -> int:
    """The offset of the first unescaped ``"`` at or after ``pos``, or -1."""
    while True:
        i = buf.find(b'"', pos)
        if i < 0:
            return -1
        j = i - 1
        while buf[j] == 0x5C:  # backslash; the opening quote stops this loop
            j -= 1
        if (i - 1 - j) % 2 == 0:
            return i
        pos = i + 1
