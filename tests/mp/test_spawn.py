"""``unixevents.mp.spawn`` and ``Worker``, in real processes, under every start method."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, List, Tuple

import pytest
import worker_targets
from mp_support import start_method, warm_up
from worker_targets import Box, ExitsOnLoad, RaisesOnLoad, scale

from unixevents import RemoteError, SerializationError, UnixEvents, WorkerDied
from unixevents.mp import Worker, spawn

HERE = os.path.dirname(os.path.abspath(__file__))
__all__ = ("start_method",)  # the fixture, imported for pytest
warm_up()


def _collect(events: UnixEvents, event: str) -> Tuple[List[Any], threading.Event]:
    got: List[Any] = []
    arrived = threading.Event()

    def on(data: Any) -> None:
        got.append(data)
        arrived.set()

    events.receive(event, on)
    return got, arrived


# --------------------------------------------------------------- channel


def test_events_flow_both_ways(start_method: str) -> None:
    with spawn(worker_targets.square_worker, 2, start_method=start_method) as w:
        assert w.events.connected
        assert [p.pid for p in w.events.peers] == [w.pid]
        hello, hello_arrived = _collect(w.events, "hello")
        results, result_arrived = _collect(w.events, "result")
        w.events.send("job", 7)
        assert hello_arrived.wait(10) and hello == [w.pid]
        assert result_arrived.wait(10) and results == [98]
    assert w.exitcode == 0
    assert w.result(0) == "done"


def test_the_child_sees_the_parent_as_its_only_peer(start_method: str) -> None:
    def check(events: Any) -> Any:
        return [p.pid for p in events.peers], events.role, events.connected

    w = spawn(check, start_method=start_method)
    pids, role, connected = w.result(30)
    assert pids == [os.getpid()] and role == "client" and connected
    w.close()


# ---------------------------------------------------------------- targets


def test_lambda_calling_module_helpers(start_method: str) -> None:
    with spawn(lambda events, n: scale(n) + 1, 4, start_method=start_method) as w:
        assert w.result(30) == 41


def test_closure_over_locals(start_method: str) -> None:
    offset = 5
    table = {"a": 1}

    def inner(events: Any, n: int, *, extra: int) -> int:
        return scale(n) + offset + table["a"] + extra

    with spawn(inner, 4, extra=100, start_method=start_method) as w:
        assert w.result(30) == 40 + 5 + 1 + 100


def test_any_picklable_object_comes_back(start_method: str) -> None:
    with spawn(lambda events, box: Box({box.value, 2}), Box(1), start_method=start_method) as w:
        value = w.result(30)
    assert isinstance(value, Box) and value.value == {1, 2}


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_function_defined_in_a_main_script(start_method: str) -> None:
    import multiprocessing

    if start_method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{start_method} is not available here")
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "main_script.py"), start_method],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=HERE,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"function": 101, "closure": 202, "lambda": 102, "class": 7}


def test_function_defined_in_an_interactive_session(start_method: str) -> None:
    # python -c has no __main__ file: the target exists only in memory.
    code = (
        "from unixevents.mp import spawn\n"
        "K = 3\n"
        "def f(events, x):\n"
        "    return x + K\n"
        f"print(spawn(f, 1, start_method={start_method!r}).result(30),"
        f" spawn(lambda ev: K * 2, start_method={start_method!r}).result(30))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50, cwd=HERE
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["4", "6"]


def test_unpicklable_arguments_are_refused_at_once() -> None:
    with pytest.raises(SerializationError, match="cannot send the target"):
        spawn(lambda events, g: None, (i for i in range(3)))


def test_a_non_callable_target_is_refused() -> None:
    with pytest.raises(TypeError):
        spawn(42)  # type: ignore[arg-type]


def test_an_unknown_start_method_is_refused() -> None:
    with pytest.raises(ValueError):
        spawn(lambda events: None, start_method="teleport")


# ------------------------------------------------------------ outcomes


def test_remote_error_carries_the_child_traceback(start_method: str) -> None:
    def fail(events: Any, word: str) -> None:
        raise ValueError(f"boom {word}")

    w = spawn(fail, "now", start_method=start_method)
    with pytest.raises(RemoteError) as info:
        w.result(30)
    assert info.value.remote_type == "ValueError"
    assert "boom now" in str(info.value)
    assert "in fail" in info.value.remote_traceback
    assert "_bootstrap" not in info.value.remote_traceback
    assert w.exitcode == 1
    w.close()


def test_sys_exit_code_is_the_exit_code(start_method: str) -> None:
    w = spawn(lambda events: sys.exit(3), start_method=start_method)
    with pytest.raises(WorkerDied, match="exit code 3") as info:
        w.result(30)
    assert info.value.exitcode == 3 == w.exitcode
    w.close()


def test_result_times_out_while_running() -> None:
    with spawn(worker_targets.blocking_worker) as w:
        with pytest.raises(TimeoutError):
            w.result(0.1)
        assert w.alive and w.exitcode is None


def test_child_that_dies_before_ready_makes_spawn_raise(start_method: str) -> None:
    with pytest.raises(WorkerDied, match="exit code 3 before it was ready") as info:
        spawn(lambda events, x: None, ExitsOnLoad(), start_method=start_method)
    assert info.value.exitcode == 3


def test_target_that_cannot_be_rebuilt_makes_spawn_raise(start_method: str) -> None:
    with pytest.raises(WorkerDied, match="cannot be rebuilt here") as info:
        spawn(lambda events, x: None, RaisesOnLoad(), start_method=start_method)
    assert info.value.exitcode == 1


# ---------------------------------------------------------- death noticed


def test_sigkill_is_noticed_within_two_seconds(start_method: str) -> None:
    w = spawn(worker_targets.blocking_worker, start_method=start_method)
    ended = threading.Event()
    calls: List[Worker] = []
    w.on_exit(lambda worker: (calls.append(worker), ended.set()))
    assert w.alive
    os.kill(w.pid, signal.SIGKILL)
    t0 = time.monotonic()
    assert ended.wait(2.0), "on_exit did not fire within 2 s of SIGKILL"
    assert time.monotonic() - t0 < 2.0
    assert not w.alive
    assert w.exitcode == -signal.SIGKILL
    with pytest.raises(WorkerDied, match="SIGKILL") as info:
        w.result(0)
    assert info.value.exitcode == -9
    w.close()
    assert calls == [w]


def test_on_exit_fires_once_for_a_return_and_at_once_when_late(start_method: str) -> None:
    w = spawn(lambda events: "ok", start_method=start_method)
    early: List[Worker] = []
    w.on_exit(early.append)
    assert w.result(30) == "ok"
    w.close()
    assert early == [w]
    late: List[Worker] = []
    w.on_exit(late.append)
    assert late == [w] and early == [w]


def test_on_exit_fires_for_an_exception() -> None:
    fired = threading.Event()
    w = spawn(lambda events: 1 / 0)
    w.on_exit(lambda worker: fired.set())
    assert fired.wait(30)
    assert w.exitcode == 1
    w.close()


def test_a_raising_on_exit_hook_is_logged_not_fatal(caplog: Any) -> None:
    w = spawn(lambda events: None)
    second = threading.Event()
    w.on_exit(lambda worker: 1 / 0)
    w.on_exit(lambda worker: second.set())
    assert second.wait(30)
    w.close()
    assert "on_exit hook" in caplog.text


def test_terminate_and_kill(start_method: str) -> None:
    w = spawn(worker_targets.stubborn_worker, start_method=start_method)
    w.terminate()
    assert w.join(10)
    assert w.exitcode == -signal.SIGTERM
    w.kill()  # ended already: a no-op
    w.close()


# ------------------------------------------------------------- closing


def test_close_ends_a_worker_waiting_on_its_channel(start_method: str) -> None:
    w = spawn(worker_targets.blocking_worker, start_method=start_method)
    directory = w._directory
    assert os.path.isdir(directory)
    w.close()
    assert w.exitcode == 0
    assert not os.path.exists(directory)
    assert w.events.closed


def test_the_channel_stays_open_for_late_listeners(start_method: str) -> None:
    w = spawn(lambda events: events.send("bye", 1), start_method=start_method)
    assert w.join(30)
    assert not w.events.closed
    got, arrived = _collect(w.events, "bye")  # registered after the child ended
    assert arrived.wait(10) and got == [1]
    w.close()
    assert w.events.closed


def test_close_terminates_a_worker_that_ignores_its_channel() -> None:
    w = spawn(worker_targets.stubborn_worker)
    w.close(timeout=0.5)
    assert w.exitcode == -signal.SIGTERM
    w.close()  # idempotent


def test_nothing_is_left_on_disk_after_join(start_method: str) -> None:
    w = spawn(worker_targets.blocking_worker, start_method=start_method)
    directory, address = w._directory, w.events.address
    assert address is not None and address.startswith(directory)
    assert oct(os.stat(directory).st_mode & 0o777) == oct(0o700)
    w.terminate()
    assert w.join(30)
    assert not os.path.exists(directory)
    w.close()


def test_each_worker_has_its_own_channel_and_key() -> None:
    with spawn(worker_targets.blocking_worker) as a, spawn(worker_targets.blocking_worker) as b:
        assert a.events.address != b.events.address
        assert a.events._authkey != b.events._authkey


def test_messages_sent_just_before_exit_arrive(start_method: str) -> None:
    def burst(events: Any) -> None:
        for i in range(200):
            events.send("n", i)

    w = spawn(burst, start_method=start_method)
    got: List[int] = []
    w.events.receive("n", got.append)
    assert w.join(30)
    w.close()
    assert got == list(range(200))


def test_worker_attributes() -> None:
    with spawn(worker_targets.blocking_worker, name="alpha") as w:
        assert w.name == "alpha"
        assert isinstance(w.pid, int) and w.pid != os.getpid()
        assert w.process is None
        assert "alpha" in repr(w) and "running" in repr(w)
    assert "exit code 0" in repr(w)
