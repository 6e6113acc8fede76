"""Sockets, the handshake, and the one I/O thread of each instance.

Strategy: every instance has exactly one I/O thread, blocked in a selector
over its sockets and a wake-up pipe; it never polls. Senders only append
encoded messages to a per-link queue and, if the I/O thread is not already due
to run, poke the pipe once. While a sender is busy the I/O thread cannot get
the GIL anyway, so by the time it runs the queue holds many messages and it
writes them as one frame in one system call: batching falls out of the design
instead of a timer. Requests and replies, which want latency rather than
throughput, are written directly by the caller when the link is idle.

The ``multiprocessing.connection`` handshake (``deliver_challenge`` and
``answer_challenge``, both ways) runs per connection in a short-lived thread
with kernel socket time-outs, so a peer that stalls it holds up nobody else.
We bind and accept the socket ourselves for that reason: ``Listener.accept``
runs the challenge inline, with no time-out.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import threading
import time
import weakref
from collections import deque
from multiprocessing import AuthenticationError
from typing import (
    Any,
    Deque,
    Dict,
    List,
    Optional,
    Protocol,
    Set,
    Tuple,
)

from ._liveness import PeerInfo, is_alive
from ._sockets import describe_peer, handshake
from .errors import (
    NotConnectedError,
    QueueFull,
)

__all__ = ("Link", "Owner", "Transport", "Wire")

# Reads go into one reused buffer (see Transport._read): it starts small, since
# it stays resident for the life of the instance, and grows once a read fills it.
_RECV_START = 16 * 1024
_RECV_SIZE = 256 * 1024
# A batch is cut at this many bytes (a larger single message goes alone).
_BATCH_BYTES = 1024 * 1024
# A sender writes its own queue once this much is waiting (see Transport.submit).
_ASSIST_BYTES = 64 * 1024
# Socket buffers: larger than the default 208 KiB so one write moves a big batch.
_SOCK_BUF = 1024 * 1024

Item = Tuple[bytes, Any]  # (encoded message, token)


class Reader(Protocol):
    bad: List[str]

    def feed(self, data: bytes) -> List[List[Any]]: ...


class Wire(Protocol):
    max_message_size: int

    def encode(self, kind: int, event: str, data: Any, rid: Optional[int] = None) -> bytes: ...

    def pack(self, parts: List[bytes]) -> bytes: ...

    def reader(self) -> Reader: ...


class Owner(Protocol):
    """What the transport tells the channel."""

    def on_messages(self, link: Link, msgs: List[List[Any]], nbytes: int) -> bool: ...

    def on_link_up(self, link: Link) -> None: ...

    def on_link_down(self, link: Link, reason: str) -> None: ...

    def on_tokens(self, tokens: List[Any], written: bool) -> None: ...

    def next_deadline(self) -> Optional[float]: ...

    def on_tick(self, now: float) -> None: ...

    def on_lost(self, reason: str) -> None: ...

    def on_liveness_tick(self) -> None: ...

    def keep_reading(self, link: Link) -> bool: ...


class Link:
    """One peer: its socket (None while a client is disconnected) and its send queue."""

    __slots__ = (
        "error",
        "id",
        "inflight",
        "outbuf",
        "outq",
        "peer",
        "qbytes",
        "reader",
        "sock",
        "unposted",
        "want_write",
        "wlock",
    )

    def __init__(self, link_id: int) -> None:
        self.id = link_id
        self.sock: Optional[socket.socket] = None
        self.peer: Optional[PeerInfo] = None
        self.reader: Optional[Reader] = None
        self.outq: Deque[Item] = deque()
        self.qbytes = 0  # bytes in outq
        self.unposted = 0  # bytes read since the last messages went to the dispatcher
        self.error = ""
        self.wlock = threading.Lock()  # held by whoever writes to sock
        self.outbuf: Optional[memoryview] = None
        self.inflight: List[Item] = []
        self.want_write = False


def _take_batch(link: Link) -> List[Item]:
    """The next batch off ``link``'s queue, in order, up to ``_BATCH_BYTES``.

    A message larger than that goes alone. ``link.qbytes`` stays the size of
    what is left queued.
    """
    outq = link.outq
    if link.qbytes + len(outq) <= _BATCH_BYTES:
        # All of it fits (sizes plus one separator each): no per-item loop.
        batch = list(outq)
        outq.clear()
        link.qbytes = 0
        return batch
    batch = [outq.popleft()]
    size = len(batch[0][0])
    while outq and size + len(outq[0][0]) < _BATCH_BYTES:
        item = outq.popleft()
        size += len(item[0]) + 1
        batch.append(item)
    link.qbytes -= size - len(batch) + 1
    return batch


_live: weakref.WeakSet[Transport] = weakref.WeakSet()


def _forget_after_fork() -> None:
    # A forked child inherits our sockets and pipes but not our threads. It
    # must not keep peers' connections open (they would never see EOF) nor
    # act on them: close the descriptors and mark every transport dead.
    for transport in list(_live):
        transport._abandon_in_child()


if hasattr(os, "register_at_fork"):  # pragma: no branch
    os.register_at_fork(after_in_child=_forget_after_fork)


class Transport:
    """The links of one instance and the thread that moves their bytes."""

    def __init__(
        self,
        owner: Owner,
        wire: Wire,
        *,
        name: str,
        log: logging.Logger,
        max_pending: int,
        handshake_timeout: float,
        liveness_interval: float,
        persistent: bool,
    ) -> None:
        self._owner = owner
        self._persistent = persistent
        self._wire = wire
        self._name = name
        self._log = log
        self.max_pending = max_pending
        self.handshake_timeout = handshake_timeout
        self.liveness_interval = liveness_interval

        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # pending fell, or we stopped
        self._waiters = 0
        self.pending = 0
        self.links: Dict[int, Link] = {}
        self._dirty: Set[Link] = set()
        self._adopted: List[Tuple[Link, socket.socket, PeerInfo]] = []
        self._next_id = 1
        self.closing = False  # no new messages accepted
        self._stopping = False  # the I/O thread is to end
        self._wake_armed = False
        self._paused = False  # not reading: the dispatcher is behind
        self._resume = False
        self._reconsider = False  # a request went out while paused: see reconsider_reading

        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._listener: Optional[socket.socket] = None
        self._handshakes: Set[socket.socket] = set()
        self._pid = os.getpid()
        self._rbuf = bytearray(_RECV_START)
        self._rview = memoryview(self._rbuf)
        self._thread = threading.Thread(target=self._run, name=f"unixevents-io-{name}", daemon=True)
        _live.add(self)

    # ----------------------------------------------------------------- life

    def start(self) -> None:
        self._thread.start()

    def discard(self) -> None:
        """Release what __init__ took: for a transport that never started, and at the end."""
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        _live.discard(self)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def new_link(self) -> Link:
        with self.lock:
            link = Link(self._next_id)
            self._next_id += 1
            return link

    def replace_listener(self, sock: socket.socket) -> None:
        """Serve on a new listening socket instead of the old one (I/O thread only)."""
        old = self._listener
        if old is not None:
            try:
                self._selector.unregister(old)
            except (KeyError, ValueError):
                pass
            old.close()
        self._listener = sock
        self._selector.register(sock, selectors.EVENT_READ, "listener")

    def listen(self, sock: socket.socket, key: Optional[bytes]) -> None:
        """Serve on an already bound, non-blocking listening socket."""
        self._listener = sock
        self._server_key = key
        self._selector.register(sock, selectors.EVENT_READ, "listener")

    def drain(self, timeout: Optional[float]) -> bool:
        """Wait until nothing is queued or ``timeout`` passes; True if drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            self._waiters += 1
            try:
                while self.pending > 0 and not self._stopping:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self.changed.wait(left)
                return self.pending == 0
            finally:
                self._waiters -= 1

    def stop(self, timeout: float, kept: Optional[Link] = None) -> List[Any]:
        """End the I/O thread, close every socket; return the tokens never written.

        ``kept`` is a client's link, whose queue outlives its connections.
        """
        with self.lock:
            self._stopping = True
            self.closing = True
            self.changed.notify_all()
            for hs in list(self._handshakes):
                try:
                    hs.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        leftovers: List[Any] = []
        with self.lock:
            links = set(self.links.values())
            if kept is not None:
                links.add(kept)
            for link in links:
                leftovers.extend(tok for _, tok in link.inflight)
                leftovers.extend(tok for _, tok in link.outq)
                link.inflight = []
                link.outq.clear()
                link.qbytes = 0
            self.pending = 0
        return leftovers

    # --------------------------------------------------------------- sending

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # a full pipe wakes the loop as well; a closed one means we stopped

    def submit(
        self, data: bytes, token: Any, links: List[Link], *, urgent: bool = False
    ) -> Optional[Exception]:
        """Queue ``data`` on each of ``links``; the error to report, or None.

        The token comes back through ``Owner.on_tokens`` once per link, when
        written or dropped. Who writes:

        - the I/O thread, woken once per burst, coalescing the queue;
        - this thread, once a link has a full batch queued (the I/O thread
          would first have to win the GIL from this busy thread);
        - this thread, at once, when the link is idle and the message is
          ``urgent`` (requests, replies): a trip through the I/O thread costs
          latency. (Doing the same for idle plain sends was measured: it cost
          ~10% of burst throughput and gained no measurable latency.)
        """
        direct: List[Link] = []
        with self.lock:
            if self.closing:
                return NotConnectedError("the channel is closed; create a new UnixEvents instance")
            if not self._persistent:
                links = [link for link in links if link.sock is not None]
                if not links:
                    return NotConnectedError("the peer is no longer connected")
            n = len(links)
            if self.pending + n > self.max_pending:
                return QueueFull(
                    f"{self.pending} messages are waiting to be written (max_pending="
                    f"{self.max_pending}); wait for the peer to catch up, use send_sync to"
                    " wait for room, or raise max_pending"
                )
            self.pending += n
            item = (data, token)
            size = len(data)
            wake = False
            for link in links:
                idle = not link.outq and link.outbuf is None
                link.outq.append(item)
                link.qbytes += size
                if link.sock is None:
                    continue
                if (idle and urgent) or link.qbytes >= _ASSIST_BYTES:
                    direct.append(link)
                else:
                    self._dirty.add(link)
                    wake = True
            if wake and not self._wake_armed:
                self._wake_armed = True
                self.wake()
        for link in direct:
            self._write(link)
        return None

    def _write(self, link: Link) -> bool:
        """Write what ``link`` has queued until done or its socket is full.

        Any thread. Only the holder of ``link.wlock`` touches the socket and
        ``outbuf``/``inflight``; ``self.lock`` guards the queue and is never
        held across a system call. Returns False once the socket is full or
        failed, with the link handed to the I/O thread.
        """
        while True:
            if not link.wlock.acquire(blocking=False):
                return True  # the holder re-checks the queue after releasing it
            try:
                state = self._drain(link)
            finally:
                link.wlock.release()
            with self.lock:
                if state != "more" and not (state == "empty" and link.outq):
                    if state != "empty":
                        self._dirty.add(link)
                        if not self._wake_armed:
                            self._wake_armed = True
                            self.wake()
                    return state == "empty"

    def _drain(self, link: Link) -> str:
        """Write batches; 'empty', 'full' (EAGAIN), 'failed', or 'more' (yield the lock)."""
        sock = link.sock
        if sock is None:
            return "empty"
        written = 0
        while True:
            if link.outbuf is None:
                with self.lock:
                    if not link.outq:
                        return "empty"
                    batch = _take_batch(link)
                link.inflight = batch
                link.outbuf = memoryview(self._wire.pack([data for data, _ in batch]))
            try:
                sent = sock.send(link.outbuf)
            except (BlockingIOError, InterruptedError):
                return "full"
            except OSError as exc:
                link.error = f"write failed: {exc}"
                return "failed"
            if sent < len(link.outbuf):
                link.outbuf = link.outbuf[sent:]
                return "full"
            done, link.inflight, link.outbuf = link.inflight, [], None
            with self.lock:
                self.pending -= len(done)
                if self._waiters:
                    self.changed.notify_all()
            self._finish(done, True)
            written += len(done)
            if written > 4 * self.max_pending:  # pragma: no cover - let others in
                return "more"

    def _finish(self, items: List[Item], written: bool) -> None:
        tokens = [tok for _, tok in items if tok is not None]
        if tokens:
            self._owner.on_tokens(tokens, written)

    # -------------------------------------------------------- the I/O thread

    def has_socket(self, link: Link) -> bool:
        """Whether ``link`` is connected, or has a socket waiting to be taken up."""
        with self.lock:
            return link.sock is not None or any(entry[0] is link for entry in self._adopted)

    def adopt(self, link: Link, sock: socket.socket, peer: PeerInfo) -> None:
        """Hand a connected, authenticated socket to the I/O thread."""
        with self.lock:
            if self._stopping:
                sock.close()
                return
            self._adopted.append((link, sock, peer))
        self.wake()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # pragma: no cover - a bug; say so loudly
            self._log.exception("I/O thread of %s failed", self._name)
            self._owner.on_lost("internal error in the I/O thread")
        finally:
            self._shutdown()

    def _loop(self) -> None:
        select = self._selector.select
        next_liveness = time.monotonic() + self.liveness_interval
        while not self._stopping:
            now = time.monotonic()
            deadline = next_liveness
            owner_deadline = self._owner.next_deadline()
            if owner_deadline is not None and owner_deadline < deadline:
                deadline = owner_deadline
            for key, mask in select(max(0.0, deadline - now)):
                tag = key.data
                if tag is None:
                    self._drain_wake()
                elif tag == "listener":
                    self._accept()
                else:
                    link = tag
                    if mask & selectors.EVENT_READ:
                        self._read(link)
                    if mask & selectors.EVENT_WRITE and link.sock is not None:
                        with self.lock:
                            self._dirty.add(link)
            if self._resume or self._reconsider:
                self._apply_resume()
            if self._adopted:
                self._take_adopted()
            if self._dirty:
                self._flush()
            now = time.monotonic()
            if now >= next_liveness:
                next_liveness = now + self.liveness_interval
                self._check_liveness()
                self._owner.on_liveness_tick()
            if owner_deadline is not None and now >= owner_deadline:
                self._owner.on_tick(now)

    def _drain_wake(self) -> None:
        # Empty the pipe first, then disarm: the other order can swallow the
        # byte of a sender who re-armed in between, and its wake-up is lost.
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self.lock:
            self._wake_armed = False

    def _take_adopted(self) -> None:
        with self.lock:
            adopted, self._adopted = self._adopted, []
        for link, sock, peer in adopted:
            sock.setblocking(False)
            for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, _SOCK_BUF)
                except OSError:  # pragma: no cover - a platform cap; keep the default
                    pass
            with self.lock:
                link.sock = sock
                link.peer = peer
                link.reader = self._wire.reader()
                link.want_write = False
                self.links[link.id] = link
                if link.outq or link.outbuf is not None:
                    self._dirty.add(link)
            self._register(link)
            self._owner.on_link_up(link)

    def _read(self, link: Link) -> bool:
        """Read once from ``link``; False if nothing was there or it closed."""
        sock = link.sock
        if sock is None:
            return False
        # recv(_RECV_SIZE) would allocate 256 KiB, which malloc takes from
        # mmap, for every read however small: ~12 us each, twice per request.
        # Read into our buffer and copy out only what came.
        try:
            n = sock.recv_into(self._rbuf)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self.drop(link, f"read failed: {exc}")
            return False
        if not n:
            self.drop(link, "peer closed the connection")
            return False
        data = self._rview[:n].tobytes()
        if n == len(self._rbuf) < _RECV_SIZE:  # a busy link: read more per call
            self._rbuf = bytearray(_RECV_SIZE)
            self._rview = memoryview(self._rbuf)
        reader = link.reader
        assert reader is not None
        try:
            msgs = reader.feed(data)
        except ValueError as exc:  # FramingError: the stream cannot be trusted any more
            self._log.warning("%s: dropping connection to %s: %s", self._name, link.peer, exc)
            self.drop(link, f"bad framing: {exc}")
            return False
        if reader.bad:
            for why in reader.bad:
                self._log.warning(
                    "%s: dropped a bad message from %s: %s", self._name, link.peer, why
                )
            reader.bad.clear()
        link.unposted += len(data)  # a frame can take several reads: count them all
        if msgs:
            nbytes, link.unposted = link.unposted, 0
            if not self._owner.on_messages(link, msgs, nbytes):
                self._pause_reading()
                if link.sock is not None:
                    self._register(link)  # read on only while it owes a reply
        return True

    def _flush(self) -> None:
        with self.lock:
            dirty, self._dirty = self._dirty, set()
        for link in dirty:
            if link.sock is None:
                continue
            if not link.wlock.acquire(blocking=False):
                continue  # another thread writes it, and hands it back if it blocks
            try:
                state = self._drain(link)
            finally:
                link.wlock.release()
            if state == "failed":
                # A peer that closed makes our write fail (EPIPE) while what it
                # sent before closing may still wait unread: deliver that first.
                self._read_to_end(link)
                self.drop(link, link.error or "write failed")
                continue
            self._want_write(link, state == "full")
            if state == "empty":
                with self.lock:
                    if link.outq:  # queued while we held the write lock
                        self._dirty.add(link)

    def _want_write(self, link: Link, on: bool) -> None:
        if link.want_write == on or link.sock is None:
            return
        link.want_write = on
        self._register(link)

    def _register(self, link: Link) -> None:
        assert link.sock is not None
        reading = not self._paused or self._owner.keep_reading(link)
        events = (selectors.EVENT_READ if reading else 0) | (
            selectors.EVENT_WRITE if link.want_write else 0
        )
        key = self._selector.get_map().get(link.sock)
        if key is None:
            if events:
                self._selector.register(link.sock, events, link)
        elif not events:
            self._selector.unregister(link.sock)
        elif key.events != events:
            self._selector.modify(link.sock, events, link)

    def _pause_reading(self) -> None:
        """Stop reading every link until resume_reading (I/O thread only).

        Except a link the owner wants read on (``Owner.keep_reading``): one
        that owes a reply, which a listener may be blocked on.
        """
        if self._paused:
            return
        self._log.debug("%s: listeners are behind; pausing reads", self._name)
        self._paused = True
        for link in list(self.links.values()):
            if link.sock is not None:
                self._register(link)

    def resume_reading(self) -> None:
        """Any thread: ask the I/O thread to read again."""
        with self.lock:
            self._resume = True
        self.wake()

    def reconsider_reading(self) -> None:
        """Any thread: a request was just sent; if reads are paused, let its link be read."""
        if not self._paused:
            return  # a pause to come asks Owner.keep_reading itself
        with self.lock:
            self._reconsider = True
        self.wake()

    def _apply_resume(self) -> None:
        with self.lock:
            resume = self._resume
            self._resume = self._reconsider = False
        if self._paused:
            if resume:
                self._paused = False
            for link in list(self.links.values()):
                if link.sock is not None:
                    self._register(link)

    def drop(self, link: Link, reason: str) -> None:
        """Close ``link``'s socket (I/O thread only).

        A server's link is forgotten with its queue; a client's link keeps its
        queue for the next connection, with the batch that was cut short put
        back in front, since a partial frame never reaches the peer.
        """
        with link.wlock:  # nobody may write to a descriptor we are closing
            lost = self._close_link(link)
        if lost is None:
            return
        self._log.debug("%s: disconnected from %s (%s)", self._name, link.peer, reason)
        if lost:
            self._finish(lost, False)
        self._owner.on_link_down(link, reason)

    def _close_link(self, link: Link) -> Optional[List[Item]]:
        """Close the socket; return what will never be written (None if already closed)."""
        sock = link.sock
        if sock is None:
            return None
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()
        lost: List[Item] = []
        with self.lock:
            link.sock = None
            link.want_write = False
            self.links.pop(link.id, None)
            self._dirty.discard(link)
            if self._persistent:
                link.outq.extendleft(reversed(link.inflight))
                link.qbytes = sum(len(data) for data, _ in link.outq)
            else:
                lost = link.inflight + list(link.outq)
                link.outq.clear()
                link.qbytes = 0
                self.pending -= len(lost)
                if self._waiters:
                    self.changed.notify_all()
            link.inflight = []
            link.outbuf = None
        return lost

    def _check_liveness(self) -> None:
        with self.lock:
            links = [ln for ln in self.links.values() if ln.peer is not None]
        for link in links:
            peer = link.peer
            assert peer is not None
            if peer.pid > 0 and not is_alive(peer.pid, peer.create_time):
                # What it wrote before it died is still ours to deliver: the
                # usual case is a peer that sent, closed and exited a moment
                # before this check, with its EOF not yet read.
                self._read_to_end(link)
                if link.sock is None:
                    continue  # it was an ordinary close after all
                self._log.info(
                    "%s: peer process %d is gone but its socket is still open; disconnecting",
                    self._name,
                    peer.pid,
                )
                self.drop(link, "peer process is gone")

    def _read_to_end(self, link: Link) -> None:
        """Read what ``link``'s socket holds now, even while paused (bounded: 64 reads)."""
        for _ in range(64):
            if not self._read(link):
                return

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._log.error("%s: cannot accept a connection: %s", self._name, exc)
                return
            with self.lock:
                if self._stopping:
                    sock.close()
                    return
                self._handshakes.add(sock)
            threading.Thread(
                target=self._serve_handshake,
                args=(sock,),
                name=f"unixevents-handshake-{self._name}",
                daemon=True,
            ).start()

    def _serve_handshake(self, sock: socket.socket) -> None:
        try:
            if self._server_key is not None:
                handshake(sock, self._server_key, server=True, timeout=self.handshake_timeout)
            link = self.new_link()
            peer = describe_peer(sock, link.id)
        except AuthenticationError as exc:
            self._log.warning("%s: refused a client with the wrong key (%s)", self._name, exc)
            sock.close()
            return
        except (OSError, EOFError) as exc:
            self._log.warning("%s: handshake with a client failed: %s", self._name, exc)
            sock.close()
            return
        finally:
            with self.lock:
                self._handshakes.discard(sock)
        self.adopt(link, sock, peer)

    def _shutdown(self) -> None:
        with self.lock:
            self._stopping = True
            links = list(self.links.values())
            adopted, self._adopted = self._adopted, []
        for _, sock, _ in adopted:
            sock.close()
        for link in links:
            # As any disconnect: forgotten, unwritten messages reported, on_disconnect fired.
            self.drop(link, "this side was closed")
        if self._listener is not None:
            self._listener.close()
        self.discard()
        with self.lock:
            self.changed.notify_all()

    def _abandon_in_child(self) -> None:
        if self._pid == os.getpid():
            return
        self._stopping = True
        self.closing = True
        fds = [self._wake_r, self._wake_w]
        for link in self.links.values():
            if link.sock is not None:
                fds.append(link.sock.detach())
                link.sock = None
        if self._listener is not None:
            fds.append(self._listener.detach())
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self._selector.close()
        except Exception:
            pass
        # Fresh locks: a lock held by a parent thread at fork would never be released.
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
