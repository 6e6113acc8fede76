"""Demo 5: workers. Three processes square numbers for the parent; one is killed and noticed."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Dict, List

from unixevents.mp import Worker, WorkerDied, spawn


def squarer(events: Any, label: str) -> int:
    """The worker: answer every job with its square; return how many it did."""
    done = 0

    def on_job(job: Dict[str, int]) -> None:
        nonlocal done
        events.send("result", {"worker": label, "id": job["id"], "value": job["n"] ** 2})
        done += 1

    events.receive("job", on_job)
    events.send("hello", {"worker": label, "pid": os.getpid()})
    events.wait_closed()  # until the parent closes the channel
    return done


_print_lock = threading.Lock()


def say(text: str) -> None:
    """Print one whole line: listeners of several workers print at once."""
    with _print_lock:
        print(text, flush=True)


class _Results:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.values: Dict[int, Any] = {}

    def add(self, result: Dict[str, Any]) -> None:
        say(f"  {result['worker']}: job {result['id']} -> {result['value']}")
        with self._cond:
            self.values[result["id"]] = result["value"]
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.values) >= count, timeout)


def main() -> None:
    results = _Results()
    died = threading.Event()

    def on_exit(worker: Worker) -> None:
        say(f"  parent noticed: {worker!r} ended")
        if worker.exitcode is not None and worker.exitcode < 0:
            died.set()

    workers: List[Worker] = []
    try:
        for i in range(3):
            w = spawn(squarer, f"w{i}", name=f"squarer-{i}")
            w.events.receive("hello", lambda d: say(f"  {d['worker']} ready (pid {d['pid']})"))
            w.events.receive("result", results.add)
            w.on_exit(on_exit)
            workers.append(w)

        for job in range(6):  # round robin over the three
            workers[job % 3].events.send("job", {"id": job, "n": job + 1})
        results.wait(6)

        victim = workers[1]
        say(f"  killing {victim.name} (pid {victim.pid}) with SIGKILL")
        os.kill(victim.pid, signal.SIGKILL)
        died.wait(5)
        say(f"  {victim.name} alive: {victim.alive}")

        live = [w for w in workers if w.alive]
        for job in range(6, 10):  # the survivors take the rest
            live[job % len(live)].events.send("job", {"id": job, "n": job + 1})
        results.wait(10)
        say(f"  sum of squares 1..10 = {sum(results.values.values())}")
    finally:
        for w in workers:
            w.close()
    for w in workers:
        try:
            say(f"  {w.name} did {w.result()} jobs")
        except WorkerDied as exc:
            say(f"  {w.name}: {exc}")


if __name__ == "__main__":
    main()
