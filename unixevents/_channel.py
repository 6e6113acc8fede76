"""``UnixEvents``: one server, many clients, named events both ways."""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import _address
from ._connector import Connector
from ._dispatch import AWAIT_BYTES, Dispatcher, Listener, describe_failure
from ._liveness import PeerInfo, is_alive
from ._protocol import EVENT, FAILURE, REQUEST, MpWire, is_answer, make_codec
from ._requests import PendingRequests, RequestFuture
from ._server_files import ServerFiles
from ._transport import Link, Transport
from .errors import (
    MessageTooLarge,
    NotConnectedError,
    QueueFull,
    UnixEventsError,
)

__all__ = ("Linker", "UnixEvents")

_root_log = logging.getLogger("unixevents")

Callback = Callable[[Optional[BaseException], bool], Any]
PeerHook = Callable[[PeerInfo], Any]

_DEFAULTS: Dict[str, Any] = {
    "max_message_size": 64 * 1024 * 1024,
    "max_pending": 100_000,
    "max_unclaimed": 1000,
    "unclaimed_ttl": 5.0,
    "reconnect": True,
    "backoff_initial": 0.05,
    "backoff_max": 2.0,
    "handshake_timeout": 5.0,
    "liveness_interval": 1.0,
    "connect_timeout": 5.0,
}

_instances: weakref.WeakSet[UnixEvents] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    # Scripts often send and exit: flush briefly, and never leave socket files behind.
    for inst in list(_instances):
        try:
            inst.close(timeout=1.0)
        except Exception:  # pragma: no cover
            pass


class _Delivery:
    """One ``send`` with a callback: how many links still owe it a write."""

    __slots__ = ("callback", "direct", "remaining", "written")

    def __init__(self, callback: Callback, remaining: int, direct: bool = False) -> None:
        self.callback = callback
        self.remaining = remaining
        self.written = 0
        self.direct = direct  # internal: call on the I/O thread, not the dispatcher


class UnixEvents:
    """An event channel over a Unix domain socket, as server or as client.

    Args:
        role: ``'server'`` or ``'client'``; with ``channel``, initialise now.
        channel: a name (letters, digits, ``._-``), an absolute socket path,
            or on Linux ``@name`` (abstract namespace; needs ``authkey``).
        authkey: shared secret (bytes or str); default: the server's key file.
        socket_dir: directory for named channels (default: see README).
        protocol: ``'mp'`` (authenticated, framed) or ``'node'`` (the
            JavaScript package's wire).
        serializer: ``'json'`` or ``'dill'`` (trusted Python peers only).
        debug: log the lifecycle and every event at DEBUG.
        **options: ``max_message_size``, ``max_pending``, ``max_unclaimed``,
            ``unclaimed_ttl``, ``reconnect``, ``backoff_initial``,
            ``backoff_max``, ``handshake_timeout``, ``liveness_interval``,
            ``connect_timeout``.

    Raises:
        ValueError, TypeError: an argument is wrong.
        UnixEventsError: (a subclass of) initialisation cannot succeed.
    """

    def __init__(
        self,
        role: Optional[str] = None,
        channel: Optional[str] = None,
        *,
        authkey: Union[bytes, str, None] = None,
        socket_dir: Optional[str] = None,
        protocol: str = "mp",
        serializer: str = "json",
        debug: bool = False,
        **options: Any,
    ) -> None:
        unknown = set(options) - set(_DEFAULTS)
        if unknown:
            raise TypeError(
                f"unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(_DEFAULTS)}"
            )
        self._opts = {**_DEFAULTS, **options}
        for name in ("max_message_size", "max_pending", "max_unclaimed"):
            if not isinstance(self._opts[name], int) or self._opts[name] < 1:
                raise ValueError(f"{name} must be a positive int, not {self._opts[name]!r}")
        if protocol not in ("mp", "node"):
            raise ValueError(f"protocol must be 'mp' or 'node', not {protocol!r}")
        if serializer not in ("json", "dill"):
            raise ValueError(f"serializer must be 'json' or 'dill', not {serializer!r}")
        self._authkey = _address.coerce_authkey(authkey)
        if protocol == "node" and (self._authkey is not None or serializer != "json"):
            raise ValueError(
                "protocol='node' has no authentication and carries JSON only:"
                " drop authkey= and serializer="
            )
        self._protocol = protocol
        self._serializer = serializer
        self._socket_dir = socket_dir
        self._role: Optional[str] = None
        self._address: Optional[_address.Address] = None
        self._log = _root_log
        self._debug = debug
        self._state_lock = threading.RLock()
        self._closed = False
        self._closed_evt = threading.Event()
        self._connected_evt = threading.Event()
        self._requests = PendingRequests()
        self._on_connect: List[PeerHook] = []
        # Links whose connect the hooks have been told of (see on_connect).
        self._hooks_lock = threading.Lock()
        self._announced: Dict[int, PeerInfo] = {}
        self._on_disconnect: List[PeerHook] = []
        self._transport: Optional[Transport] = None
        self._link: Optional[Link] = None  # a client's one link, kept across reconnects
        # [the link] for a client: send(to=None) skips _targets(); empty for a server.
        self._client_links: List[Link] = []
        self._max_size: int = self._opts["max_message_size"]
        self._connector: Optional[Connector] = None  # a client's connection attempts
        self._files: Optional[ServerFiles] = None  # a server's socket and key files
        self._owner_pid = os.getpid()
        self._pending_listeners: List[Tuple[str, Listener, bool]] = []
        self._dispatcher: Optional[Dispatcher] = None
        self._tap: Optional[Callable[[str, Any], Any]] = None
        self._loop = _running_loop()
        self._wire: Any = None
        if role is not None or channel is not None:
            if role is None or channel is None:
                raise ValueError("give both role and channel, or neither and call init() later")
            self._setup(role, channel)
            self._start_connecting(raise_auth=False)
        _instances.add(self)

    # ------------------------------------------------------------ properties

    @property
    def role(self) -> Optional[str]:
        """``'server'``, ``'client'``, or None before initialisation."""
        return self._role

    @property
    def channel(self) -> Optional[str]:
        return self._address.channel if self._address else None

    @property
    def address(self) -> Optional[str]:
        """The socket path (``@name`` for the abstract namespace)."""
        return self._address.display if self._address else None

    @property
    def connected(self) -> bool:
        """Client: connected to its server. Server: at least one client connected."""
        return self._connected_evt.is_set()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def peers(self) -> List[PeerInfo]:
        """The processes connected to us (a client's only peer is its server)."""
        t = self._transport
        if t is None:
            return []
        with t.lock:
            return [ln.peer for ln in t.links.values() if ln.peer is not None]

    def peer_alive(self, peer: PeerInfo) -> bool:
        """True if ``peer``'s process still runs (and is not a reused PID)."""
        return is_alive(peer.pid, peer.create_time)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.connected else "idle")
        return f"<UnixEvents {self._role or 'uninitialised'} {self.address!r} {state}>"

    # ---------------------------------------------------------------- set-up

    def _setup(self, role: str, channel: str) -> None:
        if role not in ("server", "client"):
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        with self._state_lock:
            if self._closed:
                raise UnixEventsError("this instance is closed; create a new UnixEvents")
            if self._role is not None:
                if self._role == role and self.channel == channel:
                    return
                raise UnixEventsError(
                    f"already initialised as {self._role} of {self.channel!r};"
                    " create another instance for another channel"
                )
            if self._protocol == "node":
                from ._node import NodeWire, node_address

                address = node_address(channel)
                self._wire = NodeWire(role, self._opts["max_message_size"])
            else:
                address = _address.resolve(channel, self._socket_dir)
                if address.abstract and self._authkey is None:
                    raise ValueError(
                        f"channel {channel!r} is in the abstract namespace, which has no file"
                        " permissions: pass authkey= on both sides"
                    )
                self._wire = MpWire(make_codec(self._serializer), self._opts["max_message_size"])
            name = f"{role}.{address.channel.strip('/@').replace('/', '_')}"
            log = _root_log.getChild(name)
            transport = Transport(
                self,
                self._wire,
                name=name,
                log=log,
                max_pending=self._opts["max_pending"],
                handshake_timeout=self._opts["handshake_timeout"],
                liveness_interval=self._opts["liveness_interval"],
                persistent=role == "client",
            )
            dispatcher = Dispatcher(
                name=name,
                log=log,
                answer=self._answer,
                max_unclaimed=self._opts["max_unclaimed"],
                unclaimed_ttl=self._opts["unclaimed_ttl"],
            )
            dispatcher.loop = self._loop
            dispatcher.on_drained = transport.resume_reading
            if role == "server":
                try:
                    self._bind(transport, address)
                except BaseException:
                    transport.discard()
                    raise
            else:
                link = self._link = transport.new_link()
                self._client_links = [link]
                self._connector = Connector(
                    address,
                    self._client_key,
                    lambda sock, peer: transport.adopt(link, sock, peer),
                    lambda: transport.has_socket(link),
                    link.id,
                    backoff_initial=self._opts["backoff_initial"],
                    backoff_max=self._opts["backoff_max"],
                    connect_timeout=self._opts["connect_timeout"],
                    handshake_timeout=self._opts["handshake_timeout"],
                    log=log,
                )
            self._log = log
            if self._debug:
                log.setLevel(logging.DEBUG)
            self._address = address
            self._transport = transport
            self._dispatcher = dispatcher
            dispatcher.tap = self._tap
            for event, fn, once in self._pending_listeners:
                dispatcher.add(event, fn, once=once)
            self._pending_listeners.clear()
            self._role = role
            dispatcher.start()
            transport.start()
            if role == "server":
                log.debug("listening on %s", address.display)

    def _bind(self, transport: Transport, address: _address.Address) -> None:
        files = ServerFiles(address, self._log)
        sock, key = files.create(self._authkey, want_key_file=self._protocol == "mp")
        self._files = files
        transport.listen(sock, key if self._protocol == "mp" else None)

    async def init(self, role: str, channel: str, *, timeout: Optional[float] = None) -> bool:
        """Initialise as ``role`` on ``channel``; see :meth:`init_sync`."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.init_sync(role, channel, timeout=timeout)
        )

    def init_sync(self, role: str, channel: str, *, timeout: Optional[float] = None) -> bool:
        """Initialise and wait: a server until listening, a client until connected.

        Returns:
            True when ready; False if ``timeout`` seconds passed first (the
            reason is logged at WARNING and a client stops trying).

        Raises:
            AuthenticationFailed: the server refused our key.
            UnixEventsError: the channel cannot be used (see the message).
        """
        if self._loop is None:
            self._loop = _running_loop()
        self._setup(role, channel)
        if self._dispatcher is not None and self._loop is not None:
            self._dispatcher.loop = self._loop
        if role == "server":
            return True
        self._start_connecting(raise_auth=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._connected_evt.wait(0.05 if left is None else min(left, 0.05)):
                return True
            connector = self._connector
            assert connector is not None
            error = connector.take_auth_error()
            if error is not None:
                raise error
            if self._closed:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                connector.stop()
                self._log.warning(
                    "could not connect to %s within %.1f s: %s",
                    self.address,
                    timeout,
                    connector.last_error or "no server answered",
                )
                return False

    # ------------------------------------------------------------- connecting

    def _start_connecting(self, *, raise_auth: bool) -> None:
        with self._state_lock:
            if self._connector is None or self._closed or self._connected_evt.is_set():
                return
            self._connector.start(raise_auth=raise_auth)

    def _client_key(self) -> Optional[bytes]:
        if self._protocol == "node":
            return None
        if self._authkey is not None:
            return self._authkey
        assert self._address is not None and self._address.key_path is not None
        return _address.read_key_file(self._address.key_path)

    # ------------------------------------------------ what the transport says

    def on_messages(self, link: Link, msgs: List[List[Any]], nbytes: int) -> bool:
        """Route what ``link`` sent; False asks the transport to stop reading for now."""
        if len(self._requests):
            rest = []
            for msg in msgs:
                if is_answer(msg):
                    if not self._requests.resolve(msg):
                        self._log.debug("dropped a late or unknown reply %r", msg[3])
                else:
                    rest.append(msg)
            msgs = rest
        if self._log.isEnabledFor(logging.DEBUG):
            for msg in msgs:
                self._log.debug("received %r from %s", msg[1], link.peer)
        assert self._dispatcher is not None
        if msgs:
            return self._dispatcher.post(link, msgs, nbytes)
        return True

    def on_link_up(self, link: Link) -> None:
        self._connected_evt.set()
        self._log.debug("connected to %s", link.peer)
        peer = link.peer
        assert peer is not None and self._dispatcher is not None
        with self._hooks_lock:
            self._announced[link.id] = peer
            hooks = list(self._on_connect)
        for hook in hooks:
            self._dispatcher.call(functools.partial(hook, peer))

    def on_link_down(self, link: Link, reason: str) -> None:
        transport = self._transport
        assert transport is not None and self._dispatcher is not None
        with self._hooks_lock:
            self._announced.pop(link.id, None)
        with transport.lock:
            if not transport.links:
                self._connected_evt.clear()
            queued = {tok for _, tok in link.outq if type(tok) is int}
        self._requests.fail_link(
            link.id,
            NotConnectedError(f"the connection was lost while waiting for a reply ({reason})"),
            queued,
        )
        peer = link.peer
        if peer is not None:
            for hook in list(self._on_disconnect):
                self._dispatcher.call(functools.partial(hook, peer))
        if self._role == "client" and not self._closed and not transport.closing:
            if self._opts["reconnect"]:
                self._log.debug("reconnecting to %s", self.address)
                self._start_connecting(raise_auth=False)
            else:
                self._log.debug("lost the server and reconnect=False: closing")
                threading.Thread(
                    target=self.close, args=(0.0,), name="unixevents-close", daemon=True
                ).start()

    def on_tokens(self, tokens: List[Any], written: bool) -> None:
        for tok in tokens:
            if type(tok) is not _Delivery:
                continue
            tok.remaining -= 1
            if written:
                tok.written += 1
            if tok.remaining == 0:
                if tok.written:
                    self._report(tok, None, True)
                else:
                    self._report(
                        tok,
                        NotConnectedError("the connection closed before the message was written"),
                        False,
                    )

    def next_deadline(self) -> Optional[float]:
        return self._requests.next_deadline()

    def on_tick(self, now: float) -> None:
        self._requests.expire(now)
        self._requests.prune()

    def keep_reading(self, link: Link) -> bool:
        # A listener blocked on request().result() is what holds the backlog up
        # when its reply is still unread behind it: read on, within a bound.
        dispatcher = self._dispatcher
        return (
            dispatcher is not None
            and dispatcher.backlog < AWAIT_BYTES
            and self._requests.awaited_on(link.id)
        )

    def on_liveness_tick(self) -> None:
        if self._files is not None and not self._closed:
            assert self._transport is not None
            self._files.check(self._transport.replace_listener)

    def on_lost(self, reason: str) -> None:  # pragma: no cover - only after a bug
        self._requests.fail_all(NotConnectedError(reason))

    def _report(self, tok: _Delivery, error: Optional[BaseException], ok: bool) -> None:
        if tok.direct:
            tok.callback(error, ok)
        else:
            assert self._dispatcher is not None
            cb = tok.callback
            self._dispatcher.call(lambda: cb(error, ok))

    # --------------------------------------------------------------- sending

    def _targets(self, to: Optional[PeerInfo]) -> List[Link]:
        """Links a message goes to (the transport skips any that closed meanwhile)."""
        transport = self._transport
        assert transport is not None
        if self._role == "client":
            assert self._link is not None
            if to is not None and (self._link.peer is None or to != self._link.peer):
                return []
            return [self._link]
        if to is None:
            return list(transport.links.values())  # a copy, made atomically under the GIL
        link = transport.links.get(to.connection)
        return [link] if link is not None and link.peer == to else []

    def _encode(self, kind: int, event: str, data: Any, rid: Optional[int] = None) -> bytes:
        if type(event) is not str:
            raise TypeError(f"event must be a str, not {type(event).__name__}")
        payload: bytes = self._wire.encode(kind, event, data, rid)
        if len(payload) > self._max_size:
            raise MessageTooLarge(
                f"event {event!r} encodes to {len(payload)} bytes, over max_message_size="
                f"{self._opts['max_message_size']}; send it in parts or raise the option on"
                " both sides"
            )
        return payload

    def send(
        self,
        event: str,
        data: Any = None,
        callback: Optional[Callback] = None,
        *,
        to: Optional[PeerInfo] = None,
    ) -> None:
        """Send ``event`` with ``data``; never waits for the peer.

        ``callback(None, True)`` once written (to every client, for a server),
        ``callback(error, False)`` if it cannot be (``NotConnectedError``,
        ``QueueFull``). Without a callback such errors are logged.

        Raises:
            SerializationError: ``data`` cannot be encoded; nothing was sent.
            MessageTooLarge: the encoded message exceeds ``max_message_size``.
        """
        transport = self._transport
        if transport is None:
            if type(event) is not str:
                raise TypeError(f"event must be a str, not {type(event).__name__}")
            self._fail(
                callback, NotConnectedError("call init() (or give role and channel) before send()")
            )
            return
        payload = self._encode(EVENT, event, data)
        links = self._client_links if to is None and self._client_links else self._targets(to)
        if not links:
            error: Optional[Exception] = self._no_target_error(to)
        else:
            token = None if callback is None else _Delivery(callback, len(links))
            error = transport.submit(payload, token, links)
        if error is not None:
            self._fail(callback, error)
        elif self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("sent %r", event)

    def _no_target_error(self, to: Optional[PeerInfo]) -> Exception:
        if self._closed:
            return NotConnectedError("the channel is closed; create a new UnixEvents instance")
        if to is not None:
            return NotConnectedError(f"{to} is not connected to this channel (any more)")
        return NotConnectedError(
            f"no client is connected to {self.address}; wait_connected() first, or use"
            " on_connect() to send when one arrives"
        )

    def _fail(self, callback: Optional[Callback], error: Exception) -> None:
        if callback is None:
            self._log.warning("send failed: %s", error)
        elif self._dispatcher is not None:
            self._dispatcher.call(lambda: callback(error, False))
        else:
            try:
                callback(error, False)
            except Exception:
                self._log.exception("send callback raised")

    async def send_sync(self, event: str, data: Any = None) -> bool:
        """Send and wait until written: True, or False if it could not be (reason logged).

        Waits for room when ``max_pending`` messages are already queued.

        Raises:
            SerializationError, MessageTooLarge: as :meth:`send`.
        """
        transport = self._transport
        if transport is None:
            self._log.warning("send_sync(%r): call init() first", event)
            return False
        payload = self._encode(EVENT, event, data)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Tuple[Optional[BaseException], bool]] = loop.create_future()

        def settle(error: Optional[BaseException], ok: bool) -> None:
            def set_result() -> None:
                if not done.done():
                    done.set_result((error, ok))

            try:
                loop.call_soon_threadsafe(set_result)
            except RuntimeError:  # pragma: no cover - the loop closed under us
                pass

        while True:
            links = self._targets(None)
            if not links:
                error: Optional[Exception] = self._no_target_error(None)
            else:
                error = transport.submit(payload, _Delivery(settle, len(links), True), links)
            if not isinstance(error, QueueFull):
                break
            await loop.run_in_executor(None, self._wait_for_room, len(links))
        if error is not None:
            self._log.warning("send_sync(%r) failed: %s", event, error)
            return False
        failure, ok = await done
        if not ok:
            self._log.warning("send_sync(%r) failed: %s", event, failure)
        return ok

    def _wait_for_room(self, n: int) -> None:
        transport = self._transport
        assert transport is not None
        with transport.lock:
            transport._waiters += 1
            try:
                while transport.pending + n > transport.max_pending and not transport.closing:
                    transport.changed.wait(0.5)
            finally:
                transport._waiters -= 1

    # -------------------------------------------------------- request / reply

    def request(
        self,
        event: str,
        data: Any = None,
        *,
        timeout: Optional[float] = None,
        to: Optional[PeerInfo] = None,
    ) -> RequestFuture:
        """Ask the peer's first listener for ``event``; its return value is the result.

        Returns:
            a ``concurrent.futures.Future``, also awaitable in asyncio. It fails
            with ``RemoteError``, ``TimeoutError``, ``NoListener`` or
            ``NotConnectedError``.

        Raises:
            ValueError: a server with several clients was not told ``to=``.
            SerializationError, MessageTooLarge: as :meth:`send`.
        """
        if self._protocol == "node":
            raise UnixEventsError(
                "request/reply does not exist on protocol='node' (the JavaScript wire has"
                " no replies); send an event and receive() the answer instead"
            )
        transport = self._transport
        if transport is None:
            future = RequestFuture()
            future.set_exception(NotConnectedError("call init() before request()"))
            return future
        if type(event) is not str:
            raise TypeError(f"event must be a str, not {type(event).__name__}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive or None, not {timeout!r}")
        links = self._targets(to)
        if self._role == "server" and to is None and len(links) > 1:
            raise ValueError(
                f"{len(links)} clients are connected: pass to= one of .peers to say which"
            )
        if not links:
            future = RequestFuture()
            future.set_exception(self._no_target_error(to))
            return future
        link = links[0]
        deadline = None if timeout is None else time.monotonic() + timeout
        rid, future, earliest = self._requests.add(link.id, event, deadline)
        try:
            payload = self._encode(REQUEST, event, data, rid)
        except BaseException:
            self._requests.fail(rid, NotConnectedError("not sent"))
            raise
        error = transport.submit(payload, rid, [link], urgent=True)
        if error is not None:
            self._requests.fail(rid, error)
            return future
        if earliest:
            transport.wake()  # the I/O thread keeps the clock: let it re-plan
        transport.reconsider_reading()  # the reply must be read even if reads are paused
        return future

    def _answer(self, link: Link, kind: int, event: str, data: Any, rid: int) -> None:
        """Send an answer to request ``rid`` back on ``link`` (dispatcher thread)."""
        transport = self._transport
        assert transport is not None
        try:
            payload = self._encode(kind, event, data, rid)
        except (UnixEventsError, TypeError) as exc:
            # The listener's value cannot travel: the requester gets why instead.
            payload = self._encode(FAILURE, type(exc).__name__, describe_failure(exc), rid)
        error = transport.submit(payload, None, [link], urgent=True)
        if isinstance(error, NotConnectedError):
            self._log.debug("the requester of %r left before the reply", event)
        elif error is not None:
            self._log.warning("could not reply to %r: %s", event, error)

    # -------------------------------------------------------------- listening

    def receive(self, event: str, listener: Listener) -> None:
        """Call ``listener(data)`` for every ``event`` from the peer(s)."""
        self._add_listener(event, listener, once=False)

    def receive_once(self, event: str, listener: Listener) -> None:
        """Call ``listener(data)`` for the next ``event`` only."""
        self._add_listener(event, listener, once=True)

    def _add_listener(self, event: str, listener: Listener, *, once: bool) -> None:
        if type(event) is not str:
            raise TypeError(f"event must be a str, not {type(event).__name__}")
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {type(listener).__name__}")
        with self._state_lock:
            if self._dispatcher is None:
                self._pending_listeners.append((event, listener, once))
                return
        self._dispatcher.add(event, listener, once=once)

    def remove_receiver(self, event: str, listener: Optional[Listener] = None) -> None:
        """Remove ``listener`` from ``event``, or every listener of it if None."""
        with self._state_lock:
            self._pending_listeners = [
                p
                for p in self._pending_listeners
                if not (p[0] == event and (listener is None or p[1] == listener))
            ]
            if self._dispatcher is not None:
                self._dispatcher.remove(event, listener)

    def _receive_all(self, fn: Callable[[str, Any], Any]) -> None:
        """Call ``fn(event, data)`` for every event, whatever its name (for the CLI).

        Call before init. Events it sees count as claimed: none is held.
        """
        if self._dispatcher is not None:
            self._dispatcher.tap = fn
        self._tap = fn

    def on_connect(self, fn: PeerHook) -> None:
        """Call ``fn(peer)`` whenever a peer connects.

        Peers already connected when ``fn`` is registered are announced to it
        too (once each): a client made with a role may connect before the
        next line registers its hook.
        """
        with self._hooks_lock:
            self._on_connect.append(fn)
            already = list(self._announced.values())
        for peer in already:
            assert self._dispatcher is not None
            self._dispatcher.call(functools.partial(fn, peer))

    def on_disconnect(self, fn: PeerHook) -> None:
        """Call ``fn(peer)`` whenever a peer disconnects."""
        self._on_disconnect.append(fn)

    # ------------------------------------------------------------- waiting

    def wait_connected(self, timeout: Optional[float] = None) -> bool:
        """Block until connected (a server: until a client is); False on timeout."""
        return self._connected_evt.wait(timeout)

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Block until this instance is closed; False on timeout."""
        return self._closed_evt.wait(timeout)

    # ------------------------------------------------------------ debugging

    def enable_debug(self) -> None:
        """Log this instance's lifecycle and every event at DEBUG.

        Before init the instance has no logger of its own yet: it gets DEBUG
        when it is initialised (the shared "unixevents" logger is left alone).
        """
        self._debug = True
        if self._log is not _root_log:
            self._log.setLevel(logging.DEBUG)

    def disable_debug(self) -> None:
        self._debug = False
        if self._log is not _root_log:
            self._log.setLevel(logging.NOTSET)

    # --------------------------------------------------------------- closing

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued (at most ``timeout`` s), stop threads, close, clean up.

        Idempotent. Afterwards ``send`` reports an error and ``send_sync``
        returns False.
        """
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        if self._connector is not None:
            self._connector.stop()
        transport = self._transport
        if transport is not None and os.getpid() == self._owner_pid:
            if not transport.drain(timeout):
                self._log.warning(
                    "close(): %d messages were still unwritten after %.1f s and are dropped",
                    transport.pending,
                    timeout,
                )
            leftovers = transport.stop(timeout=max(timeout, 1.0), kept=self._link)
            if leftovers:
                self.on_tokens(leftovers, False)
            if self._connector is not None:
                self._connector.join(max(timeout, 1.0) + self._opts["connect_timeout"])
            if self._files is not None:
                self._files.remove()
        self._requests.fail_all(NotConnectedError("the channel was closed before the reply came"))
        self._connected_evt.clear()
        if self._dispatcher is not None:
            self._dispatcher.stop(timeout=max(timeout, 1.0))
        self._closed_evt.set()
        _instances.discard(self)
        self._log.debug("closed")

    def __enter__(self) -> UnixEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> UnixEvents:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


Linker = UnixEvents
UnixEvents.__module__ = "unixevents"
