"""Faults: killed or stopped peers, a deleted socket file, a full or read-only disk."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import stress_peers
from conftest import wait_for
from stress_support import env_number, record, stop_process

from unixevents import UnixEvents, UnixEventsError

pytestmark = pytest.mark.stress

KILLS = int(env_number("UNIXEVENTS_FAULT_KILLS", 5))
N_SENDERS = 4


def _read_log(path: str) -> Tuple[Dict[int, List[int]], Dict[int, int]]:
    """Per client: the sequence numbers one server logged, in order; and the 'done' marks."""
    seqs: Dict[int, List[int]] = defaultdict(list)
    done: Dict[int, int] = {}
    try:
        with open(path) as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return seqs, done
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "D":
            done[int(parts[1])] = int(parts[2])
        elif len(parts) == 2:
            seqs[int(parts[0])].append(int(parts[1]))
    return seqs, done


def _log_lines(path: str) -> int:
    try:
        with open(path, "rb") as fh:
            return fh.read().count(b"\n")
    except FileNotFoundError:
        return 0


class _Status:
    """Collects the clients' ("down"/"up"/"done", cid, ...) reports from one pipe."""

    def __init__(self, box: Any) -> None:
        self.box = box
        self.seen: List[Tuple[Any, ...]] = []

    def wait(self, kind: str, count: int, timeout: float = 60.0) -> List[Tuple[Any, ...]]:
        deadline = time.monotonic() + timeout
        while sum(1 for m in self.seen if m[0] == kind) < count:
            self.seen.append(self.box.get(max(0.1, deadline - time.monotonic())))
        return [m for m in self.seen if m[0] == kind]


@pytest.mark.timeout(600)
def test_server_sigkill_under_load_loses_nothing_queued_while_down(
    sock_dir: str, channel: str, spawn_ctx: Any, inbox: Any, tmp_path: Any
) -> None:
    status = _Status(inbox())
    stop_senders = spawn_ctx.Event()
    servers: List[Any] = []
    stops: List[Any] = []
    logs = [str(tmp_path / f"server-{k}.log") for k in range(KILLS + 1)]

    def start_server(k: int) -> Any:
        ready, stop = spawn_ctx.Event(), spawn_ctx.Event()
        proc = spawn_ctx.Process(
            target=stress_peers.logging_server, args=(channel, sock_dir, logs[k], ready, stop)
        )
        proc.start()
        servers.append(proc)
        stops.append(stop)
        assert ready.wait(60), f"server {k} did not start"
        return proc

    senders = [
        spawn_ctx.Process(
            target=stress_peers.sequence_client,
            args=(channel, sock_dir, cid, status.box.sender, stop_senders, 10),
        )
        for cid in range(N_SENDERS)
    ]
    try:
        start_server(0)
        for p in senders:
            p.start()
        status.wait("up", N_SENDERS)
        for k in range(KILLS):
            # Under load: wait until this server has taken a good share of messages.
            grown = _log_lines(logs[k]) + 4000
            wait_for(lambda k=k, grown=grown: _log_lines(logs[k]) >= grown, timeout=60)
            servers[k].kill()
            servers[k].join(30)
            status.wait("down", N_SENDERS * (k + 1))
            # The clients keep sending while no server is there: all of it is queued.
            queued_from = _log_lines(logs[k])
            time.sleep(0.5)  # a real outage: half a second of sending with no server
            start_server(k + 1)
            status.wait("up", N_SENDERS * (k + 2))
            assert _log_lines(logs[k]) == queued_from  # the dead server logged nothing more
        grown = _log_lines(logs[KILLS]) + 4000
        wait_for(lambda: _log_lines(logs[KILLS]) >= grown, timeout=60)
        stop_senders.set()
        dones = status.wait("done", N_SENDERS)
        assert all(m[3] for m in dones), f"a client could not write its last message: {dones}"
        wait_for(lambda: len(_read_log(logs[KILLS])[1]) == N_SENDERS, timeout=60)
    finally:
        stop_senders.set()
        for p in senders:
            stop_process(p, 60)
        for stop, p in zip(stops, servers):
            # Never set the event of a SIGKILLed waiter: its condition is broken for good.
            if p.is_alive():
                stop.set()
            stop_process(p, 30)

    per_server = [_read_log(path) for path in logs]
    downs: Dict[int, List[int]] = defaultdict(list)
    ups: Dict[int, List[int]] = defaultdict(list)
    for m in status.seen:
        if m[0] == "down":
            downs[m[1]].append(m[2])
        elif m[0] == "up":
            ups[m[1]].append(m[2])
    last = {m[1]: m[2] for m in dones}
    delivered = lost_in_flight = queued_while_down = duplicates = 0
    for cid in range(N_SENDERS):
        for k, (seqs, _) in enumerate(per_server):
            got = seqs[cid]
            assert got, f"server {k} heard nothing from client {cid}"
            # One connection: in order, none missing, none twice.
            assert got == list(range(got[0], got[-1] + 1)), f"server {k}, client {cid}: gap"
            delivered += len(got)
            if k == 0:
                assert got[0] == 0
                continue
            prev = per_server[k - 1][0][cid]
            down_at = downs[cid][k - 1]
            # Everything sent after the client saw the server go is in the next server's log.
            assert got[0] <= down_at, (cid, k, got[0], down_at)
            assert got[0] > prev[-1], f"client {cid}: a message reached two servers"
            lost_in_flight += got[0] - prev[-1] - 1
            queued_while_down += ups[cid][k] - down_at
        assert per_server[-1][0][cid][-1] == last[cid]
        assert per_server[-1][1][cid] == last[cid]
    record(
        "fault_server_sigkill",
        clients=N_SENDERS,
        server_kills=KILLS,
        messages_delivered=delivered,
        queued_while_disconnected_and_delivered_once_in_order=queued_while_down,
        duplicates=duplicates,
        lost_in_killed_server_buffers=lost_in_flight,
    )


def test_a_killed_or_stopped_client_does_not_stop_the_server(
    sock_dir: str, channel: str, spawn_ctx: Any
) -> None:
    counts: Dict[int, int] = {}
    counted = threading.Condition()
    gone = threading.Event()

    def on_count(data: Any) -> None:
        with counted:
            counts[data[0]] = data[1]
            counted.notify_all()

    procs = []
    faults = 0
    n_broadcast = 20000
    queue_full = [0]

    def tally(err: Any, ok: bool) -> None:
        if not ok:
            queue_full[0] += 1

    with UnixEvents("server", channel, socket_dir=sock_dir) as server:
        server.receive("count", on_count)
        server.on_disconnect(lambda peer: gone.set())
        try:
            for _ in range(3):
                ready = spawn_ctx.Event()
                p = spawn_ctx.Process(
                    target=stress_peers.connected_client, args=(channel, sock_dir, ready, "mp")
                )
                p.start()
                procs.append(p)
                assert ready.wait(60)
            wait_for(lambda: len(server.peers) == 3, timeout=30)
            killed, stopped, good = procs
            killed.kill()
            assert gone.wait(10), "the server did not notice a SIGKILLed client"
            wait_for(lambda: len(server.peers) == 2, timeout=10)
            faults += 1

            os.kill(stopped.pid, signal.SIGSTOP)
            faults += 1
            for i in range(n_broadcast):
                server.send("b", ["x" * 200, i], tally)
            server.send("count", None)
            with counted:
                assert counted.wait_for(lambda: counts.get(good.pid) == n_broadcast, 60), counts
            # A new client is served while one is stopped.
            with UnixEvents("client", channel, socket_dir=sock_dir) as late:
                assert late.wait_connected(10)
            os.kill(stopped.pid, signal.SIGCONT)
            server.send("count", None)
            with counted:
                assert counted.wait_for(lambda: counts.get(stopped.pid) == n_broadcast, 60), counts
        finally:
            for p in procs:
                if p.is_alive():
                    os.kill(p.pid, signal.SIGCONT)
                    p.kill()
                stop_process(p, 30)
    record(
        "fault_client_kill_stop",
        client_sigkills_noticed=1,
        client_sigstops_survived=1,
        faults_survived=faults,
        broadcasts_while_one_client_stopped=n_broadcast,
        delivered_to_good_client=n_broadcast,
        delivered_to_stopped_client_after_sigcont=n_broadcast,
        broadcasts_refused_queue_full=queue_full[0],
    )


def test_socket_file_deleted_under_a_running_server(
    sock_dir: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Recovery: connected clients go on, and the server re-creates its socket file."""
    got: List[Any] = []
    arrived = threading.Event()
    with UnixEvents("server", channel, socket_dir=sock_dir, liveness_interval=0.2) as server:
        server.receive("x", lambda d: (got.append(d), arrived.set()))
        with UnixEvents("client", channel, socket_dir=sock_dir) as old:
            assert old.wait_connected(10)
            os.unlink(server.address)
            os.unlink(os.path.join(sock_dir, channel + ".key"))
            old.send("x", 1)
            assert arrived.wait(10)
            late = UnixEvents(socket_dir=sock_dir)
            try:
                started = time.monotonic()
                assert late.init_sync("client", channel, timeout=10.0)
                reconnected_in = time.monotonic() - started
            finally:
                late.close()
    assert any("re-created it" in r.getMessage() for r in caplog.records)
    record(
        "fault_socket_deleted",
        behaviour="recovery: connected clients keep working; the server re-creates its socket"
        " and key files at its next liveness check and logs a WARNING; new clients connect",
        new_client_connected_after_s=round(reconnected_in, 2),
    )


def test_a_server_notices_its_socket_file_deleted(sock_dir: str, channel: str) -> None:
    with UnixEvents("server", channel, socket_dir=sock_dir, liveness_interval=0.2) as server:
        os.unlink(server.address)
        # Recovery (re-bind) or refusal of a second server: either proves it noticed.
        try:
            second = UnixEvents("server", channel, socket_dir=sock_dir)
        except UnixEventsError:
            return
        second.close()
        late = UnixEvents(socket_dir=sock_dir)
        try:
            assert late.init_sync("client", channel, timeout=3.0)
        finally:
            late.close()


def _mount_tmpfs(options: str) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path = tempfile.mkdtemp(prefix="ue-fs-", dir="/tmp")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], capture_output=True
    )
    if done.returncode != 0:
        os.rmdir(path)
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)
        os.rmdir(path)


@pytest.fixture
def full_dir() -> Iterator[str]:
    for path in _mount_tmpfs("size=16k,mode=700"):
        try:
            with open(os.path.join(path, "filler"), "wb") as fh:
                while True:
                    fh.write(b"x" * 4096)
                    fh.flush()
        except OSError:
            pass
        yield path


@pytest.fixture
def read_only_dir() -> Iterator[str]:
    yield from _mount_tmpfs("ro,size=16k,mode=700")


def test_a_read_only_socket_dir_is_a_clear_error(read_only_dir: str, channel: str) -> None:
    with pytest.raises(UnixEventsError, match="writable") as err:
        UnixEvents("server", channel, socket_dir=read_only_dir)
    with pytest.raises(UnixEventsError, match="writable"):
        UnixEvents("server", channel, socket_dir=os.path.join(read_only_dir, "sub"))
    record("fault_read_only_dir", error=str(err.value))


def test_a_full_disk_at_start_is_a_clear_error(full_dir: str, channel: str) -> None:
    try:
        with pytest.raises(UnixEventsError, match=r"space|writable"):
            UnixEvents("server", channel, socket_dir=full_dir)
    finally:
        left = sorted(set(os.listdir(full_dir)) - {"filler"})
    assert not left, f"left behind: {left}"
