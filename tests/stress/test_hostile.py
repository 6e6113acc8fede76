"""Hostile peers: stalled handshakes and wrong-key storms must not hurt good clients.

(That a JSON channel never unpickles what a same-user peer sends is proved
in test_fuzz.py, through an authenticated raw connection.)
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Iterator, List, Tuple

import pytest
import stress_peers
from stress_support import env_number, record, stop_process, target_server

from unixevents import UnixEvents

pytestmark = pytest.mark.stress

STALLERS = 50
STORM_SECONDS = env_number("UNIXEVENTS_STORM_SECONDS", 5)


@pytest.fixture
def target(sock_dir: str, channel: str, spawn_ctx: Any) -> Iterator[Tuple[str, Any]]:
    with target_server(spawn_ctx, channel, sock_dir, "mp", {}) as proc:
        yield os.path.join(sock_dir, channel + ".sock"), proc


def _percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_50_stalled_handshakes_do_not_delay_a_good_client(
    target: Tuple[str, Any], sock_dir: str, channel: str
) -> None:
    address, proc = target
    stallers: List[socket.socket] = []
    times: List[float] = []
    try:
        for _ in range(STALLERS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(address)  # and then say nothing: the handshake stalls
            stallers.append(s)
        for _ in range(5):
            t0 = time.monotonic()
            good = UnixEvents(socket_dir=sock_dir)
            try:
                assert good.init_sync("client", channel, timeout=10)
                times.append(time.monotonic() - t0)
                assert good.request("echo", "hi", timeout=10).result() == "hi"
            finally:
                good.close()
    finally:
        for s in stallers:
            s.close()
    assert proc.is_alive()
    record(
        "hostile_stalled_handshakes",
        stalled_connections=STALLERS,
        good_connects=len(times),
        good_connect_max_ms=round(1000 * max(times), 1),
    )
    assert max(times) < 1.0


def test_a_wrong_key_storm_is_refused_without_slowing_good_clients(
    target: Tuple[str, Any], sock_dir: str, channel: str, spawn_ctx: Any, inbox: Any
) -> None:
    address, proc = target
    out = inbox()

    def measure(good: UnixEvents, seconds: float) -> List[float]:
        lat = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            assert good.request("echo", 1, timeout=10).result() == 1
            lat.append(time.monotonic() - t0)
            time.sleep(0.005)
        return lat

    storm = spawn_ctx.Process(
        target=stress_peers.wrong_key_storm, args=(address, STORM_SECONDS, 4, out.sender)
    )
    with UnixEvents("client", channel, socket_dir=sock_dir) as good:
        assert good.wait_connected(30)
        quiet = measure(good, 2.0)
        try:
            storm.start()
            stormy = measure(good, STORM_SECONDS)
            counts = out.get(STORM_SECONDS + 60)
        finally:
            stop_process(storm, 30)
        # A client that connects during the storm still gets in at once.
        t0 = time.monotonic()
        with UnixEvents("client", channel, socket_dir=sock_dir) as late:
            assert late.wait_connected(10)
        late_connect = time.monotonic() - t0
    assert proc.is_alive()
    q50, s50 = _percentile(quiet, 0.5), _percentile(stormy, 0.5)
    q99, s99 = _percentile(quiet, 0.99), _percentile(stormy, 0.99)
    record(
        "hostile_wrong_key_storm",
        storm_seconds=STORM_SECONDS,
        wrong_key_attempts_refused=counts["refused"],
        wrong_key_attempts_accepted=counts["accepted"],
        attempts_failed_otherwise=counts["other"],
        good_requests_quiet=len(quiet),
        good_requests_during_storm=len(stormy),
        good_p50_ms_quiet=round(1000 * q50, 2),
        good_p50_ms_storm=round(1000 * s50, 2),
        good_p99_ms_quiet=round(1000 * q99, 2),
        good_p99_ms_storm=round(1000 * s99, 2),
        good_connect_during_storm_ms=round(1000 * late_connect, 1),
    )
    assert counts["accepted"] == 0
    assert counts["refused"] > 0
    # "Not noticeably slower": a good request stays a few milliseconds.
    assert s50 < 0.05, f"median request {1000 * s50:.1f} ms during the storm"
    assert late_connect < 1.0
