"""``Worker``: the parent's handle on a child process and its private channel.

A worker's end is noticed without its cooperation: a thread blocks on the
child itself (``multiprocessing``'s sentinel or ``waitpid``), never on a
message from it, so a return, an exception, ``SIGKILL`` and the OOM killer
all look the same: the process ended, with an exit code. That thread then lets
the channel read what the child wrote before it went (so every event from the
child has been dispatched before ``on_exit``), picks up the result file,
removes the private directory, and calls the ``on_exit`` hooks. The channel
itself stays open until ``close()``.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
from typing import Any, Callable, List, Optional, Protocol, Set, Tuple

from .._address import MAX_PATH
from .._channel import UnixEvents
from .._liveness import PeerInfo, is_alive, process_create_time
from ..errors import WorkerDied
from . import _outcome
from ._bootstrap import READY_EVENT
from ._handover import CONNECTED_FILE, SOCKET_FILE, Handover, parent_identity

__all__ = ("ChildProcess", "Worker", "handover_for", "make_home")

_log = logging.getLogger("unixevents.mp")

# After the child ends, how long the channel may take to read what it wrote
# (its socket normally reports EOF at once; a grandchild holding the socket
# open is cut off by the liveness check within liveness_interval).
_DRAIN_TIMEOUT = 2.5

ExitHook = Callable[["Worker"], Any]


class ChildProcess(Protocol):
    """What a ``Worker`` needs from the process object that started the child."""

    pid: int

    def wait(self) -> int:
        """Block until the child has ended; reap it and return its exit code."""

    def send_signal(self, sig: int) -> None:
        """Signal the child; a no-op once it has been reaped."""


def make_home() -> Tuple[str, bytes, UnixEvents]:
    """A private directory (0700), a fresh key, and the parent's server in it.

    Returns:
        ``(directory, authkey, server)``.
    """
    directory = tempfile.mkdtemp(prefix=f"unixevents-w{os.getpid()}-")
    if len(os.fsencode(os.path.join(directory, SOCKET_FILE))) > MAX_PATH:
        os.rmdir(directory)  # a long $TMPDIR (macOS): fall back to a short one
        directory = tempfile.mkdtemp(prefix=f"uew{os.getpid()}-", dir="/tmp")
    _sweep(os.path.dirname(directory))
    key = secrets.token_bytes(32)
    try:
        server = UnixEvents("server", os.path.join(directory, SOCKET_FILE), authkey=key)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory, key, server


_HOME_NAME = re.compile(r"(?:unixevents-w|uew)(\d+)-")


def _sweep(parent: str) -> None:
    """Remove worker directories of ours whose parent process is gone.

    A parent killed by SIGKILL cannot clean up; its workers' watchdogs do,
    but a worker killed at the same moment by PR_SET_PDEATHSIG cannot. The
    owner's PID is in the directory's name.
    """
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        m = _HOME_NAME.match(name)
        if m is None or int(m.group(1)) == os.getpid() or is_alive(int(m.group(1))):
            continue
        path = os.path.join(parent, name)
        try:
            if os.lstat(path).st_uid != os.getuid():
                continue
        except OSError:
            continue
        _log.debug("removing %s, left by a dead process", path)
        shutil.rmtree(path, ignore_errors=True)


def handover_for(
    directory: str, key: bytes, server: UnixEvents, exit_with_parent: bool
) -> Handover:
    pid, create_time = parent_identity()
    assert server.address is not None
    return Handover(
        address=server.address,
        authkey=key,
        directory=directory,
        parent_pid=pid,
        parent_create_time=create_time,
        exit_with_parent=exit_with_parent,
        pdeathsig=threading.current_thread() is threading.main_thread(),
    )


class Worker:
    """A child process with a private, authenticated channel to this one.

    Made by :func:`~unixevents.mp.spawn` or :func:`~unixevents.mp.popen`.

    Attributes:
        events: this process's end of the channel (role server; the child is
            its only peer). It stays open after the child has ended, so that
            late listeners still get what it sent; :meth:`close` closes it.
        name: the worker's name.
        pid: the child's process ID.
    """

    def __init__(
        self,
        process: ChildProcess,
        events: UnixEvents,
        directory: str,
        *,
        name: str,
        exit_with_parent: bool,
        popen: Any = None,
    ) -> None:
        self.events = events
        self.name = name
        self.pid = process.pid
        self._process = process
        self._popen = popen
        self._create_time = process_create_time(self.pid)
        self._directory = directory
        self._exit_with_parent = exit_with_parent
        self._cond = threading.Condition()
        self._ready = False
        self._exitcode: Optional[int] = None
        self._outcome: Optional[bytes] = None
        self._done = threading.Event()
        self._link_down = threading.Event()
        self._hooks: List[ExitHook] = []
        self._hooks_fired = False
        events.on_disconnect(self._on_disconnect)
        # A child may say "ready" before this line runs: the channel keeps an
        # event nobody listens to yet for unclaimed_ttl, which covers that.
        events.receive_once(READY_EVENT, lambda _: self._mark_ready())
        self._watcher = threading.Thread(
            target=self._watch, name=f"unixevents-worker-{name}", daemon=True
        )
        _live.add(self)
        self._watcher.start()

    # ------------------------------------------------------------ state

    @property
    def alive(self) -> bool:
        """True while the child runs: it exists, is not a zombie, and is not a reused PID."""
        return self._exitcode is None and is_alive(self.pid, self._create_time)

    @property
    def exitcode(self) -> Optional[int]:
        """None while running; then 0 after a return, 1 after an exception, -N after signal N."""
        return self._exitcode

    @property
    def process(self) -> Any:
        """The ``subprocess.Popen`` of a :func:`popen` worker (for its pipes); None for spawn."""
        return self._popen

    def __repr__(self) -> str:
        state = "running" if self._exitcode is None else _outcome.describe_exit(self._exitcode)
        return f"<Worker {self.name!r} pid={self.pid} {state}>"

    # ------------------------------------------------------------ waiting

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the child has ended and its files are removed; False on timeout."""
        return self._done.wait(timeout)

    def result(self, timeout: Optional[float] = None) -> Any:
        """Wait for the child to end and return what its target returned.

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
            RemoteError: the target raised; the message carries the child's traceback.
            WorkerDied: the child ended without returning (killed, crashed,
                ``sys.exit`` with a non-zero code); the message says how.
        """
        if not self.join(timeout):
            raise TimeoutError(
                f"worker {self.name!r} (pid {self.pid}) is still running after {timeout} s;"
                " wait longer, or stop it with close() / terminate()"
            )
        return _outcome.outcome_value(self._outcome, self._exitcode, self._who())

    def on_exit(self, fn: ExitHook) -> None:
        """Call ``fn(worker)`` once when the child ends, however it ends.

        Called on the worker's watcher thread; if the child has already ended,
        called at once, here.
        """
        if not callable(fn):
            raise TypeError(f"on_exit needs a callable, not {type(fn).__name__}")
        with self._cond:
            if not self._hooks_fired:
                self._hooks.append(fn)
                return
        self._call_hook(fn)

    # ------------------------------------------------------------ stopping

    def terminate(self) -> None:
        """Send SIGTERM to the child (nothing if it has ended)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Send SIGKILL to the child (nothing if it has ended)."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        with self._cond:
            if self._exitcode is None:
                self._process.send_signal(sig)

    def close(self, timeout: float = 5.0) -> None:
        """Close the channel, give the child ``timeout`` s to end, then terminate it.

        Closing the channel ends the child's ``events.wait_closed()``; a child
        still running after ``timeout`` gets SIGTERM, and SIGKILL a second later.
        Idempotent; returns once the child has ended and its files are gone.
        """
        deadline = time.monotonic() + timeout
        self.events.close(timeout=timeout)
        self._link_down.set()  # closed here: nothing more will be read
        if not self.join(max(0.0, deadline - time.monotonic())):
            _log.debug("worker %r did not end within %.1f s: terminating it", self.name, timeout)
            self.terminate()
            if not self.join(1.0):
                self.kill()
                self.join()
        if self._watcher is not threading.current_thread():
            self._watcher.join()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------- the watcher thread

    def _on_disconnect(self, peer: PeerInfo) -> None:
        self._link_down.set()

    def _mark_ready(self) -> None:
        with self._cond:
            self._ready = True
            self._cond.notify_all()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the child said it is ready; False if it ended first or ``timeout`` passed.

        A quick target may say "ready", return and exit before its "ready" is
        dispatched here: when the child has ended, wait for its channel to be
        read to the end before concluding it never was ready.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._ready and self._exitcode is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            if self._ready:
                return True
        self.join()  # the connection was read to its end: every event was dispatched
        return self._ready

    def _watch(self) -> None:
        code = self._process.wait()
        with self._cond:
            self._exitcode = code
            self._cond.notify_all()
        _log.debug(
            "worker %r (pid %d) ended with %s", self.name, self.pid, _outcome.describe_exit(code)
        )
        if self.events.connected or os.path.exists(os.path.join(self._directory, CONNECTED_FILE)):
            self._link_down.wait(_DRAIN_TIMEOUT)
        # The channel stays open until close(): what the child sent just before
        # it ended still reaches listeners registered late (unclaimed_ttl).
        self._outcome = _outcome.read_outcome(self._directory)
        shutil.rmtree(self._directory, ignore_errors=True)
        _live.discard(self)
        self._done.set()
        with self._cond:
            hooks, self._hooks = self._hooks, []
            self._hooks_fired = True
        for fn in hooks:
            self._call_hook(fn)

    def _call_hook(self, fn: ExitHook) -> None:
        try:
            fn(self)
        except Exception:
            _log.exception("an on_exit hook of worker %r raised", self.name)

    # ----------------------------------------------------------- messages

    def _who(self) -> str:
        return f"worker {self.name!r} (pid {self.pid})"

    def start_failure(self) -> WorkerDied:
        """The error for a child that ended before it was ready (call after join)."""
        error = _outcome.remote_error(self._outcome)
        detail = (
            f": {error}"
            if error is not None
            else "; its stderr may say why (under 'spawn' and 'forkserver' the child first"
            " re-imports the main module, which must be importable)"
        )
        return WorkerDied(
            f"{self._who()} ended with {_outcome.describe_exit(self._exitcode)} before it was"
            f" ready{detail}",
            self._exitcode,
        )


Worker.__module__ = "unixevents.mp"

_live: Set[Worker] = set()


def _forget_in_child() -> None:
    # A forked child does not own its parent's workers.
    _live.clear()


if hasattr(os, "register_at_fork"):  # pragma: no branch
    os.register_at_fork(after_in_child=_forget_in_child)


@atexit.register
def _close_at_exit() -> None:
    # Registered after multiprocessing's own exit handler, so it runs first:
    # workers are closed before multiprocessing would join them forever.
    for worker in list(_live):
        try:
            if worker._exit_with_parent:
                worker.close(timeout=1.0)
            else:
                worker.events.close(timeout=1.0)
        except Exception:  # pragma: no cover
            _log.debug("closing worker %r at exit failed", worker.name, exc_info=True)
