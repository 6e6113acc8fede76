"""The child's side of ``exit_with_parent``: end when the process that started us is gone.

Two mechanisms, because neither is enough alone:

- A watchdog thread polls the original parent's ``(pid, create_time)`` every
  :data:`POLL_INTERVAL` seconds and ends this process when it is gone. It works
  everywhere: on macOS (no ``prctl``), under ``forkserver`` (where our parent is
  the fork server, not the user's process), and under a subreaper (where an
  orphan's new parent is not PID 1, so ``getppid() == 1`` proves nothing). Its
  only weakness is C code that holds the GIL for long.
- On Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` makes the kernel kill us the
  moment our parent dies, GIL or not. The kernel fires it when the *thread*
  that forked us ends, not the process, so it is armed only when that thread
  was the parent's main thread (which lives as long as the process), and only
  when our parent is the user's process itself (not a fork server). It is set
  after the fork, so a parent that died before is caught by comparing
  ``getppid()`` with the PID recorded at start, after arming.

When the parent is gone the watchdog removes the parent's private worker
directory (nobody else will) and leaves with ``os._exit``: the parent cannot
reap us or read a result any more, so there is nothing to flush.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import sys
import threading
from typing import Optional

from .._liveness import is_alive

__all__ = ("POLL_INTERVAL", "guard")

POLL_INTERVAL = 0.25
_PR_SET_PDEATHSIG = 1
# The exit status of a child that ends because its parent died: 128 + SIGHUP,
# as a shell reports a process killed by a hang-up.
ORPHAN_EXIT = 128 + signal.SIGHUP

_log = logging.getLogger("unixevents.mp")
_guarded: Optional[int] = None  # the parent PID a watchdog already guards against
_guard_lock = threading.Lock()


def guard(
    parent_pid: int,
    parent_create_time: Optional[float],
    *,
    cleanup_dir: Optional[str] = None,
    pdeathsig: bool = False,
) -> None:
    """End this process (``os._exit``) soon after process ``parent_pid`` is gone.

    Args:
        parent_pid: the PID of the process that started us.
        parent_create_time: its start time, so that a reused PID is not taken
            for the parent (None: compare the PID only).
        cleanup_dir: a directory of the parent's to remove if it dies first.
        pdeathsig: also arm ``PR_SET_PDEATHSIG`` (Linux). Pass True only when
            the parent forked us from its main thread.
    """
    global _guarded
    with _guard_lock:
        if _guarded == parent_pid:
            return
        _guarded = parent_pid
    start_ppid = os.getppid()
    if pdeathsig and start_ppid == parent_pid:
        _arm_pdeathsig()
        if os.getppid() != parent_pid:  # it died before the kernel was told to watch
            _orphaned(cleanup_dir)
    if not is_alive(parent_pid, parent_create_time):
        _orphaned(cleanup_dir)
    thread = threading.Thread(
        target=_watch,
        args=(parent_pid, parent_create_time, start_ppid, cleanup_dir),
        name="unixevents-parent-watchdog",
        daemon=True,
    )
    thread.start()


def _watch(
    parent_pid: int,
    parent_create_time: Optional[float],
    start_ppid: int,
    cleanup_dir: Optional[str],
) -> None:
    stop = threading.Event()  # never set: an interruptible, GIL-releasing sleep
    while True:
        stop.wait(POLL_INTERVAL)
        # getppid() is a cheap first test; it changes when our real parent dies
        # (the user's process, or under forkserver the fork server, which ends
        # with it). is_alive covers the rest: subreapers, PID reuse.
        if os.getppid() != start_ppid and start_ppid == parent_pid:
            _orphaned(cleanup_dir)
        if not is_alive(parent_pid, parent_create_time):
            _orphaned(cleanup_dir)


def _orphaned(cleanup_dir: Optional[str]) -> None:
    _log.debug("the parent process is gone: exiting (exit_with_parent=True)")
    if cleanup_dir is not None:
        shutil.rmtree(cleanup_dir, ignore_errors=True)
    os._exit(ORPHAN_EXIT)


def _arm_pdeathsig() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            _log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    except (OSError, AttributeError) as exc:  # pragma: no cover - exotic libc
        _log.debug("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)
