"""Run one measurement: its peers in fresh processes, a private socket dir, nothing left behind.

Every peer is a function ``peer(ctl, job)`` run in a process of its own
(``spawn``, so no peer inherits another's threads or sockets). It talks to
the orchestrator over a pipe, in this order:

1. ``ctl.ready(...)`` once it can be connected to (a server reports its
   socket address, which the clients then get in ``job.address``);
2. ``ctl.result({...})`` with what it measured;
3. it returns after ``ctl.wait_stop()``, which the orchestrator answers only
   once every peer has reported: a sender keeps its queue alive until the
   receivers have counted everything.

Clients are stopped before their server, then every process is joined and
the socket directory must be empty.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import tempfile
import time
import traceback
import uuid
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Dict, List, Optional, Tuple

from _measure import peak_rss

__all__ = ("BenchError", "Control", "Job", "Outcome", "PeerFn", "run")

_CTX = multiprocessing.get_context("spawn")
# Starting a peer (a fresh interpreter importing unixevents) and closing one.
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0


class BenchError(Exception):
    """A measurement could not be made: a peer failed, hung, or left something behind."""


@dataclasses.dataclass(frozen=True)
class Job:
    """What every peer of one measurement is told."""

    channel: str
    sock_dir: str
    authkey: bytes
    count: int = 0
    kind: str = "tick"
    clients: int = 1
    per_frame: int = 1
    max_pending: int = 100_000
    warmup: int = 0
    address: str = ""  # the server's socket, filled in for the clients


class Control:
    """A peer's end of the pipe to the orchestrator."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.stopped = False

    def ready(self, **info: Any) -> None:
        self._conn.send(("ready", info))

    def result(self, values: Dict[str, Any]) -> None:
        self._conn.send(("result", values))

    def wait_stop(self) -> None:
        if not self.stopped:
            self._conn.recv()
            self.stopped = True


PeerFn = Callable[[Control, Job], None]


def _peer_main(fn: PeerFn, conn: Connection, job: Job) -> None:
    ctl = Control(conn)
    try:
        fn(ctl, job)
        ctl.wait_stop()
        conn.send(("final", {"peak_rss": peak_rss()}))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise SystemExit(1) from None
    finally:
        conn.close()


@dataclasses.dataclass
class Outcome:
    """What the peers of one measurement reported: server first, then each client."""

    results: List[Dict[str, Any]]
    peak_rss: List[int]


class _Peer:
    def __init__(self, name: str, fn: PeerFn, job: Job) -> None:
        self.name = name
        self.conn, child = _CTX.Pipe()
        self.process = _CTX.Process(
            target=_peer_main, args=(fn, child, job), name=name, daemon=True
        )
        self.process.start()
        child.close()

    def expect(self, kind: str, deadline: float) -> Dict[str, Any]:
        """The next message, which must be ``kind``; BenchError on anything else."""
        left = max(0.0, deadline - time.monotonic())
        if not wait([self.conn, self.process.sentinel], left):
            raise BenchError(f"{self.name}: no {kind!r} within the time limit (hung?)")
        try:
            if not self.conn.poll():
                raise EOFError
            got, value = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(1.0)
            raise BenchError(
                f"{self.name}: ended (exit code {self.process.exitcode}) before {kind!r}"
            ) from None
        if got == "error":
            raise BenchError(f"{self.name} failed:\n{value}")
        if got != kind:
            raise BenchError(f"{self.name}: sent {got!r} where {kind!r} was due")
        return dict(value)

    def stop(self) -> int:
        """Tell the peer to finish; its peak RSS in bytes."""
        self.conn.send("stop")
        final = self.expect("final", time.monotonic() + _STOP_TIMEOUT)
        self.process.join(_STOP_TIMEOUT)
        return int(final["peak_rss"])

    def reap(self) -> None:
        if self.process.is_alive():
            self.process.join(1.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5.0)
        self.conn.close()


def run(
    name: str,
    server: PeerFn,
    client: PeerFn,
    *,
    clients: int = 1,
    timeout: float = 120.0,
    **fields: Any,
) -> Outcome:
    """Run ``server`` and ``clients`` copies of ``client``, each in its own process.

    Raises:
        BenchError: a peer failed or hung, or a file was left in the socket dir.
    """
    sock_dir = tempfile.mkdtemp(prefix="ue-bench-", dir="/tmp")
    job = Job(
        channel=f"bench-{uuid.uuid4().hex[:12]}",
        sock_dir=sock_dir,
        authkey=os.urandom(32),
        clients=clients,
        **fields,
    )
    peers: List[_Peer] = []
    try:
        outcome = _run_peers(name, server, client, job, peers, timeout)
    finally:
        for peer in peers:
            peer.reap()
        left = sorted(os.listdir(sock_dir))
        shutil.rmtree(sock_dir, ignore_errors=True)
    if left:
        raise BenchError(f"{name}: files left in the socket directory: {left}")
    return outcome


def _run_peers(
    name: str, server: PeerFn, client: PeerFn, job: Job, peers: List[_Peer], timeout: float
) -> Outcome:
    peers.append(_Peer(f"{name} server", server, job))
    info = peers[0].expect("ready", time.monotonic() + _START_TIMEOUT)
    job = dataclasses.replace(job, address=str(info.get("address", "")))
    for i in range(job.clients):
        peers.append(_Peer(f"{name} client {i + 1}", client, job))
    _collect(peers[1:], "ready", time.monotonic() + _START_TIMEOUT)
    results = _collect(peers, "result", time.monotonic() + timeout)
    # Clients first: a server closing first would look like a lost connection to them.
    rss: List[Optional[int]] = [None] * len(peers)
    for i in [*range(1, len(peers)), 0]:
        rss[i] = peers[i].stop()
    return Outcome(results, [r or 0 for r in rss])


def _collect(peers: List[_Peer], kind: str, deadline: float) -> List[Dict[str, Any]]:
    """The next message of every peer, in any order: the first peer to fail fails the lot."""
    got: Dict[int, Dict[str, Any]] = {}
    while len(got) < len(peers):
        waiting = [(i, p) for i, p in enumerate(peers) if i not in got]
        handles = [h for _, p in waiting for h in (p.conn, p.process.sentinel)]
        ready = wait(handles, max(0.0, deadline - time.monotonic()))
        if not ready:
            names = ", ".join(p.name for _, p in waiting)
            raise BenchError(f"{names}: no {kind!r} within the time limit (hung?)")
        for i, peer in waiting:
            if peer.conn in ready or peer.process.sentinel in ready:
                got[i] = peer.expect(kind, deadline)
    return [got[i] for i in range(len(peers))]


def receivers(outcome: Outcome) -> List[Dict[str, Any]]:
    """The reports of the peers that counted arrivals (they carry ``count``)."""
    return [r for r in outcome.results if "count" in r]


def span(reports: List[Dict[str, Any]]) -> Tuple[float, float]:
    """First arrival and last arrival across ``reports``."""
    return min(r["first"] for r in reports), max(r["last"] for r in reports)
