"""Shared pieces of the stress suite: the figures report and process probes.

Not a conftest: a second module named ``conftest`` would shadow
``tests/conftest.py`` for ``from conftest import ...``.

Each test calls :func:`record` with its figures; they are merged into one
JSON file at once (read, update, write), so a crash or a time-out later in
the run never costs the figures already taken. ``tests/stress/report.py``
turns that file into the README's "Reliability" section.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import psutil

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPORT_ENV = "UNIXEVENTS_STRESS_REPORT"
DEFAULT_REPORT = os.path.join(_ROOT, ".stress", "stress-report.json")
_lock = threading.Lock()


def report_path() -> str:
    return os.environ.get(REPORT_ENV) or DEFAULT_REPORT


def env_number(name: str, default: float) -> float:
    """A duration or count a developer may shrink (or CI bound) through the environment."""
    value = os.environ.get(name)
    return float(value) if value else default


def record(section: str, **figures: Any) -> None:
    """Merge ``figures`` under ``section`` in the JSON report."""
    path = report_path()
    with _lock:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with open(path) as fh:
                data: Dict[str, Any] = json.load(fh)
        except (OSError, ValueError):
            data = {}
        entry = data.setdefault(section, {})
        entry.update(figures)
        entry["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)


def mib(nbytes: float) -> float:
    return round(nbytes / (1024 * 1024), 1)


class ProcessProbe:
    """RSS, descriptors and threads of one process (another one, or this one)."""

    def __init__(self, pid: Optional[int] = None) -> None:
        self.proc = psutil.Process(pid)

    def rss(self) -> int:
        return int(self.proc.memory_info().rss)

    def fds(self) -> int:
        """Descriptors held, not counting one open only for an instant.

        A server opens ``/proc/<pid>/stat`` for a moment whenever it checks a
        peer's liveness (psutil), so a single reading can be one too high; a
        descriptor kept for good shows in every reading.
        """
        readings = []
        for _ in range(3):
            readings.append(int(self.proc.num_fds()))
            time.sleep(0.005)
        return min(readings)

    def threads(self) -> int:
        return int(self.proc.num_threads())

    def sample(self) -> Dict[str, int]:
        return {"rss": self.rss(), "fds": self.fds(), "threads": self.threads()}


def rss_growth_after_warmup(samples: List[int], warmup_fraction: float = 0.25) -> int:
    """Bytes the RSS grew from the end of warm-up to the end (median of the last few)."""
    start = max(1, int(len(samples) * warmup_fraction))
    steady = samples[start:]
    if len(steady) < 2:
        return 0
    head = sorted(steady[:3])[len(steady[:3]) // 2]
    tail = sorted(steady[-3:])[len(steady[-3:]) // 2]
    return tail - head


@contextlib.contextmanager
def target_server(
    spawn_ctx: Any, channel: str, socket_dir: str, protocol: str, opts: Dict[str, Any]
) -> Iterator[Any]:
    """Run ``stress_peers.target_server`` in its own process while the block runs."""
    import stress_peers

    ready, stop = spawn_ctx.Event(), spawn_ctx.Event()
    proc = spawn_ctx.Process(
        target=stress_peers.target_server,
        args=(channel, socket_dir, protocol, ready, stop, opts),
    )
    proc.start()
    try:
        assert ready.wait(60)
        yield proc
    finally:
        stop.set()
        stop_process(proc, 30)


def sample_when_settled(probe: ProcessProbe, fds: int, timeout: float = 10.0) -> Dict[str, int]:
    """Wait (up to ``timeout``) until ``probe`` holds at most ``fds`` descriptors; then sample."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and probe.fds() > fds:
        time.sleep(0.05)
    return probe.sample()


def stop_process(proc: Any, timeout: float = 10.0) -> None:
    """Join a multiprocessing process, killing it if it does not end in ``timeout``."""
    if proc._closed or proc.pid is None:
        return
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout)
    proc.close()  # its sentinel pipe, now rather than at garbage collection
