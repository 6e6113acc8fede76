"""What every peer measures with, whichever side of the comparison it is on.

The unixevents peers and the baseline peers share these pieces so that the
two differ only in how bytes travel: the same payloads, the same per-message
check on arrival, the same clock and the same latency loop.

Timestamps come from ``time.perf_counter``, which on Linux and macOS reads a
system-wide monotonic clock, so stamps taken in different processes compare.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import statistics
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import psutil

__all__ = (
    "BLOB_SIZE",
    "IDLE_TIMEOUT",
    "KIB",
    "Tally",
    "payloads",
    "peak_rss",
    "reset_peak_rss",
    "rss",
    "time_exchanges",
    "trim_heap",
    "wait_quiet",
    "wait_until",
)

# A receiver that sees nothing new for this long stops waiting and reports
# what it has: the shortfall is then counted as lost.
IDLE_TIMEOUT = 5.0

BLOB_SIZE = 64 * 1024
_BLOB = ("0123456789abcdef" * (BLOB_SIZE // 16))[:BLOB_SIZE]
KIB = 1024


def _tick(i: int) -> Any:
    return {"i": i, "s": "hello world"}


def _blob(i: int) -> Any:
    return _BLOB


def _kib(i: int) -> Any:
    # A fresh 1 KiB str per message: only what the library keeps stays alive.
    return f"{i:08d}".ljust(KIB, "x")


_MAKERS: Dict[str, Callable[[int], Any]] = {"tick": _tick, "blob": _blob, "kib": _kib}


# A check gets an arrival and the position of the previous one, and returns
# the arrival's position, or -1 if it is out of order, repeated or altered. A
# gap is not "wrong": the receiver comes up short, and that counts as lost.


def _tick_at(data: Any, prev: int) -> int:
    try:
        i = data["i"]
        return i if i > prev and data["s"] == "hello world" else -1
    except (TypeError, KeyError):
        return -1


def _blob_at(data: Any, prev: int) -> int:
    return prev + 1 if data == _BLOB else -1


_CHECKS: Dict[str, Callable[[Any, int], int]] = {"tick": _tick_at, "blob": _blob_at}


def payloads(kind: str, count: int) -> Iterator[Any]:
    """The ``count`` payloads of a run, in order (``tick``, ``blob`` or ``kib``)."""
    make = _MAKERS[kind]
    return (make(i) for i in range(count))


class Tally:
    """Counts arrivals, checks each against what was sent, stamps the first and the last.

    ``add`` is the only thing a receiver calls per message, so its cost is
    the same on both sides of the comparison.
    """

    def __init__(self, expected: int, kind: str) -> None:
        self.expected = expected
        self.count = 0
        self.wrong = 0
        self.first = 0.0
        self.last = 0.0
        self.done = threading.Event()
        self._check = _CHECKS[kind]
        self._at = -1

    def add(self, data: Any) -> None:
        if self.count == 0:
            self.first = time.perf_counter()
        at = self._check(data, self._at)
        if at < 0:
            self.wrong += 1
        else:
            self._at = at
        self.count += 1
        if self.count == self.expected:
            self.last = time.perf_counter()
            self.done.set()

    def wait(self, idle: float = IDLE_TIMEOUT) -> None:
        """Block until everything arrived, or nothing new did for ``idle`` seconds."""
        seen = -1
        while not self.done.wait(idle):
            if self.count == seen:
                return
            seen = self.count

    def summary(self) -> Dict[str, Any]:
        return {
            "expected": self.expected,
            "count": self.count,
            "wrong": self.wrong,
            "first": self.first,
            "last": self.last,
        }


def time_exchanges(exchange: Callable[[Any], Any], count: int, warmup: int) -> Dict[str, Any]:
    """Time ``count`` calls of ``exchange(payload) -> echoed payload``, after ``warmup`` untimed.

    An exchange that raises (time-out, peer gone) or echoes something else
    counts as lost; the loop stops at the first one, since what follows would
    measure the failure rather than the channel.
    """
    samples: List[float] = []
    lost = 0
    error = ""
    clock = time.perf_counter_ns
    for i, data in enumerate(payloads("tick", warmup + count)):
        start = clock()
        try:
            echoed = exchange(data)
        except Exception as exc:
            echoed, error = None, f"{type(exc).__name__}: {exc}"
        took = clock() - start
        if echoed != data:
            lost = warmup + count - i
            break
        if i >= warmup:
            samples.append(took / 1000.0)
    return {"expected": count, "lost": min(lost, count), "error": error, **_stats(samples)}


def _stats(samples_us: List[float]) -> Dict[str, float]:
    if len(samples_us) < 2:
        return {"mean": 0.0, "p50": 0.0, "p99": 0.0}
    cuts = statistics.quantiles(samples_us, n=100, method="inclusive")
    return {"mean": statistics.fmean(samples_us), "p50": cuts[49], "p99": cuts[98]}


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll ``predicate`` (another process's state has nothing to wait on); False on time-out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_quiet(
    value: Callable[[], int], quiet: float, *, goal: Optional[int] = None, timeout: float = 30.0
) -> int:
    """Wait until ``value()`` reaches ``goal`` or stays the same for ``quiet`` s; return it."""
    start = since = time.monotonic()
    last = value()
    while last != goal:
        time.sleep(0.005)
        now, current = time.monotonic(), value()
        if current != last:
            last, since = current, now
        elif now - since >= quiet or now - start > timeout:
            break
    return last


def rss() -> int:
    """This process's resident set size now, in bytes."""
    return int(psutil.Process().memory_info().rss)


def peak_rss() -> int:
    """This process's peak resident set size, in bytes.

    On Linux this is ``VmHWM`` rather than ``ru_maxrss``: the latter survives
    ``exec`` and so can report the parent's size for a spawned child.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def trim_heap() -> None:
    """Give the C heap's free pages back to the OS (glibc), so RSS growth shows new memory.

    Without it, memory freed earlier (a warm-up's buffers) stays resident and
    is silently reused, and growth would be under-reported.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def reset_peak_rss() -> bool:
    """Restart the peak at the current RSS (Linux >= 4.0); False where it cannot."""
    try:
        fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, b"5")
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
