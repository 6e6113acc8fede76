"""Listeners, and the one thread of each instance that calls them.

All user code (listeners, send callbacks, lifecycle hooks) runs on this
thread, in arrival order, so a slow or blocking listener never stalls the
sockets, and a listener may itself wait on a request: replies are resolved on
the I/O thread, not here.

Events that arrive before anyone listens are held for a while (the start-up
race where a peer sends before the receiver registered) and handed, in order,
to the first listener registered for them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
import traceback
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from ._protocol import EVENT, FAILURE, NO_LISTENER, REPLY, REQUEST

__all__ = ("Dispatcher", "Listener", "describe_failure")

Listener = Callable[[Any], Any]
# (link, messages) for arrivals; (None, thunk) for a call to run in order.
_Item = Tuple[Any, Any]
PAUSE_BYTES = 16 * 1024 * 1024
RESUME_BYTES = 4 * 1024 * 1024
# Past the pause, a link that owes us a reply is still read up to this backlog:
# the listener waiting for that reply may be what holds the backlog up.
AWAIT_BYTES = 4 * PAUSE_BYTES


class _Entry:
    __slots__ = ("fn", "is_async", "once")

    def __init__(self, fn: Listener, once: bool) -> None:
        self.fn = fn
        self.once = once
        self.is_async = inspect.iscoroutinefunction(fn)


class Dispatcher:
    """Runs listeners for one instance.

    Args:
        answer: ``answer(link, kind, event, data, rid)`` sends a reply back.
    """

    def __init__(
        self,
        *,
        name: str,
        log: logging.Logger,
        answer: Callable[[Any, int, str, Any, int], None],
        max_unclaimed: int,
        unclaimed_ttl: float,
    ) -> None:
        self._log = log
        self._answer = answer
        self.max_unclaimed = max_unclaimed
        self.unclaimed_ttl = unclaimed_ttl
        self.loop: Optional[asyncio.AbstractEventLoop] = None

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: Deque[_Item] = deque()
        self._idle = False
        self._stopping = False
        self._done = False  # the thread has ended: see post()
        self._backlog = 0  # bytes of received messages not yet dispatched
        self._paused = False
        self.on_drained: Callable[[], None] = lambda: None
        # Called as tap(event, data) for every plain event, before its listeners.
        self.tap: Optional[Callable[[str, Any], Any]] = None
        self._listeners: Dict[str, Tuple[_Entry, ...]] = {}
        # event -> deque of (arrival time, link, message), oldest first
        self._unclaimed: Dict[str, Deque[Tuple[float, Any, List[Any]]]] = {}
        self._unclaimed_count = 0
        self._thread = threading.Thread(
            target=self._run, name=f"unixevents-dispatch-{name}", daemon=True
        )

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Run what is queued, then end the thread (waits unless called from it)."""
        with self._cond:
            self._stopping = True
            if not self._thread.is_alive():
                self._done = True
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._log.warning("a listener is still running %.1f s after close()", timeout)

    # -------------------------------------------------------------- listeners

    def add(self, event: str, fn: Listener, *, once: bool) -> None:
        if not isinstance(event, str):
            raise TypeError(f"event must be a str, not {type(event).__name__}")
        if not callable(fn):
            raise TypeError(f"listener must be callable, not {type(fn).__name__}")
        with self._lock:
            self._listeners[event] = (*self._listeners.get(event, ()), _Entry(fn, once))
            backlog = event in self._unclaimed
            if backlog:
                self._queue.append((None, lambda: self._replay(event)))
                self._cond.notify()

    def remove(self, event: str, fn: Optional[Listener] = None) -> None:
        with self._lock:
            entries = self._listeners.get(event, ())
            kept = () if fn is None else tuple(e for e in entries if e.fn != fn)
            if kept:
                self._listeners[event] = kept
            else:
                self._listeners.pop(event, None)

    def has_listener(self, event: str) -> bool:
        return event in self._listeners

    # ------------------------------------------------------------ the thread

    def post(self, link: Any, msgs: Any, nbytes: int = 0) -> bool:
        """Queue messages from ``link`` (or, with link None, a thunk to call).

        Returns False once more than ``PAUSE_BYTES`` of received data wait
        here: the I/O thread then stops reading (so a stalled listener pushes
        back on the sender instead of growing our memory) until
        ``on_drained`` says the backlog is down to ``RESUME_BYTES``.

        Once the thread has ended (after close), thunks run at once in the
        caller's thread, so that late callbacks still report; messages are dropped.
        """
        with self._lock:
            if not self._done:
                self._queue.append((link, msgs))
                self._backlog += nbytes
                if self._idle:
                    self._cond.notify()
                if self._backlog > PAUSE_BYTES:
                    self._paused = True
                    return False
                return True
        if link is None:
            self._guard(msgs)
        return True

    def call(self, fn: Callable[[], Any]) -> None:
        self.post(None, fn)

    @property
    def backlog(self) -> int:
        """Bytes of received messages waiting for the thread."""
        return self._backlog

    @property
    def unclaimed_count(self) -> int:
        return self._unclaimed_count

    def _run(self) -> None:
        queue = self._queue
        while True:
            with self._lock:
                while not queue and not self._stopping:
                    self._idle = True
                    self._cond.wait(self._next_expiry())
                    self._idle = False
                    if self._unclaimed and not queue:
                        break  # expire below, outside the lock
                if not queue and self._stopping:
                    self._done = True
                    return
                items = list(queue)
                queue.clear()
                self._backlog = 0
            for link, payload in items:
                if link is None:
                    self._guard(payload)
                else:
                    dispatch = self._dispatch
                    for msg in payload:
                        dispatch(link, msg)
            if self._paused:
                # Resume only once the work taken above is done, and little waits.
                with self._lock:
                    resume = self._backlog <= RESUME_BYTES
                    if resume:
                        self._paused = False
                if resume:
                    self.on_drained()
            if self._unclaimed:
                self._expire(time.monotonic())

    def _guard(self, thunk: Callable[[], Any]) -> None:
        try:
            thunk()
        except Exception:
            self._log.exception("callback raised")

    def _dispatch(self, link: Any, msg: List[Any]) -> None:
        event = msg[1]
        entries = self._listeners.get(event)
        if entries is None and self.tap is not None and msg[0] == EVENT:
            entries = ()  # the tap claims every event
        if entries is None or self._unclaimed:
            entries = self._claim(link, msg)
            if entries is None:
                return
        if msg[0] == EVENT:
            data = msg[2]
            if self.tap is not None:
                self._guard(functools.partial(self.tap, event, data))
            for entry in entries:
                if entry.once and not self._take_once(event, entry):
                    continue
                self._call(entry, event, data)
        elif msg[0] == REQUEST:
            self._serve(link, entries, msg)
        # Answers are resolved on the I/O thread; any that get here are stray.

    def _claim(self, link: Any, msg: List[Any]) -> Optional[Tuple[_Entry, ...]]:
        """Slow path: hold ``msg`` if nobody listens, or first replay what was held."""
        event = msg[1]
        if msg[0] not in (EVENT, REQUEST):
            return None
        held = True
        with self._lock:
            entries = self._listeners.get(event)
            if entries is None:
                held = self._hold_locked(link, msg)
        if entries is None:
            # Answer outside our lock: answering takes the transport's locks,
            # and senders holding those may be posting callbacks to us.
            if not held and msg[0] == REQUEST:
                self._no_listener(link, msg)
            return None
        if event in self._unclaimed:
            self._replay(event)
            entries = self._listeners.get(event)
        return entries

    def _hold_locked(self, link: Any, msg: List[Any]) -> bool:
        """Hold ``msg`` for a later listener; False if there is no room (caller answers)."""
        if self._unclaimed_count >= self.max_unclaimed:
            self._log.debug(
                "no listener for %r and %d events already held; dropped",
                msg[1],
                self._unclaimed_count,
            )
            return False
        self._unclaimed.setdefault(msg[1], deque()).append((time.monotonic(), link, msg))
        self._unclaimed_count += 1
        return True

    def _replay(self, event: str) -> None:
        """Deliver what was held for ``event``, oldest first (dispatcher thread)."""
        while True:
            with self._lock:
                held = self._unclaimed.get(event)
                entries = self._listeners.get(event)
                if not held or entries is None:
                    return
                _, link, msg = held.popleft()
                self._unclaimed_count -= 1
                if not held:
                    del self._unclaimed[event]
            if msg[0] == EVENT:
                for entry in entries:
                    if entry.once and not self._take_once(event, entry):
                        continue
                    self._call(entry, event, msg[2])
            else:
                self._serve(link, entries, msg)

    def _next_expiry(self) -> Optional[float]:
        if not self._unclaimed:
            return None
        oldest = min(held[0][0] for held in self._unclaimed.values())
        return max(0.0, oldest + self.unclaimed_ttl - time.monotonic())

    def _expire(self, now: float) -> None:
        """Drop what was held past the TTL; answer held requests with NO_LISTENER."""
        limit = now - self.unclaimed_ttl
        unanswered = []
        with self._lock:
            for event in list(self._unclaimed):
                held = self._unclaimed[event]
                while held and held[0][0] <= limit:
                    _, link, msg = held.popleft()
                    self._unclaimed_count -= 1
                    self._log.debug(
                        "no listener for %r within %.1f s; dropped", event, self.unclaimed_ttl
                    )
                    if msg[0] == REQUEST:
                        unanswered.append((link, msg))
                if not held:
                    del self._unclaimed[event]
        for link, msg in unanswered:
            self._no_listener(link, msg)

    def _no_listener(self, link: Any, msg: List[Any]) -> None:
        self._answer(link, NO_LISTENER, msg[1], None, msg[3])

    def _take_once(self, event: str, entry: _Entry) -> bool:
        """Remove a ``receive_once`` entry; False if it was already removed."""
        with self._lock:
            entries = self._listeners.get(event, ())
            if entry not in entries:
                return False
            kept = tuple(e for e in entries if e is not entry)
            if kept:
                self._listeners[event] = kept
            else:
                del self._listeners[event]
        return True

    # ------------------------------------------------------- calling listeners

    def _call(self, entry: _Entry, event: str, data: Any) -> None:
        try:
            result = entry.fn(data)
            if entry.is_async or (result is not None and inspect.iscoroutine(result)):
                self.run_coroutine(result, lambda _ok, _value: None, event)
        except Exception:
            self._log.exception("listener %r for event %r raised", entry.fn, event)

    def _serve(self, link: Any, entries: Tuple[_Entry, ...], msg: List[Any]) -> None:
        """Answer a request with the first listener's return value."""
        event, data, rid = msg[1], msg[2], msg[3]
        entry = entries[0]
        if entry.once and not self._take_once(event, entry):
            self._no_listener(link, msg)
            return

        def finish(ok: bool, value: Any) -> None:
            if ok:
                self._answer(link, REPLY, event, value, rid)
            else:
                self._answer(link, FAILURE, type(value).__name__, describe_failure(value), rid)

        try:
            result = entry.fn(data)
        except Exception as exc:
            self._log.debug("request listener for %r raised", event, exc_info=True)
            finish(False, exc)
            return
        if entry.is_async or inspect.iscoroutine(result):
            self.run_coroutine(result, finish, event)
        else:
            finish(True, result)

    def run_coroutine(self, coro: Any, finish: Callable[[bool, Any], None], event: str) -> None:
        """Run ``coro`` on the captured loop if it runs, else with ``asyncio.run`` here."""

        def report(ok: bool, value: Any) -> None:
            if not ok and not isinstance(value, asyncio.CancelledError):
                self._log.error("coroutine listener for event %r raised", event, exc_info=value)
            finish(ok, value)

        loop = self.loop
        if loop is not None and loop.is_running() and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(coro, loop)

            def done(fut: Any) -> None:
                exc = None if fut.cancelled() else fut.exception()
                if fut.cancelled():
                    report(False, asyncio.CancelledError())
                elif exc is not None:
                    report(False, exc)
                else:
                    finish(True, fut.result())

            future.add_done_callback(done)
            return
        try:
            value = asyncio.run(coro)
        except Exception as exc:
            report(False, exc)
        else:
            finish(True, value)


def describe_failure(exc: BaseException) -> List[str]:
    """``[message, traceback text]`` of a listener's exception, for the wire."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return [str(exc), text]
