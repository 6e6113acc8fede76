"""Programs the stress tests run in spawned processes.

Each takes plain arguments and multiprocessing primitives (events and pipe
ends), so that the 'spawn' start method can import and run it. Results come
back as plain tuples and dicts through a pipe.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import defaultdict
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from typing import Any, Dict, List

from unixevents import UnixEvents

# Peers run many bad connections on purpose: keep their warnings off the test's
# stderr. Only in the spawned peers: pytest imports this module too (even when
# the stress tests are deselected), and there it must not mute the library's
# logs for every other test's caplog.
if multiprocessing.parent_process() is not None:
    logging.getLogger("unixevents").addHandler(logging.NullHandler())
    logging.getLogger("unixevents").propagate = False


def target_server(
    channel: str, socket_dir: str, protocol: str, ready: Any, stop: Any, opts: Dict[str, Any]
) -> None:
    """The fuzzers' and hostile peers' target: echoes requests, answers 'ping' with 'pong'."""
    kwargs: Dict[str, Any] = dict(opts)
    if protocol == "node":
        kwargs["protocol"] = "node"
    else:
        kwargs["socket_dir"] = socket_dir
    with UnixEvents("server", channel, **kwargs) as server:
        server.receive("ping", lambda data: server.send("pong", data))
        if protocol != "node":
            server.receive("echo", lambda data: data)
        ready.set()
        stop.wait(600)


def logging_server(channel: str, socket_dir: str, log_path: str, ready: Any, stop: Any) -> None:
    """Append every received 'n' [cid, seq] to ``log_path`` with one write each.

    One ``os.write`` per message: what this process received survives its SIGKILL.
    """
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def on_n(data: Any) -> None:
        os.write(fd, f"{data[0]} {data[1]}\n".encode())

    def on_done(data: Any) -> None:
        os.write(fd, f"D {data[0]} {data[1]}\n".encode())

    with UnixEvents("server", channel, socket_dir=socket_dir) as server:
        server.receive("n", on_n)
        server.receive("done", on_done)
        ready.set()
        stop.wait(600)  # or, more likely, SIGKILL


def sequence_client(
    channel: str, socket_dir: str, cid: int, status: Any, stop: Any, per_tick: int
) -> None:
    """Send 'n' [cid, 0], [cid, 1], ... until ``stop``; report link changes as they happen.

    ``status`` gets ("down", cid, seq) when the server is lost (every message
    numbered ``seq`` or later was sent after that), ("up", cid, seq) when it
    is back, and finally ("done", cid, last_seq, ok).
    """
    lock = threading.Lock()
    seq = 0

    def tell(*msg: Any) -> None:
        with lock:
            status.send(msg)

    # Hooks first, then connect: a hook registered after the connection is up
    # would miss that first "up".
    client = UnixEvents(socket_dir=socket_dir, backoff_initial=0.02, backoff_max=0.2)
    try:
        client.on_disconnect(lambda peer: tell("down", cid, seq))
        client.on_connect(lambda peer: tell("up", cid, seq))
        if not client.init_sync("client", channel, timeout=30):
            tell("done", cid, -1, False)
            return
        while not stop.is_set():
            for _ in range(per_tick):
                client.send("n", [cid, seq])
                seq += 1
            time.sleep(0.005)
        written = threading.Event()
        client.send("done", [cid, seq - 1], lambda err, ok: written.set() if ok else None)
        tell("done", cid, seq - 1, written.wait(60))
    finally:
        client.close()


def load_server(
    channel: str, socket_dir: str, expected: int, ready: Any, stop: Any, result: Any
) -> None:
    """Count each client's 'n' events (checking their order), echo requests, broadcast ticks.

    On ``stop`` it waits for the ``expected`` clients' 'fin' marks, then reports.
    """
    counts: Dict[int, int] = {}
    disorder = [0]
    finals: Dict[int, int] = {}
    all_in = threading.Event()

    def on_n(data: Any) -> None:
        cid, seq = data
        if counts.get(cid, 0) != seq:
            disorder[0] += 1
        counts[cid] = seq + 1

    def on_fin(data: Any) -> None:
        finals[data[0]] = data[1]
        if len(finals) >= expected:
            all_in.set()

    notes: Dict[str, int] = defaultdict(int)

    class _Tally(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if "is gone" in text:
                notes["liveness_drops"] += 1
            elif record.levelno >= logging.WARNING:
                notes["warnings"] += 1

    root = logging.getLogger("unixevents")
    root.setLevel(logging.INFO)
    root.addHandler(_Tally())
    ticks = 0
    with UnixEvents("server", channel, socket_dir=socket_dir) as server:
        server.receive("n", on_n)
        server.receive("fin", on_fin)
        server.receive("echo", lambda data: data)
        server.on_connect(lambda peer: notes.__setitem__("connects", notes["connects"] + 1))
        server.on_disconnect(
            lambda peer: notes.__setitem__("disconnects", notes["disconnects"] + 1)
        )
        ready.set()
        while not stop.wait(0.1):
            if server.connected:
                server.send("tick", ticks)
                ticks += 1
        all_in.wait(60)
        result.send(
            {
                "counts": counts,
                "finals": finals,
                "disorder": disorder[0],
                "ticks_sent": ticks,
                "log": dict(notes),
            }
        )


def load_clients(
    channel: str,
    socket_dir: str,
    first_cid: int,
    n_clients: int,
    seconds: float,
    go: Any,
    result: Any,
) -> None:
    """``n_clients`` clients in this process, each sending events and requests for ``seconds``."""
    stats: List[Dict[str, Any]] = []
    clients = []
    try:
        for _ in range(n_clients):
            clients.append(UnixEvents("client", channel, socket_dir=socket_dir))
        for c in clients:
            if not c.wait_connected(60):
                result.send({"error": "a client could not connect"})
                return
        result.send({"ready": first_cid})
        threads = []
        for i, c in enumerate(clients):
            st: Dict[str, Any] = {"cid": first_cid + i}
            stats.append(st)
            threads.append(threading.Thread(target=_load_one, args=(c, st, seconds, go)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result.send({"stats": stats})
    finally:
        for c in clients:
            c.close()


def _load_one(client: UnixEvents, st: Dict[str, Any], seconds: float, go: Any) -> None:
    cid = st["cid"]
    ticks: List[int] = []
    client.receive("tick", ticks.append)
    go.wait(120)
    seq = 0
    replies = bad_replies = failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(5):
            client.send("n", [cid, seq])
            seq += 1
        try:
            if client.request("echo", [cid, seq], timeout=30).result() == [cid, seq]:
                replies += 1
            else:
                bad_replies += 1
        except Exception:
            failed += 1
        time.sleep(0.02)
    written = threading.Event()
    client.send("fin", [cid, seq], lambda err, ok: written.set() if ok else None)
    gaps = sum(1 for a, b in zip(ticks, ticks[1:]) if b != a + 1)
    st.update(
        sent=seq,
        replies=replies,
        bad_replies=bad_replies,
        failed_requests=failed,
        ticks=len(ticks),
        tick_gaps=gaps,
        fin_written=written.wait(60),
    )


def wrong_key_storm(address: str, seconds: float, threads: int, result: Any) -> None:
    """Connect with a wrong key again and again from ``threads`` threads; report the refusals."""
    counts = {"refused": 0, "accepted": 0, "other": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def hammer() -> None:
        while time.monotonic() < deadline:
            try:
                conn = Client(address, family="AF_UNIX", authkey=b"not the key")
            except AuthenticationError:
                outcome = "refused"
            except (OSError, EOFError):
                outcome = "other"
            else:
                conn.close()
                outcome = "accepted"
            with lock:
                counts[outcome] += 1

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    result.send(counts)


def connected_client(channel: str, socket_dir: str, ready: Any, protocol: str) -> None:
    """Connect and then do nothing: the peer to SIGKILL or SIGSTOP."""
    kwargs: Dict[str, Any] = {"socket_dir": socket_dir}
    if protocol == "node":
        kwargs = {"protocol": "node"}
    client = UnixEvents("client", channel, **kwargs)
    got: List[Any] = []
    client.receive("b", got.append)
    client.receive("count", lambda _: client.send("count", [os.getpid(), len(got)]))
    if client.wait_connected(30):
        ready.set()
    threading.Event().wait()
