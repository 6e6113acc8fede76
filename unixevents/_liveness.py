"""Process identity and liveness: who is on the other end, and are they alive.

A process is identified by ``(pid, create_time)``: the PID alone is reused by
the kernel, so a check that only asks "does this PID exist" mistakes a new
process for the old one. A zombie has exited but not been reaped; psutil's
``is_running()`` says True for it, so the status is checked as well.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Optional, Tuple

import psutil

__all__ = ("PeerInfo", "is_alive", "process_create_time")


@dataclass(frozen=True)
class PeerInfo:
    """The process on the other end of one connection, from the kernel.

    Attributes:
        pid: process ID of the peer (the process that called ``connect``).
        uid: effective user ID of the peer.
        gid: effective group ID of the peer.
        create_time: the peer's start time as psutil reports it, recorded when
            it connected (None if it could not be read); guards against PID reuse.
        connection: a number that tells apart two connections of one process.
    """

    pid: int
    uid: int
    gid: int
    create_time: Optional[float] = field(default=None, compare=False)
    connection: int = 0


PeerInfo.__module__ = "unixevents"


def process_create_time(pid: int) -> Optional[float]:
    """The creation time of process ``pid``, or None if it cannot be read."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError, ValueError):
        return None


def is_alive(pid: int, create_time: Optional[float] = None) -> bool:
    """True if process ``pid`` runs and is the one that started at ``create_time``.

    False for a process that does not exist, a zombie, or (when ``create_time``
    is given) a process whose start time differs from it: the PID was reused.
    When the start time cannot be read, the PID is not called reused.
    """
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, OSError):
        # It exists, but we may not look at it: alive as far as we can tell.
        return True
    if create_time is None:
        return True
    try:
        now = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, OSError):
        return True
    # psutil derives create_time from boot time and clock ticks; allow jitter.
    return bool(abs(now - create_time) < 0.05)


def peer_credentials(sock: socket.socket) -> Tuple[int, int, int]:
    """``(pid, uid, gid)`` of the peer of a connected AF_UNIX socket.

    Linux answers with ``SO_PEERCRED``; macOS with ``LOCAL_PEERCRED`` (uid and
    groups) and ``LOCAL_PEERPID``. Fields the platform cannot give are -1.
    """
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is not None:
        raw = sock.getsockopt(socket.SOL_SOCKET, so_peercred, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
        return pid, uid, gid
    if sys.platform == "darwin":  # pragma: no cover - exercised on macOS only
        sol_local, local_peercred, local_peerpid = 0, 0x001, 0x002
        pid = uid = gid = -1
        try:
            raw = sock.getsockopt(sol_local, local_peerpid, 4)
            (pid,) = struct.unpack("i", raw)
        except OSError:
            pass
        try:
            raw = sock.getsockopt(sol_local, local_peercred, struct.calcsize("IIh16I"))
            _version, uid, ngroups, *groups = struct.unpack("IIh16I", raw)
            gid = groups[0] if ngroups > 0 else -1
        except OSError:
            pass
        return pid, uid, gid
    return -1, -1, -1  # pragma: no cover
