"""Workers: child processes with a private, authenticated channel to their parent.

>>> from unixevents.mp import spawn                                  # doctest: +SKIP
>>> def square(events, factor):                                     # doctest: +SKIP
...     events.receive("job", lambda n: events.send("result", n * n * factor))
...     events.wait_closed()
>>> with spawn(square, 2) as w:                                     # doctest: +SKIP
...     w.events.receive("result", print)
...     w.events.send("job", 7)                                     # prints 98

How it works:

- :func:`spawn` makes a private directory (``tempfile.mkdtemp``, mode 0700), a
  fresh 32-byte random key, and a server channel on a socket in that directory.
  The target, its arguments, the socket path and the key reach the child inside
  ``multiprocessing``'s process arguments (copied by ``fork``, or pickled over
  a pipe for ``spawn``/``forkserver``); the target and arguments are encoded
  with ``dill``, so lambdas, closures and ``__main__`` functions work under
  every start method. The child connects, loads the target, says it is ready,
  and runs ``target(events, *args, **kwargs)``.
- The outcome (the return value, or the exception's traceback text) is written
  by the child, with ``dill``, to a file in the private directory; the parent
  reads it when the process has ended. That works whatever the target did with
  its channel and has no size limit. ``Worker.result()`` turns it into the
  value, a ``RemoteError``, or a ``WorkerDied`` when there is none.
- The end of a worker is noticed by a thread blocked on the process itself
  (its sentinel / ``waitpid``), never by asking the worker: a return, an
  exception and ``SIGKILL`` are all noticed the same way. Then the channel is
  closed, the directory removed and the ``on_exit`` hooks called.
- :func:`popen` hands the channel to any program through an inherited pipe:
  the parent writes the socket path and key (JSON) into a pipe, closes its
  write end, and passes the read end's descriptor number in the environment
  variable ``UNIXEVENTS_PARENT_FD``. The key is never in ``argv``, in the
  environment or on disk; only the child holds the descriptor (other users
  cannot open another user's descriptors). :func:`parent_channel` reads it
  once, closes it, removes the variable (so the program's own children do not
  inherit it) and connects. A program that is not Python can do the same.
- ``exit_with_parent=True``: in the child, a watchdog thread checks the
  parent's ``(pid, create_time)`` every 0.25 s and ends the process when the
  parent is gone (removing the parent's worker directory on the way); on Linux
  ``PR_SET_PDEATHSIG`` is armed as well when that is safe. In a :func:`popen`
  program this starts when it calls :func:`parent_channel`.
- Liveness is ``psutil``'s: :func:`is_alive` is False for a missing process, a
  zombie, or a process whose start time is not the one recorded (a reused PID).
"""

from .._liveness import is_alive as is_alive
from ..errors import WorkerDied as WorkerDied
from ._bootstrap import parent_channel as parent_channel
from ._popen import popen as popen
from ._spawn import spawn as spawn
from ._worker import Worker as Worker

__all__ = (
    "Worker",
    "WorkerDied",
    "is_alive",
    "parent_channel",
    "popen",
    "spawn",
)
