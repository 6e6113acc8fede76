"""Benchmark unixevents against a bare multiprocessing.connection pair (issue 6).

    python benchmarks/bench.py            # full run, median of 5 repetitions
    python benchmarks/bench.py --quick    # short run (CI smoke), 1 repetition
    python benchmarks/bench.py --json results.json

Every measurement runs its peers in fresh processes, each with its own socket
directory and channel name, counts every message on the receiving side, and
leaves nothing behind. The table compares unixevents with the baseline and
with the targets of issue 6; see benchmarks/README.md for what each row means.

Exit status: 0 when every measurement ran and no message was lost (missed
targets are reported, not fatal); 1 when a message was lost or a measurement
failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import _baseline as raw
import _memory as mem
import _unixevents_peers as ue
from _measure import BLOB_SIZE
from _report import render, verdicts
from _runner import BenchError, Outcome, PeerFn, receivers, run, span

_DEFAULT_MAX_PENDING = 100_000
FANOUT_CLIENTS = 8

Metrics = Dict[str, float]
Analysis = Callable[[Outcome], Tuple[Metrics, int]]


@dataclasses.dataclass(frozen=True)
class Counts:
    events: int  # one-way
    trips: int  # round trips, each kind
    warmup: int  # untimed round trips first
    blobs: int  # 64 KiB payloads
    fanout: int  # events broadcast to each client
    repeat: int


FULL = Counts(events=100_000, trips=10_000, warmup=500, blobs=2_000, fanout=50_000, repeat=5)
QUICK = Counts(events=20_000, trips=2_000, warmup=100, blobs=300, fanout=3_000, repeat=1)


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    server: PeerFn
    client: PeerFn
    analyse: Analysis
    clients: int = 1
    fields: Dict[str, Any] = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------- analysis


def _flow(outcome: Outcome) -> Tuple[Metrics, int]:
    """Arrivals per second, receiving side, first arrival to last, across all receivers."""
    reports = receivers(outcome)
    count = sum(r["count"] for r in reports)
    lost = sum(max(0, r["expected"] - r["count"]) + r["wrong"] for r in reports)
    first, last = span(reports)
    metrics = _rss(outcome)
    if lost == 0 and last > first:
        metrics["rate"] = count / (last - first)
        # JSON only: from the first send to the last arrival, and the send loop alone.
        sender = next(r for r in outcome.results if "start" in r)
        metrics["e2e_rate"] = count / (last - sender["start"])
        metrics["send_rate"] = count / (sender["end"] - sender["start"])
    return metrics, lost


def _megabytes(outcome: Outcome) -> Tuple[Metrics, int]:
    metrics, lost = _flow(outcome)
    if "rate" in metrics:
        metrics["mbps"] = metrics["rate"] * BLOB_SIZE / 1e6
    return metrics, lost


def _rss(outcome: Outcome) -> Metrics:
    return {"rss.server": outcome.peak_rss[0], "rss.client": max(outcome.peak_rss[1:])}


def _latency(outcome: Outcome) -> Tuple[Metrics, int]:
    metrics: Metrics = {}
    lost = 0
    for kind, stats in outcome.results[1].items():
        lost += stats["lost"]
        if stats["error"]:
            print(f"    {kind}: {stats['error']}", file=sys.stderr)
        for stat in ("mean", "p50", "p99"):
            metrics[f"{kind}.{stat}"] = stats[stat]
    return metrics, lost


def _held(outcome: Outcome) -> Tuple[Metrics, int]:
    r = outcome.results[0]
    growth = r["peak"] - r["rss_before"]
    return {
        "growth": growth,
        "queued": r["queued_bytes"],
        "ratio": growth / r["queued_bytes"],
        "kernel_messages": r["kernel_messages"],
        "rss_before": r["rss_before"],
    }, 0


def _bounded(outcome: Outcome) -> Tuple[Metrics, int]:
    r = outcome.results[0]
    r0, r1, r2 = r["rss"]
    return {
        "growth_first": r1 - r0,
        "growth_second": r2 - r1,
        "round_bytes": r["round_bytes"],
        "attempted": r["attempted"],
        "queue_full": r["queue_full"],
        "other_errors": r["other_errors"],
        "kernel_messages": r["kernel_messages"],
    }, 0


# -------------------------------------------------------------------- plan


def plan(c: Counts) -> List[Scenario]:
    tick = {"count": c.events, "kind": "tick"}
    trips = {"count": c.trips, "warmup": c.warmup}
    blobs = {"count": c.blobs, "kind": "blob"}
    fan = {"count": c.fanout, "kind": "tick"}
    # unixevents senders may queue a whole run: send() never meets QueueFull.
    pending = {"max_pending": max(_DEFAULT_MAX_PENDING, c.events, c.blobs)}
    fan_pending = {"max_pending": max(_DEFAULT_MAX_PENDING, c.fanout * FANOUT_CLIENTS)}
    n = FANOUT_CLIENTS
    return [
        Scenario("oneway.ue", ue.receiver, ue.sender, _flow, fields={**tick, **pending}),
        Scenario("oneway.raw", raw.receiver, raw.sender, _flow, fields=tick),
        Scenario("oneway.raw64", raw.receiver, raw.sender, _flow, fields={**tick, "per_frame": 64}),
        Scenario("latency.ue", ue.echo_server, ue.latency_client, _latency, fields=trips),
        Scenario("latency.raw", raw.echo_server, raw.latency_client, _latency, fields=trips),
        Scenario(
            "latency.rawthreads",
            raw.echo_server_threaded,
            raw.latency_client_threaded,
            _latency,
            fields=trips,
        ),
        Scenario("blob.ue", ue.receiver, ue.sender, _megabytes, fields={**blobs, **pending}),
        Scenario("blob.raw", raw.receiver, raw.sender, _megabytes, fields=blobs),
        Scenario("fanout.ue", ue.broadcaster, ue.subscriber, _flow, n, {**fan, **fan_pending}),
        Scenario("fanout.raw", raw.broadcaster, raw.subscriber, _flow, n, fan),
        Scenario("memory.held", mem.held_server, mem.stalled_client, _held),
        Scenario(
            "memory.bounded",
            mem.bounded_server,
            mem.stalled_client,
            _bounded,
            fields={"max_pending": mem.BOUNDED_PENDING},
        ),
    ]


# --------------------------------------------------------------------- run


@dataclasses.dataclass
class Tally:
    runs: List[Dict[str, float]] = dataclasses.field(default_factory=list)
    lost: Dict[str, int] = dataclasses.field(default_factory=dict)
    errors: List[str] = dataclasses.field(default_factory=list)


def run_all(counts: Counts) -> Tally:
    tally = Tally()
    scenarios = plan(counts)
    for rep in range(1, counts.repeat + 1):
        figures: Dict[str, float] = {}
        for sc in scenarios:
            metrics = _run_one(sc, rep, counts.repeat, tally)
            figures.update({f"{sc.name}.{k}": v for k, v in metrics.items()})
        tally.runs.append(figures)
    return tally


def _run_one(sc: Scenario, rep: int, reps: int, tally: Tally) -> Metrics:
    print(f"[{rep}/{reps}] {sc.name} ...", end="", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        outcome = run(sc.name, sc.server, sc.client, clients=sc.clients, **sc.fields)
        metrics, lost = sc.analyse(outcome)
    except BenchError as exc:
        print(" ERROR", file=sys.stderr)
        tally.errors.append(f"{sc.name} (repetition {rep}): {exc}")
        return {}
    print(f" {time.monotonic() - started:.1f} s", file=sys.stderr)
    if lost:
        tally.lost[f"{sc.name} (repetition {rep})"] = lost
    return metrics


def medians(runs: List[Dict[str, float]]) -> Dict[str, Optional[float]]:
    keys = sorted({k for figures in runs for k in figures})
    return {k: statistics.median([f[k] for f in runs if k in f]) for k in keys}


# ------------------------------------------------------------------ report


def _notes(m: Dict[str, Optional[float]]) -> List[str]:
    notes = []
    flows = [
        (label, m.get(f"{key}.ue.e2e_rate"), m.get(f"{key}.raw.e2e_rate"))
        for label, key in (("one-way", "oneway"), ("fan-out", "fanout"))
    ]
    cells = [f"{label} {ours:,.0f} vs {base:,.0f}" for label, ours, base in flows if ours and base]
    if cells:
        notes.append(f"first send to last arrival, events/s: {'; '.join(cells)}")
    threaded, plain = m.get("latency.rawthreads.pingpong.p50"), m.get("latency.raw.pingpong.p50")
    if threaded is not None and plain is not None:
        notes.append(
            f"threaded ping-pong: the baseline with one thread hand-off per side"
            f" (queue.SimpleQueue), p50 {threaded:,.1f} us against {plain:,.1f} us; the least"
            " a design pays that reads on a background thread and runs listeners on another"
        )
    kernel, before = m.get("memory.held.kernel_messages"), m.get("memory.held.rss_before")
    if kernel is not None and before is not None:
        notes.append(
            f"stalled client: the kernel socket buffers took {kernel:,.0f} KiB first; then"
            f" 1,000 x 1 KiB stayed queued in the server (RSS before: {before / 1e6:.1f} MB)"
        )
    full, sent = m.get("memory.bounded.queue_full"), m.get("memory.bounded.attempted")
    first = m.get("memory.bounded.growth_first")
    if full is not None and sent is not None and first is not None:
        notes.append(
            f"slow consumer: max_pending={mem.BOUNDED_PENDING}; {full:,.0f} of {sent:,.0f}"
            f" sends got QueueFull; RSS growth while the queue filled: {first / 1e6:.2f} MB"
        )
    return notes


def report(counts: Counts, quick: bool, tally: Tally, elapsed: float) -> Dict[str, Any]:
    m = medians(tally.runs)
    rows = verdicts(m, tally.runs)
    mode = "quick run" if quick else "full run"
    print(
        f"\nunixevents vs multiprocessing.connection - {mode}, median of {counts.repeat},"
        f" Python {platform.python_version()}, {platform.system()}, {os.cpu_count()} CPUs"
    )
    print("\n".join(render(rows)))
    for note in _notes(m):
        print(f"note: {note}")
    judged = [v for v in rows if v.result in ("PASS", "FAIL")]
    met = sum(v.result == "PASS" for v in judged)
    lost = sum(tally.lost.values())
    for name, n in tally.lost.items():
        print(f"LOST: {n} message(s) in {name}")
    for error in tally.errors:
        print(f"ERROR: {error}")
    verdict = "FAILED" if lost or tally.errors else "OK"
    print(
        f"{verdict}: {lost} messages lost, {len(tally.errors)} errors;"
        f" {met} of {len(judged)} targets met; {elapsed:.0f} s"
    )
    return {
        "mode": mode,
        "counts": dataclasses.asdict(counts),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "rows": [v.as_dict() for v in rows],
        "medians": m,
        "runs": tally.runs,
        "lost": tally.lost,
        "errors": tally.errors,
        "elapsed_s": elapsed,
        "ok": verdict == "OK",
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one repetition")
    parser.add_argument("--repeat", type=int, help="repetitions (median is reported)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else FULL
    if args.repeat:
        counts = dataclasses.replace(counts, repeat=args.repeat)
    started = time.monotonic()
    tally = run_all(counts)
    results = report(counts, args.quick, tally, time.monotonic() - started)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
