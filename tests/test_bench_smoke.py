"""CI smoke run of the benchmark: ``benchmarks/bench.py --quick`` runs and loses nothing.

Only that it runs: the figures of a shared CI machine say nothing, so the
targets are not checked here. Set ``UNIXEVENTS_SKIP_BENCH=1`` to skip it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"

pytestmark = pytest.mark.skipif(
    os.environ.get("UNIXEVENTS_SKIP_BENCH") == "1", reason="UNIXEVENTS_SKIP_BENCH=1"
)


@pytest.mark.timeout(150)
def test_quick_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "measurement" in proc.stdout and "one-way throughput" in proc.stdout, proc.stdout
    assert "OK: 0 messages lost, 0 errors" in proc.stdout, proc.stdout
    results = json.loads(out.read_text())
    assert results["ok"] and not results["lost"] and not results["errors"]
    assert all(row["unixevents"] is not None for row in results["rows"]), results["rows"]
