"""``spawn``: run a Python callable in a new process with a channel to this one."""

from __future__ import annotations

import itertools
import multiprocessing
import shutil
import signal
from typing import Any, Callable, Optional

import dill

from ..errors import SerializationError, WorkerDied
from ._bootstrap import run_worker
from ._worker import Worker, handover_for, make_home

__all__ = ("spawn",)

# How long a new child may take to import, connect and load its target.
START_TIMEOUT = 60.0

_counter = itertools.count(1)


class _MpChild:
    """A ``multiprocessing.Process`` seen as a ``ChildProcess``."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int = process.pid

    def wait(self) -> int:
        # join() waits on the process sentinel (spawn, forkserver) or in
        # waitpid (fork): the kernel's word, not the child's.
        self._process.join()
        code: int = self._process.exitcode
        self._process.close()  # release the sentinel's pipe now, not at GC
        return code

    def send_signal(self, sig: int) -> None:
        # Process.terminate/kill skip a child already reaped, so a reused PID is safe.
        if sig == signal.SIGKILL:
            self._process.kill()
        else:
            self._process.terminate()


def spawn(
    target: Callable[..., Any],
    *args: Any,
    start_method: Optional[str] = None,
    name: Optional[str] = None,
    exit_with_parent: bool = True,
    **kwargs: Any,
) -> Worker:
    """Run ``target(events, *args, **kwargs)`` in a new process.

    ``events`` is, in the child, a ``UnixEvents`` client already connected and
    authenticated to this process; here, the returned worker's ``events`` is
    the server end, with the child its only peer. Each worker gets its own
    private directory (mode 0700), socket and random key; they are removed when
    the worker has ended.

    Args:
        target: any callable ``dill`` can serialize: a lambda, a closure, a
            function defined in ``__main__`` or in an interactive session.
        *args, **kwargs: passed to ``target`` after ``events`` (also via ``dill``).
        start_method: ``'fork'``, ``'spawn'`` or ``'forkserver'``; default:
            the platform's ``multiprocessing`` default.
        name: the worker's name (default ``worker-N``).
        exit_with_parent: end the child when this process dies, even by SIGKILL.

    Returns:
        the :class:`Worker`, once the child is connected and has loaded its target.

    Raises:
        SerializationError: ``dill`` cannot serialize the target or its arguments.
        WorkerDied: the child ended before it was ready (the message says how).
        ValueError: ``start_method`` is not available here.
    """
    if not callable(target):
        raise TypeError(f"spawn() needs a callable target, not {type(target).__name__}")
    context = multiprocessing.get_context(start_method)
    try:
        payload = dill.dumps((target, args, kwargs), recurse=True)
    except Exception as exc:
        raise SerializationError(
            f"cannot send the target and its arguments to the worker: dill says"
            f" {type(exc).__name__}: {exc}; pass plain data, or create the resource"
            " inside the target"
        ) from exc
    name = name or f"worker-{next(_counter)}"
    directory, key, server = make_home()
    try:
        handover = handover_for(directory, key, server, exit_with_parent)
        process = context.Process(  # type: ignore[attr-defined]
            target=run_worker, args=(payload, handover), name=name, daemon=False
        )
        process.start()
    except BaseException:
        server.close(timeout=0.0)
        shutil.rmtree(directory, ignore_errors=True)
        raise
    worker = Worker(
        _MpChild(process), server, directory, name=name, exit_with_parent=exit_with_parent
    )
    if worker.wait_ready(START_TIMEOUT):
        return worker
    if worker.exitcode is None:
        worker.kill()
        worker.close(timeout=0.0)
        raise WorkerDied(
            f"worker {name!r} (pid {worker.pid}) was not ready within {START_TIMEOUT:.0f} s"
            " and was killed; is its start-up (imports, the main module under 'spawn')"
            " blocking?",
            worker.exitcode,
        )
    worker.close(timeout=0.0)
    raise worker.start_failure()
