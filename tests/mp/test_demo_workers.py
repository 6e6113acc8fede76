"""Demo 5 and examples/workers.py run, end by themselves and say what happened."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_5_runs_and_notices_the_killed_worker() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "unixevents.examples", "5"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sum of squares 1..10 = 385" in proc.stdout
    assert "parent noticed: <Worker 'squarer-1'" in proc.stdout
    assert "SIGKILL" in proc.stdout
    assert "squarer-1 alive: False" in proc.stdout


def test_workers_example_runs() -> None:
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "workers.py")],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr
    assert "result: 98" in proc.stdout
    assert "returned: square_worker is done" in proc.stdout
    assert "lambda returned: 15" in proc.stdout
