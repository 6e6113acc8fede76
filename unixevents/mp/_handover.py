"""What a parent hands to its worker: where to connect, the key, and who the parent is.

For :func:`~unixevents.mp.spawn` it travels inside ``multiprocessing``'s own
process arguments (pickled over a pipe to the child, or copied by ``fork``):
never in ``argv``, never on disk. For :func:`~unixevents.mp.popen` it is JSON
written into an inherited pipe (see ``_popen``).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, NamedTuple, Optional, Tuple

from .._liveness import process_create_time

__all__ = ("CONNECTED_FILE", "SOCKET_FILE", "Handover", "parent_identity")

SOCKET_FILE = "w.sock"
CONNECTED_FILE = "connected"  # made by the child once its channel is up


class Handover(NamedTuple):
    """Everything a worker needs to reach its parent."""

    address: str  # absolute socket path of the parent's server
    authkey: bytes  # fresh random key for this worker alone
    directory: str  # the parent's private worker directory (0700)
    parent_pid: int
    parent_create_time: Optional[float]
    exit_with_parent: bool
    pdeathsig: bool  # the parent forked us from its main thread

    def to_json(self) -> bytes:
        d: Dict[str, Any] = self._asdict()
        d["authkey"] = self.authkey.hex()
        return json.dumps(d).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Handover:
        d = json.loads(raw.decode("utf-8"))
        d["authkey"] = bytes.fromhex(d["authkey"])
        return cls(**d)


_identity: Dict[int, Optional[float]] = {}


def parent_identity() -> Tuple[int, Optional[float]]:
    """This process's ``(pid, create_time)``, as its workers will check it."""
    pid = os.getpid()
    if pid not in _identity:
        _identity[pid] = process_create_time(pid)
    return pid, _identity[pid]
