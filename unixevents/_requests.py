"""Request bookkeeping: ids, futures, deadlines, and matching answers to callers.

Pure bookkeeping with a lock; the I/O thread feeds it answers and the clock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import threading
from typing import Any, Dict, Generator, List, Optional, Set, Tuple

from ._protocol import FAILURE, NO_LISTENER, REPLY
from .errors import NoListener, RemoteError

__all__ = ("PendingRequests", "RequestFuture")


class RequestFuture(concurrent.futures.Future):  # type: ignore[type-arg]
    """A ``concurrent.futures.Future`` that can also be awaited in asyncio."""

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self).__await__()


RequestFuture.__module__ = "unixevents"


class PendingRequests:
    """Requests sent and not yet answered, by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # rid -> (future, link id, event)
        self._waiting: Dict[int, Tuple[RequestFuture, int, str]] = {}
        self._deadlines: List[Tuple[float, int]] = []

    def __len__(self) -> int:
        return len(self._waiting)

    def add(
        self, link_id: int, event: str, deadline: Optional[float]
    ) -> Tuple[int, RequestFuture, bool]:
        """Register a request; returns its id, its future, and whether its
        deadline is now the earliest (then the clock's owner must re-plan).

        Cancelling the future (``fut.cancel()``, or asyncio cancelling an
        ``await``) forgets the request; a reply that comes later is dropped.
        """
        future = RequestFuture()
        with self._lock:
            rid = next(self._ids)
            self._waiting[rid] = (future, link_id, event)
            earliest = False
            if deadline is not None:
                heapq.heappush(self._deadlines, (deadline, rid))
                earliest = self._deadlines[0][1] == rid

        def forget_if_cancelled(fut: Any) -> None:
            if fut.cancelled():
                with self._lock:
                    self._waiting.pop(rid, None)

        future.add_done_callback(forget_if_cancelled)
        return rid, future, earliest

    def awaited_on(self, link_id: int) -> bool:
        """Whether a request sent on ``link_id`` still waits for its answer."""
        with self._lock:
            return any(entry[1] == link_id for entry in self._waiting.values())

    def next_deadline(self) -> Optional[float]:
        deadlines = self._deadlines
        return deadlines[0][0] if deadlines else None

    def resolve(self, msg: List[Any]) -> bool:
        """Settle the future an answer is for; False if nobody waits (late or stray)."""
        kind, rid = msg[0], msg[3]
        with self._lock:
            entry = self._waiting.pop(rid, None)
        if entry is None:
            return False
        future, _, event = entry
        if kind == REPLY:
            _settle(future, result=msg[2])
        elif kind == FAILURE:
            message, text = msg[2]
            _settle(
                future,
                error=RemoteError(
                    f"the listener for {event!r} raised {msg[1]}: {message}\n"
                    f"--- remote traceback ---\n{text}",
                    remote_type=msg[1],
                    remote_traceback=text,
                ),
            )
        elif kind == NO_LISTENER:
            _settle(
                future,
                error=NoListener(
                    f"the peer has no listener for {event!r}; register one with"
                    f" receive({event!r}, fn) on the other side"
                ),
            )
        return True

    def fail(self, rid: int, error: BaseException) -> None:
        with self._lock:
            entry = self._waiting.pop(rid, None)
        if entry is not None:
            _settle(entry[0], error=error)

    def expire(self, now: float) -> None:
        expired: List[Tuple[RequestFuture, str]] = []
        with self._lock:
            deadlines = self._deadlines
            while deadlines and deadlines[0][0] <= now:
                _, rid = heapq.heappop(deadlines)
                entry = self._waiting.pop(rid, None)
                if entry is not None:
                    expired.append((entry[0], entry[2]))
        for future, event in expired:
            _settle(
                future,
                error=TimeoutError(
                    f"no reply to request {event!r} in time; the peer may be busy or"
                    " gone: raise timeout= or check the peer"
                ),
            )

    def fail_link(self, link_id: int, error: BaseException, keep: Set[int]) -> None:
        """Fail every request sent on ``link_id`` except the ids in ``keep`` (still queued)."""
        with self._lock:
            rids = [
                rid
                for rid, entry in self._waiting.items()
                if entry[1] == link_id and rid not in keep
            ]
            futures = [self._waiting.pop(rid)[0] for rid in rids]
        for future in futures:
            _settle(future, error=error)

    def fail_all(self, error: BaseException) -> None:
        with self._lock:
            futures = [entry[0] for entry in self._waiting.values()]
            self._waiting.clear()
            self._deadlines.clear()
        for future in futures:
            _settle(future, error=error)

    def prune(self) -> None:
        """Forget deadlines of requests already answered, so the heap stays small."""
        with self._lock:
            if len(self._deadlines) > 2 * len(self._waiting) + 64:
                self._deadlines = [d for d in self._deadlines if d[1] in self._waiting]
                heapq.heapify(self._deadlines)


def _settle(
    future: RequestFuture, *, result: Any = None, error: Optional[BaseException] = None
) -> None:
    if future.done():
        return
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:  # pragma: no cover - lost a race to cancel
        pass
