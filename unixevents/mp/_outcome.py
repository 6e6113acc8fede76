"""How a worker ended: its result file, its exit code, and the error that tells the user.

The child writes its outcome (the target's return value, or the exception's
type, message and traceback text) with ``dill`` to a file in the parent's
private worker directory (mode 0700), atomically (write, then rename). The
parent reads it once the process has ended. A file rather than a message on the
channel, because it works whatever the target did with its channel (closed it,
flooded it), has no size limit, and is never mixed into the user's events; and
"no file" is the plain fact that the target never returned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import traceback
from typing import Any, Optional, Tuple

import dill

from ..errors import RemoteError, UnixEventsError, WorkerDied

__all__ = ("describe_exit", "outcome_value", "write_failure", "write_return")

RESULT_FILE = "result"

Outcome = Tuple[Any, ...]  # ("ok", value) or ("error", type name, message, traceback)


def _write(directory: str, outcome: Outcome) -> None:
    data = dill.dumps(outcome, recurse=True)
    path = os.path.join(directory, RESULT_FILE)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def write_return(directory: str, value: Any) -> bool:
    """Record the target's return value; False (and a failure recorded) if it cannot be."""
    try:
        _write(directory, ("ok", value))
        return True
    except Exception as exc:
        write_failure(
            directory,
            exc,
            f"the target returned a {type(value).__name__} that dill cannot serialize:"
            " return something picklable, or send the data over the channel",
        )
        return False


def write_failure(
    directory: str, exc: BaseException, context: str = "", *, skip_frames: int = 0
) -> None:
    """Record that the target (or the worker's start-up, per ``context``) raised ``exc``.

    ``skip_frames`` leaves the bootstrap's own frames out of the traceback text.
    """
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    message = f"{type(exc).__name__}: {exc}"
    if context:
        message = f"{context}: {message}"
    with contextlib.suppress(OSError):  # the directory is gone: so is the parent
        _write(directory, ("error", type(exc).__name__, message, text))


def read_outcome(directory: str) -> Optional[bytes]:
    """The raw outcome the child wrote, or None if it wrote none."""
    try:
        with open(os.path.join(directory, RESULT_FILE), "rb") as fh:
            return fh.read()
    except OSError:
        return None


def describe_exit(exitcode: Optional[int]) -> str:
    """``'exit code 3'``, ``'signal SIGKILL (-9)'``: how a process ended, for messages."""
    if exitcode is None:
        return "an unknown status"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"signal {name} (exit code {exitcode})"
    return f"exit code {exitcode}"


def remote_error(raw: Optional[bytes]) -> Optional[RemoteError]:
    """The ``RemoteError`` in an outcome, or None if the outcome is not an error."""
    if raw is None:
        return None
    outcome = dill.loads(raw)
    if outcome[0] != "error":
        return None
    _, type_name, message, text = outcome
    return RemoteError(f"{message}\n\nRemote traceback:\n{text}", type_name, text)


def outcome_value(raw: Optional[bytes], exitcode: Optional[int], who: str) -> Any:
    """The worker's result, or the exception that says why there is none.

    Raises:
        RemoteError: the target raised (the message carries the child's traceback).
        WorkerDied: the worker ended without returning.
    """
    if raw is None:
        if exitcode == 0:
            return None  # sys.exit(0), or a popen'd program that succeeded
        raise WorkerDied(
            f"{who} died without returning a result: it ended with {describe_exit(exitcode)}."
            f"{_hint(exitcode)}",
            exitcode,
        )
    try:
        outcome = dill.loads(raw)
    except Exception as exc:
        raise UnixEventsError(
            f"{who} returned a value this process cannot load ({type(exc).__name__}: {exc});"
            " make sure its type is importable here"
        ) from exc
    if outcome[0] == "ok":
        return outcome[1]
    error = remote_error(raw)
    assert error is not None
    raise error


def _hint(exitcode: Optional[int]) -> str:
    if exitcode == -signal.SIGKILL:
        return " SIGKILL usually means someone killed it or the kernel ran out of memory (OOM)."
    if exitcode == -signal.SIGTERM:
        return " SIGTERM means it was asked to stop (terminate(), or the system)."
    if exitcode == -signal.SIGSEGV:
        return " SIGSEGV is a crash in native code."
    return ""
