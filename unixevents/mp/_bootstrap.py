"""The child's side of a worker: guard against orphanhood, connect, run the target.

:func:`run_worker` is what ``multiprocessing`` runs in the child of
:func:`~unixevents.mp.spawn`; :func:`connect` is shared with
:func:`~unixevents.mp.parent_channel` in programs started by
:func:`~unixevents.mp.popen`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Any, Optional

import dill

from .._channel import UnixEvents
from ..errors import UnixEventsError
from . import _outcome
from ._handover import CONNECTED_FILE, Handover
from ._parent_death import guard

__all__ = ("ENV_FD", "READY_EVENT", "connect", "parent_channel", "run_worker")

READY_EVENT = "__unixevents.ready__"
CONNECT_TIMEOUT = 30.0
ENV_FD = "UNIXEVENTS_PARENT_FD"  # popen: the inherited pipe that carries the handover

_current: Optional[UnixEvents] = None  # this process's channel to its parent
_current_lock = threading.Lock()

_log = logging.getLogger("unixevents.mp")


def connect(handover: Handover) -> UnixEvents:
    """Guard against the parent's death (if asked) and connect to its channel.

    Raises:
        UnixEventsError: the parent's channel cannot be reached.
    """
    if handover.exit_with_parent:
        guard(
            handover.parent_pid,
            handover.parent_create_time,
            cleanup_dir=handover.directory,
            pdeathsig=handover.pdeathsig,
        )
    # reconnect=False: the parent's end is the only server this channel will
    # ever have; when it goes, wait_closed() returns and the worker can end.
    events = UnixEvents(authkey=handover.authkey, reconnect=False)
    try:
        ok = events.init_sync("client", handover.address, timeout=CONNECT_TIMEOUT)
    except BaseException:
        events.close(timeout=0.0)
        raise
    if not ok:
        events.close(timeout=0.0)
        raise UnixEventsError(
            f"could not connect to the parent's channel {handover.address!r} within"
            f" {CONNECT_TIMEOUT:.0f} s; is the parent (pid {handover.parent_pid}) still running?"
        )
    # Tell the parent, out of band, that a connection exists: when we end, it
    # waits for that connection to be read to the end even if its server had
    # not adopted it yet (a target that returns at once).
    with contextlib.suppress(OSError):
        os.close(os.open(os.path.join(handover.directory, CONNECTED_FILE), os.O_CREAT, 0o600))
    return events


def run_worker(payload: bytes, handover: Handover) -> None:
    """Run ``target(events, *args, **kwargs)`` from ``payload``; record its outcome.

    Ends the process with exit code 0 after a return, 1 after an exception
    (as ``multiprocessing`` does), or the code given to ``sys.exit``.
    """
    try:
        events = connect(handover)
    except BaseException as exc:
        _outcome.write_failure(handover.directory, exc, "the worker could not connect")
        sys.exit(1)
    global _current
    _current = events
    code: Any = 0
    try:
        try:
            target, args, kwargs = dill.loads(payload)
        except BaseException as exc:
            _outcome.write_failure(
                handover.directory,
                exc,
                "the worker could not rebuild its target (is every module it uses"
                " importable in the child?)",
            )
            code = 1
        else:
            events.send(READY_EVENT, None)
            code = _run_target(events, handover.directory, target, args, kwargs)
    finally:
        events.close()
    sys.exit(code)


def _run_target(events: UnixEvents, directory: str, target: Any, args: Any, kwargs: Any) -> Any:
    try:
        value = target(events, *args, **kwargs)
    except SystemExit as exc:
        return exc.code  # multiprocessing's rules: None/0 is success, an int is the code
    except BaseException as exc:
        _log.debug("the worker's target raised", exc_info=True)
        _outcome.write_failure(directory, exc, skip_frames=1)
        return 1
    return 0 if _outcome.write_return(directory, value) else 1


def parent_channel() -> UnixEvents:
    """The channel to the parent that started this process with ``popen`` or ``spawn``.

    The first call reads the handover (an inherited pipe named by
    ``$UNIXEVENTS_PARENT_FD``), connects, and starts the parent-death guard;
    later calls return the same ``UnixEvents``.

    Raises:
        UnixEventsError: this process was not started by
            ``unixevents.mp.popen()``/``spawn()``, or the parent cannot be reached.
    """
    global _current
    with _current_lock:
        if _current is not None:
            return _current
        raw_fd = os.environ.pop(ENV_FD, None)
        if raw_fd is None:
            raise UnixEventsError(
                "this process was not started by unixevents.mp.popen() or spawn(), so it"
                " has no parent channel; start it with popen(), or create a UnixEvents"
                " client yourself"
            )
        try:
            fd = int(raw_fd)
            chunks = []
            try:
                while True:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                os.close(fd)
            handover = Handover.from_json(b"".join(chunks))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise UnixEventsError(
                f"cannot read the parent channel's handover from descriptor {raw_fd}"
                f" ({type(exc).__name__}: {exc}); parent_channel() works once, in the"
                " program popen() started (its own children do not inherit it)"
            ) from exc
        _current = connect(handover)
        return _current
