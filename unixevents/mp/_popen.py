"""``popen``: start any program with a channel handed to it through an inherited pipe."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from typing import Any, Optional, Sequence, Union

from ._bootstrap import ENV_FD
from ._worker import Worker, handover_for, make_home

__all__ = ("popen",)

_counter = itertools.count(1)


class _PopenChild:
    """A ``subprocess.Popen`` seen as a ``ChildProcess``."""

    def __init__(self, process: subprocess.Popen[Any]) -> None:
        self._process = process
        self.pid = process.pid

    def wait(self) -> int:
        return self._process.wait()

    def send_signal(self, sig: int) -> None:
        self._process.send_signal(sig)  # a no-op once reaped


def popen(
    args: Union[str, Sequence[str]],
    *,
    name: Optional[str] = None,
    exit_with_parent: bool = True,
    **popen_kwargs: Any,
) -> Worker:
    """Start a program with ``subprocess.Popen`` and a channel handed to it.

    In the program, :func:`~unixevents.mp.parent_channel` returns the
    connected channel. ``popen`` does not wait for the program to connect
    (it may never): use ``w.events.wait_connected()``.

    Args:
        args: the command, as for ``subprocess.Popen``.
        name: the worker's name (default ``popen-N``).
        exit_with_parent: the program ends when this process dies; it takes
            effect when the program calls ``parent_channel()``.
        **popen_kwargs: passed to ``subprocess.Popen`` (``env`` and
            ``pass_fds`` are extended, not replaced).

    Returns:
        the :class:`Worker`; its ``process`` is the ``subprocess.Popen``, and
        ``result()`` is None after exit code 0.
    """
    directory, key, server = make_home()
    read_fd = -1
    try:
        handover = handover_for(directory, key, server, exit_with_parent)
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, handover.to_json())  # far below a pipe's buffer
        finally:
            os.close(write_fd)
        env = dict(popen_kwargs.pop("env", None) or os.environ)
        env[ENV_FD] = str(read_fd)
        pass_fds = (*popen_kwargs.pop("pass_fds", ()), read_fd)
        process = subprocess.Popen(args, env=env, pass_fds=pass_fds, **popen_kwargs)
    except BaseException:
        server.close(timeout=0.0)
        shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        if read_fd >= 0:
            os.close(read_fd)
    return Worker(
        _PopenChild(process),
        server,
        directory,
        name=name or f"popen-{next(_counter)}",
        exit_with_parent=exit_with_parent,
        popen=process,
    )
