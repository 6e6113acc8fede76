"""Start a demo's other program in its own process, and clean up after it."""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import tempfile
import uuid
from typing import Any, Callable, Iterator, Tuple


@contextlib.contextmanager
def demo_channel() -> Iterator[Tuple[str, str]]:
    """A fresh channel name and private socket directory, removed afterwards."""
    directory = tempfile.mkdtemp(prefix="unixevents-demo-")
    try:
        yield f"demo-{uuid.uuid4().hex[:8]}", directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def peer_process(target: Callable[..., Any], *args: Any) -> Iterator[Any]:
    """Run ``target(*args)`` in a separate (spawned) process; wait for it at the end."""
    proc = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    proc.start()
    try:
        yield proc
        proc.join(15)
        if proc.exitcode != 0:
            raise SystemExit(f"the demo's peer process failed (exit code {proc.exitcode})")
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
